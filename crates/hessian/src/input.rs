//! Second derivatives with respect to a model's *input* rather than its parameters: per-sample
//! input Hessians `∂²uᵢ/∂xᵢ²` and Laplacians `Δuᵢ = tr ∂²uᵢ/∂xᵢ²` (exact, or Hutchinson's
//! estimate), for a batch `x: [n, d]` of independent samples.
//!
//! The `…_of` functions take variables on a tape and return recorded variables, so the result
//! can sit inside a loss that is differentiated again — a physics-informed loss
//! `mean((Δu − f)²)` whose gradient with respect to the parameters is a third derivative:
//!
//! ```
//! use curvature_hessian::input_laplacian_of;
//! use curvature_nn::{Activation, Module, Sequential};
//! use curvature_tape::{grad, GradOptions, Tape};
//! use curvature_tensor::{DType, Device, Tensor, UnaryOp};
//!
//! # fn main() -> curvature_hessian::Result<()> {
//! let model = Sequential::mlp(&[2, 8, 1], &[Activation::new(UnaryOp::Tanh)], None,
//!                             DType::F64, Device::Cpu, 0)?;
//! let x = Tensor::from_f64s(&[0.1, 0.2, -0.3, 0.4, 0.5, -0.6], [3, 2], DType::F64, Device::Cpu)?;
//! let tape = Tape::new();
//! let params: Vec<_> = model.parameters().into_iter().map(|p| tape.leaf(p)).collect();
//! let xv = tape.leaf(x);
//! let u = model.forward_with(&params, &xv)?; // [3, 1]
//! let laplacian = input_laplacian_of(&u, &xv)?; // [3, 1], recorded
//! let loss = laplacian.add_scalar(1.0)?.square()?.mean_all()?; // Δu = −1 on the points
//! // Third order; the output bias does not enter Δu, so its gradient is an exact zero.
//! let options = GradOptions { allow_unused: true, ..GradOptions::default() };
//! let g = grad(&[loss], &params, options)?;
//! assert_eq!(g[0].dims(), &[8, 2]);
//! assert_eq!(g[3].value().to_vec::<f64>()?, vec![0.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Each sample's derivatives are taken through the gradient of `Σᵢ uᵢ`, which is exact when
//! row i of the output depends only on row i of the input (a model whose rows are
//! independent, [`Module::rows_independent`]); the model-level functions check it. The exact
//! Hessian and Laplacian cost one backward sweep with d stacked cotangents per output
//! component (`n · d²` elements); Hutchinson's estimate costs one with `probes` cotangents.

use curvature_nn::Module;
use curvature_tape::{grad, vjp, GradOptions, Tape, Var};
use curvature_tensor::Tensor;

use crate::alloc;
use crate::error::invalid;
use crate::model::check_model;
use crate::probes::{check_probe_count, ProbeStream};
use crate::{HessianError, Probe, Result};

/// The batch layout of an output `[n, …o]` of an input `[n, …]`: `(n, d, m)` with d the
/// features per input row and m the components per output row.
fn layout(op: &'static str, output: &Var, x: &Var) -> Result<(usize, usize, usize)> {
    if x.rank() < 2 {
        return Err(invalid(
            op,
            format!("the input must be a batch [n, d, …], got {}", x.shape()),
        ));
    }
    let n = x.dims()[0];
    let d = alloc::product(op, "an input row", &x.dims()[1..])?;
    if n == 0 || d == 0 {
        return Err(invalid(
            op,
            format!("the input {} has no samples or no features", x.shape()),
        ));
    }
    if output.rank() == 0 || output.dims()[0] != n {
        return Err(invalid(
            op,
            format!(
                "the output must have the input's leading batch axis n = {n}, got {}",
                output.shape()
            ),
        ));
    }
    let m = alloc::product(op, "an output row", &output.dims()[1..])?;
    if m == 0 {
        return Err(invalid(
            op,
            format!("the output {} is empty", output.shape()),
        ));
    }
    if output.dtype() != x.dtype() {
        return Err(HessianError::DTypeMismatch {
            op,
            expected: x.dtype(),
            got: output.dtype(),
        });
    }
    if !x.requires_grad() {
        return Err(invalid(
            op,
            "the input is a constant: record it with `tape.leaf` (or as a function of leaves) \
             so the output can be differentiated with respect to it",
        ));
    }
    Ok((n, d, m))
}

