//! The spectral density by stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani,
//! Krishnan, Xiao 2019).

use curvature_tensor::DType;

use crate::alloc;
use crate::error::invalid;
use crate::krylov::{self, is_breakdown, Krylov, MAX_KRYLOV_STEPS};
use crate::linalg::tridiagonal_eigen;
use crate::operator::LinearOperator;
use crate::probes::{check_probe_count, Probe, ProbeStream};
use crate::{HessianError, HessianOptions, Result};

/// The smallest σ [`spectral_density`] accepts: the density's peak, up to `1/(σ·√(2π))`, is
/// then far inside the f64 range (below it the peak of 1e-320 would overflow).
pub const MIN_SIGMA: f64 = 1e-300;

/// The largest σ [`spectral_density`] accepts: the grid's margin of
/// [`GRID_MARGIN_SIGMAS`]` · σ` around the nodes stays far inside the f64 range.
pub const MAX_SIGMA: f64 = 1e300;

/// The most grid points of a density (8 MiB each for the grid and the density).
pub const MAX_GRID_POINTS: usize = 1 << 20;

/// Options of [`spectral_density`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlqOptions {
    /// Number of probe vectors (1 to [`MAX_PROBES`](crate::MAX_PROBES)).
    pub probes: usize,
    /// Their distribution: Rademacher by default; [`Probe::Basis`] with `probes = dim` makes
    /// the density's moments exact (its mean is then trace / dim).
    pub probe: Probe,
    /// Lanczos steps per probe (capped at dim, then at most [`MAX_KRYLOV_STEPS`]); the
    /// quadrature is exact for polynomials of degree below `2 · steps`.
    pub steps: usize,
    pub seed: u64,
    /// Points of the density grid (2 to [`MAX_GRID_POINTS`]).
    pub grid_points: usize,
    /// Standard deviation of the Gaussian that broadens each node, in
    /// [[`MIN_SIGMA`], [`MAX_SIGMA`]].
    pub sigma: f64,
}

impl Default for SlqOptions {
    /// 10 Rademacher probes, 80 steps, seed 0, 1000 grid points, σ = 0.01.
    fn default() -> Self {
        SlqOptions {
            probes: 10,
            probe: Probe::Rademacher,
            steps: 80,
            seed: 0,
            grid_points: 1000,
            sigma: 0.01,
        }
    }
}

impl SlqOptions {
    /// The Lanczos steps per probe on a `dim`-dimensional operator.
    fn steps_for(&self, dim: usize) -> usize {
        self.steps.min(dim)
    }

    /// Bytes one probe's recurrence holds at its peak: its basis of `steps + 1` vectors, a
    /// block in transit and one step's temporaries (on the operator's device), and its row of
    /// the host's probe block. `usize::MAX` when that overflows.
    fn bytes_per_probe(&self, dim: usize, dtype: DType) -> usize {
        let steps = self.steps_for(dim);
        krylov::elements("SlqOptions", 1, steps.saturating_add(1), dim)
            .ok()
            .and_then(|e| e.checked_mul(dtype.size_in_bytes()))
            .and_then(|device| device.checked_add(dim.checked_mul(8)?))
            .unwrap_or(usize::MAX)
    }

    /// How many probes run together in one block on a `dim`-dimensional operator of `dtype`:
    /// as many recurrences as `memory`'s budget holds (their Krylov bases), at least one and
    /// at most `probes` and `memory.max_rows`. The blocks run one after the other, so memory
    /// is O(block · steps · dim) whatever the number of probes; results do not depend on it.
    pub fn block_probes(&self, dim: usize, dtype: DType, memory: &HessianOptions) -> usize {
        let fit = memory.memory_budget_bytes / self.bytes_per_probe(dim, dtype).max(1);
        fit.min(self.probes).min(memory.max_rows).max(1)
    }

    /// The most memory [`spectral_density`] needs besides the operator's own, in bytes, for an
    /// operator of dimension `dim` and `dtype`: one block of recurrences
    /// ([`block_probes`](SlqOptions::block_probes) times the basis of `steps + 1` vectors, a
    /// block in transit and a step's temporaries), the host's probe block, tridiagonal
    /// eigenproblem, nodes and weights of every probe, and the grid. The operator is applied
    /// to batches of `block_probes` rows, whose own workspace comes on top. An error when the
    /// count overflows.
    pub fn memory_bytes(&self, dim: usize, dtype: DType, memory: &HessianOptions) -> Result<usize> {
        const OP: &str = "SlqOptions::memory_bytes";
        let steps = self.steps_for(dim);
        let block = self.block_probes(dim, dtype, memory);
        let basis = krylov::elements(OP, block, steps.saturating_add(1), dim)?;
        let device = alloc::product(OP, "the Krylov bases", &[basis, dtype.size_in_bytes()])?;
        let probe_rows = alloc::product(OP, "the probe block", &[block, dim, 8])?;
        let tridiagonal = krylov::tridiagonal_bytes(OP, steps)?;
        // Nodes and weights of every probe, and the block's coefficients on their way.
        let quadrature = alloc::product(OP, "the nodes and weights", &[self.probes, steps, 16])?;
        let coefficients = alloc::product(OP, "the coefficients", &[block, steps, 32])?;
        let grid = alloc::product(OP, "the grid", &[self.grid_points, 16])?;
        alloc::sum(
            OP,
            "the SLQ memory",
            &[
                device,
                probe_rows,
                tridiagonal,
                quadrature,
                coefficients,
                grid,
            ],
        )
    }

