//! Elementwise ops. Each op is defined once, in the table of its arity ([`unary`], [`binary`],
//! [`ternary`]); everything else — the enum, the methods on `Tensor` and on the tape's `Var`,
//! the CPU loop, the backward rule, the list the tests run — is derived from that entry.
//! This module adds what is common to all of them: broadcasting, and the scalar forms.

mod binary;
mod differentiable;
mod ternary;
mod unary;

pub use binary::BinaryOp;
pub use differentiable::{Differentiable, Saves};
pub use ternary::TernaryOp;
pub use unary::UnaryOp;

use crate::backend::BroadcastLayout;
use crate::plan::Prim;
use crate::{Result, Shape, Tensor, TensorError};

/// Inherent methods for every elementwise op (`x.tanh()`, `a.mul(&b)`, `x.powf(p)`, …) on a
/// type with `unary`, `binary` and `ternary` methods returning `$result`: how `Tensor` and the
/// tape's `Var` get the same methods from the op tables.
#[doc(hidden)]
#[macro_export]
macro_rules! elementwise_methods {
    ($ty:ty, $result:ty) => {
        $crate::unary_op_table!([$crate::__unary_op_methods] $ty, $result);
        $crate::binary_op_table!([$crate::__binary_op_methods] $ty, $result);
        $crate::ternary_op_table!([$crate::__ternary_op_methods] $ty, $result);
    };
}

impl Tensor {
    /// Applies one elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.apply_prim_to(Prim::Unary(op), &[], self.shape().clone())
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
        let out = layout.out.clone();
        self.apply_prim_to(Prim::Binary(op, layout), &[rhs], out)
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
        let out = layout.out.clone();
        self.apply_prim_to(Prim::Ternary(op, layout), &[b, c], out)
    }
}

/// Plain derivatives: the backward rules evaluated on tensors, nothing recorded.
impl Differentiable for Tensor {
    type Error = TensorError;

    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Tensor::unary(self, op)
    }

    fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        Tensor::binary(self, op, rhs)
    }

    fn ternary(&self, op: TernaryOp, b: &Tensor, c: &Tensor) -> Result<Tensor> {
        Tensor::ternary(self, op, b, c)
    }

    fn constant_unary(&self, op: UnaryOp) -> Result<Tensor> {
        Tensor::unary(self, op)
    }
}
