//! The spectral density by stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani,
//! Krishnan, Xiao 2019).

use crate::error::invalid;
use crate::krylov::{is_breakdown, Krylov};
use crate::linalg::tridiagonal_eigen;
use crate::operator::LinearOperator;
use crate::probes::{Probe, ProbeStream};
use crate::{HessianError, HessianOptions, Result};

/// Options of [`spectral_density`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlqOptions {
    /// Number of probe vectors.
    pub probes: usize,
    /// Their distribution: Rademacher by default; [`Probe::Basis`] with `probes = dim` makes
    /// the density's moments exact (its mean is then trace / dim).
    pub probe: Probe,
    /// Lanczos steps per probe (capped at dim); the quadrature is exact for polynomials of
    /// degree below `2 · steps`.
    pub steps: usize,
    pub seed: u64,
    /// Points of the density grid (at least 2).
    pub grid_points: usize,
    /// Standard deviation of the Gaussian that broadens each node.
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
}

/// Stochastic Lanczos quadrature: for each probe v (row l of
/// [`probes`](crate::probes)`(probes, dim, options.probe, seed, …)`), `steps` Lanczos steps from
/// `v/‖v‖` give a Gauss quadrature `vᵀ·f(H)·v / vᵀ·v ≈ Σᵢ wᵢ·f(θᵢ)`. The probes' recurrences
/// run in lockstep, one `[L, dim]` batch per step, and their coefficients reach the host once.
/// A recurrence whose Krylov space becomes invariant stops there (its quadrature is then
/// exact). In particular `Σᵢ wᵢ·θᵢ = vᵀ·H·v / vᵀ·v`, so the density's mean is Hutchinson's
/// trace estimate over the same probes divided by dim.
pub fn spectral_density<O: LinearOperator + ?Sized>(
    op: &O,
    options: &SlqOptions,
) -> Result<SpectralDensity> {
    if options.probes == 0 {
        return Err(HessianError::EmptyBatch {
            op: "spectral_density",
        });
    }
    if options.steps == 0
        || options.grid_points < 2
        || options.sigma.is_nan()
        || options.sigma <= 0.0
    {
        return Err(invalid(
            "spectral_density",
            format!(
                "needs steps ≥ 1, grid_points ≥ 2 and σ > 0, got {}, {} and {}",
                options.steps, options.grid_points, options.sigma
            ),
        ));
    }
    let steps = options.steps.min(op.dim());
    let group = HessianOptions::default().chunk_rows(op.dim(), op.dtype());
    let mut stream = ProbeStream::new(
        options.probe,
        options.seed,
        op.dim(),
        op.dtype(),
        op.device(),
    );
    let (mut nodes, mut weights) = (Vec::new(), Vec::new());
    for start in (0..options.probes).step_by(group) {
        let count = group.min(options.probes - start);
        let mut krylov = Krylov::new(&stream.next(count)?)?;
        for _ in 0..steps {
            krylov.step(op)?;
        }
        let (alphas, betas) = krylov.flush()?;
        for l in 0..count {
            let a: Vec<f64> = alphas.iter().map(|row| row[l]).collect();
            let b: Vec<f64> = betas.iter().map(|row| row[l]).collect();
            let (n, w) = quadrature(&a, &b, op.dtype())?;
            nodes.push(n);
            weights.push(w);
        }
    }
    let (grid, density) = broaden(&nodes, &weights, options);
    Ok(SpectralDensity {
        nodes,
        weights,
        grid,
        density,
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

/// The grid and the Gaussian-broadened density of all probes' quadratures.
fn broaden(nodes: &[Vec<f64>], weights: &[Vec<f64>], options: &SlqOptions) -> (Vec<f64>, Vec<f64>) {
    let sigma = options.sigma;
    let all = nodes.iter().flatten();
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min) - GRID_MARGIN_SIGMAS * sigma;
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max) + GRID_MARGIN_SIGMAS * sigma;
    let n = options.grid_points;
    let grid: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt() * nodes.len() as f64);
    let density = grid
        .iter()
        .map(|&t| {
            let sum: f64 = nodes
                .iter()
                .zip(weights)
                .flat_map(|(n, w)| n.iter().zip(w))
                .map(|(&theta, &w)| w * (-0.5 * ((t - theta) / sigma).powi(2)).exp())
                .sum();
            sum * norm
        })
        .collect();
    (grid, density)
}
