//! The two primitives of the fused sweeps: a strided matrix product through the `gemm` crate,
//! and running a loop with the CPU's vector extensions enabled.

use curvature_tensor::Element;
use gemm::Parallelism;

/// A matrix view of a slice: element (r, c) is `data[r·row_stride + c·col_stride]`.
pub(crate) struct Operand<S> {
    data: S,
    row_stride: usize,
    col_stride: usize,
}

impl<S> Operand<S> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: S, cols: usize) -> Operand<S> {
        Operand {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: S, cols: usize) -> Operand<S> {
        Operand {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// The largest index a `rows × cols` view touches, plus one, for `rows, cols ≥ 1`; `None`
    /// when that index overflows (so no wrapped product can pass a bounds check).
    fn extent(&self, rows: usize, cols: usize) -> Option<usize> {
        let last_row = rows.checked_sub(1)?.checked_mul(self.row_stride)?;
        let last_col = cols.checked_sub(1)?.checked_mul(self.col_stride)?;
        last_row.checked_add(last_col)?.checked_add(1)
    }

    /// Whether a `rows × cols` view lies inside a slice of `len` elements and its strides fit
    /// the `isize` the `gemm` crate takes.
    fn fits(&self, rows: usize, cols: usize, len: usize) -> bool {
        let strides_fit =
            isize::try_from(self.row_stride).is_ok() && isize::try_from(self.col_stride).is_ok();
        strides_fit && self.extent(rows, cols).is_some_and(|end| end <= len)
    }
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`.
pub(crate) struct Gemm<'a, T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: Operand<&'a mut [T]>,
    /// Add to `dst` instead of overwriting it.
    pub accumulate: bool,
    pub lhs: Operand<&'a [T]>,
    pub rhs: Operand<&'a [T]>,
    /// Split the product over the thread pool (for calls made from a single thread).
    pub parallel: bool,
}

/// Runs one [`Gemm`]. The views are checked against their slices with checked arithmetic, so a
/// wrong stride or size is a panic (a bug in this module's callers: the sweeps size every
/// buffer from the same checked products), never an out-of-bounds access.
pub(crate) fn gemm<T: Element>(g: Gemm<'_, T>) {
    let Gemm { m, n, k, .. } = g;
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        g.dst.fits(m, n, g.dst.data.len()),
        "gemm: dst out of bounds"
    );
    if k == 0 {
        if !g.accumulate {
            for r in 0..m {
                for c in 0..n {
                    g.dst.data[r * g.dst.row_stride + c * g.dst.col_stride] = T::zero();
                }
            }
        }
        return;
    }
    assert!(
        g.lhs.fits(m, k, g.lhs.data.len()),
        "gemm: lhs out of bounds"
    );
    assert!(
        g.rhs.fits(k, n, g.rhs.data.len()),
        "gemm: rhs out of bounds"
    );
    // Splitting over threads only divides the output tiles between them; each element's sum
    // over k runs in the same order either way, so results do not depend on the thread count.
    let work = m.saturating_mul(n).saturating_mul(k);
    let parallelism = if g.parallel && work >= 1 << 18 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the `fits` asserts above show, with overflow-checked arithmetic, that every
    // element each view addresses (row r < its rows, column c < its columns) lies inside its
    // slice and that every stride fits `isize`, so the `as isize` casts are exact; `dst` is
    // borrowed mutably, so it overlaps neither operand; `m, n, k ≥ 1` here.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            g.dst.data.as_mut_ptr(),
            g.dst.col_stride as isize,
            g.dst.row_stride as isize,
            g.accumulate,
            g.lhs.data.as_ptr(),
            g.lhs.col_stride as isize,
            g.lhs.row_stride as isize,
            g.rhs.data.as_ptr(),
            g.rhs.col_stride as isize,
            g.rhs.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether the CPU has AVX2 and FMA, which the vectorised loops are compiled for.
pub(crate) fn has_vector_units() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` compiled for AVX2 and FMA when the CPU has them. Only code inlined into `f` gets
/// the features, so `f` must be small and call `#[inline(always)]` loops.
#[inline(always)]
pub(crate) fn with_vector_units<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_vector_units() {
            // SAFETY: calling a `#[target_feature]` function is sound when the CPU has those
            // features, which `has_vector_units` has just detected at run time.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_that_overflow_are_none_never_a_wrapped_index() {
        // 3 rows of 0xAAAA_AAAA_AAAA_AAAB: 3 · stride wraps to 1 in 64-bit arithmetic.
        let stride = 0xAAAA_AAAA_AAAA_AAAB_u64 as usize;
        let data = [1.0f64];
        let view = Operand::row_major(&data[..], stride);
        assert_eq!(view.extent(3, stride), None);
        assert!(!view.fits(3, stride, 1));
        // A stride beyond isize::MAX never reaches the `as isize` casts, even for one row.
        let view = Operand::transposed(&data[..], usize::MAX);
        assert!(!view.fits(1, 1, 1));
        // An honest view: the last element of a 2 × 3 row-major matrix is index 5.
        let six = [0.0f64; 6];
        assert_eq!(Operand::row_major(&six[..], 3).extent(2, 3), Some(6));
        assert_eq!(Operand::transposed(&six[..], 2).extent(2, 3), Some(6));
    }

    #[test]
    #[should_panic(expected = "gemm: lhs out of bounds")]
    fn gemm_refuses_a_view_whose_extent_wraps() {
        let stride = 0xAAAA_AAAA_AAAA_AAAB_u64 as usize;
        let lhs = [1.0f64];
        let rhs = [1.0f64; 4];
        let mut dst = [0.0f64; 3];
        gemm(Gemm {
            m: 3,
            n: 1,
            k: stride,
            dst: Operand::row_major(&mut dst[..], 1),
            accumulate: false,
            lhs: Operand::row_major(&lhs[..], stride),
            rhs: Operand::row_major(&rhs[..], 1),
            parallel: false,
        });
    }
}
