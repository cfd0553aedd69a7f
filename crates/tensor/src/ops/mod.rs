//! Tensor operations, grouped by kind. Each op's doc gives its formula.

pub(crate) mod elementwise;
mod layout;
mod matmul;
mod reduce;
