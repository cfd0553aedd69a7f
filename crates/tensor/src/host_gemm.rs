//! Matrix products of host slices through the `gemm` crate (tuned, SIMD, multi-threaded), with
//! every matrix a strided view of a slice that is checked against the slice before the call.
//!
//! ```
//! use curvature_tensor::host_gemm::{gemm, Gemm, Operand};
//!
//! # fn main() -> curvature_tensor::Result<()> {
//! // [2, 3] · [3, 2]ᵀ-stored-as-[2, 3]: the right operand is read transposed.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
//! let mut c = [0.0; 4];
//! gemm(Gemm {
//!     m: 2,
//!     n: 2,
//!     k: 3,
//!     dst: Operand::row_major(&mut c[..], 2),
//!     accumulate: false,
//!     lhs: Operand::row_major(&a[..], 3),
//!     rhs: Operand::transposed(&b[..], 3),
//!     parallel: false,
//! })?;
//! assert_eq!(c, [4.0, 2.0, 10.0, 5.0]);
//! # Ok(())
//! # }
//! ```

use gemm::Parallelism;

use crate::{Element, Result, TensorError};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_FLOPS: usize = 1 << 18;

/// A matrix view of a slice: element (r, c) is `data[r·row_stride + c·col_stride]`.
#[derive(Debug)]
pub struct Operand<S> {
    data: S,
    row_stride: usize,
    col_stride: usize,
}

impl<S> Operand<S> {
    /// A view with the given element strides.
    pub fn strided(data: S, row_stride: usize, col_stride: usize) -> Operand<S> {
        Operand {
            data,
            row_stride,
            col_stride,
        }
    }

    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: S, cols: usize) -> Operand<S> {
        Operand::strided(data, cols, 1)
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: S, cols: usize) -> Operand<S> {
        Operand::strided(data, 1, cols)
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
#[derive(Debug)]
pub struct Gemm<'a, T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: Operand<&'a mut [T]>,
    /// Add to `dst` instead of overwriting it.
    pub accumulate: bool,
    pub lhs: Operand<&'a [T]>,
    pub rhs: Operand<&'a [T]>,
    /// Split products of at least 2¹⁸ multiply-adds over the thread pool (for calls made from
    /// a single thread). Threads only divide the output tiles between them; each element's sum
    /// over k runs in the same order either way, so results do not depend on the thread count.
    pub parallel: bool,
}

/// Runs one [`Gemm`]. Every view is checked against its slice with overflow-checked
/// arithmetic first: a view that does not fit is an error naming it, never an out-of-bounds
/// access. With `k = 0` the product is zero (`dst` is zeroed, or left as it is when
/// accumulating).
pub fn gemm<T: Element>(g: Gemm<'_, T>) -> Result<()> {
    let Gemm { m, n, k, .. } = g;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let out_of_bounds =
        |what: &str, rows: usize, cols: usize, len: usize| TensorError::InvalidArgument {
            op: "gemm",
            msg: format!("{what}: a {rows} × {cols} view does not fit its {len} elements"),
        };
    if !g.dst.fits(m, n, g.dst.data.len()) {
        return Err(out_of_bounds("dst out of bounds", m, n, g.dst.data.len()));
    }
    if k == 0 {
        if !g.accumulate {
            for r in 0..m {
                for c in 0..n {
                    g.dst.data[r * g.dst.row_stride + c * g.dst.col_stride] = T::zero();
                }
            }
        }
        return Ok(());
    }
    if !g.lhs.fits(m, k, g.lhs.data.len()) {
        return Err(out_of_bounds("lhs out of bounds", m, k, g.lhs.data.len()));
    }
    if !g.rhs.fits(k, n, g.rhs.data.len()) {
        return Err(out_of_bounds("rhs out of bounds", k, n, g.rhs.data.len()));
    }
    let work = m.saturating_mul(n).saturating_mul(k);
    let parallelism = if g.parallel && work >= PARALLEL_FLOPS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the `fits` checks above show, with overflow-checked arithmetic, that every
    // element each view addresses (row r < its rows, column c < its columns) lies inside its
    // slice and that every stride fits `isize`, so the `as isize` casts are exact; `dst` is
    // borrowed mutably, so it overlaps neither operand; `m, n, k ≥ 1` here. With
    // `read_dst = false` the destination is only written.
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
    Ok(())
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
    fn gemm_refuses_a_view_whose_extent_wraps() {
        let stride = 0xAAAA_AAAA_AAAA_AAAB_u64 as usize;
        let lhs = [1.0f64];
        let rhs = [1.0f64; 4];
        let mut dst = [0.0f64; 3];
        let err = gemm(Gemm {
            m: 3,
            n: 1,
            k: stride,
            dst: Operand::row_major(&mut dst[..], 1),
            accumulate: false,
            lhs: Operand::row_major(&lhs[..], stride),
            rhs: Operand::row_major(&rhs[..], 1),
            parallel: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("gemm: lhs out of bounds"), "{err}");
        assert_eq!(dst, [0.0; 3], "nothing is written");
    }

    #[test]
    fn an_empty_sum_zeroes_or_keeps_the_destination() {
        let mut dst = [5.0f64; 4];
        let product = |dst: &mut [f64], accumulate| {
            gemm(Gemm {
                m: 2,
                n: 2,
                k: 0,
                dst: Operand::row_major(dst, 2),
                accumulate,
                lhs: Operand::row_major(&[][..], 0),
                rhs: Operand::row_major(&[][..], 2),
                parallel: false,
            })
        };
        product(&mut dst, true).unwrap();
        assert_eq!(dst, [5.0; 4]);
        product(&mut dst, false).unwrap();
        assert_eq!(dst, [0.0; 4]);
    }
}
