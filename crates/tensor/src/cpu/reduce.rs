//! Reductions over one axis and the numerically stable softmax family.

use crate::backend::ReduceOp;
use crate::cpu::{try_filled, try_vec};
use crate::{Element, Result};

pub fn reduce<T: Element>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    reduced: usize,
    inner: usize,
) -> Result<Vec<T>> {
    let init = match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => T::neg_infinity(),
    };
    let mut out = try_filled(op.name(), outer * inner, init)?;
    for o in 0..outer {
        let acc = &mut out[o * inner..(o + 1) * inner];
        for r in 0..reduced {
            let row = &x[(o * reduced + r) * inner..(o * reduced + r + 1) * inner];
            match op {
                ReduceOp::Sum => acc.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v),
                ReduceOp::Max => acc.iter_mut().zip(row).for_each(|(a, &v)| {
                    if v > *a || v.is_nan() {
                        *a = v
                    }
                }),
            }
        }
    }
    Ok(out)
}

fn row_logsumexp<T: Element>(row: &[T]) -> T {
    let max = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    if !max.is_finite() {
        return max;
    }
    max + row.iter().map(|&v| (v - max).exp()).sum::<T>().ln()
}

pub fn logsumexp<T: Element>(x: &[T], rows: usize, cols: usize) -> Result<Vec<T>> {
    let mut out = try_vec("logsumexp", rows)?;
    out.extend((0..rows).map(|r| row_logsumexp(&x[r * cols..(r + 1) * cols])));
    Ok(out)
}

/// `rows · cols` is the input's element count, so it does not overflow.
pub fn log_softmax<T: Element>(x: &[T], rows: usize, cols: usize) -> Result<Vec<T>> {
    let mut out = try_vec("log_softmax", rows * cols)?;
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let lse = row_logsumexp(row);
        out.extend(row.iter().map(|&v| v - lse));
    }
    Ok(out)
}
