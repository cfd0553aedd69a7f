//! The top eigenvalues of an operator by Lanczos with full reorthogonalisation.

use curvature_tensor::{DType, Tensor};

use crate::alloc;
use crate::error::invalid;
use crate::krylov::{self, epsilon, is_breakdown, Krylov, MAX_KRYLOV_STEPS};
use crate::linalg::tridiagonal_eigen;
use crate::operator::LinearOperator;
use crate::probes::{Probe, ProbeStream};
use crate::{HessianError, Result};

/// Steps between two looks at the coefficients on the host (one transfer each).
const CHECK_EVERY: usize = 8;

/// Which end of the spectrum [`top_eigenvalues`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The k largest by algebraic value.
    Largest,
    /// The k largest by absolute value.
    LargestMagnitude,
}

/// Options of [`top_eigenvalues`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanczosOptions {
    /// How many eigenvalues (1 ≤ k ≤ dim).
    pub k: usize,
    pub which: Which,
    /// Converged when every wanted Ritz pair has residual `‖H·y − θ·y‖ ≤ tol · |θ|`.
    pub tol: f64,
    /// The most Lanczos steps (operator products), at least k; capped at dim, and then at most
    /// [`MAX_KRYLOV_STEPS`].
    pub max_iter: usize,
    /// Also return the Ritz vectors.
    pub eigenvectors: bool,
    /// Seed of the Gaussian start vector (and of restarts after an invariant subspace).
    pub seed: u64,
}

impl Default for LanczosOptions {
    /// k = 1, largest, tol = 1e-8, at most 300 steps, no vectors, seed 0.
    fn default() -> Self {
        LanczosOptions {
            k: 1,
            which: Which::Largest,
            tol: 1e-8,
            max_iter: 300,
            eigenvectors: false,
            seed: 0,
        }
    }
}

impl LanczosOptions {
    /// The steps [`top_eigenvalues`] may take on a `dim`-dimensional operator.
    fn limit(&self, dim: usize) -> usize {
        self.max_iter.min(dim)
    }

    /// The most memory [`top_eigenvalues`] needs besides the operator's own, in bytes, for an
    /// operator of dimension `dim` and `dtype`: the basis of `min(max_iter, dim) + 1` vectors
    /// and one step's temporaries (on the operator's device), the host's tridiagonal
    /// eigenproblem, and the Ritz vectors when asked for. An error when the count overflows.
    pub fn memory_bytes(&self, dim: usize, dtype: DType) -> Result<usize> {
        const OP: &str = "LanczosOptions::memory_bytes";
        let m = self.limit(dim);
        let basis = krylov::elements(OP, 1, m.saturating_add(1), dim)?;
        let vectors = if self.eigenvectors {
            alloc::product(OP, "the Ritz vectors", &[2, self.k, dim])?
        } else {
            0
        };
        let device = alloc::product(
            OP,
            "the Krylov basis",
            &[
                alloc::sum(OP, "the Krylov basis", &[basis, vectors])?,
                dtype.size_in_bytes(),
            ],
        )?;
        let host = krylov::tridiagonal_bytes(OP, m)?;
        alloc::sum(OP, "the Lanczos memory", &[device, host])
    }
}

/// Eigenvalue estimates from [`top_eigenvalues`].
#[derive(Debug, Clone)]
pub struct Eigen {
    /// The k eigenvalues, descending (by value, or by magnitude for `LargestMagnitude`).
    pub values: Vec<f64>,
    /// The unit eigenvectors `[k, dim]` in the same order, when asked for.
    pub vectors: Option<Tensor>,
    /// The residual norm `‖H·y − θ·y‖` of each Ritz pair, `β_m·|S_{m,i}|` from the last
    /// coefficient and the last components of the tridiagonal's eigenvectors.
    pub residuals: Vec<f64>,
    /// Lanczos steps taken (operator products).
    pub iterations: usize,
    /// Whether every residual met the tolerance.
    pub converged: bool,
}

impl Eigen {
    /// Each eigenvalue with its residual norm as its error bar, in order.
    pub fn estimates(&self) -> Vec<RitzEstimate> {
        self.values
            .iter()
            .zip(&self.residuals)
            .map(|(&value, &residual)| RitzEstimate {
                value,
                residual,
                iterations: self.iterations,
            })
            .collect()
    }
}

/// A Ritz value θ with its residual norm `r = ‖H·y − θ·y‖` (y the unit Ritz vector), printed as
/// `θ ± r`: for a symmetric H some eigenvalue lies in `[θ − r, θ + r]` (Kahan's bound). From
/// the tridiagonal `T = S·Θ·Sᵀ` after m steps, `r = β_m·|S_{m,i}|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RitzEstimate {
    /// The Ritz value θ.
    pub value: f64,
    /// Its residual norm `‖H·y − θ·y‖`.
    pub residual: f64,
    /// Lanczos steps (operator products) taken.
    pub iterations: usize,
}

impl std::fmt::Display for RitzEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match f.precision() {
            Some(p) => write!(f, "{:.p$} ± {:.p$}", self.value, self.residual),
            None => write!(f, "{} ± {}", self.value, self.residual),
        }
    }
}

