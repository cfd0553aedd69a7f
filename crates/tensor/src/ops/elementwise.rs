//! Elementwise ops: unary functions, broadcasting binary ops, scalar forms and the fused
//! activation derivatives.

use crate::backend::{BinaryOp, BroadcastLayout, TernaryOp, UnaryOp};
use crate::{Result, Shape, Tensor};

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self) -> Result<Tensor> { self.unary($op) })*
        }
    };
}

unary_methods! {
    /// −x.
    neg => UnaryOp::Neg;
    /// eˣ.
    exp => UnaryOp::Exp;
    /// ln x.
    log => UnaryOp::Log;
    /// sin x.
    sin => UnaryOp::Sin;
    /// cos x.
    cos => UnaryOp::Cos;
    /// √x.
    sqrt => UnaryOp::Sqrt;
    /// |x|.
    abs => UnaryOp::Abs;
    /// tanh x.
    tanh => UnaryOp::Tanh;
    /// σ(x) = 1 / (1 + e⁻ˣ).
    sigmoid => UnaryOp::Sigmoid;
    /// x².
    square => UnaryOp::Square;
    /// sign(x) ∈ {−1, 0, 1}.
    sign => UnaryOp::Sign;
    /// 1 / x.
    recip => UnaryOp::Recip;
}

impl Tensor {
    /// Applies one elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Ok(Tensor::from_storage(
            self.storage().unary(op)?,
            self.shape().clone(),
        ))
    }

    /// xᵖ for a scalar exponent.
    pub fn powf(&self, exponent: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(exponent))
    }

    /// x·mul + add.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }

    /// x + c.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(1.0, c)
    }

    /// x − c.
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(1.0, -c)
    }

    /// x·c.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(c, 0.0)
    }

    /// x / c.
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(1.0 / c, 0.0)
    }

    /// Applies a binary op with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        self.check_same_kind(op.name(), rhs)?;
        let out = Shape::broadcast(op.name(), self.shape(), rhs.shape())?;
        let layout = BroadcastLayout {
            strides: vec![
                self.shape().broadcast_strides(&out),
                rhs.shape().broadcast_strides(&out),
            ],
            out,
        };
        let storage = self.storage().binary(op, rhs.storage(), &layout)?;
        Ok(Tensor::from_storage(storage, layout.out))
    }

    /// a + b (broadcasting).
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs)
    }

    /// a − b (broadcasting).
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs)
    }

    /// a · b elementwise (broadcasting).
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, rhs)
    }

    /// a / b (broadcasting).
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, rhs)
    }

    /// 1 where a == b, else 0 (broadcasting).
    pub fn eq_mask(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Eq, rhs)
    }

    /// g·(1 − y²) with `self = g` and `y = tanh(x)`: the tanh backward rule, fused.
    pub fn tanh_backward(&self, y: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::TanhBackward, y)
    }

    /// g·y·(1 − y) with `self = g` and `y = σ(x)`: the sigmoid backward rule, fused.
    pub fn sigmoid_backward(&self, y: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::SigmoidBackward, y)
    }

    /// Applies a ternary op `op(self, b, c)` with NumPy broadcasting of all three.
    pub fn ternary(&self, op: TernaryOp, b: &Tensor, c: &Tensor) -> Result<Tensor> {
        self.check_same_kind(op.name(), b)?;
        self.check_same_kind(op.name(), c)?;
        let bc = Shape::broadcast(op.name(), b.shape(), c.shape())?;
        let out = Shape::broadcast(op.name(), self.shape(), &bc)?;
        let layout = BroadcastLayout {
            strides: vec![
                self.shape().broadcast_strides(&out),
                b.shape().broadcast_strides(&out),
                c.shape().broadcast_strides(&out),
            ],
            out,
        };
        let storage = self
            .storage()
            .ternary(op, b.storage(), c.storage(), &layout)?;
        Ok(Tensor::from_storage(storage, layout.out))
    }
}