/// The differentiable gradient of output component j summed over samples, `[n, …]` like x.
fn component_gradient(output: &Var, x: &Var, n: usize, m: usize, j: usize) -> Result<Var> {
    let uj = output.reshape([n, m])?.narrow(1, j, 1)?.sum_all()?;
    let g = grad(
        &[uj],
        std::slice::from_ref(x),
        GradOptions {
            create_graph: true,
            retain_graph: Some(true),
            grad_outputs: None,
            allow_unused: true,
        },
    )?;
    g.into_iter()
        .next()
        .ok_or_else(|| invalid("input derivatives", "the tape returned no gradient"))
}

/// The `[d, n, …x row]` cotangent whose slice k is the k-th feature's indicator in every row.
fn identity_cotangent(op: &'static str, x: &Var, n: usize, d: usize) -> Result<Var> {
    let len = alloc::product(op, "the d × n × d cotangent", &[d, n, d])?;
    let mut data = alloc::filled(op, "the d × n × d cotangent", len, 0.0)?;
    for k in 0..d {
        for i in 0..n {
            data[(k * n + i) * d + k] = 1.0;
        }
    }
    let mut dims = vec![d];
    dims.extend_from_slice(x.dims());
    Ok(x.constant(Tensor::from_f64s(&data, dims, x.dtype(), x.device())?))
}

/// `[n, …o, ·]` from per-component parts `[n, ·]` (components in order).
fn stack_components(output: &Var, parts: &[Var], tail: &[usize]) -> Result<Var> {
    let stacked = Var::stack(&parts.iter().collect::<Vec<_>>(), 1)?;
    let mut dims = output.dims().to_vec();
    dims.extend_from_slice(tail);
    Ok(stacked.reshape(dims)?)
}

/// Per-sample input Hessians of a recorded `output` (`[n]` or `[n, …o]`) with respect to the
/// recorded input `x` (`[n, …]`, d features per row): `H[i, …c, k, l] = ∂²u_{i,c}/∂x_{i,k}∂x_{i,l}`,
/// shape `[n, …o, d, d]`, itself recorded (so it can be differentiated again, with respect to
/// the parameters or to x). Row k of every sample's Hessian comes from one backward sweep of
/// `∇ₓ Σᵢ u_{i,c}` with the d cotangents `eₖ` stacked. Assumes row i of the output depends only on
/// row i of x (the cross-sample blocks are summed into each sample's otherwise).
pub fn input_hessian_of(output: &Var, x: &Var) -> Result<Var> {
    const OP: &str = "input_hessian_of";
    let (n, d, m) = layout(OP, output, x)?;
    let e = identity_cotangent(OP, x, n, d)?;
    let parts = second_derivative_rows(output, x, (n, m), &e, |rows| {
        Ok(rows.reshape([d, n, d])?.permute(&[1, 0, 2])?)
    })?;
    stack_components(output, &parts, &[d, d])
}

/// Per-sample input Laplacians `Δu_{i,c} = Σₖ ∂²u_{i,c}/∂x_{i,k}²`, shape `[n, …o]`, recorded:
/// the trace of [`input_hessian_of`] computed from the same sweep (`Σₖ eₖ ⊙ H·eₖ`) without
/// forming the `[n, d, d]` result. Same assumption of independent rows.
pub fn input_laplacian_of(output: &Var, x: &Var) -> Result<Var> {
    const OP: &str = "input_laplacian_of";
    let (n, d, m) = layout(OP, output, x)?;
    let e = identity_cotangent(OP, x, n, d)?;
    let parts = second_derivative_rows(output, x, (n, m), &e, |rows| {
        Ok(rows.mul(&e)?.reshape([d, n, d])?.sum(&[0, 2], false)?)
    })?;
    stack_components(output, &parts, &[])
}

