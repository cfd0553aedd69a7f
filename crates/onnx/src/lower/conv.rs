//! Convolution and pooling: `Conv` (1-D and 2-D), `MaxPool`, `AveragePool`, `GlobalAveragePool`.

use super::{unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let _ = (inputs, ctx);
    Err(unsupported(node, "op", "not yet lowered".to_string()))
}
