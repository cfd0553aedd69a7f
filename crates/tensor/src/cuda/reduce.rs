//! Reductions (`kernels/reduce.cu`): sum / max over one axis, and the row kernels
//! `log_softmax` / `logsumexp`.

use curvature_kernels::{geometry, KernelArg, Launch};

use super::kernels::{self, RowOp};
use super::{to_i64, CudaStorage};
use crate::backend::ReduceOp;
use crate::Result;

/// `reduce_sum_{dt}` / `reduce_max_{dt}(x, out, outer, red, inner)` over x viewed as
/// `[outer, red, inner]`, giving `[outer, inner]`.
pub(super) fn reduce(
    x: &CudaStorage,
    op: ReduceOp,
    outer: usize,
    reduced: usize,
    inner: usize,
) -> Result<CudaStorage> {
    let out = x.alloc_like(outer * inner)?;
    if outer * inner == 0 {
        return Ok(out);
    }
    x.launch(
        Launch::new(
            kernels::reduce(op, x.dtype),
            geometry::reduce_axis_launch(outer, inner),
        )
        .args([
            x.arg(),
            out.arg(),
            KernelArg::I64(to_i64(op.name(), outer)?),
            KernelArg::I64(to_i64(op.name(), reduced)?),
            KernelArg::I64(to_i64(op.name(), inner)?),
        ]),
    )?;
    Ok(out)
}

/// `{op}_{dt}(x, out, rows, cols)` for `op` = `log_softmax` (out `[rows, cols]`) or
/// `logsumexp` (out `[rows]`); `out_len` is the output's element count.
pub(super) fn rows(
    x: &CudaStorage,
    op: RowOp,
    rows: usize,
    cols: usize,
    out_len: usize,
) -> Result<CudaStorage> {
    let out = x.alloc_like(out_len)?;
    if out_len == 0 {
        return Ok(out);
    }
    x.launch(
        Launch::new(kernels::row(op, x.dtype), geometry::row_launch(rows, cols)).args([
            x.arg(),
            out.arg(),
            KernelArg::I64(to_i64(op.name(), rows)?),
            KernelArg::I64(to_i64(op.name(), cols)?),
        ]),
    )?;
    Ok(out)
}
