//! The functional API over any function of one or several tensors (like `torch.func`):
//! `hvp`, `hvp_batch`, `hessian` (a block matrix over all inputs) and `output_hessian` (the
//! Hessian of every element of a non-scalar output).

use curvature_tape::{Tape, Var};
use curvature_tensor::Tensor;

use crate::alloc;
use crate::assemble::{hessian_of, write_matrix, HessianOptions, HostBuffer};
use crate::error::{check_kind, invalid};
use crate::operator::{apply, common_kind, LinearOperator, PreparedHvp};
use crate::{HessianError, Result};

/// `H·v` for a scalar function `f` of `inputs`, where `v` holds one tensor per input with the
/// input's shape; returns one tensor per input (the blocks of the product).
pub fn hvp<F, E>(f: F, inputs: &[Tensor], v: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Var]) -> std::result::Result<Var, E>,
    HessianError: From<E>,
{
    let op = PreparedHvp::new(f, inputs)?;
    let flat = flatten(&op, "hvp", v, None)?;
    split(&apply(&op, &flat)?, op.input_shapes(), None)
}

/// K Hessian-vector products in one double-backward sweep: `v[i]` has shape `[K, …inputs[i]]`
/// (row k of every `v[i]` together is one vector) and so has each result.
pub fn hvp_batch<F, E>(f: F, inputs: &[Tensor], v: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Var]) -> std::result::Result<Var, E>,
    HessianError: From<E>,
{
    let op = PreparedHvp::new(f, inputs)?;
    let k = match v.first() {
        Some(first) if first.rank() > 0 => first.dims()[0],
        Some(first) => {
            return Err(invalid(
                "hvp_batch",
                format!("vectors need a leading batch axis, got {}", first.shape()),
            ))
        }
        None => 0,
    };
    let flat = flatten(&op, "hvp_batch", v, Some(k))?;
    split(&apply(&op, &flat)?, op.input_shapes(), Some(k))
}

/// The Hessian of a scalar function of `inputs` as one `[N, N]` block matrix, `N = Σ sizes`,
/// inputs in order and each flattened row-major: block (i, j) is `∂²f/∂inputᵢ∂inputⱼ`.
/// Built from [`hvp_batch`]-style sweeps over identity chunks sized by `options`; the `N²`
/// result is sized and reserved first, so one that cannot be held is an error naming its
/// size and memory (see [`hessian_of`]).
pub fn hessian<F, E>(f: F, inputs: &[Tensor], options: &HessianOptions) -> Result<Tensor>
where
    F: Fn(&[Var]) -> std::result::Result<Var, E>,
    HessianError: From<E>,
{
    hessian_of(&PreparedHvp::new(f, inputs)?, options)
}

/// The Hessian of every element of `f`'s (any-shaped) output with respect to all `inputs`:
/// shape `[…output shape, N, N]`. Each output element gets its own recording (so memory stays
/// that of one function), its matrix written in place into the result. The result's
/// `outputs · N²` elements are counted and reserved before the first Hessian is computed.
pub fn output_hessian<F, E>(f: F, inputs: &[Tensor], options: &HessianOptions) -> Result<Tensor>
where
    F: Fn(&[Var]) -> std::result::Result<Var, E>,
    HessianError: From<E>,
{
    const OP: &str = "output_hessian";
    const WHAT: &str = "the outputs × N × N Hessians";
    let (dtype, device) = common_kind(OP, inputs)?;
    let out_dims = {
        let tape = Tape::new();
        let leaves: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
        f(&leaves)?.dims().to_vec()
    };
    let outputs = alloc::product(OP, "the function's output", &out_dims)?;
    if outputs == 0 {
        return Err(invalid(OP, "the function's output is empty"));
    }
    let sizes: Vec<usize> = inputs.iter().map(Tensor::elem_count).collect();
    let dim = alloc::sum(OP, "the flattened inputs", &sizes)?;
    let block = alloc::product(OP, WHAT, &[dim, dim])?;
    let len = alloc::product(OP, WHAT, &[outputs, dim, dim])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, dtype, len)?;
    for m in 0..outputs {
        let op = PreparedHvp::new::<_, HessianError>(
            |v| Ok(f(v)?.reshape([outputs])?.narrow(0, m, 1)?.sum_all()?),
            inputs,
        )?;
        write_matrix(&op, options, &mut buf, m * block)?;
    }
    let mut shape = out_dims;
    shape.extend([dim, dim]);
    buf.into_tensor(shape, device)
}

/// Checks one tensor per input (with a leading batch axis of `k` when given) and flattens them
/// into the operator's `[K, dim]` batch.
fn flatten(op: &PreparedHvp, name: &'static str, v: &[Tensor], k: Option<usize>) -> Result<Tensor> {
    let shapes = op.input_shapes();
    if v.len() != shapes.len() {
        return Err(invalid(
            name,
            format!(
                "expected {} vectors (one per input), got {}",
                shapes.len(),
                v.len()
            ),
        ));
    }
    let rows = k.unwrap_or(1);
    if rows == 0 {
        return Err(HessianError::EmptyBatch { op: name });
    }
    let mut parts = Vec::with_capacity(v.len());
    for (t, shape) in v.iter().zip(shapes) {
        check_kind(name, t, op.dtype(), op.device())?;
        if k.is_some_and(|k| t.rank() == 0 || t.dims()[0] != k) {
            return Err(invalid(
                name,
                format!(
                    "every vector needs the leading batch axis K = {rows}, got {}",
                    t.shape()
                ),
            ));
        }
        let per_row = t.elem_count() / rows;
        if per_row != shape.elem_count() {
            return Err(HessianError::VectorLength {
                op: name,
                expected: shape.elem_count(),
                got: per_row,
            });
        }
        let mut dims = k.map(|k| vec![k]).unwrap_or_default();
        dims.extend_from_slice(shape.dims());
        if t.dims() != dims.as_slice() {
            return Err(invalid(
                name,
                format!("expected a tensor of shape {dims:?}, got {}", t.shape()),
            ));
        }
        parts.push(t.reshape([rows, shape.elem_count()])?);
    }
    Ok(match parts.as_slice() {
        [single] => single.clone(),
        many => Tensor::cat(&many.iter().collect::<Vec<_>>(), 1)?,
    })
}

/// Splits a `[K, dim]` batch into one tensor per input (`[K, …shape]`, or `shape` for `k = None`).
fn split(
    flat: &Tensor,
    shapes: &[curvature_tensor::Shape],
    k: Option<usize>,
) -> Result<Vec<Tensor>> {
    let mut offset = 0;
    shapes
        .iter()
        .map(|shape| {
            let len = shape.elem_count();
            let part = flat.narrow(1, offset, len)?;
            offset += len;
            let mut dims = k.map(|k| vec![k]).unwrap_or_default();
            dims.extend_from_slice(shape.dims());
            Ok(part.reshape(dims)?)
        })
        .collect()
}
