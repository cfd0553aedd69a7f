// gemm_splitk.cuh: split-K in one launch, inserted into matmul.cu where it says
// `#include "gemm_splitk.cuh"` (as text: KernelFamily::source and the emulator's build script
// expand the line).
//
// With splits > 1, every (batch index z, block tile) is computed by `splits` blocks, one per
// k range. Each stores its raw sums into its slice of the workspace `partial`
// ([splits][batch][m][n] elements, gemm_splitk_slice), makes them visible device-wide
// (__threadfence), and one thread counts the arrival in the tile's counter
// (`tile_counters[(z·tiles_m + tile_row)·tiles_n + tile_col]`, unsigned, 0 before the launch).
// The block that arrives last (counter at splits − 1) resets the counter to 0 for the next
// launch and, for each element of the tile, adds every split's partial in increasing split
// order starting from 0 (so the result is bitwise the same whichever block arrives last, run
// after run), applies the epilogue and stores C. No block waits for another, so blocks may run
// in any order (the emulated GPU runs them one after another).

// Split `split` of batch index z in the workspace: an m×n row-major matrix.
template <class T>
__device__ __forceinline__ T* gemm_splitk_slice(const GemmArgs<T>& p, cv_i64 z, int split) {
    return p.partial + ((cv_i64)split * p.batch + z) * ((cv_i64)p.m * p.n);
}

// Called by the whole block once its partial tile is stored: counts the arrival and, in the
// last block of the tile, sums the splits and stores C with the epilogue. Not inlined, so the
// GEMM's main loop keeps its register allocation (the accumulators are dead by the call). `rows`, `cols`: the
// tile's extent inside C; `row_base`, `col_base`: this thread's first row and column in the
// tile (the element mapping of matmul.cu's store path, so each thread reads back elements it
// or its counterparts in the other splits stored).
template <class T, class S>
__device__ __noinline__ void gemm_splitk_arrive(const GemmArgs<T>& p, cv_i64 z, cv_i64 row0,
                                                   cv_i64 col0, int rows, int cols,
                                                   int row_base, int col_base) {
    __shared__ unsigned splitk_last[1];
    // Every thread's partial is visible to the whole device before the arrival is counted.
    __threadfence();
    __syncthreads();
    const cv_i64 tiles_n = ((cv_i64)p.n + S::BN - 1) / S::BN;
    const cv_i64 tiles_m = ((cv_i64)p.m + S::BM - 1) / S::BM;
    unsigned* counter = p.tile_counters + (z * tiles_m + row0 / S::BM) * tiles_n + col0 / S::BN;
    if (threadIdx.x == 0) {
        const unsigned arrived = atomicAdd(counter, 1u);
        const bool last = arrived + 1 == (unsigned)p.splits;
        if (last) {
            // Every other split has arrived; none touches the counter again in this launch.
            *counter = 0;
        }
        splitk_last[0] = last ? 1u : 0u;
    }
    __syncthreads();
    if (splitk_last[0] == 0) {
        return;
    }
    // The other splits' partials were made visible before their arrivals were counted; read
    // them past the (non-coherent) L1 cache.
    __threadfence();
    const cv_i64 plane = (cv_i64)p.m * p.n;
    const cv_i64 step = p.batch * plane;
    const T* first = gemm_splitk_slice(p, z, 0) + row0 * p.n + col0;
    T* ct = p.c + z * p.stride_c + row0 * p.ldc + col0;
    // One element at a time: one copy of the code, few registers.
#pragma unroll 1
    for (int e = 0; e < S::TM * S::TN; ++e) {
        const int i = e / S::TN;
        const int j = e % S::TN;
        const int r = gemm_row_of<S>(row_base, i);
        const int c = gemm_col_of<S>(col_base, j);
        if (r < rows && c < cols) {
            const T* at = first + r * (cv_i64)p.n + c;
            T sum = T(0);
            for (int s = 0; s < p.splits; ++s, at += step) {
                sum += __ldcg(at);
            }
            T* dst = ct + r * p.ldc + c;
            const T y = gemm_affine(dst, sum, p.bias, row0 + r, col0 + c, p.alpha, p.beta,
                                    p.bias_kind);
            *dst = gemm_has_activation(p.activation, p.factor)
                       ? gemm_activate(y, p.activation, p.factor)
                       : y;
        }
    }
}
