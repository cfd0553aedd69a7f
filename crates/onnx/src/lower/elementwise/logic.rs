//! Masks and selections: `Where`, the comparisons, the boolean connectives and `Max`/`Min`.
//! Comparisons and connectives produce host booleans (0/1); their derivative is zero, so the
//! values of floating-point operands are read as they are.

use super::super::util::{check_inputs, input, int_to_float, to_float};
use super::super::{host, node_error, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// `Where(condition, X, Y)`: on the tape with the condition as a constant mask (`where_cond`,
/// no derivative through the mask) unless both branches are integers.
pub fn where_op(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 3, 3)?;
    let Val::Int(cond) = input(node, inputs, 0)? else {
        return Err(node_error(
            node,
            "the condition must be a boolean tensor, got a floating-point one".to_string(),
        ));
    };
    let (x, y) = (input(node, inputs, 1)?, input(node, inputs, 2)?);
    if let (Val::Int(x), Val::Int(y)) = (x, y) {
        return host::zip3_with(node, cond, x, y, |c, a, b| if c != 0 { a } else { b })
            .map(Val::Int);
    }
    // The result's shape is checked here so that a mismatch names all three shapes.
    let xy = host::broadcast_dims(
        node,
        super::super::util::dims_of(x),
        super::super::util::dims_of(y),
    )?;
    host::broadcast_dims(node, &cond.dims, &xy)?;
    let mask = host::map(cond, |c| Ok(i64::from(c != 0)))?;
    let mask = int_to_float(ctx, &mask)?;
    let (x, y) = (to_float(ctx, x)?, to_float(ctx, y)?);
    Ok(Val::Float(mask.where_cond(&x, &y)?))
}

/// `Equal`, `Less`, `Greater`, `LessOrEqual`, `GreaterOrEqual`: a boolean tensor.
pub fn compare(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let (a, b) = (input(node, inputs, 0)?, input(node, inputs, 1)?);
    let op = node.op_type.as_str();
    if let (Val::Int(a), Val::Int(b)) = (a, b) {
        return host::zip_with(node, a, b, |x, y| Ok(i64::from(holds(op, x.cmp(&y)))))
            .map(Val::Int);
    }
    let (da, dims_a) = host_values(a)?;
    let (db, dims_b) = host_values(b)?;
    let (dims, oa, ob) = host::pair_offsets(node, &dims_a, &dims_b)?;
    let data = oa
        .into_iter()
        .zip(ob)
        .map(|(i, j)| {
            i64::from(
                da[i]
                    .partial_cmp(&db[j])
                    .is_some_and(|ordering| holds(op, ordering)),
            )
        })
        .collect();
    Ok(Val::Int(IntTensor { dims, data }))
}

/// Whether `ordering` (of a against b) satisfies the comparison `op`.
fn holds(op: &str, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        "Equal" => ordering == Equal,
        "Less" => ordering == Less,
        "Greater" => ordering == Greater,
        "LessOrEqual" => ordering != Greater,
        _ => ordering != Less,
    }
}

/// A value's elements as f64 on the host, with its dimensions.
fn host_values(value: &Val) -> Result<(Vec<f64>, Vec<usize>)> {
    Ok(match value {
        Val::Float(v) => (v.value().to_f64s()?, v.dims().to_vec()),
        Val::Int(t) => (t.data.iter().map(|&x| x as f64).collect(), t.dims.clone()),
    })
}

/// `Not`, `And`, `Or`, `Xor` on boolean tensors.
pub fn boolean(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    let arity = if node.op_type == "Not" { 1 } else { 2 };
    check_inputs(node, inputs, arity, arity)?;
    let operand = |i: usize| -> Result<&IntTensor> {
        match input(node, inputs, i)? {
            Val::Int(t) => Ok(t),
            Val::Float(_) => Err(node_error(
                node,
                format!("input {i} must be a boolean tensor, got a floating-point one"),
            )),
        }
    };
    let a = operand(0)?;
    if arity == 1 {
        return host::map(a, |v| Ok(i64::from(v == 0))).map(Val::Int);
    }
    let op = node.op_type.as_str();
    host::zip_with(node, a, operand(1)?, |x, y| {
        let (x, y) = (x != 0, y != 0);
        Ok(i64::from(match op {
            "And" => x && y,
            "Or" => x || y,
            _ => x != y,
        }))
    })
    .map(Val::Int)
}

/// `Max` and `Min` of one or more broadcast operands: elementwise on the tape (`maximum`,
/// `minimum`: ties share the derivative equally) unless all are integers.
pub fn extremum(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    if inputs.is_empty() {
        return Err(node_error(node, "needs at least one input".to_string()));
    }
    let values = (0..inputs.len())
        .map(|i| input(node, inputs, i))
        .collect::<Result<Vec<_>>>()?;
    let max = node.op_type == "Max";
    if values.iter().all(|v| matches!(v, Val::Int(_))) {
        let ints: Vec<&IntTensor> = values
            .iter()
            .filter_map(|v| match v {
                Val::Int(t) => Some(t),
                Val::Float(_) => None,
            })
            .collect();
        let mut acc = ints[0].clone();
        for t in &ints[1..] {
            acc = host::zip_with(node, &acc, t, |a, b| {
                Ok(if max { a.max(b) } else { a.min(b) })
            })?;
        }
        return Ok(Val::Int(acc));
    }
    let mut acc = to_float(ctx, values[0])?;
    for v in &values[1..] {
        let v = to_float(ctx, v)?;
        acc = if max {
            acc.maximum(&v)?
        } else {
            acc.minimum(&v)?
        };
    }
    Ok(Val::Float(acc))
}
