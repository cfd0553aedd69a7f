//! Tensor operations, grouped by kind. Each op's doc gives its formula.

pub(crate) mod conv;
pub(crate) mod elementwise;
mod layout;
mod matmul;
pub(crate) mod pool;
mod reduce;
