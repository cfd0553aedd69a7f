//! Data movement: strided gathers (`copy_strided_{dt}`), concatenation by strided scatter
//! (`copy_into_strided_{dt}`), index selection (`gather_{dt}`) and its adjoint
//! (`index_add_{dt}`).

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

/// `index_add_{dt}(x, groups, out, outer, n_idx, len, inner)`: `out[o, k, i] = Σ x[o, j, i]`
/// over the `j` with `indices[j] == k` (indices were validated by the caller against `len`).
/// `groups` is the inverse of `indices` (see [`inverse_groups`]), so each output element is
/// summed by one thread in increasing `j`, as the CPU sums it.
pub(super) fn index_add(
    x: &CudaStorage,
    indices: &[usize],
    outer: usize,
    len: usize,
    inner: usize,
) -> Result<CudaStorage> {
    // Checked although the caller's output shape bounds it: an overflow here is an error too.
    let n = outer
        .checked_mul(len)
        .and_then(|n| n.checked_mul(inner))
        .ok_or_else(|| TensorError::ShapeTooLarge {
            op: "index_add",
            dims: vec![outer, len, inner],
        })?;
    let out = x.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let groups = upload_i64s("index_add", x.gpu(), &inverse_groups(indices, len))?;
    x.launch(
        Launch::new(kernels::index_add(x.dtype), geometry::launch_1d(n)).args([
            x.arg(),
            KernelArg::Buffer(&groups),
            out.arg(),
            KernelArg::I64(to_i64("index_add", outer)?),
            KernelArg::I64(to_i64("index_add", indices.len())?),
            KernelArg::I64(to_i64("index_add", len)?),
            KernelArg::I64(to_i64("index_add", inner)?),
        ]),
    )?;
    Ok(out)
}

/// The inverse of `indices` (each `< len`) as one table: `starts[0..=len]`, then the positions
/// `j` grouped by `indices[j]`, in increasing `j` within a group; the positions selecting `k`
/// are `positions[starts[k]..starts[k + 1]]` (a counting sort, O(len + indices)).
fn inverse_groups(indices: &[usize], len: usize) -> Vec<usize> {
    let mut table = vec![0usize; len + 1 + indices.len()];
    for &k in indices {
        table[k + 1] += 1;
    }
    for k in 0..len {
        table[k + 1] += table[k];
    }
    let mut next = table[..len].to_vec();
    for (j, &k) in indices.iter().enumerate() {
        table[len + 1 + next[k]] = j;
        next[k] += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::inverse_groups;

    #[test]
    fn inverse_groups_lists_each_entrys_positions_in_order() {
        // indices [2, 0, 2, 3] into len 4: entry 0 ← [1], 1 ← [], 2 ← [0, 2], 3 ← [3].
        let table = inverse_groups(&[2, 0, 2, 3], 4);
        assert_eq!(&table[..5], &[0, 1, 1, 3, 4]);
        assert_eq!(&table[5..], &[1, 0, 2, 3]);
    }
}
