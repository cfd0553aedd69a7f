//! What a backward rule may do with the values it is given: the ops every differentiable value
//! type offers. [`Tensor`](crate::Tensor) implements it (the rules then compute plain
//! derivatives) and so does the tape's `Var` (the rules are then recorded, which is what makes
//! derivatives of derivatives work).

use crate::ops::elementwise::{BinaryOp, TernaryOp, UnaryOp};
use crate::TensorError;

/// Which values an op's backward rule reads, and so which the tape keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saves {
    /// Neither: the rule reads only the cotangent.
    Nothing,
    /// The op's inputs.
    Inputs,
    /// The op's output.
    Output,
}

/// A value the elementwise backward rules can be written with. Rules return unreduced
/// gradients (shaped like the broadcast output, with the cotangent's batch axes in front);
/// summing them to each input's shape is the caller's job.
pub trait Differentiable: Sized + Clone {
    type Error: From<TensorError>;

    fn unary(&self, op: UnaryOp) -> Result<Self, Self::Error>;
    fn binary(&self, op: BinaryOp, rhs: &Self) -> Result<Self, Self::Error>;
    fn ternary(&self, op: TernaryOp, b: &Self, c: &Self) -> Result<Self, Self::Error>;
    /// `op` applied to this value as a constant: no derivative flows through it.
    fn constant_unary(&self, op: UnaryOp) -> Result<Self, Self::Error>;

    fn neg(&self) -> Result<Self, Self::Error> {
        self.unary(UnaryOp::Neg)
    }

    /// x·c.
    fn scale(&self, c: f64) -> Result<Self, Self::Error> {
        self.unary(UnaryOp::Affine { mul: c, add: 0.0 })
    }

    fn add(&self, rhs: &Self) -> Result<Self, Self::Error> {
        self.binary(BinaryOp::Add, rhs)
    }

    fn mul(&self, rhs: &Self) -> Result<Self, Self::Error> {
        self.binary(BinaryOp::Mul, rhs)
    }

    fn div(&self, rhs: &Self) -> Result<Self, Self::Error> {
        self.binary(BinaryOp::Div, rhs)
    }
}
