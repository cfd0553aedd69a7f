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
//   m, n and k are at most INT_MAX − 256 (the host refuses larger ones): the k loop's `int`
//   counter steps up to one slice (BK ≤ 16) past k, which must not overflow.
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

// Register staging of one k-slice: LOADS elements of op(A) and of op(B) per thread.
template <class T, int TM>
struct MatmulStage {
    T a[MatmulShape<T, TM>::LOADS];
    T b[MatmulShape<T, TM>::LOADS];
};

// Global → registers for the slice starting at k0. Scalar path: element l = tid + i·256 of the
// TILE×BK slice, coalesced along the contiguous dimension, bounds-checked (zero fill).
// Vector path (VEC, f32 only, taken when every float4 is 16-byte aligned): one float4 per
// thread and matrix, along the contiguous dimension; with the dimensions multiples of 4 a
// float4 is either wholly inside the matrix or wholly outside.
template <class T, int TM, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void mm_load(MatmulStage<T, TM>& st, const T* az, const T* bz, int m,
                                        int n, int k, cv_i64 row0, cv_i64 col0, int k0,
                                        int tid) {
    typedef MatmulShape<T, TM> S;
    if constexpr (VEC) {
        // A: (r, kk..kk+3) when row-major m×k; (kk, r..r+3) when stored k×m.
        const int ar = TA ? (tid % (S::TILE / 4)) * 4 : tid / (S::BK / 4);
        const int ak = TA ? tid / (S::TILE / 4) : (tid % (S::BK / 4)) * 4;
        const cv_i64 gr = row0 + ar;
        const int gk = k0 + ak;
        float4 va = make_float4(0.f, 0.f, 0.f, 0.f);
        if (gr < m && gk < k) {
            va = *reinterpret_cast<const float4*>(TA ? az + (cv_i64)gk * m + gr : az + gr * k + gk);
        }
        st.a[0] = va.x;
        st.a[1] = va.y;
        st.a[2] = va.z;
        st.a[3] = va.w;
        // B: (kk, c..c+3) when row-major k×n; (c, kk..kk+3) when stored n×k.
        const int bc = TB ? tid / (S::BK / 4) : (tid % (S::TILE / 4)) * 4;
        const int bk = TB ? (tid % (S::BK / 4)) * 4 : tid / (S::TILE / 4);
        const cv_i64 gc = col0 + bc;
        const int gkb = k0 + bk;
        float4 vb = make_float4(0.f, 0.f, 0.f, 0.f);
        if (gc < n && gkb < k) {
            vb = *reinterpret_cast<const float4*>(TB ? bz + gc * k + gkb : bz + (cv_i64)gkb * n + gc);
        }
        st.b[0] = vb.x;
        st.b[1] = vb.y;
        st.b[2] = vb.z;
        st.b[3] = vb.w;
    } else {
#pragma unroll
        for (int i = 0; i < S::LOADS; ++i) {
            const int l = tid + i * MM_THREADS;
            const int ar = TA ? l % S::TILE : l / S::BK;
            const int ak = TA ? l / S::TILE : l % S::BK;
            const cv_i64 gr = row0 + ar;
            const int gk = k0 + ak;
            st.a[i] = (gr < m && gk < k) ? (TA ? az[(cv_i64)gk * m + gr] : az[gr * k + gk]) : T(0);
            const int bc = TB ? l / S::BK : l % S::TILE;
            const int bk = TB ? l % S::BK : l / S::TILE;
            const cv_i64 gc = col0 + bc;
            const int gkb = k0 + bk;
            st.b[i] = (gc < n && gkb < k) ? (TB ? bz[gc * k + gkb] : bz[(cv_i64)gkb * n + gc]) : T(0);
        }
    }
}

// Registers → shared buffers As[kk][r] (A transposed) and Bs[kk][c], mirroring mm_load.
template <class T, int TM, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void mm_store(const MatmulStage<T, TM>& st,
                                         T (*As)[MatmulShape<T, TM>::LD],
                                         T (*Bs)[MatmulShape<T, TM>::LD], int tid) {
    typedef MatmulShape<T, TM> S;
    if constexpr (VEC) {
        const int ar = TA ? (tid % (S::TILE / 4)) * 4 : tid / (S::BK / 4);
        const int ak = TA ? tid / (S::TILE / 4) : (tid % (S::BK / 4)) * 4;
        const int bc = TB ? tid / (S::BK / 4) : (tid % (S::TILE / 4)) * 4;
        const int bk = TB ? (tid % (S::BK / 4)) * 4 : tid / (S::TILE / 4);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            if (TA) {
                As[ak][ar + e] = st.a[e];
            } else {
                As[ak + e][ar] = st.a[e];
            }
            if (TB) {
                Bs[bk + e][bc] = st.b[e];
            } else {
                Bs[bk][bc + e] = st.b[e];
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < S::LOADS; ++i) {
            const int l = tid + i * MM_THREADS;
            As[TA ? l / S::TILE : l % S::BK][TA ? l % S::TILE : l / S::BK] = st.a[i];
            Bs[TB ? l % S::BK : l / S::TILE][TB ? l / S::BK : l % S::TILE] = st.b[i];
        }
    }
}