    /// Errors unless every option is in its documented range for a `dim`-dimensional
    /// operator.
    fn validate(&self, dim: usize) -> Result<()> {
        const OP: &str = "spectral_density";
        check_probe_count(OP, dim, self.probes)?;
        if self.steps == 0 {
            return Err(invalid(OP, "needs steps ≥ 1, got 0"));
        }
        if self.steps_for(dim) > MAX_KRYLOV_STEPS {
            return Err(HessianError::TooLarge {
                op: OP,
                what: "the number of Lanczos steps min(steps, dim)",
                value: self.steps_for(dim),
                limit: MAX_KRYLOV_STEPS,
            });
        }
        if self.grid_points < 2 {
            return Err(invalid(
                OP,
                format!("needs grid_points ≥ 2, got {}", self.grid_points),
            ));
        }
        if self.grid_points > MAX_GRID_POINTS {
            return Err(HessianError::TooLarge {
                op: OP,
                what: "grid_points",
                value: self.grid_points,
                limit: MAX_GRID_POINTS,
            });
        }
        if !(MIN_SIGMA..=MAX_SIGMA).contains(&self.sigma) {
            return Err(invalid(
                OP,
                format!(
                    "σ must be a number in [{MIN_SIGMA:e}, {MAX_SIGMA:e}] (the density's peak \
                     1/(σ·√(2π)) and the grid's margin {GRID_MARGIN_SIGMAS}σ stay finite), got {}",
                    self.sigma
                ),
            ));
        }
        Ok(())
    }
}

/// Half-width of the grid's margin beyond the extreme nodes, in units of σ: the Gaussians'
/// mass outside the grid is below 1e-15.
pub const GRID_MARGIN_SIGMAS: f64 = 8.0;

/// The result of [`spectral_density`].
#[derive(Debug, Clone)]
pub struct SpectralDensity {
    /// Per probe, the Gauss quadrature nodes (Ritz values, ascending).
    pub nodes: Vec<Vec<f64>>,
    /// Per probe, the weights of the nodes (squared first components of the tridiagonal's
    /// eigenvectors); they sum to 1.
    pub weights: Vec<Vec<f64>>,
    /// Evenly spaced points from the smallest node − 8σ to the largest + 8σ.
    pub grid: Vec<f64>,
    /// `φ(t) = (1/probes) Σ_probes Σᵢ wᵢ · N(t; θᵢ, σ²)` on the grid; integrates to 1.
    pub density: Vec<f64>,
    /// How many probes the density averages.
    pub probes: usize,
    /// Lanczos steps (operator products) per probe: `min(steps, dim)`; a probe whose Krylov
    /// space became invariant has fewer nodes.
    pub steps: usize,
}

/// Stochastic Lanczos quadrature: for each probe v (row l of
/// [`probes`](crate::probes)`(probes, dim, options.probe, seed, …)`), `steps` Lanczos steps from
/// `v/‖v‖` give a Gauss quadrature `vᵀ·f(H)·v / vᵀ·v ≈ Σᵢ wᵢ·f(θᵢ)`. The probes run in
/// blocks ([`SlqOptions::block_probes`]); a block's recurrences run in lockstep, one
/// `[block, dim]` batch per step, and their coefficients reach the host once. A recurrence
/// whose Krylov space becomes invariant stops there (its quadrature is then exact). In
/// particular `Σᵢ wᵢ·θᵢ = vᵀ·H·v / vᵀ·v`, so the density's mean is Hutchinson's trace estimate
/// over the same probes divided by dim.
///
/// Every option is checked first (see [`SlqOptions`]); memory is
/// [`SlqOptions::memory_bytes`] besides the operator's, with the blocks sized by
/// `HessianOptions::default()` (256 MiB; [`spectral_density_with`] takes another budget). The
/// density is evaluated without overflow and is finite; a σ whose margin `8σ` around the
/// nodes leaves the f64 range is an error.
pub fn spectral_density<O: LinearOperator + ?Sized>(
    op: &O,
    options: &SlqOptions,
) -> Result<SpectralDensity> {
    spectral_density_with(op, options, &HessianOptions::default())
}

