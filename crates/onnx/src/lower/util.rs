//! Helpers every op family shares: typed attribute readers, input accessors that name the node
//! in their errors, axis normalisation, reading an integer input as a list, and moving values
//! between the host and the tape.

use curvature_tape::Var;
use curvature_tensor::Tensor;

use super::{node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::{Attribute, ElemType, HostData, HostTensor, Node};
use crate::Result;

/// The most elements a tensor created from values in the graph (a shape input, a `Range`
/// count) may hold: larger requests are errors, not allocations.
pub const MAX_CREATED_ELEMENTS: usize = 1 << 28;

/// The integer attribute `name`, or `default` when absent.
pub fn attr_int(node: &Node, name: &str, default: i64) -> Result<i64> {
    Ok(attr_int_opt(node, name)?.unwrap_or(default))
}

/// The integer attribute `name`, if present.
pub fn attr_int_opt(node: &Node, name: &str) -> Result<Option<i64>> {
    match node.attribute(name) {
        None => Ok(None),
        Some(Attribute::Int(v)) => Ok(Some(*v)),
        Some(other) => Err(wrong_attr(node, name, "an int", other)),
    }
}

/// The float attribute `name` (widened to f64), or `default` when absent.
pub fn attr_float(node: &Node, name: &str, default: f64) -> Result<f64> {
    match node.attribute(name) {
        None => Ok(default),
        Some(Attribute::Float(v)) => Ok(f64::from(*v)),
        Some(other) => Err(wrong_attr(node, name, "a float", other)),
    }
}

/// The integer-list attribute `name`, if present.
pub fn attr_ints(node: &Node, name: &str) -> Result<Option<Vec<i64>>> {
    match node.attribute(name) {
        None => Ok(None),
        Some(Attribute::Ints(v)) => Ok(Some(v.clone())),
        Some(other) => Err(wrong_attr(node, name, "a list of ints", other)),
    }
}

/// The float-list attribute `name` (widened to f64), if present.
pub fn attr_floats(node: &Node, name: &str) -> Result<Option<Vec<f64>>> {
    match node.attribute(name) {
        None => Ok(None),
        Some(Attribute::Floats(v)) => Ok(Some(v.iter().map(|&f| f64::from(f)).collect())),
        Some(other) => Err(wrong_attr(node, name, "a list of floats", other)),
    }
}

/// The string attribute `name`, or `default` when absent.
pub fn attr_string(node: &Node, name: &str, default: &str) -> Result<String> {
    match node.attribute(name) {
        None => Ok(default.to_string()),
        Some(Attribute::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_attr(node, name, "a string", other)),
    }
}

/// The tensor attribute `name`, if present.
pub fn attr_tensor<'a>(node: &'a Node, name: &str) -> Result<Option<&'a HostTensor>> {
    match node.attribute(name) {
        None => Ok(None),
        Some(Attribute::Tensor(t)) => Ok(Some(t)),
        Some(other) => Err(wrong_attr(node, name, "a tensor", other)),
    }
}

fn wrong_attr(node: &Node, name: &str, expected: &str, got: &Attribute) -> crate::OnnxError {
    let kind = match got {
        Attribute::Int(_) => "an int".to_string(),
        Attribute::Float(_) => "a float".to_string(),
        Attribute::String(_) => "a string".to_string(),
        Attribute::Tensor(_) => "a tensor".to_string(),
        Attribute::Ints(_) => "a list of ints".to_string(),
        Attribute::Floats(_) => "a list of floats".to_string(),
        Attribute::Strings(_) => "a list of strings".to_string(),
        Attribute::Other(t) => format!("attribute type {t}"),
    };
    node_error(
        node,
        format!("attribute '{name}' must be {expected}, got {kind}"),
    )
}

/// Errors unless the node has between `min` and `max` inputs (omitted optional ones counted).
pub fn check_inputs(node: &Node, inputs: &[Option<Val>], min: usize, max: usize) -> Result<()> {
    if inputs.len() < min || inputs.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(node_error(
            node,
            format!("expects {expected} inputs, got {}", inputs.len()),
        ));
    }
    Ok(())
}

/// Input `i`, which must be present.
pub fn input<'a>(node: &Node, inputs: &'a [Option<Val>], i: usize) -> Result<&'a Val> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| node_error(node, format!("input {i} is required but missing")))
}

/// Input `i` when present (absent past the end or when the name is empty).
pub fn optional_input(inputs: &[Option<Val>], i: usize) -> Option<&Val> {
    inputs.get(i).and_then(Option::as_ref)
}

/// Input `i` as a floating-point tape variable.
pub fn float_input<'a>(node: &Node, inputs: &'a [Option<Val>], i: usize) -> Result<&'a Var> {
    match input(node, inputs, i)? {
        Val::Float(v) => Ok(v),
        Val::Int(t) => Err(node_error(
            node,
            format!(
                "input {i} must be floating-point, got an integer tensor of shape {:?}",
                t.dims
            ),
        )),
    }
}

/// Input `i` as a host integer (or boolean) tensor.
pub fn int_input<'a>(node: &Node, inputs: &'a [Option<Val>], i: usize) -> Result<&'a IntTensor> {
    match input(node, inputs, i)? {
        Val::Int(t) => Ok(t),
        Val::Float(v) => Err(node_error(
            node,
            format!(
                "input {i} must be an integer tensor (a shape, axes or indices), got a \
                 floating-point tensor of shape {:?}",
                v.dims()
            ),
        )),
    }
}

