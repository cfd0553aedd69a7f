//! Elementwise ops and matmul. The elementwise methods (`x.tanh()`, `a.mul(&b)`, …) come from
//! the tensor crate's op tables, so every op a `Tensor` has, a `Var` has, with the same doc.

use curvature_tensor::{BinaryOp, Differentiable, TernaryOp, UnaryOp};

use crate::op::Op;
use crate::{Result, TapeError, Var};

curvature_tensor::elementwise_methods!(Var, Result<Var>);

impl Var {
    /// Applies one elementwise function (see [`UnaryOp`] for each op and its derivative).
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let value = self.value().unary(op)?;
        self.tape().record(Op::Unary(op), &[self], value)
    }

    /// Applies a binary op with broadcasting (see [`BinaryOp`]).
    pub fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        self.check_tape(op.name(), rhs)?;
        let value = self.value().binary(op, rhs.value())?;
        self.tape().record(Op::Binary(op), &[self, rhs], value)
    }

    /// Applies a ternary op with broadcasting (see [`TernaryOp`]).
    pub fn ternary(&self, op: TernaryOp, b: &Var, c: &Var) -> Result<Var> {
        self.check_tape(op.name(), b)?;
        self.check_tape(op.name(), c)?;
        let value = self.value().ternary(op, b.value(), c.value())?;
        self.tape().record(Op::Ternary(op), &[self, b, c], value)
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

    /// Matrix product with `torch.matmul` semantics (1-D operands promoted, batch axes
    /// broadcast); derivatives `g·Bᵀ` and `Aᵀ·g`.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        self.check_tape("matmul", rhs)?;
        if self.rank() >= 2 && rhs.rank() >= 2 {
            return self.matmul_transposed(rhs, false, false);
        }
        // Validate (and get the result shape) as the tensor op does, then compute through 2-D.
        let out_shape = curvature_tensor::Tensor::matmul_shape(self.shape(), rhs.shape())?;
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

/// The backward rules of the op tables, recorded: so they can be differentiated again.
impl Differentiable for Var {
    type Error = TapeError;

    fn unary(&self, op: UnaryOp) -> Result<Var> {
        Var::unary(self, op)
    }

    fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        Var::binary(self, op, rhs)
    }

    fn ternary(&self, op: TernaryOp, b: &Var, c: &Var) -> Result<Var> {
        Var::ternary(self, op, b, c)
    }

    fn constant_unary(&self, op: UnaryOp) -> Result<Var> {
        Ok(self.constant(self.value().unary(op)?))
    }
}
