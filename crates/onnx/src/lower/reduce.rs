//! Reductions over axes: `ReduceMean`, `ReduceSum`, `ReduceMax`, `ReduceMin`, and (in
//! `norms`) `ReduceSumSquare`, `ReduceL1`, `ReduceL2`, `ReduceLogSumExp`. The axes come from
//! the `axes` input (from opset 13 for `ReduceSum`, 18 for the others) or, in older models, the
//! `axes` attribute; no axes reduce everything unless `noop_with_empty_axes` is set.

use super::util::{
    attr_int, attr_ints, check_inputs, checked_count, input, int_list, norm_axes, optional_input,
};
use super::{node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

mod norms;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], _ctx: &Ctx) -> Result<Vec<Val>> {
    check_inputs(node, inputs, 1, 2)?;
    let x = input(node, inputs, 0)?;
    let rank = super::util::dims_of(x).len();
    let axes = match optional_input(inputs, 1) {
        Some(_) => Some(int_list(node, inputs, 1)?),
        None => attr_ints(node, "axes")?,
    }
    .unwrap_or_default();
    let keepdims = attr_int(node, "keepdims", 1)? != 0;
    let axes = if axes.is_empty() {
        if attr_int(node, "noop_with_empty_axes", 0)? != 0 {
            if !matches!(node.op_type.as_str(), "ReduceMean" | "ReduceSum") {
                return Err(unsupported(
                    node,
                    "attribute",
                    "noop_with_empty_axes = 1 with no axes (only ReduceMean and ReduceSum \
                     accept it)"
                        .to_string(),
                ));
            }
            return Ok(vec![x.clone()]);
        }
        (0..rank).collect()
    } else {
        let mut axes = norm_axes(node, &axes, rank)?;
        axes.sort_unstable();
        axes
    };
    if matches!(node.op_type.as_str(), "ReduceMax" | "ReduceMin") {
        return extremum(node, x, &axes, keepdims).map(|v| vec![v]);
    }
    let mean = node.op_type == "ReduceMean";
    let out = match x {
        Val::Float(v) if !matches!(node.op_type.as_str(), "ReduceMean" | "ReduceSum") => {
            Val::Float(norms::lower(node, v, &axes, keepdims)?)
        }
        Val::Float(v) => {
            if axes.is_empty() {
                // A scalar: reducing over no axes leaves it as it is.
                return Ok(vec![x.clone()]);
            }
            let signed: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            if mean {
                let count: usize = axes.iter().map(|&a| v.dims()[a]).product();
                if count == 0 {
                    return Err(node_error(
                        node,
                        format!(
                            "mean over no elements (axes {axes:?} of shape {:?})",
                            v.dims()
                        ),
                    ));
                }
                Val::Float(v.mean(&signed, keepdims)?)
            } else {
                Val::Float(v.sum(&signed, keepdims)?)
            }
        }
        Val::Int(t) if node.op_type == "ReduceSum" => Val::Int(int_sum(node, t, &axes, keepdims)?),
        Val::Int(t) => {
            return Err(unsupported(
                node,
                "dtype",
                format!("{} of an integer tensor (shape {:?})", node.op_type, t.dims),
            ))
        }
    };
    Ok(vec![out])
}

/// `ReduceMax`/`ReduceMin` over sorted, distinct `axes`. On floats the tape's `max` over the
/// reduced axes gathered into one (the derivative shared equally among tied extremes, as the
/// tape's `max`); `min(x) = −max(−x)`. On integers the same on the host. Reducing an empty
/// axis is an error.
fn extremum(node: &Node, x: &Val, axes: &[usize], keepdims: bool) -> Result<Val> {
    let dims = super::util::dims_of(x).to_vec();
    if let Some(&a) = axes.iter().find(|&&a| dims[a] == 0) {
        return Err(node_error(
            node,
            format!("{} over the empty axis {a} of shape {dims:?}", node.op_type),
        ));
    }
    let max = node.op_type == "ReduceMax";
    let kept_dims: Vec<usize> = (0..dims.len())
        .filter(|a| !axes.contains(a))
        .map(|a| dims[a])
        .collect();
    let out_dims: Vec<usize> = if keepdims {
        (0..dims.len())
            .map(|a| if axes.contains(&a) { 1 } else { dims[a] })
            .collect()
    } else {
        kept_dims.clone()
    };
    if axes.is_empty() {
        return Ok(x.clone());
    }
    // The kept axes first, then the reduced ones merged into one last axis.
    let perm: Vec<usize> = (0..dims.len())
        .filter(|a| !axes.contains(a))
        .chain(axes.iter().copied())
        .collect();
    let reduced: usize = axes.iter().map(|&a| dims[a]).product();
    let mut grouped = kept_dims;
    grouped.push(reduced);
    match x {
        Val::Float(v) => {
            let signed = if max { v.clone() } else { v.neg()? };
            let moved = if perm.iter().enumerate().all(|(i, &p)| i == p) {
                signed
            } else {
                signed.permute(&perm)?
            };
            let top = moved.reshape(grouped)?.max(-1, false)?;
            let top = if max { top } else { top.neg()? };
            Ok(Val::Float(top.reshape(out_dims)?))
        }
        Val::Int(t) => {
            let moved = super::host::permute(node, t, &perm)?;
            let data = moved
                .data
                .chunks(reduced)
                .map(|group| {
                    let pick = if max {
                        group.iter().max()
                    } else {
                        group.iter().min()
                    };
                    pick.copied()
                        .ok_or_else(|| node_error(node, "an empty reduction".to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Val::Int(IntTensor {
                dims: out_dims,
                data,
            }))
        }
    }
}

/// Σ of an integer tensor over sorted, distinct `axes`, with checked addition.
fn int_sum(node: &Node, t: &IntTensor, axes: &[usize], keepdims: bool) -> Result<IntTensor> {
    let kept: Vec<usize> = t
        .dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let count = checked_count(node, &kept)?;
    let mut out = vec![0i64; count];
    // Row-major strides of the kept shape, 0 on the reduced axes.
    let mut strides = vec![0usize; kept.len()];
    let mut s = 1usize;
    for i in (0..kept.len()).rev() {
        strides[i] = if axes.contains(&i) { 0 } else { s };
        s *= kept[i];
    }
    let mut index = vec![0usize; t.dims.len()];
    for &v in &t.data {
        let o: usize = index.iter().zip(&strides).map(|(&i, &s)| i * s).sum();
        out[o] = out[o]
            .checked_add(v)
            .ok_or_else(|| node_error(node, "integer overflow in the sum".to_string()))?;
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    let dims = if keepdims {
        kept
    } else {
        t.dims
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    Ok(IntTensor { dims, data: out })
}
