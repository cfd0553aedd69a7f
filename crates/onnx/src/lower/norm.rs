//! Normalisations and softmax: `Softmax`, `LogSoftmax`, `LayerNormalization`,
//! `BatchNormalization` (inference).
//!
//! The normalisations are written with broadcasting tape ops, so they are differentiable in
//! every operand: a `BatchNormalization`'s running mean and variance, initializers that the
//! default parameter selection makes parameters, get exact derivatives like its scale and bias.

use curvature_tape::Var;

use super::operand::{
    flag_attr, float_input, known_attributes, optional_float, output_count, product,
};
use super::util::{attr_float, attr_int, check_inputs, norm_axis};
use super::{node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    match node.op_type.as_str() {
        "Softmax" => softmax(node, inputs, ctx, false),
        "LogSoftmax" => softmax(node, inputs, ctx, true),
        "LayerNormalization" => layer_norm(node, inputs, ctx),
        _ => batch_norm(node, inputs, ctx),
    }
}

/// `Softmax` / `LogSoftmax`: over one axis (default −1) from opset 13; before it, over the
/// input coerced to a matrix `[d0·…·d(axis−1), d(axis)·…]` (default axis 1).
fn softmax(node: &Node, inputs: &[Option<Val>], ctx: &Ctx, log: bool) -> Result<Vec<Val>> {
    known_attributes(node, &["axis"])?;
    output_count(node, 1, "output")?;
    check_inputs(node, inputs, 1, 1)?;
    let x = float_input(node, inputs, 0, "input")?;
    let apply = |v: &Var, a: isize| -> Result<Var> {
        Ok(if log {
            v.log_softmax(a)?
        } else {
            v.softmax(a)?
        })
    };
    let y = if ctx.opset >= 13 {
        let a = norm_axis(node, attr_int(node, "axis", -1)?, x.rank())?;
        apply(x, a as isize)?
    } else {
        let a = norm_axis(node, attr_int(node, "axis", 1)?, x.rank())?;
        let rows = product(node, &x.dims()[..a])?;
        let cols = product(node, &x.dims()[a..])?;
        apply(&x.reshape([rows, cols])?, 1)?.reshape(x.shape().clone())?
    };
    Ok(vec![Val::Float(y)])
}

/// Errors unless `eps` is finite and non-negative.
pub(super) fn epsilon(node: &Node) -> Result<f64> {
    let eps = attr_float(node, "epsilon", 1e-5)?;
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(node_error(
            node,
            format!("attribute 'epsilon' must be finite and non-negative, got {eps}"),
        ))
    }
}

/// `LayerNormalization` (opset 17): `(x − mean)·(var + ε)^(−½)·scale + B` over the axes from
/// `axis` to the last (biased variance); the optional outputs are the mean and
/// `(var + ε)^(−½)`, with the normalised axes kept as length 1.
fn layer_norm(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    if ctx.opset < 17 {
        return Err(unsupported(
            node,
            "op",
            format!(
                "LayerNormalization is part of the standard ops from opset 17, the model \
                 declares opset {}",
                ctx.opset
            ),
        ));
    }
    known_attributes(node, &["axis", "epsilon", "stash_type"])?;
    output_count(node, 3, "Y, Mean, InvStdDev")?;
    check_inputs(node, inputs, 2, 3)?;
    let x = float_input(node, inputs, 0, "X")?;
    let scale = float_input(node, inputs, 1, "Scale")?;
    let bias = optional_float(node, inputs, 2, "B")?;
    let eps = epsilon(node)?;
    // The statistics' precision; they are computed in the model's dtype.
    let stash_type = attr_int(node, "stash_type", 1)?;
    if ![1, 10, 11, 16].contains(&stash_type) {
        return Err(node_error(
            node,
            format!("attribute 'stash_type' = {stash_type} is not a floating-point type"),
        ));
    }
    let first = norm_axis(node, attr_int(node, "axis", -1)?, x.rank())?;
    let normalised = &x.dims()[first..];
    if normalised.contains(&0) {
        return Err(node_error(
            node,
            format!("normalises empty axes of {}", x.shape()),
        ));
    }
    for (role, operand) in [("Scale", Some(scale)), ("B", bias)] {
        let Some(operand) = operand else { continue };
        let d = operand.dims();
        let fits = d.len() <= normalised.len()
            && d.iter()
                .rev()
                .zip(normalised.iter().rev())
                .all(|(&a, &b)| a == b || a == 1);
        if !fits {
            return Err(node_error(
                node,
                format!(
                    "{role} of shape {} does not broadcast to the normalised axes {normalised:?} \
                     of X {}",
                    operand.shape(),
                    x.shape()
                ),
            ));
        }
    }
    let axes: Vec<isize> = (first as isize..x.rank() as isize).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(&mean)?;
    let inv_std = centred
        .square()?
        .mean(&axes, true)?
        .add_scalar(eps)?
        .powf(-0.5)?;
    let mut y = centred.mul(&inv_std)?.mul(scale)?;
    if let Some(bias) = bias {
        y = y.add(bias)?;
    }
    Ok(vec![Val::Float(y), Val::Float(mean), Val::Float(inv_std)])
}

/// `BatchNormalization` in inference form: `(x − mean)·scale·(var + ε)^(−½) + B` per channel
/// (axis 1), every operand on the tape.
fn batch_norm(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let mut known = vec!["epsilon", "momentum"];
    if ctx.opset >= 14 {
        known.push("training_mode");
    }
    if ctx.opset < 9 {
        known.push("spatial");
    }
    if ctx.opset < 7 {
        known.push("is_test");
    }
    known_attributes(node, &known)?;
    if flag_attr(node, "training_mode", false)? {
        return Err(unsupported(
            node,
            "attribute",
            "training_mode = 1 (batch statistics); only inference with the running statistics \
             is supported"
                .to_string(),
        ));
    }
    if !flag_attr(node, "spatial", true)? {
        return Err(unsupported(
            node,
            "attribute",
            "spatial = 0 (statistics per activation); only per-channel statistics are supported"
                .to_string(),
        ));
    }
    if !flag_attr(node, "is_test", true)? {
        return Err(unsupported(
            node,
            "attribute",
            "is_test = 0 (training); only inference is supported".to_string(),
        ));
    }
    output_count(node, 1, "Y (inference)")?;
    check_inputs(node, inputs, 5, 5)?;
    let x = float_input(node, inputs, 0, "X")?;
    let eps = epsilon(node)?;
    if x.rank() < 2 {
        return Err(node_error(
            node,
            format!(
                "needs an input [N, C, …] of rank at least 2, got {}",
                x.shape()
            ),
        ));
    }
    let channels = x.dims()[1];
    let mut per_channel = Vec::with_capacity(4);
    for (index, role) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        let v = float_input(node, inputs, index, role)?;
        if v.dims() != [channels] {
            return Err(node_error(
                node,
                format!(
                    "{role} must be [C] = [{channels}] for X {}, got {}",
                    x.shape(),
                    v.shape()
                ),
            ));
        }
        let mut dims = vec![channels];
        dims.resize(x.rank() - 1, 1);
        per_channel.push(v.reshape(dims)?);
    }
    let [scale, bias, mean, var] = &per_channel[..] else {
        return Err(node_error(
            node,
            "needs four per-channel operands".to_string(),
        ));
    };
    let factor = var.add_scalar(eps)?.powf(-0.5)?.mul(scale)?;
    let y = x.sub(mean)?.mul(&factor)?.add(bias)?;
    Ok(vec![Val::Float(y)])
}
