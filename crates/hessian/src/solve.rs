//! Solves with damped curvature, `(C + λI)·X = B` for any [`LinearOperator`] `C`: conjugate
//! gradients over K right-hand sides at once ([`solve_cg`]), the LiSSA / Neumann series
//! ([`solve_lissa`]), and influence scores `−∇L_testᵀ (C + λI)⁻¹ ∇ℓᵢ` built on them
//! ([`influence`]).
//!
//! Vectors are the rows of `[K, dim]` tensors on the operator's device; every product with the
//! operator is one `apply_batch` of the rows still iterating, and only K-long per-row scalars
//! (step sizes, residual norms) come back to the host each iteration.

use curvature_tensor::{DType, Device, Tensor};

use crate::error::{check_kind, invalid};
use crate::operator::{apply, check_batch, LinearOperator};
use crate::{HessianError, Result};

/// The most iterations one solve may take, so that a count such as `usize::MAX` is an error
/// rather than a loop that does not end.
pub const MAX_SOLVE_ITERATIONS: usize = 1 << 24;

/// `C + λI` as an operator: `V·(C + λI) = V·C + λV`.
pub struct Damped<'a, O: ?Sized> {
    inner: &'a O,
    damping: f64,
}

impl<'a, O: LinearOperator + ?Sized> Damped<'a, O> {
    /// `inner + damping · I`; the damping must be finite (it may be negative, to shift).
    pub fn new(inner: &'a O, damping: f64) -> Result<Damped<'a, O>> {
        if !damping.is_finite() {
            return Err(invalid(
                "Damped::new",
                format!("the damping must be finite, got {damping}"),
            ));
        }
        Ok(Damped { inner, damping })
    }

    /// The damping λ.
    pub fn damping(&self) -> f64 {
        self.damping
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for Damped<'_, O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        let cv = apply(self.inner, v)?;
        if self.damping == 0.0 {
            return Ok(cv);
        }
        Ok(cv.add(&v.mul_scalar(self.damping)?)?)
    }
}

/// The Jacobi preconditioner `M⁻¹ = diag(d + λ)⁻¹` as an operator (`V ↦ V ⊘ (d + λ)`, row by
/// row), for [`CgOptions::preconditioner`]. `d` is typically the curvature's diagonal
/// ([`hessian_diagonal`](crate::hessian_diagonal) or a Hutchinson estimate of it) and λ the
/// solve's damping.
pub struct DiagonalPreconditioner {
    inverse: Tensor,
}

impl DiagonalPreconditioner {
    /// `diag(diagonal + damping)⁻¹`. `diagonal` is a `[dim]` tensor; every `dᵢ + λ` must be
    /// finite and positive (a preconditioner is positive definite), otherwise the error names
    /// the first entry that is not.
    pub fn new(diagonal: &Tensor, damping: f64) -> Result<DiagonalPreconditioner> {
        const OP: &str = "DiagonalPreconditioner::new";
        if diagonal.rank() != 1 || diagonal.elem_count() == 0 {
            return Err(invalid(
                OP,
                format!(
                    "expected a non-empty [dim] diagonal, got {}",
                    diagonal.shape()
                ),
            ));
        }
        if !damping.is_finite() {
            return Err(invalid(
                OP,
                format!("the damping must be finite, got {damping}"),
            ));
        }
        let shifted = diagonal.add_scalar(damping)?;
        if let Some((i, v)) = shifted
            .to_f64s()?
            .into_iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && *v > 0.0))
        {
            return Err(invalid(
                OP,
                format!(
                    "entry {i} of diagonal + damping is {v}: every entry must be finite and \
                     positive (raise the damping or clamp the diagonal)"
                ),
            ));
        }
        Ok(DiagonalPreconditioner {
            inverse: shifted.reciprocal()?,
        })
    }
}

impl LinearOperator for DiagonalPreconditioner {
    fn dim(&self) -> usize {
        self.inverse.elem_count()
    }
    fn dtype(&self) -> DType {
        self.inverse.dtype()
    }
    fn device(&self) -> Device {
        self.inverse.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        check_batch("DiagonalPreconditioner", self, v)?;
        Ok(v.mul(&self.inverse)?)
    }
}

/// Options of [`solve_cg`].
#[derive(Clone, Copy)]
pub struct CgOptions<'a> {
    /// λ ≥ 0 in `(C + λI)·x = b`.
    pub damping: f64,
    /// A column stops once its relative residual `‖b − (C + λI)x‖ / ‖b‖` (of the recurrence)
    /// is at most this; in `[0, 1)`.
    pub tolerance: f64,
    /// The most operator products per column (at least 1, at most [`MAX_SOLVE_ITERATIONS`]).
    pub max_iterations: usize,
    /// An approximate inverse `M⁻¹ ≈ (C + λI)⁻¹`, symmetric positive definite, applied to the
    /// residuals (for example [`DiagonalPreconditioner`]); `None` for plain CG.
    pub preconditioner: Option<&'a dyn LinearOperator>,
}