/// Input `i` (an integer tensor of rank ≤ 1) as a list of integers: shapes, axes, starts, ….
pub fn int_list(node: &Node, inputs: &[Option<Val>], i: usize) -> Result<Vec<i64>> {
    let t = int_input(node, inputs, i)?;
    if t.dims.len() > 1 {
        return Err(node_error(
            node,
            format!(
                "input {i} must be a 1-D list of integers, got shape {:?}",
                t.dims
            ),
        ));
    }
    Ok(t.data.clone())
}

/// Input `i` as one integer (a scalar or a one-element tensor).
pub fn int_scalar(node: &Node, inputs: &[Option<Val>], i: usize) -> Result<i64> {
    let t = int_input(node, inputs, i)?;
    match t.data.as_slice() {
        [v] => Ok(*v),
        _ => Err(node_error(
            node,
            format!("input {i} must hold one integer, got shape {:?}", t.dims),
        )),
    }
}

/// The dimensions of a value, whichever kind it is.
pub fn dims_of(value: &Val) -> &[usize] {
    match value {
        Val::Float(v) => v.dims(),
        Val::Int(t) => &t.dims,
    }
}

/// Resolves an ONNX axis in `[-rank, rank)` to `0..rank`.
pub fn norm_axis(node: &Node, axis: i64, rank: usize) -> Result<usize> {
    let r = i64::try_from(rank).map_err(|_| node_error(node, format!("rank {rank} too large")))?;
    let resolved = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&resolved) {
        return Err(node_error(
            node,
            format!("axis {axis} is out of range for rank {rank}"),
        ));
    }
    Ok(resolved as usize)
}

/// Resolves a list of axes against `rank`, rejecting repeated axes.
pub fn norm_axes(node: &Node, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let r = norm_axis(node, a, rank)?;
        if out.contains(&r) {
            return Err(node_error(
                node,
                format!("axis {a} is repeated in {axes:?}"),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// A list of ONNX dimensions (`i64`, non-negative) as sizes, with the element count bounded by
/// [`MAX_CREATED_ELEMENTS`].
pub fn to_dims(node: &Node, dims: &[i64]) -> Result<Vec<usize>> {
    let out = dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| node_error(node, format!("negative dimension {d} in {dims:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    checked_count(node, &out)?;
    Ok(out)
}

/// The element count of `dims`, an error past [`MAX_CREATED_ELEMENTS`] or on overflow.
pub fn checked_count(node: &Node, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_CREATED_ELEMENTS)
        .ok_or_else(|| {
            node_error(
                node,
                format!(
                    "shape {dims:?} has more than {MAX_CREATED_ELEMENTS} elements, the most a \
                     tensor created from graph values may hold"
                ),
            )
        })
}

/// A size as an ONNX `i64`.
pub fn to_i64(node: &Node, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| node_error(node, format!("{v} does not fit in int64")))
}

/// A floating-point tape constant of `dims` holding `data`, in the context's dtype and device.
pub fn float_const(ctx: &Ctx, data: &[f64], dims: &[usize]) -> Result<Var> {
    let tensor = Tensor::from_f64s(data, dims.to_vec(), ctx.dtype, ctx.device)?;
    Ok(ctx.tape.constant(tensor))
}

/// An integer tensor as a floating-point tape constant (exact up to 2⁵³ in f64).
pub fn int_to_float(ctx: &Ctx, t: &IntTensor) -> Result<Var> {
    let data: Vec<f64> = t.data.iter().map(|&v| v as f64).collect();
    float_const(ctx, &data, &t.dims)
}

/// A host tensor (an initializer, a `Constant`'s value) as a graph value: floats become tape
/// constants, integers and booleans host tensors; other element types are refused.
pub fn host_to_val(node: &Node, ctx: &Ctx, t: &HostTensor) -> Result<Val> {
    if let ElemType::Other(code) = t.elem_type {
        return Err(unsupported(
            node,
            "dtype",
            format!("tensor element type {code} (supported: float, double, float16, bfloat16, int64, int32, bool)"),
        ));
    }
    let count = t.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let len = match &t.data {
        HostData::Float(v) => v.len(),
        HostData::Int(v) => v.len(),
    };
    if count != Some(len) {
        return Err(node_error(
            node,
            format!("tensor of shape {:?} holds {len} values", t.dims),
        ));
    }
    match &t.data {
        HostData::Float(v) => Ok(Val::Float(float_const(ctx, v, &t.dims)?)),
        HostData::Int(v) => Ok(Val::Int(IntTensor {
            dims: t.dims.clone(),
            data: v.clone(),
        })),
    }
}

/// The values of a floating-point variable on the host, refusing ones that depend on
/// parameters (gradients would be lost silently): `what` names the use in the error.
pub fn constant_values(node: &Node, v: &Var, what: &str) -> Result<Vec<f64>> {
    if v.requires_grad() {
        return Err(node_error(
            node,
            format!(
                "{what} needs a value that does not depend on parameters or inputs being \
                 differentiated, got a tracked tensor of shape {:?}",
                v.dims()
            ),
        ));
    }
    Ok(v.value().to_f64s()?)
}

/// A value as a floating-point tape variable (integers become constants).
pub fn to_float(ctx: &Ctx, value: &Val) -> Result<Var> {
    match value {
        Val::Float(v) => Ok(v.clone()),
        Val::Int(t) => int_to_float(ctx, t),
    }
}
