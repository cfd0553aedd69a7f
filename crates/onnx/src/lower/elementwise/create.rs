//! Index and mask builders: `Range` and `Trilu`.

use super::super::util::{
    attr_int, check_inputs, checked_count, constant_values, float_const, input, int_scalar,
    optional_input, MAX_CREATED_ELEMENTS,
};
use super::super::{node_error, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// `Range(start, limit, delta)`: `start + i·delta` for `i < max(⌈(limit − start)/delta⌉, 0)`;
/// integers on the host, floats as a constant (their inputs must not depend on parameters).
pub fn range(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 3, 3)?;
    let all_int = (0..3).all(|i| matches!(inputs[i], Some(Val::Int(_))));
    if all_int {
        let start = int_scalar(node, inputs, 0)?;
        let limit = int_scalar(node, inputs, 1)?;
        let delta = int_scalar(node, inputs, 2)?;
        if delta == 0 {
            return Err(node_error(node, "delta is 0".to_string()));
        }
        let (span, step) = (i128::from(limit) - i128::from(start), i128::from(delta));
        // ⌈span / step⌉ with the sign of the quotient.
        let count = (span / step + i128::from(span % step != 0 && (span > 0) == (step > 0))).max(0);
        let count = bounded(node, count)?;
        let data = (0..count)
            .map(|i| {
                i64::try_from(i128::from(start) + step * i as i128)
                    .map_err(|_| node_error(node, "value overflows int64".to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Val::Int(IntTensor {
            dims: vec![count],
            data,
        }));
    }
    let scalar = |i: usize| -> Result<f64> {
        let values = match input(node, inputs, i)? {
            Val::Float(v) => constant_values(node, v, "Range")?,
            Val::Int(t) => t.data.iter().map(|&x| x as f64).collect(),
        };
        match values.as_slice() {
            [v] => Ok(*v),
            _ => Err(node_error(node, format!("input {i} must hold one value"))),
        }
    };
    let (start, limit, delta) = (scalar(0)?, scalar(1)?, scalar(2)?);
    let count = ((limit - start) / delta).ceil();
    if delta == 0.0 || !count.is_finite() {
        return Err(node_error(
            node,
            format!("cannot count from {start} to {limit} in steps of {delta}"),
        ));
    }
    let count = if count <= 0.0 {
        0
    } else if count > MAX_CREATED_ELEMENTS as f64 {
        return Err(too_long(node, count));
    } else {
        count as usize
    };
    let data: Vec<f64> = (0..count).map(|i| start + i as f64 * delta).collect();
    Ok(Val::Float(float_const(ctx, &data, &[count])?))
}

fn bounded(node: &Node, count: i128) -> Result<usize> {
    usize::try_from(count)
        .ok()
        .filter(|&n| n <= MAX_CREATED_ELEMENTS)
        .ok_or_else(|| too_long(node, count))
}

fn too_long(node: &Node, count: impl std::fmt::Display) -> crate::OnnxError {
    node_error(
        node,
        format!(
            "{count} elements is more than the {MAX_CREATED_ELEMENTS} a created tensor may hold"
        ),
    )
}

/// `Trilu(input, k)`: the upper (`upper = 1`, entries with `j − i ≥ k`) or lower (`j − i ≤ k`)
/// triangle of the last two axes, the rest 0. On floats a `where_cond` with a constant mask,
/// so the kept entries' derivatives pass through and the others are exactly 0.
pub fn trilu(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 1, 2)?;
    let upper = attr_int(node, "upper", 1)? != 0;
    let k = match optional_input(inputs, 1) {
        Some(_) => int_scalar(node, inputs, 1)?,
        None => 0,
    };
    let x = input(node, inputs, 0)?;
    let dims = super::super::util::dims_of(x);
    if dims.len() < 2 {
        return Err(node_error(
            node,
            format!("needs a tensor of rank ≥ 2, got shape {dims:?}"),
        ));
    }
    let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    checked_count(node, &[rows, cols])?;
    let keep = |i: usize, j: usize| -> bool {
        let diff = j as i128 - i as i128;
        if upper {
            diff >= i128::from(k)
        } else {
            diff <= i128::from(k)
        }
    };
    let mask: Vec<bool> = (0..rows * cols)
        .map(|e| keep(e / cols.max(1), e % cols.max(1)))
        .collect();
    match x {
        Val::Int(t) => {
            let block = rows * cols;
            let data = t
                .data
                .iter()
                .enumerate()
                .map(|(e, &v)| if mask[e % block] { v } else { 0 })
                .collect();
            Ok(Val::Int(IntTensor {
                dims: t.dims.clone(),
                data,
            }))
        }
        Val::Float(v) => {
            let mask: Vec<f64> = mask.iter().map(|&m| f64::from(u8::from(m))).collect();
            let mask = float_const(ctx, &mask, &[rows, cols])?;
            let zero = float_const(ctx, &[0.0], &[])?;
            Ok(Val::Float(mask.where_cond(v, &zero)?))
        }
    }
}
