//! `Pow(X, Y)`. A constant exponent with one value lowers exactly: an integer power to products
//! (so negative bases work and the derivatives are those of `mul`), ½ to `sqrt`, any other value
//! to `powf`; a varying or tracked exponent to the general `pow`. Integer bases with integer
//! exponents are computed on the host with checked arithmetic.

use curvature_tape::Var;

use super::super::util::{check_inputs, constant_values, float_const, input, to_float};
use super::super::{host, node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// The largest |n| an integer exponent is lowered to products for (beyond it, `powf`).
const MAX_PRODUCT_EXPONENT: i64 = 64;

/// Lowers `Pow`.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let (base, exponent) = (input(node, inputs, 0)?, input(node, inputs, 1)?);
    let base = match base {
        Val::Float(x) => x,
        Val::Int(b) => {
            let Val::Int(e) = exponent else {
                return Err(unsupported(
                    node,
                    "dtype",
                    "an integer base with a floating-point exponent".to_string(),
                ));
            };
            return host::zip_with(node, b, e, |x, n| int_pow(node, x, n)).map(Val::Int);
        }
    };
    let uniform = match exponent {
        Val::Int(t) => uniform_value(t.data.iter().map(|&v| v as f64)),
        Val::Float(y) if !y.requires_grad() => {
            uniform_value(constant_values(node, y, "a constant exponent")?.into_iter())
        }
        Val::Float(_) => None,
    };
    let Some(p) = uniform else {
        let y = to_float(ctx, exponent)?;
        return Ok(Val::Float(base.pow(&y)?));
    };
    let out = constant_power(ctx, base, p)?;
    // The exponent may add leading axes (or broadcast size-1 ones) to the result.
    let dims = host::broadcast_dims(node, base.dims(), super::super::util::dims_of(exponent))?;
    Ok(Val::Float(out.broadcast_to(dims)?))
}

/// The one value all of `values` share, if they are not empty and all equal.
fn uniform_value(mut values: impl Iterator<Item = f64>) -> Option<f64> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

/// xᵖ for a constant p.
fn constant_power(ctx: &Ctx, x: &Var, p: f64) -> Result<Var> {
    let n = p as i64;
    if p == n as f64 && n.abs() <= MAX_PRODUCT_EXPONENT {
        if n == 0 {
            let ones = vec![1.0; x.value().elem_count()];
            return float_const(ctx, &ones, x.dims());
        }
        let positive = integer_power(x, n.unsigned_abs())?;
        return Ok(if n < 0 {
            positive.reciprocal()?
        } else {
            positive
        });
    }
    if p == 0.5 {
        return Ok(x.sqrt()?);
    }
    Ok(x.powf(p)?)
}

/// xⁿ (n ≥ 1) by repeated squaring: exact products.
fn integer_power(x: &Var, n: u64) -> Result<Var> {
    let mut square = x.clone();
    let mut n = n;
    while n > 0 && n % 2 == 0 {
        square = square.mul(&square)?;
        n /= 2;
    }
    let mut result = square.clone();
    n /= 2;
    while n > 0 {
        square = square.mul(&square)?;
        if n % 2 == 1 {
            result = result.mul(&square)?;
        }
        n /= 2;
    }
    Ok(result)
}

/// xⁿ on integers; negative exponents are refused unless the result is exact (x = ±1).
fn int_pow(node: &Node, x: i64, n: i64) -> Result<i64> {
    if n < 0 {
        return match x {
            1 => Ok(1),
            -1 => Ok(if n % 2 == 0 { 1 } else { -1 }),
            _ => Err(node_error(
                node,
                format!("integer power {x}^{n} with a negative exponent"),
            )),
        };
    }
    let n =
        u32::try_from(n).map_err(|_| node_error(node, format!("integer overflow in {x}^{n}")))?;
    x.checked_pow(n)
        .ok_or_else(|| node_error(node, format!("integer overflow in {x}^{n}")))
}
