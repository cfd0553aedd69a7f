//! Tensor operations, grouped by kind. Each op's doc gives its formula.

pub(crate) mod elementwise;
mod index;
mod layout;
mod matmul;
pub(crate) mod norm;
mod reduce;

pub use index::Indices;
