// matmul.cu: tiled, register-blocked, double-buffered batched GEMM.
//
// matmul_{dt}(const T* a, const T* b, T* c, int m, int n, int k, long long batch,
//             long long stride_a, long long stride_b, long long stride_c,
//             int trans_a, int trans_b, T alpha, T beta)
//   For every batch index z in [0, batch):
//     C_z[m×n] = alpha·op(A_z)·op(B_z) + beta·C_z
//   with A_z = a + z·stride_a, B_z = b + z·stride_b, C_z = c + z·stride_c (element strides;
//   stride 0 broadcasts one matrix over the batch). op(A) is A stored row-major m×k, or, when
//   trans_a != 0, A stored row-major k×m and transposed. Likewise op(B): k×n, or n×k when
//   trans_b != 0. When beta == 0, C is not read (it may hold NaN garbage).
//
// Launch: block (16, 16, 1) — exactly 256 threads; grid (ceil(n / TILE), ceil(m / TILE),
//   min(batch, 65535)) with TILE = 128 for f32 and 64 for f64. Smaller grids are correct too:
//   every grid dimension is a grid-stride loop.
//
// Scheme: a block computes a TILE×TILE tile of C, each thread a TM×TM register block (TM = 8
// for f32, 4 for f64, so f64 does not spill) made of 4×4 chunks at rows ty·4 + 64q + {0..3} and
// columns tx·4 + 64q + {0..3}: the shared-memory reads of a chunk are 4 consecutive values
// (vectorisable; broadcast or conflict-free) and global stores are contiguous. k advances BK at
// a time through two shared-memory buffers As[BK][TILE] (A transposed) and Bs[BK][TILE]: the
// next slice is loaded from global memory into registers while the current one is multiplied,
// then stored into the other buffer, so there is one barrier per slice. Global loads are
// coalesced along whichever dimension is contiguous in memory and bounds-checked (zero fill).
// The transpose flags are template parameters, so each of the four cases has straight-line
// index arithmetic.

#define MM_THREADS 256

template <class T, int TM>
struct MatmulShape {
    static const int TILE = 16 * TM;
    static const int BK = 1024 / TILE;  // 8 for f32, 16 for f64: 4 loads per thread per matrix
    static const int LOADS = TILE * BK / MM_THREADS;
    static const int CHUNKS = TM / 4;
    // Row padding keeps rows 16-byte aligned and the transposing stores conflict-free.
    static const int LD = TILE + 4;
};

