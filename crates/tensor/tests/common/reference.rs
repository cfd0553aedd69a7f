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
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Softplus => x.exp().ln_1p(),
        UnaryOp::Powf { exponent } => x.powf(exponent),
        UnaryOp::Affine { mul, add } => x * mul + add,
    }
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
    }
}

/// The ternary op's value at `(a, b, c)` = `(gg, g, y)`.
pub fn ternary(op: TernaryOp, a: f64, b: f64, c: f64) -> f64 {
    match op {
        TernaryOp::TanhBackwardGradY => -2.0 * c * b * a,
        TernaryOp::SigmoidBackwardGradY => a * b * (1.0 - 2.0 * c),
    }
}
