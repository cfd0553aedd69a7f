//! Independent scalar references of the elementwise ops, written from their mathematical
//! definitions: one exhaustive `match` per op table, so a new op does not compile until it is
//! given its reference here. Shared by the tensor tests (`common::reference`) and the tape's
//! op-table test (which includes this file by path).

use curvature_tensor::{BinaryOp, TernaryOp, UnaryOp};

/// The unary op's value at `x`.
pub fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Square => x * x,
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Softplus => x.exp().ln_1p(),
        UnaryOp::Step => f64::from(u8::from(x > 0.0)),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        UnaryOp::GeluTanh => {
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
            0.5 * x * (1.0 + inner.tanh())
        }
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::Erf => erf(x),
        UnaryOp::Rsqrt => x.powf(-0.5),
        UnaryOp::Log1p => (1.0 + x).ln(),
        UnaryOp::Expm1 => x.exp() - 1.0,
        UnaryOp::Powf { exponent } => x.powf(exponent),
        UnaryOp::Affine { mul, add } => x * mul + add,
        UnaryOp::LeakyRelu { slope } => x.max(0.0) + slope * x.min(0.0),
        UnaryOp::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * (x.exp() - 1.0)
            }
        }
        UnaryOp::Clamp { lo, hi } => x.max(lo).min(hi),
        UnaryOp::Between { lo, hi } => f64::from(u8::from((lo..=hi).contains(&x))),
    }
}

/// erf(x) by its everywhere-convergent series of positive terms,
/// erf(x) = (2/√π)·e^(−x²)·Σₙ 2ⁿx^(2n+1) / (1·3·5···(2n+1)), summed until the terms stop
/// changing the sum (no cancellation, so accurate to a few ulp for the |x| ≤ 6 the tests use).
fn erf(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > f64::EPSILON * 1e-3 * sum.abs() {
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
        sum += term;
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// The binary op's value at `(a, b)`.
pub fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Eq => f64::from(u8::from(a == b)),
        BinaryOp::TanhBackward => a * (1.0 - b * b),
        BinaryOp::SigmoidBackward => a * b * (1.0 - b),
        BinaryOp::Maximum => {
            if a >= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a <= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Pow => (b * a.ln()).exp(),
    }
}

/// The ternary op's value at `(a, b, c)`.
pub fn ternary(op: TernaryOp, a: f64, b: f64, c: f64) -> f64 {
    match op {
        TernaryOp::TanhBackwardGradY => -2.0 * c * b * a,
        TernaryOp::SigmoidBackwardGradY => a * b * (1.0 - 2.0 * c),
        TernaryOp::WhereCond => {
            if a == 0.0 {
                c
            } else {
                b
            }
        }
    }
}
