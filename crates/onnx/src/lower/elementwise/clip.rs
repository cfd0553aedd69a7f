//! `Clip`: `min(max(x, lo), hi)`, the bounds optional scalar inputs (attributes before opset
//! 11), an absent bound no bound.

use curvature_tape::Var;

use super::super::util::{attr_float, check_inputs, input, optional_input};
use super::super::{node_error, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// A floating-point bound: a number, or a tracked scalar the result is differentiated by.
enum Bound {
    Fixed(f64),
    Tracked(Var),
}

/// `Clip(x, min?, max?)`. With fixed bounds the tape's `clamp` (PyTorch's: `hi` where
/// `lo > hi`; derivative 1 where `lo ≤ x ≤ hi`, the bounds included); a bound that depends on
/// parameters goes through `maximum`/`minimum`, so it gets its derivative too. On integers the
/// same on the host.
pub fn clip(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 1, 3)?;
    let x = input(node, inputs, 0)?;
    if ctx.opset < 11 {
        check_inputs(node, inputs, 1, 1)?;
        let lo = attr_float(node, "min", f64::NEG_INFINITY)?;
        let hi = attr_float(node, "max", f64::INFINITY)?;
        return match x {
            Val::Float(v) => Ok(Val::Float(v.clamp(lo, hi)?)),
            Val::Int(t) => Err(node_error(
                node,
                format!(
                    "Clip before opset 11 is defined on floats, got an integer tensor of shape {:?}",
                    t.dims
                ),
            )),
        };
    }
    match x {
        Val::Float(v) => {
            let lo = float_bound(node, inputs, 1, f64::NEG_INFINITY)?;
            let hi = float_bound(node, inputs, 2, f64::INFINITY)?;
            let out = match (lo, hi) {
                (Bound::Fixed(lo), Bound::Fixed(hi)) => v.clamp(lo, hi)?,
                (lo, hi) => {
                    let above = match lo {
                        Bound::Fixed(lo) if lo == f64::NEG_INFINITY => v.clone(),
                        Bound::Fixed(lo) => v.clamp(lo, f64::INFINITY)?,
                        Bound::Tracked(lo) => v.maximum(&lo)?,
                    };
                    match hi {
                        Bound::Fixed(hi) => above.clamp(f64::NEG_INFINITY, hi)?,
                        Bound::Tracked(hi) => above.minimum(&hi)?,
                    }
                }
            };
            Ok(Val::Float(out))
        }
        Val::Int(t) => {
            let lo = int_bound(node, inputs, 1)?.unwrap_or(i64::MIN);
            let hi = int_bound(node, inputs, 2)?.unwrap_or(i64::MAX);
            super::super::host::map(t, |v| Ok(v.max(lo).min(hi))).map(Val::Int)
        }
    }
}

/// The bound at input `i` of a floating-point `Clip` (`absent` when omitted).
fn float_bound(node: &Node, inputs: &[Option<Val>], i: usize, absent: f64) -> Result<Bound> {
    let Some(bound) = optional_input(inputs, i) else {
        return Ok(Bound::Fixed(absent));
    };
    let dims = super::super::util::dims_of(bound);
    if dims.iter().product::<usize>() != 1 {
        return Err(node_error(
            node,
            format!("input {i} (a bound) must be a scalar, got shape {dims:?}"),
        ));
    }
    match bound {
        Val::Float(b) if b.requires_grad() => Ok(Bound::Tracked(b.reshape(Vec::<usize>::new())?)),
        Val::Float(b) => Ok(Bound::Fixed(b.value().to_f64s()?[0])),
        Val::Int(t) => Err(node_error(
            node,
            format!(
                "input {i} (a bound) is an integer tensor of shape {:?}; the input is \
                 floating-point",
                t.dims
            ),
        )),
    }
}

/// The bound at input `i` of an integer `Clip`, if given.
fn int_bound(node: &Node, inputs: &[Option<Val>], i: usize) -> Result<Option<i64>> {
    match optional_input(inputs, i) {
        None => Ok(None),
        Some(Val::Int(t)) if t.data.len() == 1 => Ok(Some(t.data[0])),
        Some(other) => Err(node_error(
            node,
            format!(
                "input {i} (a bound) must be an integer scalar like the input, got a {} tensor \
                 of shape {:?}",
                match other {
                    Val::Float(_) => "floating-point",
                    Val::Int(_) => "integer",
                },
                super::super::util::dims_of(other)
            ),
        )),
    }
}
