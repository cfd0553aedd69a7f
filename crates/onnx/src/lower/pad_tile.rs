//! `Pad` (mode `constant`: any axes, negative pads crop) and `Tile`, on the tape for floats;
//! `Tile` also on host integer tensors.

use curvature_tape::Var;

use super::host;
use super::operand::{known_attributes, output_count};
use super::util::{
    attr_float, attr_ints, attr_string, check_inputs, checked_count, input, int_list, norm_axes,
    optional_input,
};
use super::{node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    output_count(node, 1, "output")?;
    match node.op_type.as_str() {
        "Pad" => pad(node, inputs, ctx).map(|v| vec![Val::Float(v)]),
        _ => tile(node, inputs).map(|v| vec![v]),
    }
}

/// `Pad`: from opset 11 the pads, constant value and (from 18) axes are inputs; before, the
/// `pads` and `value` attributes. The constant value may itself be a tape variable.
fn pad(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Var> {
    let legacy = ctx.opset < 11;
    if legacy {
        known_attributes(node, &["mode", "pads", "value"])?;
        check_inputs(node, inputs, 1, 1)?;
    } else {
        known_attributes(node, &["mode"])?;
        check_inputs(node, inputs, 2, if ctx.opset >= 18 { 4 } else { 3 })?;
    }
    let mode = attr_string(node, "mode", "constant")?;
    if mode != "constant" {
        return Err(unsupported(
            node,
            "attribute",
            format!("mode = '{mode}' (supported: 'constant')"),
        ));
    }
    let x = match input(node, inputs, 0)? {
        Val::Float(x) => x,
        Val::Int(t) => {
            return Err(unsupported(
                node,
                "dtype",
                format!(
                    "padding an integer tensor (shape {:?}); floats are supported",
                    t.dims
                ),
            ))
        }
    };
    let rank = x.rank();
    let pads = if legacy {
        attr_ints(node, "pads")?
            .ok_or_else(|| node_error(node, "attribute 'pads' is required".to_string()))?
    } else {
        int_list(node, inputs, 1)?
    };
    let axes = match optional_input(inputs, 3) {
        Some(_) => norm_axes(node, &int_list(node, inputs, 3)?, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(node_error(
            node,
            format!(
                "pads {pads:?} must hold 2 entries per padded axis ({}) of X {}",
                axes.len(),
                x.shape()
            ),
        ));
    }
    let value: Option<Var> = if legacy {
        Some(attr_float(node, "value", 0.0)?)
            .filter(|&v| v != 0.0)
            .map(|v| super::util::float_const(ctx, &[v], &[]))
            .transpose()?
    } else {
        match optional_input(inputs, 2) {
            None => None,
            Some(Val::Float(v)) if v.dims().iter().product::<usize>() == 1 => {
                Some(v.reshape(Vec::<usize>::new())?)
            }
            Some(other) => {
                return Err(node_error(
                    node,
                    format!(
                        "constant_value must be one float, got {} of shape {:?}",
                        if matches!(other, Val::Int(_)) {
                            "an integer tensor"
                        } else {
                            "a float tensor"
                        },
                        super::util::dims_of(other)
                    ),
                ))
            }
        }
    };
    let mut out_dims = x.dims().to_vec();
    for (k, &axis) in axes.iter().enumerate() {
        let (before, after) = (pads[k], pads[k + axes.len()]);
        let len = i64::try_from(out_dims[axis])
            .ok()
            .and_then(|d| d.checked_add(before)?.checked_add(after))
            .filter(|&d| d >= 0)
            .ok_or_else(|| {
                node_error(
                    node,
                    format!(
                        "pads {before} and {after} of axis {axis} do not fit X {}",
                        x.shape()
                    ),
                )
            })?;
        out_dims[axis] = usize::try_from(len).map_err(|_| node_error(node, format!("{len}")))?;
    }
    checked_count(node, &out_dims)?;
    // Crop first (negative pads), then pad with zeros, recording which entries are padding.
    let mut y = x.clone();
    for (k, &axis) in axes.iter().enumerate() {
        let (before, after) = (pads[k], pads[k + axes.len()]);
        let crop_before = usize::try_from(before.saturating_neg().max(0)).unwrap_or(usize::MAX);
        let crop_after = usize::try_from(after.saturating_neg().max(0)).unwrap_or(usize::MAX);
        if crop_before > 0 || crop_after > 0 {
            let len = y.dims()[axis]
                .checked_sub(crop_before)
                .and_then(|l| l.checked_sub(crop_after))
                .ok_or_else(|| {
                    node_error(
                        node,
                        format!(
                            "pads {pads:?} crop more than the {} entries of axis {axis} of X {}",
                            x.dims()[axis],
                            x.shape()
                        ),
                    )
                })?;
            y = y.narrow(axis as isize, crop_before, len)?;
        }
    }
    let cropped = y.dims().to_vec();
    let mut inside = value
        .as_ref()
        .map(|_| super::util::float_const(ctx, &vec![1.0; cropped.iter().product()], &cropped))
        .transpose()?;
    for (k, &axis) in axes.iter().enumerate() {
        let before = usize::try_from(pads[k].max(0)).unwrap_or(0);
        let after = usize::try_from(pads[k + axes.len()].max(0)).unwrap_or(0);
        if before > 0 || after > 0 {
            y = y.pad_zeros(axis as isize, before, after)?;
            inside = inside
                .map(|m| m.pad_zeros(axis as isize, before, after))
                .transpose()?;
        }
    }
    match (value, inside) {
        (Some(value), Some(inside)) => Ok(y.add(&inside.affine(-1.0, 1.0)?.mul(&value)?)?),
        _ => Ok(y),
    }
}

/// `Tile`: `x` repeated `repeats[i]` times along each axis `i`, as a broadcast of `x` with a
/// new axis before each of its own, then merged.
fn tile(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    known_attributes(node, &[])?;
    check_inputs(node, inputs, 2, 2)?;
    let x = input(node, inputs, 0)?;
    let dims = super::util::dims_of(x).to_vec();
    let repeats = int_list(node, inputs, 1)?;
    if repeats.len() != dims.len() {
        return Err(node_error(
            node,
            format!("repeats {repeats:?} must have one entry per axis of the input {dims:?}"),
        ));
    }
    let repeats = repeats
        .iter()
        .map(|&r| {
            usize::try_from(r)
                .map_err(|_| node_error(node, format!("negative repeat in {repeats:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut spread = Vec::with_capacity(2 * dims.len());
    let mut expanded = Vec::with_capacity(2 * dims.len());
    let mut out_dims = Vec::with_capacity(dims.len());
    for (&d, &r) in dims.iter().zip(&repeats) {
        spread.extend([1, d]);
        expanded.extend([r, d]);
        out_dims.push(d.checked_mul(r).ok_or_else(|| {
            node_error(node, format!("tiling {dims:?} by {repeats:?} overflows"))
        })?);
    }
    checked_count(node, &out_dims)?;
    Ok(match x {
        Val::Float(v) => Val::Float(
            v.reshape(spread)?
                .broadcast_to(expanded)?
                .reshape(out_dims)?,
        ),
        Val::Int(t) => {
            let spread_t = IntTensor {
                dims: spread,
                data: t.data.clone(),
            };
            let mut tiled = host::broadcast_to(node, &spread_t, &expanded)?;
            tiled.dims = out_dims;
            Val::Int(tiled)
        }
    })
}
