//! Matrix products: `Gemm` and `MatMul` (with numpy batch broadcasting).

use curvature_tensor::Tensor;

use super::operand::{
    flag_attr, float_attr, float_input, input_count, known_attributes, optional_float, output_count,
};
use super::{node_error, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    output_count(node, 1, "Y")?;
    let y = match node.op_type.as_str() {
        "Gemm" => gemm(node, inputs, ctx)?,
        _ => matmul(node, inputs)?,
    };
    Ok(vec![Val::Float(y)])
}

/// `MatMul`: numpy's `matmul` (1-D operands promoted, batch axes broadcast).
fn matmul(node: &Node, inputs: &[Option<Val>]) -> Result<curvature_tape::Var> {
    known_attributes(node, &[])?;
    input_count(node, inputs, 2, 2)?;
    let a = float_input(node, inputs, 0, "A")?;
    let b = float_input(node, inputs, 1, "B")?;
    Tensor::matmul_shape(a.shape(), b.shape()).map_err(|e| {
        node_error(
            node,
            format!("cannot multiply {} by {}: {e}", a.shape(), b.shape()),
        )
    })?;
    Ok(a.matmul(b)?)
}

/// `Gemm`: `alpha·op(A)·op(B) + beta·C` for matrices A and B, `op` transposing when
/// `transA` / `transB` is set, and C broadcast to the product's `[M, N]`.
fn gemm(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<curvature_tape::Var> {
    known_attributes(node, &["alpha", "beta", "transA", "transB", "broadcast"])?;
    input_count(node, inputs, 2, 3)?;
    let a = float_input(node, inputs, 0, "A")?;
    let b = float_input(node, inputs, 1, "B")?;
    let c = optional_float(node, inputs, 2, "C")?;
    let alpha = float_attr(node, "alpha", 1.0)?;
    let beta = float_attr(node, "beta", 1.0)?;
    let trans_a = flag_attr(node, "transA", false)?;
    let trans_b = flag_attr(node, "transB", false)?;
    let broadcast = flag_attr(node, "broadcast", ctx.opset >= 7)?;
    let (&[a0, a1], &[b0, b1]) = (a.dims(), b.dims()) else {
        return Err(node_error(
            node,
            format!(
                "A and B must be matrices, got {} and {}",
                a.shape(),
                b.shape()
            ),
        ));
    };
    let (m, k) = if trans_a { (a1, a0) } else { (a0, a1) };
    let (k2, n) = if trans_b { (b1, b0) } else { (b0, b1) };
    if k != k2 {
        return Err(node_error(
            node,
            format!(
                "op(A) is [{m}, {k}] and op(B) is [{k2}, {n}] (transA={}, transB={}): inner \
                 dimensions differ",
                u8::from(trans_a),
                u8::from(trans_b)
            ),
        ));
    }
    let mut y = a.matmul_transposed(b, trans_a, trans_b)?;
    if alpha != 1.0 {
        y = y.mul_scalar(alpha)?;
    }
    let Some(c) = c else {
        return Ok(y);
    };
    let fits = c.rank() <= 2
        && c.dims()
            .iter()
            .rev()
            .zip([n, m])
            .all(|(&d, target)| d == target || (broadcast && d == 1));
    let full = c.dims() == [m, n];
    if !fits || (!broadcast && !full) {
        return Err(node_error(
            node,
            format!(
                "C of shape {} does not broadcast to the product's [{m}, {n}]",
                c.shape()
            ),
        ));
    }
    let c = if beta == 1.0 {
        c.clone()
    } else {
        c.mul_scalar(beta)?
    };
    Ok(y.add(&c)?)
}
