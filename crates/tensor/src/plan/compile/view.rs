//! Operand views composed through layout steps: a view of a strided copy's output (narrow,
//! permute, expand) becomes a view of the copy's source, and a view of a zero-padded value (a
//! `cat` of zeros and one part) becomes a bounded view of that part. Each composition succeeds
//! only when the view's flat indices decompose into the layout's multi-index without carries,
//! so the composed view reads exactly the elements the layout step would have produced.

use crate::plan::OperandView;

/// The view reading a whole value of `dims` in row-major order over the iteration shape `dims`.
pub(super) fn contiguous(value: usize, dims: &[usize]) -> OperandView {
    OperandView {
        value,
        offset: 0,
        strides: row_major(dims),
        bounds: None,
    }
}

/// True when `view` reads its value at each element's own flat index (a register can stand
/// for it inside a fused step of iteration shape `dims`).
pub(super) fn is_contiguous(view: &OperandView, dims: &[usize]) -> bool {
    let full_bounds = view
        .bounds
        .as_ref()
        .is_none_or(|b| b.iter().zip(dims).all(|(&(lo, hi), &n)| lo == 0 && hi == n));
    view.offset == 0 && full_bounds && strides_match(&view.strides, &row_major(dims), dims)
}

/// Strides equal on every dimension longer than 1 (a unit dimension's stride is never used).
fn strides_match(a: &[i64], b: &[i64], dims: &[usize]) -> bool {
    a.len() == dims.len()
        && b.len() == dims.len()
        && dims
            .iter()
            .zip(a.iter().zip(b))
            .all(|(&n, (x, y))| n <= 1 || x == y)
}

/// Row-major element strides of `dims`.
pub(super) fn row_major(dims: &[usize]) -> Vec<i64> {
    let mut strides = vec![0i64; dims.len()];
    let mut acc: i64 = 1;
    for (s, &n) in strides.iter_mut().zip(dims).rev() {
        *s = acc;
        acc = acc.saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
    }
    strides
}

/// How a view's indices fall onto the multi-index of a layout of `src_dims`: the digits of the
/// first element read, and for each iteration dimension the source digit it advances (with its
/// step), or `None` when it does not move the read.
struct Digits {
    base: Vec<i64>,
    map: Vec<Option<(usize, i64)>>,
    extents: Vec<(i64, i64)>,
}

/// Decomposes `view` (over `dims`) against the row-major layout `src_dims`, or `None` when a
/// read would carry from one source digit into the next (or leave the layout).
fn decompose(view: &OperandView, dims: &[usize], src_dims: &[usize]) -> Option<Digits> {
    if view.strides.len() != dims.len() {
        return None;
    }
    let extents: Vec<(i64, i64)> = match &view.bounds {
        Some(b) if b.len() == dims.len() => b
            .iter()
            .map(|&(lo, hi)| Some((i64::try_from(lo).ok()?, i64::try_from(hi).ok()?)))
            .collect::<Option<_>>()?,
        Some(_) => return None,
        None => dims
            .iter()
            .map(|&n| Some((0, i64::try_from(n).ok()?)))
            .collect::<Option<_>>()?,
    };
    if extents.iter().any(|&(lo, hi)| lo >= hi) {
        return None;
    }
    let mut base = view.offset;
    for (&s, &(lo, _)) in view.strides.iter().zip(&extents) {
        base = base.checked_add(s.checked_mul(lo)?)?;
    }
    let src_len = src_dims
        .iter()
        .try_fold(1i64, |acc, &n| acc.checked_mul(i64::try_from(n).ok()?))?;
    if base < 0 || base >= src_len {
        return None;
    }
    let radix = row_major(src_dims);
    let base_digits: Vec<i64> = radix
        .iter()
        .zip(src_dims)
        .map(|(&r, &n)| (base / r) % n as i64)
        .collect();
    let mut span = vec![0i64; src_dims.len()];
    let mut map = Vec::with_capacity(dims.len());
    for (&s, &(lo, hi)) in view.strides.iter().zip(&extents) {
        if s == 0 || hi - lo == 1 {
            map.push(None);
            continue;
        }
        if s < 0 {
            return None;
        }
        let k = (0..src_dims.len()).find(|&k| src_dims[k] > 1 && s % radix[k] == 0)?;
        let step = s / radix[k];
        span[k] = span[k].checked_add(step.checked_mul(hi - lo - 1)?)?;
        map.push(Some((k, step)));
    }
    let fits = base_digits
        .iter()
        .zip(&span)
        .zip(src_dims)
        .all(|((&d, &sp), &n)| d + sp < n as i64);
    fits.then_some(Digits {
        base: base_digits,
        map,
        extents,
    })
}