template <class T, int TM, bool TA, bool TB>
__device__ __forceinline__ void matmul_tiles(const T* a, const T* b, T* c, int m, int n, int k,
                                             cv_i64 batch, cv_i64 stride_a, cv_i64 stride_b,
                                             cv_i64 stride_c, T alpha, T beta,
                                             T (*As)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD],
                                             T (*Bs)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD]) {
    typedef MatmulShape<T, TM> S;
    const int tx = (int)threadIdx.x;
    const int ty = (int)threadIdx.y;
    const int tid = ty * 16 + tx;

    // This thread's share of each slice: element l = tid + i·256 of the TILE×BK slice, at
    // (row or column, kk) — fixed per thread, only k0 moves.
    int a_r[S::LOADS], a_k[S::LOADS], b_c[S::LOADS], b_k[S::LOADS];
#pragma unroll
    for (int i = 0; i < S::LOADS; ++i) {
        const int l = tid + i * MM_THREADS;
        a_r[i] = TA ? l % S::TILE : l / S::BK;
        a_k[i] = TA ? l / S::TILE : l % S::BK;
        b_c[i] = TB ? l / S::BK : l % S::TILE;
        b_k[i] = TB ? l % S::BK : l / S::TILE;
    }

    for (cv_i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* az = a + z * stride_a;
        const T* bz = b + z * stride_b;
        T* cz = c + z * stride_c;
        for (cv_i64 row0 = (cv_i64)blockIdx.y * S::TILE; row0 < m;
             row0 += (cv_i64)gridDim.y * S::TILE) {
            for (cv_i64 col0 = (cv_i64)blockIdx.x * S::TILE; col0 < n;
                 col0 += (cv_i64)gridDim.x * S::TILE) {
                T acc[TM][TM];
#pragma unroll
                for (int i = 0; i < TM; ++i) {
#pragma unroll
                    for (int j = 0; j < TM; ++j) {
                        acc[i][j] = T(0);
                    }
                }
                T sa[S::LOADS];
                T sb[S::LOADS];
                // Global → registers for the slice starting at k0.
#define MM_LOAD(k0)                                                                              \
    _Pragma("unroll") for (int i = 0; i < S::LOADS; ++i) {                                     \
        const cv_i64 gr = row0 + a_r[i];                                                       \
        const int gk = (k0) + a_k[i];                                                          \
        sa[i] = (gr < m && gk < k) ? (TA ? az[(cv_i64)gk * m + gr] : az[gr * k + gk]) : T(0);  \
        const cv_i64 gc = col0 + b_c[i];                                                       \
        const int gkb = (k0) + b_k[i];                                                         \
        sb[i] = (gc < n && gkb < k) ? (TB ? bz[gc * k + gkb] : bz[(cv_i64)gkb * n + gc]) : T(0); \
    }
                // Registers → shared buffer `buf`, A transposed to As[kk][r].
#define MM_STORE(buf)                                                                            \
    _Pragma("unroll") for (int i = 0; i < S::LOADS; ++i) {                                     \
        As[buf][a_k[i]][a_r[i]] = sa[i];                                                       \
        Bs[buf][b_k[i]][b_c[i]] = sb[i];                                                       \
    }
                MM_LOAD(0)
                MM_STORE(0)
                __syncthreads();
                int buf = 0;
                for (int k0 = 0; k0 < k; k0 += S::BK) {
                    const bool more = k0 + S::BK < k;
                    if (more) {
                        MM_LOAD(k0 + S::BK)
                    }
#pragma unroll
                    for (int kk = 0; kk < S::BK; ++kk) {
                        T af[TM];
                        T bf[TM];
#pragma unroll
                        for (int q = 0; q < S::CHUNKS; ++q) {
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                af[4 * q + e] = As[buf][kk][64 * q + ty * 4 + e];
                                bf[4 * q + e] = Bs[buf][kk][64 * q + tx * 4 + e];
                            }
                        }
#pragma unroll
                        for (int i = 0; i < TM; ++i) {
#pragma unroll
                            for (int j = 0; j < TM; ++j) {
                                acc[i][j] += af[i] * bf[j];
                            }
                        }
                    }
                    if (more) {
                        // The other buffer was last read before the previous barrier.
                        MM_STORE(buf ^ 1)
                    }
                    __syncthreads();
                    buf ^= 1;
                }
#undef MM_LOAD
#undef MM_STORE
#pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const cv_i64 gr = row0 + 64 * (i / 4) + ty * 4 + (i % 4);
                    if (gr >= m) {
                        continue;
                    }
#pragma unroll
                    for (int j = 0; j < TM; ++j) {
                        const cv_i64 gc = col0 + 64 * (j / 4) + tx * 4 + (j % 4);
                        if (gc < n) {
                            T* dst = cz + gr * n + gc;
                            *dst = beta == T(0) ? alpha * acc[i][j]
                                                : alpha * acc[i][j] + beta * *dst;
                        }
                    }
                }
            }
        }
    }
}

template <class T, int TM>
__device__ __forceinline__ void matmul_kernel(const T* a, const T* b, T* c, int m, int n, int k,
                                              cv_i64 batch, cv_i64 sa, cv_i64 sb, cv_i64 sc,
                                              int trans_a, int trans_b, T alpha, T beta) {
    // Declared once here (not in each transpose case) so the four cases share the memory.
    typedef MatmulShape<T, TM> S;
    __shared__ __align__(16) T As[2][S::BK][S::LD];
    __shared__ __align__(16) T Bs[2][S::BK][S::LD];
    if (trans_a) {
        if (trans_b) {
            matmul_tiles<T, TM, true, true>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        } else {
            matmul_tiles<T, TM, true, false>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        }
    } else if (trans_b) {
        matmul_tiles<T, TM, false, true>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    } else {
        matmul_tiles<T, TM, false, false>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    }
}

#define CV_MATMUL_KERNEL(dt, T, TM)                                                           \
    extern "C" __global__ void matmul_##dt(const T* a, const T* b, T* c, int m, int n, int k, \
                                           long long batch, long long stride_a,               \
                                           long long stride_b, long long stride_c,            \
                                           int trans_a, int trans_b, T alpha, T beta) {       \
        matmul_kernel<T, TM>(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a,  \
                             trans_b, alpha, beta);                                           \
    }
CV_MATMUL_KERNEL(f32, float, 8)
CV_MATMUL_KERNEL(f64, double, 4)
