//! Normalisations and softmax: `Softmax`, `LogSoftmax`, `LayerNormalization`, `BatchNormalization` (inference).

use super::{unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let _ = (inputs, ctx);
    Err(unsupported(node, "op", "not yet lowered".to_string()))
}