/// `view` (over `dims`) of the output of a strided copy (`out[i] = src[offset + Σ idx·strides]`
/// with output dims `src_dims`) as a view of the copy's source `value`.
pub(super) fn through_strided(
    view: &OperandView,
    dims: &[usize],
    src_dims: &[usize],
    src_strides: &[usize],
    src_offset: usize,
    value: usize,
) -> Option<OperandView> {
    if src_strides.len() != src_dims.len() {
        return None;
    }
    let digits = decompose(view, dims, src_dims)?;
    let t: Vec<i64> = src_strides
        .iter()
        .map(|&s| i64::try_from(s).ok())
        .collect::<Option<_>>()?;
    let mut offset = i64::try_from(src_offset).ok()?;
    for (&d, &tk) in digits.base.iter().zip(&t) {
        offset = offset.checked_add(d.checked_mul(tk)?)?;
    }
    let mut strides = vec![0i64; dims.len()];
    for (d, m) in digits.map.iter().enumerate() {
        if let Some((k, step)) = *m {
            strides[d] = step.checked_mul(t[k])?;
            offset = offset.checked_sub(strides[d].checked_mul(digits.extents[d].0)?)?;
        }
    }
    Some(OperandView {
        value,
        offset,
        strides,
        bounds: view.bounds.clone(),
    })
}

