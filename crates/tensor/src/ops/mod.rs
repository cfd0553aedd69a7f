//! Tensor operations, grouped by kind. Each op's doc gives its formula.

mod arith;
pub(crate) mod conv;
pub(crate) mod elementwise;
mod index;
mod layout;
mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
mod reduce;

pub use index::Indices;
