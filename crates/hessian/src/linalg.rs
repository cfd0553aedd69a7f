//! Small dense linear algebra on the host in f64 (through `nalgebra`): the eigenvalues of a
//! dense symmetric matrix, the tridiagonal eigenproblem of Lanczos and SLQ, and the k × k Gram
//! eigenproblem that orthonormalises a
//! sketch whose big `[k, dim]` products stay tensor ops on the device.

use curvature_tensor::Tensor;
use nalgebra::{DMatrix, SymmetricEigen};

use crate::alloc;
use crate::error::invalid;
use crate::{HessianError, Result};

/// All eigenvalues, ascending, of the symmetric part `(H + Hᵀ)/2` of the `n × n` matrix `H`
/// given row-major in `entries`, computed on the host in f64. Errors when `entries` is not
/// `n²` long, when the matrix has a non-finite entry, and when the eigensolver does not
/// converge ([`HessianError::NotConverged`]).
pub fn symmetric_eigenvalues(n: usize, entries: &[f64]) -> Result<Vec<f64>> {
    const OP: &str = "symmetric_eigenvalues";
    let len = alloc::product(OP, "the matrix", &[n, n])?;
    if entries.len() != len {
        return Err(invalid(
            OP,
            format!(
                "a {n} × {n} matrix has {len} entries, got {}",
                entries.len()
            ),
        ));
    }
    let mut symmetric = alloc::with_capacity(OP, "the matrix", len)?;
    for r in 0..n {
        symmetric.extend((0..n).map(|c| 0.5 * (entries[r * n + c] + entries[c * n + r])));
    }
    Ok(symmetric_eigen(OP, n, &symmetric)?.0)
}

/// Eigenvalues (ascending) and orthonormal eigenvectors (columns, in the same order) of a
/// symmetric matrix given row-major.
pub(crate) fn symmetric_eigen(
    op: &'static str,
    n: usize,
    entries: &[f64],
) -> Result<(Vec<f64>, DMatrix<f64>)> {
    eigen_of(op, DMatrix::from_row_slice(n, n, entries))
}

/// [`symmetric_eigen`] of a matrix already built.
fn eigen_of(op: &'static str, matrix: DMatrix<f64>) -> Result<(Vec<f64>, DMatrix<f64>)> {
    if matrix.iter().any(|v| !v.is_finite()) {
        return Err(invalid(op, "the operator produced non-finite values"));
    }
    let n = matrix.nrows();
    let eig = SymmetricEigen::try_new(matrix, f64::EPSILON, 1000 * n.max(1))
        .ok_or(HessianError::NotConverged { op })?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = DMatrix::from_fn(n, n, |r, c| eig.eigenvectors[(r, order[c])]);
    Ok((values, vectors))
}

/// Eigen-decomposition of the symmetric tridiagonal matrix with diagonal `alphas` and
/// off-diagonal `betas` (`alphas.len() − 1` entries). The `m × m` matrix is sized with checked
/// arithmetic and allocated fallibly.
pub(crate) fn tridiagonal_eigen(
    op: &'static str,
    alphas: &[f64],
    betas: &[f64],
) -> Result<(Vec<f64>, DMatrix<f64>)> {
    let m = alphas.len();
    let len = alloc::product(op, "the tridiagonal matrix", &[m, m])?;
    let mut t = alloc::filled(op, "the tridiagonal matrix", len, 0.0)?;
    for i in 0..m {
        t[i * m + i] = alphas[i];
        if i + 1 < m {
            t[i * m + i + 1] = betas[i];
            t[(i + 1) * m + i] = betas[i];
        }
    }
    // Symmetric, so its row-major entries are its column-major ones.
    eigen_of(op, DMatrix::from_vec(m, m, t))
}

/// Orthonormal rows spanning the numerically significant part of the row space of `y`
/// (`[k, dim]`), by two passes of SVQB: `G = Y·Yᵀ = U·Λ·Uᵀ` on the host, then
/// `Q = Λ^{-1/2}·Uᵀ·Y` on the device, dropping directions with `λ ≤ λ_max · 1e3 · ε`.
/// `None` when `y` is numerically zero.
pub(crate) fn orthonormal_rows(op: &'static str, y: &Tensor) -> Result<Option<Tensor>> {
    let mut q = y.clone();
    for _ in 0..2 {
        let k = q.dims()[0];
        let gram = q.matmul_transposed(&q, false, true)?.to_f64s()?;
        let (values, vectors) = symmetric_eigen(op, k, &gram)?;
        let largest = values.last().copied().unwrap_or(0.0);
        let eps = q.dtype().epsilon();
        let kept: Vec<usize> = (0..k)
            .filter(|&i| largest > 0.0 && values[i] > largest * 1e3 * eps)
            .collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let mut transform = Vec::with_capacity(kept.len() * k);
        for &i in &kept {
            let scale = 1.0 / values[i].sqrt();
            transform.extend((0..k).map(|r| vectors[(r, i)] * scale));
        }
        let t = Tensor::from_f64s(&transform, [kept.len(), k], q.dtype(), q.device())?;
        q = t.matmul(&q)?;
    }
    Ok(Some(q))
}