impl Default for CgOptions<'_> {
    /// λ = 0, tolerance 1e-10, at most 1000 iterations, no preconditioner.
    fn default() -> Self {
        CgOptions {
            damping: 0.0,
            tolerance: 1e-10,
            max_iterations: 1000,
            preconditioner: None,
        }
    }
}

/// The outcome of a solve with K right-hand sides.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The solutions, with the right-hand sides' shape (`[K, dim]`, or `[dim]` for one vector).
    pub x: Tensor,
    /// The operator products each column took.
    pub iterations: Vec<usize>,
    /// Per column, its relative residual `‖rₜ‖ / ‖b‖` before the first product and after each
    /// one (so `iterations[k] + 1` entries; `[0.0]` for a zero right-hand side).
    pub residuals: Vec<Vec<f64>>,
    /// Per column, whether it reached the tolerance.
    pub converged: Vec<bool>,
}

impl Solution {
    /// Whether every column reached the tolerance.
    pub fn all_converged(&self) -> bool {
        self.converged.iter().all(|&c| c)
    }
}

/// The right-hand sides as a `[K, dim]` batch, and whether they were one `[dim]` vector.
fn rhs_batch<O: LinearOperator + ?Sized>(
    op_name: &'static str,
    op: &O,
    b: &Tensor,
) -> Result<(Tensor, bool)> {
    check_kind(op_name, b, op.dtype(), op.device())?;
    let (batch, single) = match b.rank() {
        1 => (b.reshape([1, b.elem_count()])?, true),
        2 => (b.clone(), false),
        _ => {
            return Err(invalid(
                op_name,
                format!(
                    "the right-hand sides must be [dim] or [K, dim] with dim = {}, got {}",
                    op.dim(),
                    b.shape()
                ),
            ))
        }
    };
    check_batch(op_name, op, &batch)?;
    Ok((batch, single))
}

fn check_iterations(op: &'static str, max_iterations: usize) -> Result<()> {
    if max_iterations == 0 {
        return Err(invalid(op, "max_iterations must be at least 1"));
    }
    if max_iterations > MAX_SOLVE_ITERATIONS {
        return Err(HessianError::TooLarge {
            op,
            what: "max_iterations",
            value: max_iterations,
            limit: MAX_SOLVE_ITERATIONS,
        });
    }
    Ok(())
}

fn check_tolerance(op: &'static str, tolerance: f64) -> Result<()> {
    if !(0.0..1.0).contains(&tolerance) {
        return Err(invalid(
            op,
            format!("the tolerance must be in [0, 1), got {tolerance}"),
        ));
    }
    Ok(())
}

/// Per-row dot products `Σⱼ aᵢⱼ bᵢⱼ` of two `[K, dim]` batches, on the device (`[K]`).
fn row_dots(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(a.mul(b)?.sum(&[1], false)?)
}

/// `[K, 1]` column of host scalars on the device.
fn column(values: &[f64], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_f64s(
        values,
        [values.len(), 1],
        like.dtype(),
        like.device(),
    )?)
}

