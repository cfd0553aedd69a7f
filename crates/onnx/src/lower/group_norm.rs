//! `InstanceNormalization` and `GroupNormalization`: `(x − mean)·(var + ε)^(−½)·scale + bias`
//! with the statistics (biased variance) per sample and channel group over the channels of the
//! group and the spatial axes, written with broadcasting tape ops so every operand has exact
//! derivatives of any order.
//!
//! `GroupNormalization`'s scale and bias are per group in opset 18 and per channel from opset
//! 21; the declared opset decides.

use curvature_tape::Var;

use super::norm::epsilon;
use super::operand::{float_input, known_attributes, output_count, product};
use super::util::{attr_int, check_inputs};
use super::{node_error, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    output_count(node, 1, "Y")?;
    check_inputs(node, inputs, 3, 3)?;
    let x = float_input(node, inputs, 0, "X")?;
    let scale = float_input(node, inputs, 1, "scale")?;
    let bias = float_input(node, inputs, 2, "B")?;
    if x.rank() < 3 || x.dims().contains(&0) {
        return Err(node_error(
            node,
            format!(
                "needs a non-empty input [N, C, D1, …] of rank at least 3, got {}",
                x.shape()
            ),
        ));
    }
    let channels = x.dims()[1];
    let (groups, per_group_operands) = if node.op_type == "InstanceNormalization" {
        known_attributes(node, &["epsilon"])?;
        (channels, false)
    } else {
        if ctx.opset < 18 {
            return Err(super::unsupported(
                node,
                "op",
                format!(
                    "GroupNormalization is part of the standard ops from opset 18, the model \
                     declares opset {}",
                    ctx.opset
                ),
            ));
        }
        let mut known = vec!["epsilon", "num_groups"];
        if ctx.opset >= 21 {
            known.push("stash_type");
        }
        known_attributes(node, &known)?;
        let stash_type = attr_int(node, "stash_type", 1)?;
        if ![1, 10, 11, 16].contains(&stash_type) {
            return Err(node_error(
                node,
                format!("attribute 'stash_type' = {stash_type} is not a floating-point type"),
            ));
        }
        let groups = attr_int(node, "num_groups", 0)?;
        let groups = usize::try_from(groups)
            .ok()
            .filter(|&g| g > 0 && channels % g == 0)
            .ok_or_else(|| {
                node_error(
                    node,
                    format!(
                        "attribute 'num_groups' = {groups} must be positive and divide the {channels} \
                         channels of X {}",
                        x.shape()
                    ),
                )
            })?;
        (groups, ctx.opset < 21)
    };
    let eps = epsilon(node)?;
    let operand_len = if per_group_operands { groups } else { channels };
    for (role, v) in [("scale", scale), ("B", bias)] {
        if v.dims() != [operand_len] {
            return Err(node_error(
                node,
                format!(
                    "{role} must be [{}] = [{operand_len}] for X {} (opset {}), got {}",
                    if per_group_operands {
                        "num_groups"
                    } else {
                        "C"
                    },
                    x.shape(),
                    ctx.opset,
                    v.shape()
                ),
            ));
        }
    }
    // [N, G, C/G · D1 · …]: the statistics are over the last axis.
    let batch = x.dims()[0];
    let rest = product(node, &x.dims()[1..])? / groups;
    let grouped = x.reshape([batch, groups, rest])?;
    let mean = grouped.mean(&[2], true)?;
    let centred = grouped.sub(&mean)?;
    let inv_std = centred
        .square()?
        .mean(&[2], true)?
        .add_scalar(eps)?
        .powf(-0.5)?;
    let normalised = centred.mul(&inv_std)?.reshape(x.shape().clone())?;
    let per_channel = |v: &Var| -> Result<Var> {
        let v = if per_group_operands {
            v.reshape([groups, 1])?
                .broadcast_to([groups, channels / groups])?
                .reshape([channels])?
        } else {
            v.clone()
        };
        let mut dims = vec![channels];
        dims.resize(x.rank() - 1, 1);
        Ok(v.reshape(dims)?)
    };
    let y = normalised
        .mul(&per_channel(scale)?)?
        .add(&per_channel(bias)?)?;
    Ok(vec![Val::Float(y)])
}
