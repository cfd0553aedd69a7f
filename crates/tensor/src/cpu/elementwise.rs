//! The CPU loops of the elementwise ops (with NumPy broadcasting): each op's table entry
//! (`ops/elementwise/`) hands its scalar formula to one of these.

use rayon::prelude::*;

use crate::backend::BroadcastLayout;
use crate::cpu::{try_filled, try_vec};
use crate::{Element, Result};

/// Below this many elements, a loop on one thread beats splitting the work.
const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Elements per parallel task of a contiguous map.
const CHUNK: usize = 1 << 13;

/// `f` applied to every element (in parallel when large).
pub(crate) fn map<T: Element>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Result<Vec<T>> {
    if x.len() >= PARALLEL_THRESHOLD {
        let mut out = try_filled("unary", x.len(), T::zero())?;
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)));
        Ok(out)
    } else {
        let mut out = try_vec("unary", x.len())?;
        out.extend(x.iter().map(|&v| f(v)));
        Ok(out)
    }
}

/// Output dims and per-operand strides after dropping unit dims and merging adjacent dims
/// that every operand walks contiguously (or broadcasts along together), so the innermost
/// loop is as long as possible.
fn coalesce(layout: &BroadcastLayout) -> (Vec<usize>, Vec<Vec<usize>>) {
    let n = layout.strides.len();
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (d, &size) in layout.out.dims().iter().enumerate().rev() {
        if size == 1 {
            continue;
        }
        let mergeable = !dims.is_empty()
            && strides
                .iter()
                .zip(&layout.strides)
                .all(|(merged, own)| own[d] == merged[0] * dims[0]);
        if mergeable {
            dims[0] *= size;
        } else {
            dims.insert(0, size);
            for (merged, own) in strides.iter_mut().zip(&layout.strides) {
                merged.insert(0, own[d]);
            }
        }
    }
    if dims.is_empty() {
        dims.push(1);
        strides.iter_mut().for_each(|s| s.push(0));
    }
    (dims, strides)
}

/// Fills `out` row by row (rows of the innermost coalesced dim, in parallel when large),
/// calling `row(out_row, offsets, inner_strides)` with each operand's starting offset.
fn fill_rows<T: Element, const N: usize>(
    layout: &BroadcastLayout,
    row: impl Fn(&mut [T], [usize; N], [usize; N]) + Sync,
) -> Result<Vec<T>> {
    let total = layout.out.elem_count();
    let mut out = try_filled("broadcast", total, T::zero())?;
    if total == 0 {
        return Ok(out);
    }
    let (dims, strides) = coalesce(layout);
    let rank = dims.len();
    let inner = dims[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|i| strides[i][rank - 1]);
    let offsets_of_row = |mut r: usize| -> [usize; N] {
        let mut offsets = [0usize; N];
        for d in (0..rank - 1).rev() {
            let idx = r % dims[d];
            r /= dims[d];
            for (o, s) in offsets.iter_mut().zip(&strides) {
                *o += idx * s[d];
            }
        }
        offsets
    };
    let parallel = total >= PARALLEL_THRESHOLD;
    let work = |(r, chunk): (usize, &mut [T])| {
        let base = offsets_of_row(r);
        if parallel && chunk.len() > CHUNK {
            chunk
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(p, piece)| {
                    let offsets = std::array::from_fn(|i| base[i] + p * CHUNK * inner_strides[i]);
                    row(piece, offsets, inner_strides)
                });
        } else {
            row(chunk, base, inner_strides)
        }
    };
    if parallel {
        out.par_chunks_mut(inner).enumerate().for_each(work);
    } else {
        out.chunks_mut(inner).enumerate().for_each(work);
    }
    Ok(out)
}

pub(crate) fn zip_map<T: Element>(
    a: &[T],
    b: &[T],
    layout: &BroadcastLayout,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<Vec<T>> {
    fill_rows(layout, |out: &mut [T], [ia, ib], [sa, sb]| {
        let n = out.len();
        match (sa, sb) {
            (1, 1) => out
                .iter_mut()
                .zip(&a[ia..ia + n])
                .zip(&b[ib..ib + n])
                .for_each(|((o, &x), &y)| *o = f(x, y)),
            (1, 0) => {
                let y = b[ib];
                out.iter_mut()
                    .zip(&a[ia..ia + n])
                    .for_each(|(o, &x)| *o = f(x, y));
            }
            (0, 1) => {
                let x = a[ia];
                out.iter_mut()
                    .zip(&b[ib..ib + n])
                    .for_each(|(o, &y)| *o = f(x, y));
            }
            _ => out
                .iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = f(a[ia + j * sa], b[ib + j * sb])),
        }
    })
}

pub(crate) fn zip3_map<T: Element>(
    a: &[T],
    b: &[T],
    c: &[T],
    layout: &BroadcastLayout,
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> Result<Vec<T>> {
    fill_rows(layout, |out: &mut [T], [ia, ib, ic], [sa, sb, sc]| {
        let n = out.len();
        if (sa, sb, sc) == (1, 1, 1) {
            out.iter_mut()
                .zip(&a[ia..ia + n])
                .zip(&b[ib..ib + n])
                .zip(&c[ic..ic + n])
                .for_each(|(((o, &x), &y), &z)| *o = f(x, y, z));
        } else {
            out.iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = f(a[ia + j * sa], b[ib + j * sb], c[ic + j * sc]));
        }
    })
}