/// [`spectral_density`] with the probe blocks sized by `memory`
/// ([`SlqOptions::block_probes`]).
pub fn spectral_density_with<O: LinearOperator + ?Sized>(
    op: &O,
    options: &SlqOptions,
    memory: &HessianOptions,
) -> Result<SpectralDensity> {
    if op.dtype().is_half() {
        return spectral_density_with(
            &crate::InF32::new(op) as &dyn LinearOperator,
            options,
            memory,
        );
    }
    const OP: &str = "spectral_density";
    let dim = op.dim();
    options.validate(dim)?;
    options.memory_bytes(dim, op.dtype(), memory)?;
    let steps = options.steps_for(dim);
    let block = options.block_probes(dim, op.dtype(), memory);
    let mut stream = ProbeStream::new(
        OP,
        options.probe,
        options.seed,
        dim,
        op.dtype(),
        op.device(),
    );
    let mut nodes = alloc::with_capacity(OP, "the nodes of every probe", options.probes)?;
    let mut weights = alloc::with_capacity(OP, "the weights of every probe", options.probes)?;
    for start in (0..options.probes).step_by(block) {
        let count = block.min(options.probes - start);
        let mut krylov = Krylov::new(&stream.next(count)?)?;
        for _ in 0..steps {
            krylov.step(op)?;
        }
        let (alphas, betas) = krylov.flush()?;
        drop(krylov);
        for l in 0..count {
            let a: Vec<f64> = alphas.iter().map(|row| row[l]).collect();
            let b: Vec<f64> = betas.iter().map(|row| row[l]).collect();
            let (n, w) = quadrature(&a, &b, op.dtype())?;
            nodes.push(n);
            weights.push(w);
        }
    }
    let (grid, density) = broaden(&nodes, &weights, options)?;
    Ok(SpectralDensity {
        nodes,
        weights,
        grid,
        density,
        probes: options.probes,
        steps,
    })
}

/// Nodes and weights of one recurrence, cut at its first breakdown.
fn quadrature(
    alphas: &[f64],
    betas: &[f64],
    dtype: curvature_tensor::DType,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut scale = 0.0f64;
    let mut m = alphas.len();
    for (j, (&a, &b)) in alphas.iter().zip(betas).enumerate() {
        scale = scale.max(a.abs());
        if is_breakdown(b, scale, dtype) {
            m = j + 1;
            break;
        }
        scale = scale.max(b);
    }
    let (values, vectors) = tridiagonal_eigen("spectral_density", &alphas[..m], &betas[..m - 1])?;
    let weights = (0..m).map(|i| vectors[(0, i)].powi(2)).collect();
    Ok((values, weights))
}

/// The grid and the Gaussian-broadened density of all probes' quadratures, evaluated so that
/// nothing overflows: σ is in its accepted range (so `1/(σ·√(2π))` is finite), a Gaussian
/// factor is in [0, 1] (a distance that overflows gives 0, which is its value), and each
/// probe's weights sum to 1, so every density value lies in `[0, 1/(σ·√(2π))]`.
fn broaden(
    nodes: &[Vec<f64>],
    weights: &[Vec<f64>],
    options: &SlqOptions,
) -> Result<(Vec<f64>, Vec<f64>)> {
    const OP: &str = "spectral_density";
    let sigma = options.sigma;
    let all = nodes.iter().flatten();
    let (min, max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
        (lo.min(t), hi.max(t))
    });
    let lo = min - GRID_MARGIN_SIGMAS * sigma;
    let hi = max + GRID_MARGIN_SIGMAS * sigma;
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(invalid(
            OP,
            format!(
                "the grid [nodes − {GRID_MARGIN_SIGMAS}σ, nodes + {GRID_MARGIN_SIGMAS}σ] leaves \
                 the f64 range for nodes in [{min:e}, {max:e}] and σ = {sigma:e}"
            ),
        ));
    }
    let n = options.grid_points;
    let last = (n - 1) as f64;
    let span = hi - lo;
    let mut grid = alloc::with_capacity(OP, "the grid", n)?;
    grid.extend((0..n).map(|i| {
        let f = i as f64 / last;
        // The width itself may overflow for nodes near ±f64::MAX: interpolate then.
        if span.is_finite() {
            lo + span * f
        } else {
            lo * (1.0 - f) + hi * f
        }
    }));
    let peak = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
    let probes = nodes.len() as f64;
    let mut density = alloc::with_capacity(OP, "the density", n)?;
    density.extend(grid.iter().map(|&t| {
        let sum: f64 = nodes
            .iter()
            .zip(weights)
            .flat_map(|(n, w)| n.iter().zip(w))
            .map(|(&theta, &w)| w * (-0.5 * ((t - theta) / sigma).powi(2)).exp())
            .sum();
        sum / probes * peak
    }));
    if let Some(i) = density.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            OP,
            format!("the density at {:e} is not finite (σ = {sigma:e})", grid[i]),
        ));
    }
    Ok((grid, density))
}
