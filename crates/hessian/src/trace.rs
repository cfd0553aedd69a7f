//! Stochastic estimators of the trace and the diagonal: Hutchinson and Hutch++.

use curvature_tensor::Tensor;

use crate::error::invalid;
use crate::linalg::orthonormal_rows;
use crate::operator::{apply, apply_chunked, LinearOperator};
use crate::probes::{check_probe_count, Probe, ProbeStream, MAX_PROBES};
use crate::{HessianError, HessianOptions, Result};

/// Hutchinson's estimate `tr H ≈ (1/n) Σ vᵢ·H·vᵢ` over `probes` vectors of `kind` drawn with
/// `seed` (row i is row i of [`probes`](crate::probes)`(probes, dim, kind, seed, …)`), pushed
/// through the operator in batches of [`HessianOptions::chunk_rows`] rows and reduced on the
/// device; one scalar comes back to the host. At most [`MAX_PROBES`](crate::MAX_PROBES) probes.
pub fn trace_hutchinson<O: LinearOperator + ?Sized>(
    op: &O,
    probes: usize,
    kind: Probe,
    seed: u64,
) -> Result<f64> {
    if op.dtype().is_half() {
        return trace_hutchinson(
            &crate::InF32::new(op) as &dyn LinearOperator,
            probes,
            kind,
            seed,
        );
    }
    let sum = sum_over_probes("trace_hutchinson", op, probes, kind, seed, |v, hv| {
        Ok(v.mul(hv)?.sum_all()?)
    })?;
    Ok(sum.to_scalar()? / probes as f64)
}

/// Hutchinson's estimate of the diagonal, `diag H ≈ (1/n) Σ vᵢ ⊙ H·vᵢ` with Rademacher
/// probes, as a `[dim]` tensor on the operator's device. At most
/// [`MAX_PROBES`](crate::MAX_PROBES) probes.
pub fn hessian_diagonal_hutchinson<O: LinearOperator + ?Sized>(
    op: &O,
    probes: usize,
    seed: u64,
) -> Result<Tensor> {
    if op.dtype().is_half() {
        return hessian_diagonal_hutchinson(
            &crate::InF32::new(op) as &dyn LinearOperator,
            probes,
            seed,
        );
    }
    let sum = sum_over_probes(
        "hessian_diagonal_hutchinson",
        op,
        probes,
        Probe::Rademacher,
        seed,
        |v, hv| Ok(v.mul(hv)?.sum(&[0], false)?),
    )?;
    Ok(sum.div_scalar(probes as f64)?)
}

/// Σ over batches of `term(V, V·H)`, accumulated on the device.
fn sum_over_probes<O: LinearOperator + ?Sized>(
    name: &'static str,
    op: &O,
    probes: usize,
    kind: Probe,
    seed: u64,
    term: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    check_probe_count(name, op.dim(), probes)?;
    let rows = HessianOptions::default().chunk_rows(op.dim(), op.dtype());
    let mut stream = ProbeStream::new(name, kind, seed, op.dim(), op.dtype(), op.device());
    let mut total: Option<Tensor> = None;
    for start in (0..probes).step_by(rows) {
        let v = stream.next(rows.min(probes - start))?;
        let part = term(&v, &apply(op, &v)?)?;
        total = Some(match total {
            Some(t) => t.add(&part)?,
            None => part,
        });
    }
    total.ok_or(HessianError::EmptyBatch { op: name })
}

/// Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with a budget of `matvecs` operator products
/// (at least 3): a third sketch the top range, `Q = orth(S·H)` with `S` Rademacher `[m/3, dim]`;
/// `tr(Qᵀ·H·Q)` is computed exactly and Hutchinson runs on the rest of the probes projected
/// off `Q`. The sketch and projections are tensor ops on the device; only the `[k, k]` Gram
/// eigenproblem of the orthonormalisation runs on the host.
///
/// The sketch never exceeds the dimension: `dim` directions already span the whole space and
/// make the estimate exact, so the budget beyond `3 · dim` goes to the Hutchinson part. A
/// budget below 3 or above `3 · MAX_PROBES` is an error. Memory: a few `[matvecs / 3, dim]`
/// blocks at a time (the sketch, its products, Q and the remaining probes with their
/// projections).
pub fn trace_hutchpp<O: LinearOperator + ?Sized>(op: &O, matvecs: usize, seed: u64) -> Result<f64> {
    if op.dtype().is_half() {
        return trace_hutchpp(&crate::InF32::new(op) as &dyn LinearOperator, matvecs, seed);
    }
    let (top, terms) = hutchpp_parts("trace_hutchpp", op, matvecs, seed)?;
    let rest = terms.elem_count();
    Ok(top + terms.sum_all()?.to_scalar()? / rest as f64)
}

/// The two parts of Hutch++: `tr(Qᵀ·H·Q)` and the `[rest]` Hutchinson terms
/// `gᵢᵀ(I − QQᵀ)H(I − QQᵀ)gᵢ` of the remaining probes (see [`trace_hutchpp`]).
pub(crate) fn hutchpp_parts<O: LinearOperator + ?Sized>(
    op_name: &'static str,
    op: &O,
    matvecs: usize,
    seed: u64,
) -> Result<(f64, Tensor)> {
    let dim = op.dim();
    if matvecs < 3 {
        return Err(invalid(
            op_name,
            format!("needs a budget of at least 3 products, got {matvecs}"),
        ));
    }
    let limit = 3 * MAX_PROBES;
    if matvecs > limit {
        return Err(HessianError::TooLarge {
            op: op_name,
            what: "the budget of products",
            value: matvecs,
            limit,
        });
    }
    check_probe_count(op_name, dim, matvecs / 3)?;
    let sketch = (matvecs / 3).min(dim);
    let rest = matvecs - 2 * sketch;
    let mut stream = ProbeStream::new(
        op_name,
        Probe::Rademacher,
        seed,
        dim,
        op.dtype(),
        op.device(),
    );
    // The sketch and its products are dropped once Q is formed; the rest is drawn after it,
    // as row `sketch..` of the same stream.
    let q = {
        let s = stream.next(sketch)?;
        let y = apply_chunked(op, &s)?;
        drop(s);
        orthonormal_rows(op_name, &y)?
    };
    let g = stream.next(rest)?;
    let (top, g) = match q {
        Some(q) => {
            let top = q.mul(&apply_chunked(op, &q)?)?.sum_all()?;
            let coefficients = g.matmul_transposed(&q, false, true)?;
            let projected = g.sub(&coefficients.matmul(&q)?)?;
            (top.to_scalar()?, projected)
        }
        None => (0.0, g),
    };
    let terms = g.mul(&apply_chunked(op, &g)?)?.sum(&[1], false)?;
    Ok((top, terms))
}
