//! Elementwise ops with numpy broadcasting, on floats (tape) and on integers/bools (host): arithmetic, activations, `Where`, `Cast`, `Identity`, `Dropout` (inference).

use super::{unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let _ = (inputs, ctx);
    Err(unsupported(node, "op", "not yet lowered".to_string()))
}
