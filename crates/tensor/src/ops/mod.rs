//! Tensor operations, grouped by kind. Each op's doc gives its formula.

mod arith;
pub(crate) mod elementwise;
mod layout;
mod matmul;
mod reduce;
