//! Type changes and pass-throughs: `Cast`, `CastLike`, `Dropout` (inference) and `Size`.

use super::super::util::{
    attr_int_opt, check_inputs, constant_values, input, int_to_float, optional_input,
};
use super::super::{host, node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// The integer types `Cast` converts to, by `TensorProto.DataType` number, with their ranges;
/// 9 (bool) maps nonzero values to 1.
fn int_range(to: i64) -> Option<(i64, i64)> {
    Some(match to {
        2 => (0, i64::from(u8::MAX)),
        3 => (i64::from(i8::MIN), i64::from(i8::MAX)),
        4 => (0, i64::from(u16::MAX)),
        5 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        6 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        7 | 13 => (if to == 13 { 0 } else { i64::MIN }, i64::MAX),
        12 => (0, i64::from(u32::MAX)),
        _ => return None,
    })
}

/// `Cast(to)`: between float types the identity (values are computed in the model's dtype);
/// integer to float a constant; between integer types a range-checked copy; to bool `≠ 0`;
/// float to integer only for values that do not depend on parameters, truncated toward zero.
pub fn cast(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let to = attr_int_opt(node, "to")?
        .ok_or_else(|| node_error(node, "the attribute 'to' is required".to_string()))?;
    cast_to(node, input(node, inputs, 0)?, to, ctx)
}

/// `CastLike(x, target)`: `x` cast to the element type of `target`. A floating-point target
/// keeps floats in the model's dtype (integers become constants). An integer or boolean target
/// is a host tensor, which does not record whether it is boolean: the cast is to int64 when
/// the target holds a value other than 0 and 1 (so it is not boolean) or when reading it as
/// int64 and as bool gives the same values (the input holds only 0s and 1s); otherwise the
/// result would depend on the type the target does not record, and it is an error.
pub fn cast_like(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let x = input(node, inputs, 0)?;
    let target = match input(node, inputs, 1)? {
        Val::Float(_) => return cast_to(node, x, FLOAT, ctx),
        Val::Int(t) => t,
    };
    let as_int = cast_to(node, x, INT64, ctx)?;
    let Val::Int(ints) = &as_int else {
        return Err(node_error(node, "a cast to int64 gave floats".to_string()));
    };
    let not_bool = target.data.iter().any(|&v| v != 0 && v != 1);
    if not_bool || ints.data.iter().all(|&v| v == 0 || v == 1) && agrees_with_bool(x)? {
        return Ok(as_int);
    }
    Err(unsupported(
        node,
        "dtype",
        format!(
            "CastLike to a host tensor of 0s and 1s (shape {:?}): its element type (bool or \
             integer) is not recorded, and the two casts of this input differ",
            target.dims
        ),
    ))
}

/// Whether every value of `x` reads the same as an integer (truncated) and as a bool (≠ 0):
/// false for a float such as 0.5 (0 as an integer, 1 as a bool).
fn agrees_with_bool(x: &Val) -> Result<bool> {
    Ok(match x {
        Val::Int(_) => true,
        Val::Float(v) => v
            .value()
            .to_f64s()?
            .iter()
            .all(|&f| f.trunc() == f64::from(u8::from(f != 0.0))),
    })
}

/// The `TensorProto.DataType` number of float.
const FLOAT: i64 = 1;
/// The `TensorProto.DataType` number of int64.
const INT64: i64 = 7;

/// `x` cast to the ONNX element type `to` (see [`cast`]).
fn cast_to(node: &Node, x: &Val, to: i64, ctx: &Ctx) -> Result<Val> {
    let to_float = matches!(to, 1 | 10 | 11 | 16);
    if to_float {
        return match x {
            Val::Float(v) => Ok(Val::Float(v.clone())),
            Val::Int(t) => Ok(Val::Float(int_to_float(ctx, t)?)),
        };
    }
    if to == 9 {
        return match x {
            Val::Int(t) => host::map(t, |v| Ok(i64::from(v != 0))).map(Val::Int),
            Val::Float(v) => {
                let values = constant_values(node, v, "Cast to bool")?;
                Ok(Val::Int(IntTensor {
                    dims: v.dims().to_vec(),
                    data: values.iter().map(|&f| i64::from(f != 0.0)).collect(),
                }))
            }
        };
    }
    let Some((lo, hi)) = int_range(to) else {
        return Err(unsupported(
            node,
            "dtype",
            format!("cast to element type {to} (supported: float types, integer types, bool)"),
        ));
    };
    let out_of_range = |v: &dyn std::fmt::Display| {
        node_error(
            node,
            format!("value {v} does not fit the target integer type {to} (range {lo}..={hi})"),
        )
    };
    match x {
        Val::Int(t) => host::map(t, |v| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(out_of_range(&v))
            }
        })
        .map(Val::Int),
        Val::Float(v) => {
            let values = constant_values(node, v, "Cast of floats to integers")?;
            let data = values
                .iter()
                .map(|&f| {
                    let t = f.trunc();
                    // `hi as f64 + 1.0` is exact for every range (2⁶³ for int64).
                    if t.is_finite() && t >= lo as f64 && t < hi as f64 + 1.0 {
                        Ok(t as i64)
                    } else {
                        Err(out_of_range(&f))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Val::Int(IntTensor {
                dims: v.dims().to_vec(),
                data,
            }))
        }
    }
}

/// `Dropout` in inference: the data unchanged and, when asked for, a mask of ones. A
/// `training_mode` input that is true is refused (the model would be random).
pub fn dropout(node: &Node, inputs: &[Option<Val>]) -> Result<Vec<Val>> {
    check_inputs(node, inputs, 1, 3)?;
    let x = input(node, inputs, 0)?;
    if let Some(mode) = optional_input(inputs, 2) {
        let training = match mode {
            Val::Int(t) => t.data.iter().any(|&v| v != 0),
            Val::Float(_) => {
                return Err(node_error(
                    node,
                    "training_mode must be a boolean tensor".to_string(),
                ))
            }
        };
        if training {
            return Err(unsupported(
                node,
                "input",
                "training_mode = true (only inference-mode dropout, the identity, is supported)"
                    .to_string(),
            ));
        }
    }
    let dims = super::super::util::dims_of(x).to_vec();
    let mut outputs = vec![x.clone()];
    if node.outputs.len() > 1 {
        let count = super::super::util::checked_count(node, &dims)?;
        outputs.push(Val::Int(IntTensor {
            dims,
            data: vec![1; count],
        }));
    }
    Ok(outputs)
}

/// `Size`: the element count as an int64 scalar.
pub fn size(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let dims = super::super::util::dims_of(input(node, inputs, 0)?);
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| node_error(node, format!("element count of {dims:?} overflows")))?;
    Ok(Val::Int(IntTensor {
        dims: Vec::new(),
        data: vec![super::super::util::to_i64(node, count)?],
    }))
}