/// `view` (over `dims`) of a concatenation of parts viewed as `[outer, widths[i]]` as a bounded
/// view of part `part` (`value`): elements that fall in the other parts read 0. `None` unless
/// the bounds can be stated per dimension (one iteration dimension walks the parts).
pub(super) fn through_cat(
    view: &OperandView,
    dims: &[usize],
    outer: usize,
    widths: &[usize],
    part: usize,
    value: usize,
) -> Option<OperandView> {
    let g = widths.iter().fold(0usize, |g, &w| gcd(g, w));
    if g == 0 || part >= widths.len() {
        return None;
    }
    let total: usize = widths.iter().try_fold(0usize, |a, &w| a.checked_add(w))?;
    let start: usize = widths[..part].iter().sum();
    let width = widths[part];
    let src_dims = [outer, total / g, g];
    let digits = decompose(view, dims, &src_dims)?;
    let t = [i64::try_from(width).ok()?, i64::try_from(g).ok()?, 1i64];
    let (first, last) = ((start / g) as i64, ((start + width) / g) as i64);
    let mut offset = -first.checked_mul(t[1])?;
    for (&d, &tk) in digits.base.iter().zip(&t) {
        offset = offset.checked_add(d.checked_mul(tk)?)?;
    }
    let mut bounds: Vec<(usize, usize)> = digits
        .extents
        .iter()
        .map(|&(lo, hi)| (lo as usize, hi as usize))
        .collect();
    let walkers: Vec<usize> = (0..dims.len())
        .filter(|&d| matches!(digits.map[d], Some((1, _))))
        .collect();
    let c = digits.base[1];
    match walkers.as_slice() {
        [] if (first..last).contains(&c) => {}
        [d] => {
            let (_, step) = digits.map[*d]?;
            let (lo, hi) = digits.extents[*d];
            let new_lo = lo.max(lo + div_ceil(first - c, step));
            let new_hi = hi.min(lo + div_floor(last - 1 - c, step) + 1);
            if new_lo >= new_hi {
                return None;
            }
            bounds[*d] = (new_lo as usize, new_hi as usize);
        }
        _ => return None,
    }
    let mut strides = vec![0i64; dims.len()];
    for (d, m) in digits.map.iter().enumerate() {
        if let Some((k, step)) = *m {
            strides[d] = step.checked_mul(t[k])?;
            offset = offset.checked_sub(strides[d].checked_mul(digits.extents[d].0)?)?;
        }
    }
    let full = bounds
        .iter()
        .zip(dims)
        .all(|(&(lo, hi), &n)| lo == 0 && hi == n);
    Some(OperandView {
        value,
        offset,
        strides,
        bounds: (!full).then_some(bounds),
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn div_floor(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

fn div_ceil(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element's read index of `view` over `dims` (None where the bounds give 0).
    fn reads(view: &OperandView, dims: &[usize]) -> Vec<Option<i64>> {
        let total: usize = dims.iter().product();
        (0..total)
            .map(|mut f| {
                let mut idx = vec![0usize; dims.len()];
                for d in (0..dims.len()).rev() {
                    idx[d] = f % dims[d];
                    f /= dims[d];
                }
                let inside = view
                    .bounds
                    .as_ref()
                    .is_none_or(|b| idx.iter().zip(b).all(|(&i, &(lo, hi))| lo <= i && i < hi));
                inside.then(|| {
                    view.offset
                        + idx
                            .iter()
                            .zip(&view.strides)
                            .map(|(&i, &s)| i as i64 * s)
                            .sum::<i64>()
                })
            })
            .collect()
    }

    #[test]
    fn transpose_composes_into_swapped_strides() {
        // src [2, 3]; transposed copy out [3, 2] with strides [1, 3].
        let view = contiguous(7, &[3, 2]);
        let composed = through_strided(&view, &[3, 2], &[3, 2], &[1, 3], 0, 1).unwrap();
        assert_eq!(composed.strides, vec![1, 3]);
        assert_eq!(composed.offset, 0);
        assert_eq!(composed.value, 1);
    }

    #[test]
    fn narrow_of_flat_iteration_is_refused_when_it_carries() {
        // src [4, 5] narrowed to columns 1..4 (out [4, 3], strides [5, 1], offset 1), read as a
        // flat [12]: the flat index carries across rows, so no single stride describes it.
        let view = contiguous(7, &[12]);
        assert!(through_strided(&view, &[12], &[4, 3], &[5, 1], 1, 1).is_none());
        // Read as [4, 3] it composes: element (r, c) reads 5r + c + 1.
        let view = contiguous(7, &[4, 3]);
        let composed = through_strided(&view, &[4, 3], &[4, 3], &[5, 1], 1, 1).unwrap();
        let expected: Vec<Option<i64>> = (0..4)
            .flat_map(|r| (0..3).map(move |c| Some(5 * r + c + 1)))
            .collect();
        assert_eq!(reads(&composed, &[4, 3]), expected);
    }

    #[test]
    fn padding_becomes_bounds() {
        // x [2, 3] padded on axis 1 with 1 before and 2 after: cat widths [1, 3, 2], outer 2.
        let view = contiguous(9, &[2, 6]);
        let composed = through_cat(&view, &[2, 6], 2, &[1, 3, 2], 1, 4).unwrap();
        let expected: Vec<Option<i64>> = (0..2)
            .flat_map(|r| (0..6).map(move |c| (1..4).contains(&c).then_some(3 * r + c - 1)))
            .collect();
        assert_eq!(reads(&composed, &[2, 6]), expected);
    }

    #[test]
    fn padding_of_a_middle_axis_bounds_that_axis() {
        // x [2, 2, 3] padded on axis 1 by 1 before: cat outer 2, widths [3, 6].
        let dims = [2, 3, 3];
        let view = contiguous(9, &dims);
        let composed = through_cat(&view, &dims, 2, &[3, 6], 1, 4).unwrap();
        let mut expected = Vec::new();
        for a in 0..2i64 {
            for b in 0..3i64 {
                for c in 0..3i64 {
                    expected.push((b >= 1).then_some(6 * a + 3 * (b - 1) + c));
                }
            }
        }
        assert_eq!(reads(&composed, &dims), expected);
    }
}
