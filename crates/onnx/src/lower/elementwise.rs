//! Elementwise ops with numpy broadcasting, on floats (tape) and on integers/bools (host):
//! arithmetic, activations, `Pow`, `Where`, comparisons and logic, `Max`/`Min`, `Cast`,
//! `Identity`, `Dropout` (inference), and the mask and index builders `Range`, `Trilu`, `Size`;
//! `Abs`, `Sign`, `Sin`, `Cos`, `Clip` and `CastLike`.

mod cast;
mod clip;
mod create;
mod logic;
mod pow;

use curvature_tape::Var;

use super::util::{attr_float, attr_string, check_inputs, input, to_float};
use super::{host, node_error, unsupported, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    match node.op_type.as_str() {
        "Add" | "Sub" | "Mul" | "Div" => arithmetic(node, inputs, ctx).map(one),
        "Pow" => pow::lower(node, inputs, ctx).map(one),
        "Neg" | "Relu" | "Abs" | "Sign" => signed_unary(node, inputs).map(one),
        "Sqrt" | "Reciprocal" | "Exp" | "Log" | "Tanh" | "Sigmoid" | "LeakyRelu" | "Elu"
        | "Gelu" | "Erf" | "Softplus" | "Sin" | "Cos" => float_unary(node, inputs).map(one),
        "Where" => logic::where_op(node, inputs, ctx).map(one),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => {
            logic::compare(node, inputs).map(one)
        }
        "Not" | "And" | "Or" | "Xor" => logic::boolean(node, inputs).map(one),
        "Max" | "Min" => logic::extremum(node, inputs, ctx).map(one),
        "Cast" => cast::cast(node, inputs, ctx).map(one),
        "CastLike" => cast::cast_like(node, inputs, ctx).map(one),
        "Clip" => clip::clip(node, inputs, ctx).map(one),
        "Identity" => {
            check_inputs(node, inputs, 1, 1)?;
            Ok(vec![input(node, inputs, 0)?.clone()])
        }
        "Dropout" => cast::dropout(node, inputs),
        "Size" => cast::size(node, inputs).map(one),
        "Range" => create::range(node, inputs, ctx).map(one),
        "Trilu" => create::trilu(node, inputs, ctx).map(one),
        other => Err(unsupported(
            node,
            "op",
            format!("'{other}' is not an elementwise op"),
        )),
    }
}

fn one(v: Val) -> Vec<Val> {
    vec![v]
}

/// `Add`, `Sub`, `Mul`, `Div`: on the tape when either operand is floating-point (an integer
/// operand becomes a constant), else on the host with checked arithmetic (integer division
/// truncates toward zero; division by zero and overflow are errors).
fn arithmetic(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let (a, b) = (input(node, inputs, 0)?, input(node, inputs, 1)?);
    if let (Val::Int(a), Val::Int(b)) = (a, b) {
        return int_arithmetic(node, a, b).map(Val::Int);
    }
    let (a, b) = (to_float(ctx, a)?, to_float(ctx, b)?);
    let out = match node.op_type.as_str() {
        "Add" => a.add(&b)?,
        "Sub" => a.sub(&b)?,
        "Mul" => a.mul(&b)?,
        _ => a.div(&b)?,
    };
    Ok(Val::Float(out))
}

fn int_arithmetic(node: &Node, a: &IntTensor, b: &IntTensor) -> Result<IntTensor> {
    let op = node.op_type.as_str();
    host::zip_with(node, a, b, |x, y| {
        let r = match op {
            "Add" => x.checked_add(y),
            "Sub" => x.checked_sub(y),
            "Mul" => x.checked_mul(y),
            _ if y == 0 => return Err(node_error(node, format!("integer division {x} / 0"))),
            _ => x.checked_div(y),
        };
        r.ok_or_else(|| node_error(node, format!("integer overflow in {x} {op} {y}")))
    })
}

/// `Neg`, `Relu`, `Abs` and `Sign`, which ONNX defines on integers too. On floats `Abs` and
/// `Sign` are the tape's (`|x|` with derivative `sign(x)`, 0 at 0; `sign` with derivative 0).
fn signed_unary(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let op = node.op_type.as_str();
    match input(node, inputs, 0)? {
        Val::Float(x) => Ok(Val::Float(match op {
            "Relu" => x.relu()?,
            "Abs" => x.abs()?,
            "Sign" => x.sign()?,
            _ => x.neg()?,
        })),
        Val::Int(t) => host::map(t, |v| {
            let out = match op {
                "Relu" => Some(v.max(0)),
                "Sign" => Some(v.signum()),
                "Abs" => v.checked_abs(),
                _ => v.checked_neg(),
            };
            out.ok_or_else(|| node_error(node, format!("integer overflow in {op} of {v}")))
        })
        .map(Val::Int),
    }
}

/// The activations and functions ONNX defines on floating-point tensors only.
fn float_unary(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 1, 1)?;
    let x = match input(node, inputs, 0)? {
        Val::Float(x) => x,
        Val::Int(t) => {
            return Err(unsupported(
                node,
                "dtype",
                format!(
                    "{} of an integer tensor (shape {:?}); it is defined on floats",
                    node.op_type, t.dims
                ),
            ))
        }
    };
    apply_unary(node, x).map(Val::Float)
}

fn apply_unary(node: &Node, x: &Var) -> Result<Var> {
    Ok(match node.op_type.as_str() {
        "Sqrt" => x.sqrt()?,
        "Reciprocal" => x.reciprocal()?,
        "Exp" => x.exp()?,
        "Log" => x.log()?,
        "Tanh" => x.tanh()?,
        "Sigmoid" => x.sigmoid()?,
        "Erf" => x.erf()?,
        "Softplus" => x.softplus()?,
        "Sin" => x.sin()?,
        "Cos" => x.cos()?,
        "LeakyRelu" => x.leaky_relu(attr_float(node, "alpha", 0.01)?)?,
        "Elu" => x.elu(attr_float(node, "alpha", 1.0)?)?,
        "Gelu" => match attr_string(node, "approximate", "none")?.as_str() {
            "none" => x.gelu()?,
            "tanh" => x.gelu_tanh()?,
            other => {
                return Err(unsupported(
                    node,
                    "attribute",
                    format!("approximate = '{other}' (supported: 'none', 'tanh')"),
                ))
            }
        },
        other => {
            return Err(unsupported(
                node,
                "op",
                format!("'{other}' is not a unary op"),
            ))
        }
    })
}