/// Conjugate gradients for `(C + λI)·X = B` with K right-hand sides (the rows of `b`, `[K, dim]`,
/// or one `[dim]` vector), started from `X = 0`.
///
/// These are K independent (preconditioned) CG recurrences advancing together: every iteration
/// is **one** `apply_batch` of the search directions of the columns still iterating, and each
/// column keeps its own step sizes, `αₖ = rₖᵀzₖ / pₖᵀ(C + λI)pₖ`, `βₖ = r'ₖᵀz'ₖ / rₖᵀzₖ`
/// with `z = M⁻¹r` (not block CG over a shared Krylov space: each column's iterates are exactly
/// those of a single-vector solve). A column stops when `‖rₖ‖ / ‖bₖ‖ ≤ tolerance` and drops out
/// of the next batches; a zero right-hand side has the solution 0 and takes no product.
///
/// CG needs `C + λI` positive definite. A direction with `pᵀ(C + λI)p ≤ 0` proves it is not,
/// and is the error [`HessianError::IndefiniteCurvature`] naming the column, the iteration and a
/// damping that would at least lift that direction: `2·max(0, −pᵀCp / pᵀp)` (the smallest
/// eigenvalue of C is at most that Rayleigh quotient, so at least `−pᵀCp / pᵀp` is needed;
/// [`top_eigenvalues`](crate::top_eigenvalues) with `Which::LargestMagnitude` bounds the rest).
/// A non-finite step is an error too, never a NaN solution. Columns that reach
/// `max_iterations` stop with `converged = false`.
pub fn solve_cg<O: LinearOperator + ?Sized>(
    op: &O,
    b: &Tensor,
    options: &CgOptions<'_>,
) -> Result<Solution> {
    const OP: &str = "solve_cg";
    let (b, single) = rhs_batch(OP, op, b)?;
    check_iterations(OP, options.max_iterations)?;
    check_tolerance(OP, options.tolerance)?;
    let damping = options.damping;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(invalid(
            OP,
            format!("the damping must be finite and ≥ 0, got {damping}"),
        ));
    }
    if let Some(m) = options.preconditioner {
        if m.dim() != op.dim() || m.dtype() != op.dtype() || m.device() != op.device() {
            return Err(invalid(
                OP,
                format!(
                    "the preconditioner acts on {} vectors of length {} on {}, the operator \
                     on {} vectors of length {} on {}",
                    m.dtype(),
                    m.dim(),
                    m.device(),
                    op.dtype(),
                    op.dim(),
                    op.device()
                ),
            ));
        }
    }
    let k = b.dims()[0];
    let dim = op.dim();
    let precondition = |r: &Tensor| -> Result<Tensor> {
        match options.preconditioner {
            Some(m) => apply(m, r),
            None => Ok(r.clone()),
        }
    };

    let b_norms: Vec<f64> = row_dots(&b, &b)?.sqrt()?.to_f64s()?;
    if let Some((col, n)) = b_norms.iter().enumerate().find(|(_, n)| !n.is_finite()) {
        return Err(invalid(
            OP,
            format!("right-hand side {col} has a non-finite norm ({n})"),
        ));
    }
    let mut x = Tensor::zeros([k, dim], b.dtype(), b.device())?;
    let mut r = b.clone();
    let mut z = precondition(&r)?;
    let mut p = z.clone();
    let mut rz = row_dots(&r, &z)?.to_f64s()?;
    let mut residuals: Vec<Vec<f64>> = b_norms
        .iter()
        .map(|&n| vec![if n == 0.0 { 0.0 } else { 1.0 }])
        .collect();
    let mut iterations = vec![0usize; k];
    let mut active: Vec<bool> = b_norms
        .iter()
        .map(|&n| n > 0.0 && options.tolerance < 1.0)
        .collect();
    let mut converged: Vec<bool> = b_norms.iter().map(|&n| n == 0.0).collect();
    for (col, &v) in rz.iter().enumerate() {
        if active[col] && !(v.is_finite() && v > 0.0) {
            return Err(not_positive_preconditioner(col, 0, v));
        }
    }

    for iteration in 1..=options.max_iterations {
        let rows: Vec<usize> = (0..k).filter(|&c| active[c]).collect();
        if rows.is_empty() {
            break;
        }
        // One product of the active directions; the others get zero rows (and zero steps).
        let p_active = if rows.len() == k {
            p.clone()
        } else {
            p.index_select(0, &rows)?
        };
        let mut ap_active = apply(op, &p_active)?;
        if damping != 0.0 {
            ap_active = ap_active.add(&p_active.mul_scalar(damping)?)?;
        }
        let ap = if rows.len() == k {
            ap_active
        } else {
            ap_active.index_add(0, &rows, k)?
        };
        let host = Tensor::stack(&[&row_dots(&p, &ap)?, &row_dots(&p, &p)?], 0)?.to_f64s()?;
        let (pap, pp) = host.split_at(k);
        let mut alpha = vec![0.0; k];
        for &c in &rows {
            if !pap[c].is_finite() {
                return Err(invalid(
                    OP,
                    format!(
                        "column {c} at iteration {iteration}: the operator returned a \
                         non-finite product (pᵀ(C + λI)p = {})",
                        pap[c]
                    ),
                ));
            }
            if pap[c] <= 0.0 {
                let rayleigh = if pp[c] > 0.0 {
                    pap[c] / pp[c] - damping
                } else {
                    0.0
                };
                let suggested = if rayleigh < 0.0 {
                    2.0 * -rayleigh
                } else {
                    f64::EPSILON.sqrt() * damping.max(1.0)
                };
                return Err(HessianError::IndefiniteCurvature {
                    op: OP,
                    column: c,
                    iteration,
                    curvature: pap[c],
                    rayleigh,
                    damping,
                    suggested_damping: suggested.max(damping),
                });
            }
            alpha[c] = rz[c] / pap[c];
        }
        let alpha_t = column(&alpha, &p)?;
        x = x.add(&p.mul(&alpha_t)?)?;
        r = r.sub(&ap.mul(&alpha_t)?)?;
        z = precondition(&r)?;
        let host = Tensor::stack(&[&row_dots(&r, &r)?, &row_dots(&r, &z)?], 0)?.to_f64s()?;
        let (rr, rz_new) = host.split_at(k);
        let mut beta = vec![0.0; k];
        for &c in &rows {
            let rel = rr[c].max(0.0).sqrt() / b_norms[c];
            if !rel.is_finite() {
                return Err(invalid(
                    OP,
                    format!(
                        "column {c} at iteration {iteration}: the residual is not finite ({rel})"
                    ),
                ));
            }
            residuals[c].push(rel);
            iterations[c] = iteration;
            if rel <= options.tolerance {
                active[c] = false;
                converged[c] = true;
                continue;
            }
            if !(rz_new[c].is_finite() && rz_new[c] > 0.0) {
                return Err(not_positive_preconditioner(c, iteration, rz_new[c]));
            }
            beta[c] = rz_new[c] / rz[c];
            rz[c] = rz_new[c];
        }
        p = z.add(&p.mul(&column(&beta, &p)?)?)?;
    }
    let x = if single { x.reshape([dim])? } else { x };
    Ok(Solution {
        x,
        iterations,
        residuals,
        converged,
    })
}

