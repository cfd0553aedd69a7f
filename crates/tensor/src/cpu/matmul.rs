//! Batched matrix products, each one [`host_gemm`](crate::host_gemm) call.

use crate::backend::MatmulSpec;
use crate::cpu::try_filled;
use crate::host_gemm::{gemm, Gemm, Operand};
use crate::{Element, Result, TensorError};

/// The element count an operand of `rows × cols` per batch entry, `batch` entries `stride`
/// apart, must hold: `(batch − 1)·stride + rows·cols` (nothing when a dimension is empty).
fn operand_extent(batch: usize, rows: usize, cols: usize, stride: usize) -> Option<usize> {
    let matrix = rows.checked_mul(cols)?;
    if batch == 0 || matrix == 0 {
        return Some(0);
    }
    (batch - 1).checked_mul(stride)?.checked_add(matrix)
}

pub fn matmul<T: Element>(a: &[T], b: &[T], spec: &MatmulSpec) -> Result<Vec<T>> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let bad = |msg: String| TensorError::InvalidArgument { op: "matmul", msg };
    let a_needs = operand_extent(batch, m, k, spec.stride_a);
    let b_needs = operand_extent(batch, k, n, spec.stride_b);
    if a_needs.is_none_or(|need| need > a.len()) || b_needs.is_none_or(|need| need > b.len()) {
        return Err(bad(format!(
            "operands of {} and {} elements cannot hold {batch} products of [{m}, {k}] @ [{k}, {n}] \
             with batch strides {} and {}",
            a.len(),
            b.len(),
            spec.stride_a,
            spec.stride_b
        )));
    }
    let out_len = batch
        .checked_mul(m)
        .and_then(|rows| rows.checked_mul(n))
        .ok_or_else(|| bad(format!("{batch} products of [{m}, {n}] overflow")))?;
    let mut out = try_filled("matmul", out_len, T::zero())?;
    if m == 0 || n == 0 || k == 0 {
        // Empty sums: the product is all zeros.
        return Ok(out);
    }
    // Row-major element strides (row stride, column stride) of op(A) and op(B).
    let (a_rs, a_cs) = if spec.trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if spec.trans_b { (1, k) } else { (n, 1) };
    for (z, c_z) in out.chunks_exact_mut(m * n).enumerate() {
        gemm(Gemm {
            m,
            n,
            k,
            dst: Operand::row_major(c_z, n),
            accumulate: false,
            lhs: Operand::strided(&a[z * spec.stride_a..], a_rs, a_cs),
            rhs: Operand::strided(&b[z * spec.stride_b..], b_rs, b_cs),
            parallel: true,
        })?;
    }
    Ok(out)
}
