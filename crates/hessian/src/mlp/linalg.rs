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

    /// The largest index an `rows × cols` view touches, plus one.
    fn extent(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride + 1
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

/// Runs one [`Gemm`]. The views are checked against their slices, so a wrong stride is a panic
/// (a bug in this module's callers), never an out-of-bounds access.
pub(crate) fn gemm<T: Element>(g: Gemm<'_, T>) {
    let Gemm { m, n, k, .. } = g;
    if m == 0 || n == 0 {
        return;
    }
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
        g.dst.extent(m, n) <= g.dst.data.len(),
        "gemm: dst out of bounds"
    );
    assert!(
        g.lhs.extent(m, k) <= g.lhs.data.len(),
        "gemm: lhs out of bounds"
    );
    assert!(
        g.rhs.extent(k, n) <= g.rhs.data.len(),
        "gemm: rhs out of bounds"
    );
    let parallelism = if g.parallel && m * n * k >= 1 << 18 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above show every element each view addresses lies inside its slice;
    // `dst` is borrowed mutably, so it overlaps neither operand.
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
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_vector_units() {
            // SAFETY: the CPU supports the features `avx2` is compiled with.
            return unsafe { avx2(f) };
        }
    }
    f()
}
