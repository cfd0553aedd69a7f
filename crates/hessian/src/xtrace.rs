//! XTrace and XDiag (Epperly, Tropp, Webber, "XTrace: making the most of every sample in
//! stochastic trace estimation", SIAM J. Matrix Anal. Appl. 2024): exchangeable estimators
//! that use every probe both to sketch the range of the operator and to correct the sketch.
//!
//! With probes `ω₁ … ω_m` and `Q₍ᵢ₎` an orthonormal basis of `span{H·ωⱼ : j ≠ i}`, sample i is
//!
//! - trace: `tᵢ = tr(Q₍ᵢ₎ᵀ·H·Q₍ᵢ₎) + ωᵢᵀ(I − Q₍ᵢ₎Q₍ᵢ₎ᵀ)·H·(I − Q₍ᵢ₎Q₍ᵢ₎ᵀ)ωᵢ`;
//! - diagonal: `dᵢ = diag(Q₍ᵢ₎Q₍ᵢ₎ᵀ·H) + ωᵢ ⊙ (I − Q₍ᵢ₎Q₍ᵢ₎ᵀ)·H·ωᵢ`.
//!
//! Each is unbiased, since `ωᵢ` is independent of `Q₍ᵢ₎` and `E[ωωᵀ] = I`; the estimate is the
//! mean of the m samples and its error estimate their standard deviation over `√m` (the
//! paper's `std(ests)/sqrt(m)`). All `Q₍ᵢ₎` are formed from one sketch: with `Q` an orthonormal
//! basis of `span{H·ωⱼ}` and `R = Qᵀ·[H·ω₁ … H·ω_m]`, `span Q₍ᵢ₎ = Q·span{R·eⱼ : j ≠ i}`, so
//! `Q₍ᵢ₎Q₍ᵢ₎ᵀ = Q(I − sᵢsᵢᵀ)Qᵀ` where `sᵢ` is the unit vector orthogonal to every column of R
//! but the i-th: `sᵢ ∝ (R⁺)ᵀ·eᵢ`, present when column i is not in the span of the others (always
//! when R is square and invertible; otherwise `Q₍ᵢ₎ = Q`). A budget of `2m` products: m for
//! `H·Ω` and m (or fewer, the rank of the sketch) for `H·Q`. The small `m × m` problems run on
//! the host in f64.

use curvature_tensor::Tensor;
use nalgebra::DMatrix;

use crate::error::invalid;
use crate::estimate::{DiagonalEstimate, Estimate, Welford};
use crate::krylov::epsilon;
use crate::linalg::orthonormal_rows;
use crate::operator::{apply_chunked, LinearOperator};
use crate::probes::{check_probe_count, Probe, ProbeStream};
use crate::{HessianError, Result};

/// A unit `sᵢ` is used when the i-th diagonal entry of the projector onto R's row space is at
/// least `1 − LEAVE_ONE_OUT_TOL` (it is 1 exactly when column i is independent of the others).
const LEAVE_ONE_OUT_TOL: f64 = 1e-8;

/// XTrace's estimate of `tr H` with its error estimate, from a budget of `matvecs` operator
/// products: `m = ⌊matvecs / 2⌋` probes of `kind` (row i of
/// [`probes`](crate::probes)`(m, dim, kind, seed, …)`), the mean of the samples `tᵢ` of the
/// module documentation and `std(t)/√m`. Exact (with error 0) when H has rank below m: every
/// `Q₍ᵢ₎` then spans its range. `kind` must be Rademacher or Gaussian; `m ≥ 2`, at most
/// [`MAX_PROBES`](crate::MAX_PROBES). Memory: four `[m, dim]` blocks (probes, their products,
/// the basis and its products).
pub fn trace_xtrace<O: LinearOperator + ?Sized>(
    op: &O,
    matvecs: usize,
    kind: Probe,
    seed: u64,
) -> Result<Estimate> {
    const OP: &str = "trace_xtrace";
    let sketch = Sketch::new(OP, op, matvecs, kind, seed)?;
    let m = sketch.m;
    let Some(parts) = &sketch.parts else {
        // H·Ω = 0: every sample is ωᵢ·H·ωᵢ = 0 up to rounding.
        return Estimate::from_samples(&sketch.omega_y);
    };
    let trace_h = parts.h.trace();
    let mut stats = Welford::default();
    for i in 0..m {
        let w = parts.w.row(i).transpose();
        let t = parts.r.row(i).transpose();
        let hw = &parts.h * &w;
        let mut sample = trace_h + sketch.omega_y[i] - 2.0 * w.dot(&t) + w.dot(&hw);
        if let Some(s) = &parts.s[i] {
            let s = nalgebra::DVector::from_column_slice(s);
            let a = s.dot(&(&parts.h * &s));
            let c = s.dot(&w);
            sample += -a + c * c * a + 2.0 * c * s.dot(&(&t - &hw));
        }
        stats.push(sample);
    }
    let estimate = stats.estimate(OP)?;
    Ok(Estimate {
        samples: matvecs,
        ..estimate
    })
}

