//! Differentiable ops on [`Var`](crate::Var): each computes its value with the tensor op of the
//! same name and records itself on the tape.

mod arith;
mod conv;
mod elementwise;
mod index;
mod layout;
pub(crate) mod nn;
mod reduce;