/// The k top eigenvalues of a symmetric operator by Lanczos with full reorthogonalisation
/// (each new vector orthogonalised twice against the whole basis, on the device). The
/// tridiagonal matrix is solved on the host every few steps to test convergence. When the
/// Krylov space becomes invariant the recurrence restarts from a fresh random vector
/// orthogonal to the basis; a repeated eigenvalue may still be reported once, as in any
/// single-vector Lanczos. Memory: [`LanczosOptions::memory_bytes`].
pub fn top_eigenvalues<O: LinearOperator + ?Sized>(
    op: &O,
    options: &LanczosOptions,
) -> Result<Eigen> {
    if op.dtype().is_half() {
        return top_eigenvalues(&crate::InF32::new(op) as &dyn LinearOperator, options);
    }
    let dim = op.dim();
    let k = options.k;
    if k > dim {
        return Err(HessianError::TooManyEigenvalues { k, dim });
    }
    if k == 0 || options.max_iter < k || options.tol.is_nan() || options.tol < 0.0 {
        return Err(invalid(
            "top_eigenvalues",
            format!(
                "needs k ≥ 1, max_iter ≥ k and tol ≥ 0, got k = {k}, max_iter = {}, tol = {}",
                options.max_iter, options.tol
            ),
        ));
    }
    let limit = options.limit(dim);
    if limit > MAX_KRYLOV_STEPS {
        return Err(HessianError::TooLarge {
            op: "top_eigenvalues",
            what: "the number of Lanczos steps min(max_iter, dim)",
            value: limit,
            limit: MAX_KRYLOV_STEPS,
        });
    }
    let mut stream = ProbeStream::new(
        "top_eigenvalues",
        Probe::Gaussian,
        options.seed,
        dim,
        op.dtype(),
        op.device(),
    );
    let mut krylov = Krylov::new(&stream.next(1)?)?;
    let (mut alphas, mut betas) = (Vec::new(), Vec::new());
    let mut scale = 0.0f64;
    loop {
        let block = CHECK_EVERY.min(limit - alphas.len());
        for _ in 0..block {
            krylov.step(op)?;
        }
        let (a, b) = krylov.flush()?;
        let mut broke = false;
        for (a, b) in a.iter().zip(&b) {
            scale = scale.max(a[0].abs());
            alphas.push(a[0]);
            if is_breakdown(b[0], scale, op.dtype()) {
                betas.push(0.0);
                broke = true;
                break;
            }
            scale = scale.max(b[0]);
            betas.push(b[0]);
        }
        let m = alphas.len();
        if broke {
            krylov.truncate(m)?;
        }
        let ritz = (m >= k)
            .then(|| select(&alphas, &betas, k, options, scale, op.dtype()))
            .transpose()?;
        let converged = ritz.as_ref().is_some_and(|r| r.converged);
        if let Some(r) = ritz.filter(|r| (r.converged && !broke) || m >= limit) {
            return r.finish(&krylov, m);
        }
        if broke && !krylov.restart(&stream.next(1)?)? {
            let r = select(&alphas, &betas, k.min(m), options, scale, op.dtype())?;
            return Ritz { converged, ..r }.finish(&krylov, m);
        }
    }
}

/// The wanted Ritz pairs of the current tridiagonal matrix.
struct Ritz {
    values: Vec<f64>,
    /// Columns of the tridiagonal's eigenvectors, one per value (length m each).
    coefficients: Vec<Vec<f64>>,
    residuals: Vec<f64>,
    converged: bool,
    eigenvectors: bool,
}

fn select(
    alphas: &[f64],
    betas: &[f64],
    k: usize,
    options: &LanczosOptions,
    scale: f64,
    dtype: curvature_tensor::DType,
) -> Result<Ritz> {
    let m = alphas.len();
    let (values, vectors) = tridiagonal_eigen("top_eigenvalues", alphas, &betas[..m - 1])?;
    let mut order: Vec<usize> = (0..m).collect();
    match options.which {
        Which::Largest => order.sort_by(|&a, &b| values[b].total_cmp(&values[a])),
        Which::LargestMagnitude => {
            order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()))
        }
    }
    order.truncate(k);
    let last_beta = betas[m - 1];
    let floor = scale * epsilon(dtype);
    let residuals: Vec<f64> = order
        .iter()
        .map(|&i| (last_beta * vectors[(m - 1, i)]).abs())
        .collect();
    let converged = order
        .iter()
        .zip(&residuals)
        .all(|(&i, &r)| r <= options.tol * values[i].abs().max(floor));
    Ok(Ritz {
        values: order.iter().map(|&i| values[i]).collect(),
        coefficients: order
            .iter()
            .map(|&i| (0..m).map(|r| vectors[(r, i)]).collect())
            .collect(),
        residuals,
        converged,
        eigenvectors: options.eigenvectors,
    })
}

impl Ritz {
    /// The result, with the Ritz vectors `Sᵀ·Q` formed on the device when asked for.
    fn finish(self, krylov: &Krylov, m: usize) -> Result<Eigen> {
        let vectors = if self.eigenvectors {
            let s: Vec<f64> = self.coefficients.concat();
            Some(krylov.combine(&s, self.values.len(), m)?)
        } else {
            None
        };
        Ok(Eigen {
            values: self.values,
            vectors,
            residuals: self.residuals,
            iterations: m,
            converged: self.converged,
        })
    }
}
