//! Data movement: strided gathers, concatenation, index selection and its adjoint.

use crate::backend::StridedCopy;
use crate::cpu::{try_filled, try_vec};
use crate::{Element, Result};

pub fn copy_strided<T: Element>(src: &[T], copy: &StridedCopy) -> Result<Vec<T>> {
    let dims = copy.out.dims();
    let total = copy.out.elem_count();
    let mut out = try_vec("copy", total)?;
    if total == 0 {
        return Ok(out);
    }
    let rank = dims.len();
    if rank == 0 {
        out.push(src[copy.offset]);
        return Ok(out);
    }
    let (inner_len, inner_stride) = (dims[rank - 1], copy.strides[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    let mut base = copy.offset;
    for _ in 0..total / inner_len {
        if inner_stride == 1 {
            out.extend_from_slice(&src[base..base + inner_len]);
        } else {
            out.extend((0..inner_len).map(|j| src[base + j * inner_stride]));
        }
        for d in (0..rank - 1).rev() {
            index[d] += 1;
            base += copy.strides[d];
            if index[d] < dims[d] {
                break;
            }
            base -= copy.strides[d] * dims[d];
            index[d] = 0;
        }
    }
    Ok(out)
}

pub fn cat<T: Element>(parts: &[&[T]], outer: usize, widths: &[usize]) -> Result<Vec<T>> {
    let total = widths
        .iter()
        .try_fold(0usize, |sum, &w| sum.checked_add(w))
        .and_then(|row| row.checked_mul(outer));
    let mut out = try_vec("cat", total.unwrap_or(usize::MAX))?;
    for o in 0..outer {
        for (part, &w) in parts.iter().zip(widths) {
            out.extend_from_slice(&part[o * w..(o + 1) * w]);
        }
    }
    Ok(out)
}

pub fn index_select<T: Element>(
    x: &[T],
    indices: &[usize],
    outer: usize,
    axis_len: usize,
    inner: usize,
) -> Result<Vec<T>> {
    let total = outer
        .checked_mul(indices.len())
        .and_then(|n| n.checked_mul(inner));
    let mut out = try_vec("index_select", total.unwrap_or(usize::MAX))?;
    for o in 0..outer {
        for &j in indices {
            let start = (o * axis_len + j) * inner;
            out.extend_from_slice(&x[start..start + inner]);
        }
    }
    Ok(out)
}

/// `out[o, k, i] = Σ_j x[o, j, i]` over the `j` with `indices[j] == k`, in increasing `j`.
pub fn index_add<T: Element>(
    x: &[T],
    indices: &[usize],
    outer: usize,
    len: usize,
    inner: usize,
) -> Result<Vec<T>> {
    let total = outer.checked_mul(len).and_then(|n| n.checked_mul(inner));
    let mut out = try_filled("index_add", total.unwrap_or(usize::MAX), T::zero())?;
    let n = indices.len();
    for o in 0..outer {
        for (j, &k) in indices.iter().enumerate() {
            let src = (o * n + j) * inner;
            let dst = (o * len + k) * inner;
            for (acc, &v) in out[dst..dst + inner].iter_mut().zip(&x[src..src + inner]) {
                *acc = *acc + v;
            }
        }
    }
    Ok(out)
}