template <class T, int TM, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void matmul_tiles(const T* a, const T* b, T* c, int m, int n, int k,
                                             cv_i64 batch, cv_i64 stride_a, cv_i64 stride_b,
                                             cv_i64 stride_c, T alpha, T beta,
                                             T (*As)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD],
                                             T (*Bs)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD]) {
    typedef MatmulShape<T, TM> S;
    const int tx = (int)threadIdx.x;
    const int ty = (int)threadIdx.y;
    const int tid = ty * 16 + tx;

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
                MatmulStage<T, TM> st;
                mm_load<T, TM, TA, TB, VEC>(st, az, bz, m, n, k, row0, col0, 0, tid);
                mm_store<T, TM, TA, TB, VEC>(st, As[0], Bs[0], tid);
                __syncthreads();
                int buf = 0;
                for (int k0 = 0; k0 < k; k0 += S::BK) {
                    const bool more = k0 + S::BK < k;
                    if (more) {
                        mm_load<T, TM, TA, TB, VEC>(st, az, bz, m, n, k, row0, col0, k0 + S::BK,
                                                    tid);
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
                        mm_store<T, TM, TA, TB, VEC>(st, As[buf ^ 1], Bs[buf ^ 1], tid);
                    }
                    __syncthreads();
                    buf ^= 1;
                }
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

template <class T, int TM, bool VEC>
__device__ __forceinline__ void matmul_dispatch(const T* a, const T* b, T* c, int m, int n, int k,
                                                cv_i64 batch, cv_i64 sa, cv_i64 sb, cv_i64 sc,
                                                int trans_a, int trans_b, T alpha, T beta,
                                                T (*As)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD],
                                                T (*Bs)[MatmulShape<T, TM>::BK][MatmulShape<T, TM>::LD]) {
    if (trans_a) {
        if (trans_b) {
            matmul_tiles<T, TM, true, true, VEC>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        } else {
            matmul_tiles<T, TM, true, false, VEC>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        }
    } else if (trans_b) {
        matmul_tiles<T, TM, false, true, VEC>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    } else {
        matmul_tiles<T, TM, false, false, VEC>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    }
}

template <class T, int TM>
__device__ __forceinline__ void matmul_kernel(const T* a, const T* b, T* c, int m, int n, int k,
                                              cv_i64 batch, cv_i64 sa, cv_i64 sb, cv_i64 sc,
                                              int trans_a, int trans_b, T alpha, T beta) {
    // Declared once here (not per case) so all cases share the memory.
    typedef MatmulShape<T, TM> S;
    __shared__ __align__(16) T As[2][S::BK][S::LD];
    __shared__ __align__(16) T Bs[2][S::BK][S::LD];
    // float4 loads when every vector is 16-byte aligned: f32, aligned bases and batch strides,
    // and the contiguous dimension of each matrix a multiple of 4.
    const bool vec = sizeof(T) == 4 && ((cv_u64)a % 16 == 0) && ((cv_u64)b % 16 == 0) &&
                     sa % 4 == 0 && sb % 4 == 0 && (trans_a ? m : k) % 4 == 0 &&
                     (trans_b ? k : n) % 4 == 0;
    if constexpr (sizeof(T) == 4) {
        if (vec) {
            matmul_dispatch<T, TM, true>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b,
                                         alpha, beta, As, Bs);
            return;
        }
    }
    matmul_dispatch<T, TM, false>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                                  beta, As, Bs);
}

#define CV_MATMUL_KERNEL(dt, T, TM)                                                           \
    extern "C" __global__ void __launch_bounds__(256) matmul_##dt(const T* a, const T* b, T* c, int m, int n, int k, \
                                           long long batch, long long stride_a,               \
                                           long long stride_b, long long stride_c,            \
                                           int trans_a, int trans_b, T alpha, T beta) {       \
        matmul_kernel<T, TM>(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a,  \
                             trans_b, alpha, beta);                                           \
    }
CV_MATMUL_KERNEL(f32, float, 8)
CV_MATMUL_KERNEL(f64, double, 4)