/// Hutchinson's estimate of the per-sample input Laplacians,
/// `Δu_{i,c} ≈ (1/s) Σₚ vₚᵢᵀ (∂²u_{i,c}/∂xᵢ²) vₚᵢ` with `s = probes` Rademacher vectors per
/// sample (row p of [`probes`](crate::probes)`(s, n·d, Rademacher, seed, …)`, split into n rows
/// of d), shape `[n, …o]`, recorded. Unbiased, with variance `2 Σ_{k≠l} H²ₖₗ / s` per sample;
/// one backward sweep with s cotangents per output component instead of d, for large d.
pub fn input_laplacian_hutchinson_of(
    output: &Var,
    x: &Var,
    probes: usize,
    seed: u64,
) -> Result<Var> {
    const OP: &str = "input_laplacian_hutchinson_of";
    let (n, d, m) = layout(OP, output, x)?;
    let per_probe = alloc::product(OP, "one probe n × d", &[n, d])?;
    check_probe_count(OP, per_probe, probes)?;
    let mut stream = ProbeStream::new(
        OP,
        Probe::Rademacher,
        seed,
        per_probe,
        x.dtype(),
        x.device(),
    );
    let mut dims = vec![probes];
    dims.extend_from_slice(x.dims());
    let v = x.constant(stream.next(probes)?.reshape(dims)?);
    let parts = second_derivative_rows(output, x, (n, m), &v, |hv| {
        let quad = hv.mul(&v)?.reshape([probes, n, d])?;
        Ok(quad.sum(&[2], false)?.mean(&[0], false)?)
    })?;
    stack_components(output, &parts, &[])
}

/// For each of the m output components c: the batched products `cotangents · ∂²(Σᵢ u_{i,c})/∂x²`
/// (one backward sweep of the component's input gradient with the stacked cotangents,
/// recorded), reduced by `finish`.
fn second_derivative_rows(
    output: &Var,
    x: &Var,
    (n, m): (usize, usize),
    cotangents: &Var,
    finish: impl Fn(&Var) -> Result<Var>,
) -> Result<Vec<Var>> {
    (0..m)
        .map(|j| {
            let g = component_gradient(output, x, n, m, j)?;
            let rows = vjp(
                &[g],
                std::slice::from_ref(cotangents),
                std::slice::from_ref(x),
                true,
            )?;
            finish(&rows[0])
        })
        .collect()
}

/// Records `model(x)` with constant parameters and x as a leaf, checking the model takes one
/// input whose rows are independent.
fn record<M: Module + ?Sized>(op: &'static str, model: &M, x: &Tensor) -> Result<(Var, Var)> {
    check_model(op, model, std::slice::from_ref(x))?;
    if !model.rows_independent() {
        return Err(invalid(
            op,
            "the model does not declare its rows independent (Module::rows_independent), so \
             per-sample input derivatives are not those of a sum over rows; call the `…_of` \
             function on one sample at a time",
        ));
    }
    let tape = Tape::new();
    let params: Vec<Var> = model
        .parameters()
        .into_iter()
        .map(|p| tape.constant(p))
        .collect();
    let xv = tape.leaf(x.clone());
    let out = model.forward_with(&params, &xv)?;
    Ok((out, xv))
}

/// The per-sample Hessians of `model`'s output with respect to its input `x` (`[n, …]`):
/// `[n, …o, d, d]` for an output `[n, …o]` (see [`input_hessian_of`]). The model must take one
/// input and declare its rows independent.
pub fn input_hessian<M: Module + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    let (out, xv) = record("input_hessian", model, x)?;
    Ok(input_hessian_of(&out, &xv)?.value().clone())
}

/// The per-sample input Laplacians of `model`'s output, `[n, …o]` (see [`input_laplacian_of`]).
pub fn input_laplacian<M: Module + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    let (out, xv) = record("input_laplacian", model, x)?;
    Ok(input_laplacian_of(&out, &xv)?.value().clone())
}

/// Hutchinson's estimate of the per-sample input Laplacians of `model`'s output, `[n, …o]`
/// (see [`input_laplacian_hutchinson_of`]).
pub fn input_laplacian_hutchinson<M: Module + ?Sized>(
    model: &M,
    x: &Tensor,
    probes: usize,
    seed: u64,
) -> Result<Tensor> {
    let (out, xv) = record("input_laplacian_hutchinson", model, x)?;
    Ok(input_laplacian_hutchinson_of(&out, &xv, probes, seed)?
        .value()
        .clone())
}
