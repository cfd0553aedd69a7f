//! Constants and layout ops: `Constant`, `ConstantOfShape`, `Shape`, `Reshape`, `Flatten`,
//! `Transpose`, `Squeeze`, `Unsqueeze`, `Concat`, `Slice`, `Split`, `Gather`, `Expand`, on
//! floats (tape) and integers (host).

mod constant;
mod index;

use super::util::{
    attr_int, attr_ints, check_inputs, dims_of, input, int_list, norm_axes, optional_input, to_dims,
};
use super::{host, node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let one = |v: Val| vec![v];
    match node.op_type.as_str() {
        "Constant" => constant::constant(node, inputs, ctx).map(one),
        "ConstantOfShape" => constant::constant_of_shape(node, inputs, ctx).map(one),
        "Shape" => constant::shape(node, inputs).map(one),
        "Reshape" => reshape(node, inputs).map(one),
        "Flatten" => flatten(node, inputs).map(one),
        "Squeeze" => squeeze(node, inputs).map(one),
        "Unsqueeze" => unsqueeze(node, inputs).map(one),
        "Transpose" => transpose(node, inputs).map(one),
        "Expand" => expand(node, inputs).map(one),
        "Concat" => index::concat(node, inputs, ctx).map(one),
        "Slice" => index::slice(node, inputs).map(one),
        "Split" => index::split(node, inputs),
        "Gather" => index::gather(node, inputs).map(one),
        other => Err(unsupported(
            node,
            "op",
            format!("'{other}' is not a shape op"),
        )),
    }
}

/// The same values with new dimensions (of the same element count).
fn with_dims(node: &Node, value: &Val, dims: Vec<usize>) -> Result<Val> {
    match value {
        Val::Float(v) => Ok(Val::Float(v.reshape(dims)?)),
        Val::Int(t) => {
            let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(t.data.len()) {
                return Err(node_error(
                    node,
                    format!("cannot reshape {:?} to {dims:?}", t.dims),
                ));
            }
            Ok(Val::Int(IntTensor {
                dims,
                data: t.data.clone(),
            }))
        }
    }
}

/// `Reshape(data, shape)`: a 0 copies the input's dimension (unless `allowzero`), one −1 is
/// inferred.
fn reshape(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let x = input(node, inputs, 0)?;
    let target = int_list(node, inputs, 1)?;
    let allowzero = attr_int(node, "allowzero", 0)? != 0;
    let from = dims_of(x);
    let total: usize = from.iter().product();
    let bad = |why: String| {
        node_error(
            node,
            format!("cannot reshape {from:?} to {target:?}: {why}"),
        )
    };
    if allowzero && target.contains(&0) && target.contains(&-1) {
        return Err(bad("allowzero forbids 0 and -1 together".to_string()));
    }
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        dims.push(match d {
            0 if !allowzero => *from
                .get(i)
                .ok_or_else(|| bad(format!("0 at position {i} copies no input dimension")))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            -1 => return Err(bad("more than one -1".to_string())),
            d => usize::try_from(d).map_err(|_| bad(format!("invalid dimension {d}")))?,
        });
    }
    let known = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("the element count overflows".to_string()))?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(bad(format!(
                "{total} elements cannot be split into {known}-element parts"
            )));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(bad(format!("{total} elements, {known} asked for")));
    }
    with_dims(node, x, dims)
}

/// `Flatten(axis)`: a matrix of the axes before and from `axis` (in `[-rank, rank]`).
fn flatten(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let x = input(node, inputs, 0)?;
    let dims = dims_of(x);
    let axis = attr_int(node, "axis", 1)?;
    // The axis is in [-rank, rank]: it may equal the rank (everything in the rows).
    let rank = dims.len() as i64;
    let split = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&split) {
        return Err(node_error(
            node,
            format!("axis {axis} is out of range for rank {rank} (allowed: -{rank}..={rank})"),
        ));
    }
    let split = split as usize;
    let rows = dims[..split].iter().product();
    let cols = dims[split..].iter().product();
    with_dims(node, x, vec![rows, cols])
}

/// The axes of `Squeeze`/`Unsqueeze`: the second input (opset ≥ 13) or the attribute.
fn axes_operand(node: &Node, inputs: &[Option<Val>]) -> Result<Option<Vec<i64>>> {
    match optional_input(inputs, 1) {
        Some(_) => int_list(node, inputs, 1).map(Some),
        None => attr_ints(node, "axes"),
    }
}

/// `Squeeze(data, axes)`: drops the listed axes of length 1, or every axis of length 1.
fn squeeze(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 2)?;
    let x = input(node, inputs, 0)?;
    let from = dims_of(x);
    let drop = match axes_operand(node, inputs)? {
        Some(axes) => {
            let axes = norm_axes(node, &axes, from.len())?;
            if let Some(&a) = axes.iter().find(|&&a| from[a] != 1) {
                return Err(node_error(
                    node,
                    format!("axis {a} of shape {from:?} has length {}, not 1", from[a]),
                ));
            }
            axes
        }
        None => (0..from.len()).filter(|&a| from[a] == 1).collect(),
    };
    let dims = (0..from.len())
        .filter(|a| !drop.contains(a))
        .map(|a| from[a])
        .collect();
    with_dims(node, x, dims)
}

/// `Unsqueeze(data, axes)`: inserts axes of length 1 at the listed positions of the output.
fn unsqueeze(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 2)?;
    let x = input(node, inputs, 0)?;
    let from = dims_of(x);
    let axes = axes_operand(node, inputs)?
        .ok_or_else(|| node_error(node, "needs axes (an input or an attribute)".to_string()))?;
    let rank = from.len() + axes.len();
    let axes = norm_axes(node, &axes, rank)?;
    let mut rest = from.iter();
    let dims = (0..rank)
        .map(|a| {
            if axes.contains(&a) {
                1
            } else {
                rest.next().copied().unwrap_or(1)
            }
        })
        .collect();
    with_dims(node, x, dims)
}

/// `Transpose(perm)`: output axis `i` is input axis `perm[i]`; by default the axes reversed.
fn transpose(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let x = input(node, inputs, 0)?;
    let rank = dims_of(x).len();
    let perm = match attr_ints(node, "perm")? {
        Some(p) => {
            if p.len() != rank {
                return Err(node_error(
                    node,
                    format!("perm {p:?} does not have one entry per axis of rank {rank}"),
                ));
            }
            norm_axes(node, &p, rank)?
        }
        None => (0..rank).rev().collect(),
    };
    match x {
        Val::Float(v) => Ok(Val::Float(v.permute(&perm)?)),
        Val::Int(t) => host::permute(node, t, &perm).map(Val::Int),
    }
}

/// `Expand(input, shape)`: numpy broadcasting of the input and the shape together.
fn expand(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let x = input(node, inputs, 0)?;
    let shape = to_dims(node, &int_list(node, inputs, 1)?)?;
    let dims = host::broadcast_dims(node, dims_of(x), &shape)?;
    match x {
        Val::Float(v) => Ok(Val::Float(v.broadcast_to(dims)?)),
        Val::Int(t) => host::broadcast_to(node, t, &dims).map(Val::Int),
    }
}