fn not_positive_preconditioner(column: usize, iteration: usize, value: f64) -> HessianError {
    invalid(
        "solve_cg",
        format!(
            "column {column} at iteration {iteration}: rᵀM⁻¹r = {value} with a nonzero residual, \
             so the preconditioner is not positive definite"
        ),
    )
}

/// Options of [`solve_lissa`].
#[derive(Debug, Clone, Copy)]
pub struct LissaOptions {
    /// λ ≥ 0 in `(C + λI)·x = b`.
    pub damping: f64,
    /// The scale s > 0 dividing the operator: the series converges when every eigenvalue of
    /// `C + λI` lies in `(0, 2s)`, so s should exceed half the largest one.
    pub scale: f64,
    /// The stopping tolerance on `‖b − (C + λI)xₜ‖ / ‖b‖`, in `[0, 1)`.
    pub tolerance: f64,
    /// The most terms of the series (operator products), at least 1.
    pub max_iterations: usize,
}

impl Default for LissaOptions {
    /// λ = 0, s = 1, tolerance 1e-10, at most 10 000 terms.
    fn default() -> Self {
        LissaOptions {
            damping: 0.0,
            scale: 1.0,
            tolerance: 1e-10,
            max_iterations: 10_000,
        }
    }
}

/// The LiSSA / Neumann-series solve of `(C + λI)·X = B` (Agarwal, Bullins, Hazan 2017): with
/// `A = (C + λI)/s`, `(C + λI)⁻¹ = s⁻¹ Σⱼ (I − A)ʲ`, accumulated by
/// `y₀ = b`, `yₜ₊₁ = b + (I − A)·yₜ` and `xₜ = yₜ / s`. The residual of `xₜ` is
/// `b − (C + λI)xₜ = yₜ₊₁ − yₜ = (I − A)ᵗ⁺¹b`, so it comes free with each product.
///
/// `residuals[k][t]` is the relative residual of the series truncated after t terms (t = 0:
/// x = 0); the returned x holds one term more, so its residual is at most the last entry.
/// Each iteration is one `apply_batch` of all K columns. The series converges only when every
/// eigenvalue of `C + λI` is in `(0, 2s)`; then the residual never grows, so a relative
/// residual above 2 is reported as the error that the scale is too small or the curvature not
/// positive definite, naming the column and the iteration. `converged` says which columns
/// reached the tolerance within `max_iterations`.
pub fn solve_lissa<O: LinearOperator + ?Sized>(
    op: &O,
    b: &Tensor,
    options: &LissaOptions,
) -> Result<Solution> {
    const OP: &str = "solve_lissa";
    let (b, single) = rhs_batch(OP, op, b)?;
    check_iterations(OP, options.max_iterations)?;
    check_tolerance(OP, options.tolerance)?;
    let LissaOptions { damping, scale, .. } = *options;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(invalid(
            OP,
            format!("the damping must be finite and ≥ 0, got {damping}"),
        ));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(invalid(
            OP,
            format!("the scale must be finite and > 0, got {scale}"),
        ));
    }
    let k = b.dims()[0];
    let b_norms = row_dots(&b, &b)?.sqrt()?.to_f64s()?;
    if let Some((col, n)) = b_norms.iter().enumerate().find(|(_, n)| !n.is_finite()) {
        return Err(invalid(
            OP,
            format!("right-hand side {col} has a non-finite norm ({n})"),
        ));
    }
    let mut residuals: Vec<Vec<f64>> = b_norms
        .iter()
        .map(|&n| vec![if n == 0.0 { 0.0 } else { 1.0 }])
        .collect();
    let mut converged: Vec<bool> = b_norms.iter().map(|&n| n == 0.0).collect();
    let mut iterations = vec![0usize; k];
    // yₜ₋₁ = Σ_{j<t} (I − A)ʲ b: the product at iteration t gives the residual of the series
    // truncated after t terms.
    let mut y = b.clone();
    for iteration in 1..=options.max_iterations {
        if converged.iter().all(|&c| c) {
            break;
        }
        let ay = apply(op, &y)?;
        let mut step = ay.div_scalar(scale)?;
        if damping != 0.0 {
            step = step.add(&y.mul_scalar(damping / scale)?)?;
        }
        let next = b.add(&y)?.sub(&step)?;
        let diff = next.sub(&y)?;
        let norms = row_dots(&diff, &diff)?.sqrt()?.to_f64s()?;
        y = next;
        for c in 0..k {
            if converged[c] {
                continue;
            }
            let rel = norms[c] / b_norms[c];
            if !rel.is_finite() || rel > 2.0 {
                return Err(invalid(
                    OP,
                    format!(
                        "column {c} diverged at iteration {iteration} (relative residual \
                         {rel:e}): every eigenvalue of C + λI must lie in (0, 2·scale) with \
                         scale = {scale}, λ = {damping}; raise the scale or the damping"
                    ),
                ));
            }
            residuals[c].push(rel);
            iterations[c] = iteration;
            if rel <= options.tolerance {
                converged[c] = true;
            }
        }
    }
    let x = y.div_scalar(scale)?;
    let x = if single { x.reshape([op.dim()])? } else { x };
    Ok(Solution {
        x,
        iterations,
        residuals,
        converged,
    })
}

