//! Values made from attributes and shapes: `Constant`, `ConstantOfShape`, `Shape`.

use super::super::util::{
    attr_int, attr_int_opt, attr_tensor, check_inputs, checked_count, dims_of, float_const,
    host_to_val, input, int_list, to_dims, to_i64,
};
use super::super::{node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::{Attribute, Node};
use crate::Result;

/// `Constant`: exactly one of `value` (a tensor), `value_float(s)`, `value_int(s)`; sparse and
/// string constants are refused.
pub fn constant(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 0, 0)?;
    if node.attributes.len() != 1 {
        return Err(node_error(
            node,
            format!(
                "needs exactly one value attribute, got {}",
                node.attributes.len()
            ),
        ));
    }
    let (name, attribute) = &node.attributes[0];
    match (name.as_str(), attribute) {
        ("value", Attribute::Tensor(t)) => host_to_val(node, ctx, t),
        ("value_float", Attribute::Float(f)) => {
            Ok(Val::Float(float_const(ctx, &[f64::from(*f)], &[])?))
        }
        ("value_floats", Attribute::Floats(fs)) => {
            let data: Vec<f64> = fs.iter().map(|&f| f64::from(f)).collect();
            Ok(Val::Float(float_const(ctx, &data, &[data.len()])?))
        }
        ("value_int", Attribute::Int(i)) => Ok(Val::Int(IntTensor {
            dims: Vec::new(),
            data: vec![*i],
        })),
        ("value_ints", Attribute::Ints(is)) => Ok(Val::Int(IntTensor {
            dims: vec![is.len()],
            data: is.clone(),
        })),
        ("sparse_value" | "value_string" | "value_strings", _) => Err(unsupported(
            node,
            "attribute",
            format!("'{name}' constants (supported: value, value_float(s), value_int(s))"),
        )),
        _ => Err(node_error(
            node,
            format!("attribute '{name}' is not a constant's value of a matching type"),
        )),
    }
}

/// `ConstantOfShape(shape)`: a tensor of the given shape filled with the one-element `value`
/// attribute (float 0 by default).
pub fn constant_of_shape(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let dims = to_dims(node, &int_list(node, inputs, 0)?)?;
    let count = checked_count(node, &dims)?;
    let Some(value) = attr_tensor(node, "value")? else {
        return Ok(Val::Float(float_const(ctx, &vec![0.0; count], &dims)?));
    };
    match host_to_val(node, ctx, value)? {
        Val::Float(v) => {
            let fill = v.value().to_f64s()?;
            let [fill] = fill.as_slice() else {
                return Err(one_value(node, &value.dims));
            };
            Ok(Val::Float(float_const(ctx, &vec![*fill; count], &dims)?))
        }
        Val::Int(t) => {
            let [fill] = t.data.as_slice() else {
                return Err(one_value(node, &value.dims));
            };
            Ok(Val::Int(IntTensor {
                dims,
                data: vec![*fill; count],
            }))
        }
    }
}

fn one_value(node: &Node, dims: &[usize]) -> crate::OnnxError {
    node_error(
        node,
        format!("the 'value' attribute must hold one element, got shape {dims:?}"),
    )
}

/// `Shape(data)`: its dimensions `[start, end)` (negative counts from the end, clamped).
pub fn shape(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let dims = dims_of(input(node, inputs, 0)?);
    let rank = to_i64(node, dims.len())?;
    let clamp = |v: i64| -> usize {
        let v = if v < 0 { v.saturating_add(rank) } else { v };
        v.clamp(0, rank) as usize
    };
    let start = clamp(attr_int(node, "start", 0)?);
    let end = clamp(attr_int_opt(node, "end")?.unwrap_or(rank));
    let picked = dims.get(start..end.max(start)).unwrap_or(&[]);
    let data = picked
        .iter()
        .map(|&d| to_i64(node, d))
        .collect::<Result<Vec<_>>>()?;
    Ok(Val::Int(IntTensor {
        dims: vec![data.len()],
        data,
    }))
}
