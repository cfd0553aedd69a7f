// gemm_splitk.cuh: the split-K arrival of a GEMM block tile, inserted into matmul.cu where it
// says `#include "gemm_splitk.cuh"` (as text: KernelFamily::source and the emulator's build
// script expand the line).
//
// With splits > 1, every (batch index z, block tile) is computed by `splits` blocks, one per
// k range. Each writes its raw sums into the workspace `partial` ([splits][batch][m][n]
// elements), makes them visible device-wide (__threadfence), and one thread counts the
// arrival in the tile's counter (`tile_counters[(z·tiles_m + tile_row)·tiles_n + tile_col]`,
// unsigned, 0 before the launch). The block that arrives last (counter at splits − 1) sums
// every split's partial in increasing split order, starting from 0 (so the result is bitwise
// the same whichever block arrives last, run after run), resets the counter to 0 for the next
// launch, and goes on to the epilogue and the store of C. The other blocks are done with the
// tile. No block waits for another, so blocks may run in any order (the emulated GPU runs
// them one after another).

// Whether this block is the last of the tile's splits to arrive; the last one's `acc` becomes
// the fixed-order sum of all splits. The caller's block is converged (a block-uniform branch).
// `rows`, `cols`: the tile's extent inside C; `row_base`, `col_base`: this thread's first row
// and column in the tile (the mapping of matmul.cu's store path).
template <class T, class S>
__device__ __forceinline__ bool gemm_splitk_arrive(T* partial, unsigned* tile_counters, int m,
                                                   int n, cv_i64 batch, int splits, cv_i64 z,
                                                   int split, cv_i64 row0, cv_i64 col0,
                                                   int rows, int cols, int row_base,
                                                   int col_base, T (&acc)[S::TM][S::TN]) {
    __shared__ unsigned splitk_last[1];
    const cv_i64 ld = n;
    const cv_i64 plane = (cv_i64)m * ld;
    T* own = partial + ((cv_i64)split * batch + z) * plane + row0 * ld + col0;
#pragma unroll
    for (int i = 0; i < S::TM; ++i) {
        const int r = row_base + 4 * S::CW * (i / S::CW) + i % S::CW;
#pragma unroll
        for (int j = 0; j < S::TN; ++j) {
            const int c = col_base + 8 * S::CW * (j / S::CW) + j % S::CW;
            if (r < rows && c < cols) {
                own[r * ld + c] = acc[i][j];
            }
        }
    }
    // Every thread's partial is visible to the whole device before the arrival is counted.
    __threadfence();
    __syncthreads();
    const cv_i64 tiles_n = (ld + S::BN - 1) / S::BN;
    const cv_i64 tiles_m = ((cv_i64)m + S::BM - 1) / S::BM;
    unsigned* counter = tile_counters + (z * tiles_m + row0 / S::BM) * tiles_n + col0 / S::BN;
    if (threadIdx.x == 0) {
        const unsigned arrived = atomicAdd(counter, 1u);
        const bool last = arrived + 1 == (unsigned)splits;
        if (last) {
            // Every other split has arrived; none touches the counter again in this launch.
            *counter = 0;
        }
        splitk_last[0] = last ? 1u : 0u;
    }
    __syncthreads();
    const bool last = splitk_last[0] != 0;
    if (!last) {
        return false;
    }
    // The other splits' partials were made visible before their arrivals were counted; read
    // them past the (non-coherent) L1 cache.
    __threadfence();
    const T* base = partial + z * plane + row0 * ld + col0;
#pragma unroll
    for (int i = 0; i < S::TM; ++i) {
        const int r = row_base + 4 * S::CW * (i / S::CW) + i % S::CW;
#pragma unroll
        for (int j = 0; j < S::TN; ++j) {
            const int c = col_base + 8 * S::CW * (j / S::CW) + j % S::CW;
            if (r < rows && c < cols) {
                T sum = T(0);
                for (int s = 0; s < splits; ++s) {
                    sum += s == split ? acc[i][j]
                                      : __ldcg(base + (cv_i64)s * batch * plane + r * ld + c);
                }
                acc[i][j] = sum;
            }
        }
    }
    return true;
}
