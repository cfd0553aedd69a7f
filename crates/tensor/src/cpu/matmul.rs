//! Matrix products through the `gemm` crate (tuned, SIMD, multi-threaded).

use gemm::Parallelism;

use crate::backend::MatmulSpec;
use crate::Element;

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_FLOPS: usize = 1 << 18;

pub fn matmul<T: Element>(a: &[T], b: &[T], spec: &MatmulSpec) -> Vec<T> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let mut out = vec![T::zero(); batch * m * n];
    if m == 0 || n == 0 {
        return out;
    }
    // Row-major element strides (row stride, column stride) of op(A) and op(B).
    let (a_rs, a_cs) = if spec.trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if spec.trans_b { (1, k) } else { (n, 1) };
    let parallelism = if m * n * k >= PARALLEL_FLOPS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    for z in 0..batch {
        let a_z = &a[z * spec.stride_a..];
        let b_z = &b[z * spec.stride_b..];
        let c_z = &mut out[z * m * n..(z + 1) * m * n];
        // SAFETY: the pointers and strides describe in-bounds matrices: `a_z` holds at least
        // m·k elements read with strides (a_rs, a_cs) covering exactly m×k (or its transpose),
        // likewise `b_z` with k×n, and `c_z` is an exclusively borrowed m×n row-major block.
        // `read_dst = false`, so the zero-initialised destination is only written.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c_z.as_mut_ptr(),
                1,
                n as isize,
                false,
                a_z.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b_z.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                T::zero(),
                T::one(),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    out
}
