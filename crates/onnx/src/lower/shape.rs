//! Constants and layout ops: `Constant`, `ConstantOfShape`, `Shape`, `Reshape`, `Flatten`, `Transpose`, `Squeeze`, `Unsqueeze`, `Concat`, `Slice`, `Split`, `Gather`, `Expand`, on floats (tape) and integers (host).

use super::{unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let _ = (inputs, ctx);
    Err(unsupported(node, "op", "not yet lowered".to_string()))
}