/// Influence scores and the solve behind them, from [`influence`].
#[derive(Debug, Clone)]
pub struct Influence {
    /// `[T, N]`: entry (t, i) is `−gₜᵀ (C + λI)⁻¹ ∇ℓᵢ`, the first-order change of test loss t
    /// when training point i is up-weighted by ε, per unit ε (Koh & Liang 2017).
    pub scores: Tensor,
    /// The block CG solve of `(C + λI)·S = G_test` (`S` is `[T, P]`).
    pub solve: Solution,
}

/// Influence of each training point on each test loss:
/// `I(t, i) = −∇L_tᵀ (C + λI)⁻¹ ∇ℓᵢ`, with `C` the training loss's curvature (`op`, `P`
/// parameters), `test_gradients` `[T, P]` (one test loss per row) and `train_gradients`
/// `[N, P]` (one training point per row). The T systems `(C + λI)·sₜ = ∇L_t` are solved
/// together by [`solve_cg`] (one operator batch per iteration) with `options`; the scores are
/// then one product `−S · G_trainᵀ` on the device. Errors as [`solve_cg`], and when a solve
/// does not converge within `options.max_iterations` (naming the column and its residual).
pub fn influence<O: LinearOperator + ?Sized>(
    op: &O,
    test_gradients: &Tensor,
    train_gradients: &Tensor,
    options: &CgOptions<'_>,
) -> Result<Influence> {
    const OP: &str = "influence";
    for (what, g) in [("test", test_gradients), ("training", train_gradients)] {
        check_kind(OP, g, op.dtype(), op.device())?;
        if g.rank() != 2 || g.dims()[1] != op.dim() || g.dims()[0] == 0 {
            return Err(invalid(
                OP,
                format!(
                    "the {what} gradients must be [rows ≥ 1, {}], got {}",
                    op.dim(),
                    g.shape()
                ),
            ));
        }
    }
    let solve = solve_cg(op, test_gradients, options)?;
    if let Some(c) = solve.converged.iter().position(|&c| !c) {
        let last = solve.residuals[c].last().copied().unwrap_or(f64::NAN);
        return Err(invalid(
            OP,
            format!(
                "the solve for test row {c} did not converge in {} iterations (relative \
                 residual {last:e} > tolerance {:e}); raise max_iterations or the damping",
                options.max_iterations, options.tolerance
            ),
        ));
    }
    let scores = solve
        .x
        .matmul_transposed(train_gradients, false, true)?
        .neg()?;
    Ok(Influence { scores, solve })
}
