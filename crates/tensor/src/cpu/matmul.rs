//! Matrix products through the `gemm` crate (tuned, SIMD, multi-threaded).

use gemm::Parallelism;

use crate::backend::MatmulSpec;
use crate::cpu::try_filled;
use crate::{Element, Result, TensorError};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_FLOPS: usize = 1 << 18;

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
    let parallelism = if m * n * k >= PARALLEL_FLOPS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    for z in 0..batch {
        let a_z = &a[z * spec.stride_a..];
        let b_z = &b[z * spec.stride_b..];
        let c_z = &mut out[z * m * n..(z + 1) * m * n];
        // SAFETY: the pointers and strides describe in-bounds matrices. `a_z` starts at
        // z·stride_a and holds at least m·k elements (checked above: a.len() ≥
        // (batch − 1)·stride_a + m·k), read with strides (a_rs, a_cs) that cover exactly m×k
        // (or its transpose); likewise `b_z` with k×n. `c_z` is an exclusively borrowed m×n
        // row-major block. Every extent fits in `isize` because it is at most a slice length.
        // `read_dst = false`, so the zero-initialised destination is only written.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c_z.as_mut_ptr(),
                1,
                n as isize,
                false,
                a_z.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b_z.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                T::zero(),
                T::one(),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    Ok(out)
}
