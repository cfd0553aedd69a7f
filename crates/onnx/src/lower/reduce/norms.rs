//! `ReduceSumSquare` (Σx²), `ReduceL1` (Σ|x|), `ReduceL2` (√Σx²) and `ReduceLogSumExp`
//! (log Σ eˣ, computed stably by the tape's `logsumexp`) over sorted, distinct axes.

use curvature_tape::Var;

use super::super::node_error;
use super::super::operand::product;
use crate::ir::Node;
use crate::Result;

/// The reduction `node.op_type` of `x` over `axes` (sorted and distinct; empty only for a
/// scalar, which is returned through the elementwise part of the reduction).
pub(super) fn lower(node: &Node, x: &Var, axes: &[usize], keepdims: bool) -> Result<Var> {
    let signed: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
    let sum = |v: Var| -> Result<Var> {
        Ok(if axes.is_empty() {
            v
        } else {
            v.sum(&signed, keepdims)?
        })
    };
    match node.op_type.as_str() {
        "ReduceSumSquare" => sum(x.square()?),
        "ReduceL1" => sum(x.abs()?),
        "ReduceL2" => Ok(sum(x.square()?)?.sqrt()?),
        _ => log_sum_exp(node, x, axes, keepdims),
    }
}

/// log Σ eˣ over `axes`: the reduced axes are moved last and merged, so one stable
/// `logsumexp` covers them all.
fn log_sum_exp(node: &Node, x: &Var, axes: &[usize], keepdims: bool) -> Result<Var> {
    if axes.is_empty() {
        return Ok(x.clone());
    }
    let dims = x.dims();
    let kept: Vec<usize> = (0..dims.len()).filter(|a| !axes.contains(a)).collect();
    let reduced_len = product(node, &axes.iter().map(|&a| dims[a]).collect::<Vec<_>>())?;
    if reduced_len == 0 {
        return Err(node_error(
            node,
            format!("log-sum-exp over no elements (axes {axes:?} of shape {dims:?})"),
        ));
    }
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let mut merged: Vec<usize> = kept.iter().map(|&a| dims[a]).collect();
    merged.push(reduced_len);
    let out_dims: Vec<usize> = if keepdims {
        (0..dims.len())
            .map(|a| if axes.contains(&a) { 1 } else { dims[a] })
            .collect()
    } else {
        kept.iter().map(|&a| dims[a]).collect()
    };
    Ok(x.permute(&perm)?
        .reshape(merged)?
        .logsumexp(-1, false)?
        .reshape(out_dims)?)
}
