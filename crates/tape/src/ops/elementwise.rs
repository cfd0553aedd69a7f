//! Elementwise ops, binary ops with broadcasting, matmul and the fused activation derivatives.

use curvature_tensor::backend::TernaryOp;

use crate::op::Op;
use crate::{Result, Var};

macro_rules! unary_vars {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Var {
            $($(#[$doc])* pub fn $name(&self) -> Result<Var> {
                let value = self.value().$name()?;
                self.tape().record($op, &[self], value)
            })*
        }
    };
}

unary_vars! {
    /// −x; derivative −1.
    neg => Op::Neg;
    /// eˣ; derivative eˣ.
    exp => Op::Exp;
    /// ln x; derivative 1/x.
    log => Op::Log;
    /// sin x; derivative cos x.
    sin => Op::Sin;
    /// cos x; derivative −sin x.
    cos => Op::Cos;
    /// √x; derivative 1/(2√x).
    sqrt => Op::Sqrt;
    /// |x|; derivative sign(x).
    abs => Op::Abs;
    /// tanh x; derivative 1 − tanh²x (through the fused `tanh_backward`).
    tanh => Op::Tanh;
    /// σ(x); derivative σ(1 − σ) (through the fused `sigmoid_backward`).
    sigmoid => Op::Sigmoid;
    /// x²; derivative 2x.
    square => Op::Square;
}

macro_rules! binary_vars {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Var {
            $($(#[$doc])* pub fn $name(&self, rhs: &Var) -> Result<Var> {
                self.check_tape($op.name(), rhs)?;
                let value = self.value().$name(rhs.value())?;
                self.tape().record($op, &[self, rhs], value)
            })*
        }
    };
}

binary_vars! {
    /// a + b with broadcasting.
    add => Op::Add;
    /// a − b with broadcasting.
    sub => Op::Sub;
    /// a · b elementwise with broadcasting; derivatives (b, a).
    mul => Op::Mul;
    /// a / b with broadcasting; derivatives (1/b, −a/b²).
    div => Op::Div;
    /// g·(1 − y²) for `self = g`, `y = tanh(x)`; derivatives (1 − y², −2·y·g).
    tanh_backward => Op::TanhBackward;
    /// g·y·(1 − y) for `self = g`, `y = σ(x)`; derivatives (y(1 − y), g·(1 − 2y)).
    sigmoid_backward => Op::SigmoidBackward;
}

impl Var {
    /// xᵖ; derivative p·xᵖ⁻¹.
    pub fn powf(&self, exponent: f64) -> Result<Var> {
        let value = self.value().powf(exponent)?;
        self.tape().record(Op::Powf(exponent), &[self], value)
    }

    /// x·mul + add; derivative `mul`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var> {
        let value = self.value().affine(mul, add)?;
        self.tape().record(Op::Affine { mul }, &[self], value)
    }

    /// x + c.
    pub fn add_scalar(&self, c: f64) -> Result<Var> {
        self.affine(1.0, c)
    }

    /// x − c.
    pub fn sub_scalar(&self, c: f64) -> Result<Var> {
        self.affine(1.0, -c)
    }

    /// x·c.
    pub fn mul_scalar(&self, c: f64) -> Result<Var> {
        self.affine(c, 0.0)
    }

    /// x / c.
    pub fn div_scalar(&self, c: f64) -> Result<Var> {
        self.affine(1.0 / c, 0.0)
    }

    /// A fused double-backward op of the activations (see [`TernaryOp`]).
    pub fn ternary(&self, op: TernaryOp, b: &Var, c: &Var) -> Result<Var> {
        self.check_tape(op.name(), b)?;
        self.check_tape(op.name(), c)?;
        let value = self.value().ternary(op, b.value(), c.value())?;
        let recorded = match op {
            TernaryOp::TanhBackwardGradY => Op::TanhBackwardGradY,
            TernaryOp::SigmoidBackwardGradY => Op::SigmoidBackwardGradY,
        };
        self.tape().record(recorded, &[self, b, c], value)
    }

    /// Matrix product with `torch.matmul` semantics (1-D operands promoted, batch axes
    /// broadcast); derivatives `g·Bᵀ` and `Aᵀ·g`.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        self.check_tape("matmul", rhs)?;
        if self.rank() >= 2 && rhs.rank() >= 2 {
            return self.matmul_transposed(rhs, false, false);
        }
        // Validate (and get the result shape) with the tensor op, then compute through 2-D.
        let out_shape = self.value().matmul(rhs.value())?.shape().clone();
        let a = if self.rank() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rhs.rank() == 1 {
            rhs.unsqueeze(1)?
        } else {
            rhs.clone()
        };
        a.matmul(&b)?.reshape(out_shape)
    }

    /// `op(self)·op(rhs)` for operands of rank ≥ 2, where `op` transposes the last two axes
    /// when its flag is set (no transposed copy); derivatives are products with flags too.
    pub fn matmul_transposed(&self, rhs: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        self.check_tape("matmul", rhs)?;
        let value = self
            .value()
            .matmul_transposed(rhs.value(), trans_a, trans_b)?;
        self.tape()
            .record(Op::MatMul { trans_a, trans_b }, &[self, rhs], value)
    }
}
