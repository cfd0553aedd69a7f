//! Data movement: strided gathers (`copy_strided_{dt}`), concatenation by strided scatter
//! (`copy_into_strided_{dt}`) and index selection (`gather_{dt}`).

use curvature_kernels::{geometry, KernelArg, Launch};

use super::{kernels, rank_arg, to_i64, upload_i64s, CudaStorage};
use crate::backend::StridedCopy;
use crate::{Result, TensorError};

/// `copy_strided_{dt}(src, out, n, rank, [out dims, src strides], offset)`.
pub(super) fn copy_strided(x: &CudaStorage, copy: &StridedCopy) -> Result<CudaStorage> {
    let n = copy.out.elem_count();
    let out = x.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let mut table = copy.out.dims().to_vec();
    table.extend_from_slice(&copy.strides);
    let table = upload_i64s("copy_strided", x.gpu(), &table)?;
    x.launch(
        Launch::new(kernels::copy_strided(x.dtype), geometry::launch_1d(n)).args([
            x.arg(),
            out.arg(),
            KernelArg::U64(n as u64),
            rank_arg("copy_strided", copy.out.rank())?,
            KernelArg::Buffer(&table),
            KernelArg::I64(to_i64("copy_strided", copy.offset)?),
        ]),
    )?;
    Ok(out)
}

/// Parts viewed as `[outer, width_i]` side by side in `[outer, Σ width]`: one
/// `copy_into_strided_{dt}(part, out, n, 2, [outer, width_i, Σ width, 1], column offset)` per
/// non-empty part.
pub(super) fn cat(parts: &[&CudaStorage], outer: usize, widths: &[usize]) -> Result<CudaStorage> {
    let Some(first) = parts.first() else {
        return Err(TensorError::Empty { op: "cat" });
    };
    let total: usize = widths.iter().sum();
    let out = first.alloc_like(outer * total)?;
    let mut column = 0;
    for (part, &width) in parts.iter().zip(widths) {
        let n = outer * width;
        if n > 0 {
            let table = upload_i64s("cat", first.gpu(), &[outer, width, total, 1])?;
            first.launch(
                Launch::new(
                    kernels::copy_into_strided(first.dtype),
                    geometry::launch_1d(n),
                )
                .args([
                    part.arg(),
                    out.arg(),
                    KernelArg::U64(n as u64),
                    KernelArg::I32(2),
                    KernelArg::Buffer(&table),
                    KernelArg::I64(to_i64("cat", column)?),
                ]),
            )?;
        }
        column += width;
    }
    Ok(out)
}

/// `gather_{dt}(x, indices, out, outer, axis_len, inner, n_indices)`: `out[o, j, i] =
/// x[o, indices[j], i]` (indices were validated by the caller).
pub(super) fn index_select(
    x: &CudaStorage,
    indices: &[usize],
    outer: usize,
    axis_len: usize,
    inner: usize,
) -> Result<CudaStorage> {
    let n = outer * indices.len() * inner;
    let out = x.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let idx = upload_i64s("index_select", x.gpu(), indices)?;
    x.launch(
        Launch::new(kernels::gather(x.dtype), geometry::launch_1d(n)).args([
            x.arg(),
            KernelArg::Buffer(&idx),
            out.arg(),
            KernelArg::I64(to_i64("index_select", outer)?),
            KernelArg::I64(to_i64("index_select", axis_len)?),
            KernelArg::I64(to_i64("index_select", inner)?),
            KernelArg::I64(to_i64("index_select", indices.len())?),
        ]),
    )?;
    Ok(out)
}