/// XDiag's estimate of `diag H` with a standard error per entry, from a budget of `matvecs`
/// operator products: `m = ⌊matvecs / 2⌋` Rademacher probes (row i of
/// [`probes`](crate::probes)`(m, dim, Rademacher, seed, …)`), the mean of the samples `dᵢ` of
/// the module documentation and, per entry, `std(d)/√m`. Exact (error 0) when H has rank
/// below m. The samples are formed on the device as `[m, dim]` rows:
/// `dᵢ = Σᵣ qᵣ⊙zᵣ − (Qᵀsᵢ)⊙(Zᵀsᵢ) + ωᵢ⊙yᵢ − ωᵢ⊙(QQᵀyᵢ) + (sᵢ·Qᵀyᵢ)·ωᵢ⊙(Qᵀsᵢ)` with
/// `yᵢ = H·ωᵢ`, `Z = H·Q` (rows `qᵣ`, `zᵣ`). `m ≥ 2`, at most
/// [`MAX_PROBES`](crate::MAX_PROBES); memory: about six `[m, dim]` blocks.
pub fn hessian_diagonal_xdiag<O: LinearOperator + ?Sized>(
    op: &O,
    matvecs: usize,
    seed: u64,
) -> Result<DiagonalEstimate> {
    const OP: &str = "hessian_diagonal_xdiag";
    let sketch = Sketch::new(OP, op, matvecs, Probe::Rademacher, seed)?;
    let (m, dtype, device) = (sketch.m, op.dtype(), op.device());
    let mut samples = sketch.omega.mul(&sketch.y)?;
    if let Some(parts) = &sketch.parts {
        let k = parts.h.nrows();
        let (q, z) = (&parts.q, &parts.z);
        // Row i of S is sᵢ (zero when absent); c holds sᵢ·Qᵀyᵢ.
        let mut s_rows = vec![0.0; m * k];
        let mut c = vec![0.0; m];
        for i in 0..m {
            if let Some(s) = &parts.s[i] {
                s_rows[i * k..(i + 1) * k].copy_from_slice(s);
                c[i] = s
                    .iter()
                    .zip(parts.r.row(i).iter())
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        let r_rows: Vec<f64> = (0..m)
            .flat_map(|i| parts.r.row(i).iter().copied().collect::<Vec<_>>())
            .collect();
        let s_t = Tensor::from_f64s(&s_rows, [m, k], dtype, device)?;
        let r_t = Tensor::from_f64s(&r_rows, [m, k], dtype, device)?;
        let c_t = Tensor::from_f64s(&c, [m, 1], dtype, device)?;
        let qs = s_t.matmul(q)?;
        let zs = s_t.matmul(z)?;
        let common = q.mul(z)?.sum(&[0], true)?;
        let projected = r_t.matmul(q)?;
        samples = samples
            .add(&common)?
            .sub(&qs.mul(&zs)?)?
            .sub(&sketch.omega.mul(&projected)?)?
            .add(&sketch.omega.mul(&qs)?.mul(&c_t)?)?;
    }
    let mean = samples.mean(&[0], true)?;
    let deviations = samples.sub(&mean)?.square()?.sum(&[0], false)?;
    let mf = m as f64;
    Ok(DiagonalEstimate {
        values: mean.reshape([op.dim()])?,
        std_errors: deviations.div_scalar((mf - 1.0) * mf)?.sqrt()?,
        samples: matvecs,
    })
}

/// The sketch shared by XTrace and XDiag.
struct Sketch {
    m: usize,
    /// The probes Ω and their products Y = Ω·H, `[m, dim]`.
    omega: Tensor,
    y: Tensor,
    /// `ωᵢ·H·ωᵢ` per probe.
    omega_y: Vec<f64>,
    /// None when the products are numerically zero (no basis).
    parts: Option<Parts>,
}

struct Parts {
    /// The basis Q `[k, dim]` (orthonormal rows) and Z = Q·H.
    q: Tensor,
    z: Tensor,
    /// `H_Q = Q·H·Qᵀ` (k × k, symmetrised), `W = Ω·Qᵀ` and `R = Y·Qᵀ` (m × k, row i is
    /// `Qᵀωᵢ`, `Qᵀyᵢ`).
    h: DMatrix<f64>,
    w: DMatrix<f64>,
    r: DMatrix<f64>,
    /// The leave-one-out directions `sᵢ` (length k), when present.
    s: Vec<Option<Vec<f64>>>,
}

impl Sketch {
    fn new<O: LinearOperator + ?Sized>(
        op_name: &'static str,
        op: &O,
        matvecs: usize,
        kind: Probe,
        seed: u64,
    ) -> Result<Sketch> {
        let dim = op.dim();
        if kind == Probe::Basis {
            return Err(invalid(
                op_name,
                "needs random probes (Rademacher or Gaussian); basis vectors are not independent",
            ));
        }
        let m = matvecs / 2;
        if m < 2 {
            return Err(invalid(
                op_name,
                format!("needs a budget of at least 4 products (2 probes), got {matvecs}"),
            ));
        }
        check_probe_count(op_name, dim, m)?;
        let mut stream = ProbeStream::new(op_name, kind, seed, dim, op.dtype(), op.device());
        let omega = stream.next(m)?;
        let y = apply_chunked(op, &omega)?;
        let omega_y = omega.mul(&y)?.sum(&[1], false)?.to_f64s()?;
        let Some(q) = orthonormal_rows(op_name, &y)? else {
            return Ok(Sketch {
                m,
                omega,
                y,
                omega_y,
                parts: None,
            });
        };
        let k = q.dims()[0];
        let z = apply_chunked(op, &q)?;
        let host = |a: &Tensor, rows: usize| -> Result<DMatrix<f64>> {
            let values = a.matmul_transposed(&q, false, true)?.to_f64s()?;
            Ok(DMatrix::from_row_slice(rows, k, &values))
        };
        let h = host(&z, k)?;
        let h = (&h + h.transpose()) * 0.5;
        let w = host(&omega, m)?;
        let r = host(&y, m)?;
        if [&h, &w, &r]
            .iter()
            .any(|a| a.iter().any(|v| !v.is_finite()))
        {
            return Err(invalid(op_name, "the operator produced non-finite values"));
        }
        let s = leave_one_out(op_name, &r, op.dtype())?;
        Ok(Sketch {
            m,
            omega,
            y,
            omega_y,
            parts: Some(Parts { q, z, h, w, r, s }),
        })
    }
}

/// For each column i of `Rᵀ` (row i of `r`, `m × k`), the unit vector orthogonal to every other
/// column, `(R⁺)ᵀeᵢ / ‖·‖` from the thin SVD `Rᵀ = U·Σ·Vᵀ` (`(R⁺)ᵀ = U·Σ⁻¹·Vᵀ`), when the
/// projector `V·Vᵀ` onto the row space has `(V·Vᵀ)ᵢᵢ ≥ 1 − LEAVE_ONE_OUT_TOL`. Singular values
/// below `σ_max·√(10³·ε)` count as zero, as in the sketch's orthonormalisation.
fn leave_one_out(
    op_name: &'static str,
    r: &DMatrix<f64>,
    dtype: curvature_tensor::DType,
) -> Result<Vec<Option<Vec<f64>>>> {
    let (m, k) = (r.nrows(), r.ncols());
    let rt = r.transpose(); // k × m, columns Qᵀyᵢ
    let svd = nalgebra::linalg::SVD::try_new(rt, true, true, f64::EPSILON, 1000 * (m + k))
        .ok_or(HessianError::NotConverged { op: op_name })?;
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        return Err(HessianError::NotConverged { op: op_name });
    };
    let sigma = svd.singular_values;
    let largest = sigma.iter().copied().fold(0.0, f64::max);
    let cutoff = largest * (1e3 * epsilon(dtype)).sqrt();
    let kept: Vec<usize> = (0..sigma.len()).filter(|&j| sigma[j] > cutoff).collect();
    let mut out = Vec::with_capacity(m);
    for i in 0..m {
        let p_ii: f64 = kept.iter().map(|&j| v_t[(j, i)].powi(2)).sum();
        if p_ii < 1.0 - LEAVE_ONE_OUT_TOL {
            out.push(None);
            continue;
        }
        let mut s = vec![0.0; k];
        for &j in &kept {
            let coefficient = v_t[(j, i)] / sigma[j];
            for (row, entry) in s.iter_mut().enumerate() {
                *entry += u[(row, j)] * coefficient;
            }
        }
        let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            s.iter_mut().for_each(|x| *x /= norm);
            out.push(Some(s));
        } else {
            out.push(None);
        }
    }
    Ok(out)
}
