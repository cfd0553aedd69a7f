// matmul.cu: warp-tiled, register-blocked, double-buffered batched GEMM with leading
// dimensions, split-K in one launch (deterministic) and a fused epilogue.
//
// gemm_{tile}_{dt}(const T* a, const T* b, T* c, const T* bias,
//                  int m, int n, int k, long long batch, int splits,
//                  long long lda, long long ldb, long long ldc,
//                  long long stride_a, long long stride_b, long long stride_c,
//                  int trans_a, int trans_b, T alpha, T beta,
//                  int bias_kind, int activation, int factor,
//                  T* partial, unsigned* tile_counters)
//   tile ∈ {large, small} (sizes below). For every batch index z in [0, batch):
//     C_z = act_factor(alpha·op(A_z)·op(B_z) + beta·C_z + bias)
//   A_z = a + z·stride_a, B_z = b + z·stride_b, C_z = c + z·stride_c (element strides; stride
//   0 broadcasts one matrix over the batch). op(A) is m×k: A(i, p) = A_z[i·lda + p], or, when
//   trans_a != 0, A_z[p·lda + i]. op(B) is k×n: B_z[p·ldb + j], or B_z[j·ldb + p] when
//   trans_b != 0. C(i, j) = C_z[i·ldc + j]. When beta == 0, C is not read (it may hold NaN
//   garbage).
//   Split-K (splits > 1): split s in [0, splits) sums p over [s·kc, min(k, (s + 1)·kc)),
//   kc = ceil(ceil(k / splits) / BK)·BK (a split may be empty), as block work item
//   zz = s·batch + z. Each split stores its raw sums in `partial` (splits·batch·m·n elements,
//   split s of batch index z at (s·batch + z)·m·n, row-major m×n); the last split of each
//   block tile to finish adds all splits in increasing s and applies the epilogue
//   (gemm_splitk.cuh). `tile_counters` holds batch·ceil(m / BM)·ceil(n / BN) unsigned zeros
//   and is left zeroed; launches sharing it must not run concurrently (one stream per device).
//   With splits = 1, `partial` and `tile_counters` are not used.
//   Epilogue, per element: y = alpha·acc (+ beta·C) (+ bias[i] when bias_kind = 1, a column
//   vector of length m; + bias[j] when bias_kind = 2, a row vector of length n); then, with
//   activation 0 identity, 1 tanh, 2 sigmoid (a = act(y)) and factor 0 value, 1 first
//   derivative, 2 second derivative:
//     identity: y, 1, 0;  tanh: t, 1 − t², −2t(1 − t²);  sigmoid: σ, σ(1 − σ), σ(1 − σ)(1 − 2σ).
//   `bias` is not read when bias_kind = 0.
//   m, n and k are at most INT_MAX − 256 (the host refuses larger ones): the k loop's `int`
//   counter steps up to one slice (BK ≤ 32) past k, which must not overflow.
//
// Launch of gemm: block (256, 1, 1); grid (ceil(n / BN), ceil(m / BM), min(batch·splits,
//   65535)). Smaller grids are correct too: every grid dimension is a grid-stride loop.
//
// Tiles (BM × BN, k-slice BK, per-thread TM × TN in CW-wide chunks):
//   f32 large 128×64, BK 16, 8×4;  f32 small 32×32, BK 32, 2×2;
//   f64 large 64×64, BK 16, 4×4;   f64 small 32×32, BK 32, 2×2.
//
// Scheme: 8 warps in a 4 (rows) × 2 (columns) grid, each warp a (4·TM) × (8·TN) tile with its
// lanes in a 4 × 8 grid; a lane owns TM × TN accumulators in chunks of CW × CW at rows
// warp_m·4TM + ic·4CW + lane_m·CW + e and columns warp_n·8TN + jc·8CW + lane_n·CW + e. Its
// shared-memory reads are CW consecutive values (vectorisable; broadcast or conflict-free).
// k advances BK at a time through two shared-memory buffers As[BK][BM] (A transposed) and
// Bs[BK][BN]: the next slice is loaded from global memory into registers while the current
// one is multiplied, then stored into the other buffer, so there is one barrier per slice.
// Global loads are coalesced along whichever dimension is contiguous in memory and
// bounds-checked (zero fill); float4 loads when every vector is 16-byte aligned (f32). The
// transpose flags are template parameters, so each of the four cases has straight-line index
// arithmetic.

#define GEMM_THREADS 256

template <class T, int TM_, int TN_, int BK_>
struct GemmTile {
    static const int TM = TM_;
    static const int TN = TN_;
    static const int CW = TM_ < 4 ? TM_ : 4;
    static const int BM = 16 * TM_;
    static const int BN = 16 * TN_;
    static const int BK = BK_;
    static const int LOADS_A = BM * BK / GEMM_THREADS;
    static const int LOADS_B = BN * BK / GEMM_THREADS;
    // Row padding keeps rows 16-byte aligned and the transposing stores spread over banks.
    static const int LDA = BM + 4;
    static const int LDB = BN + 4;
    static_assert(TM_ % CW == 0 && TN_ % CW == 0, "per-thread tile must be whole chunks");
    static_assert(LOADS_A * GEMM_THREADS == BM * BK, "A slice must split evenly over threads");
    static_assert(LOADS_B * GEMM_THREADS == BN * BK, "B slice must split evenly over threads");
    static_assert(LOADS_A % 4 == 0 && LOADS_B % 4 == 0, "whole float4 vectors per thread");
};

// The epilogue's scalar function of y (see the header), for every activation but the
// identity's value.
template <class T>
__device__ __forceinline__ T gemm_activate(T y, int activation, int factor) {
    if (activation == 1) {
        const T t = cv_tanh(y);
        if (factor == 0) {
            return t;
        }
        const T d = T(1) - t * t;
        return factor == 1 ? d : T(-2) * t * d;
    }
    if (activation == 2) {
        const T s = cv_sigmoid(y);
        if (factor == 0) {
            return s;
        }
        const T d = s * (T(1) - s);
        return factor == 1 ? d : d * (T(1) - T(2) * s);
    }
    return factor == 0 ? y : (factor == 1 ? T(1) : T(0));
}

// The pre-activation of one output element: alpha·acc (+ beta·old) (+ bias).
template <class T>
__device__ __forceinline__ T gemm_affine(const T* dst, T acc, const T* bias, cv_i64 row,
                                         cv_i64 col, T alpha, T beta, int bias_kind) {
    T y = alpha * acc;
    if (beta != T(0)) {
        y += beta * *dst;
    }
    if (bias_kind == 1) {
        y += bias[row];
    } else if (bias_kind == 2) {
        y += bias[col];
    }
    return y;
}

// Whether the epilogue applies a function after the affine part.
__device__ __forceinline__ bool gemm_has_activation(int activation, int factor) {
    return activation != 0 || factor != 0;
}

// Register staging of one k-slice.
template <class T, class S>
struct GemmStage {
    T a[S::LOADS_A];
    T b[S::LOADS_B];
};

// Where one thread's loads of one operand start in the current tile: element (or float4) i of
// the slice at k0 is at ptr + i·step + k0·kstride, in stored row r + i·rstep (bounds-checked
// against the tile's rows or columns) and at k offset koff + i·kstep (checked against k_end).
// Computed once per tile, so the k loop holds one pointer per operand.
template <class T>
struct GemmCursor {
    const T* ptr;
    cv_i64 step;
    cv_i64 kstride;
    int r;
    int koff;
};

// The cursor of an operand whose tile has DIM rows (A: BM) or columns (B: BN), stored
// transposed or not (TRANS: the tile's dimension is contiguous in memory, k strided by ld).
template <class T, int DIM, int BK, bool TRANS, bool VEC>
__device__ __forceinline__ GemmCursor<T> gemm_cursor(const T* base, cv_i64 ld, int tid) {
    const int width = VEC ? 4 : 1;
    GemmCursor<T> cur;
    if (TRANS) {
        // Contiguous along the tile dimension: (k, d) at base + k·ld + d.
        const int per_k = DIM / width;
        cur.r = (tid % per_k) * width;
        cur.koff = tid / per_k;
        cur.step = (cv_i64)(GEMM_THREADS / per_k) * ld;
        cur.kstride = ld;
        cur.ptr = base + (cv_i64)cur.koff * ld + cur.r;
    } else {
        // Contiguous along k: (d, k) at base + d·ld + k.
        const int per_d = BK / width;
        cur.r = tid / per_d;
        cur.koff = (tid % per_d) * width;
        cur.step = (cv_i64)(GEMM_THREADS / per_d) * ld;
        cur.kstride = 1;
        cur.ptr = base + (cv_i64)cur.r * ld + cur.koff;
    }
    return cur;
}

// COUNT values (or float4 vectors) of one operand's slice at k0 into `out`, zero outside.
template <class T, int DIM, int BK, bool TRANS, bool VEC, int COUNT>
__device__ __forceinline__ void gemm_fetch(T* out, const GemmCursor<T>& cur, int limit, int k0,
                                           int k_end) {
    const int width = VEC ? 4 : 1;
    const int rstep = TRANS ? 0 : GEMM_THREADS / (BK / width);
    const int kstep = TRANS ? GEMM_THREADS / (DIM / width) : 0;
    const T* at = cur.ptr + (cv_i64)k0 * cur.kstride;
#pragma unroll
    for (int i = 0; i < COUNT; ++i) {
        const bool inside = cur.r + i * rstep < limit && k0 + cur.koff + i * kstep < k_end;
        if constexpr (VEC) {
            float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
            if (inside) {
                x = *reinterpret_cast<const float4*>(at + i * cur.step);
            }
            out[4 * i] = x.x;
            out[4 * i + 1] = x.y;
            out[4 * i + 2] = x.z;
            out[4 * i + 3] = x.w;
        } else {
            out[i] = inside ? at[i * cur.step] : T(0);
        }
    }
}

// Global → registers for the slice starting at k0 (elements at or past k_end are 0). Loads are
// coalesced along whichever dimension is contiguous in memory; the vector path (VEC, f32,
// taken when every float4 is 16-byte aligned) loads one float4 per 4 values.
template <class T, class S, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm_load(GemmStage<T, S>& st, const GemmCursor<T>& ca,
                                          const GemmCursor<T>& cb, int rows, int cols, int k0,
                                          int k_end) {
    const int width = VEC ? 4 : 1;
    gemm_fetch<T, S::BM, S::BK, TA, VEC, S::LOADS_A / width>(st.a, ca, rows, k0, k_end);
    gemm_fetch<T, S::BN, S::BK, !TB, VEC, S::LOADS_B / width>(st.b, cb, cols, k0, k_end);
}

// Registers → shared buffers As[kk][r] (A transposed) and Bs[kk][c], mirroring gemm_load.
template <class T, class S, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm_stash(const GemmStage<T, S>& st, T (*As)[S::LDA],
                                           T (*Bs)[S::LDB], int tid) {
    if constexpr (VEC) {
#pragma unroll
        for (int i = 0; i < S::LOADS_A / 4; ++i) {
            const int v = tid + i * GEMM_THREADS;
            const int r = TA ? (v % (S::BM / 4)) * 4 : v / (S::BK / 4);
            const int kk = TA ? v / (S::BM / 4) : (v % (S::BK / 4)) * 4;
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                if (TA) {
                    As[kk][r + e] = st.a[4 * i + e];
                } else {
                    As[kk + e][r] = st.a[4 * i + e];
                }
            }
        }
#pragma unroll
        for (int i = 0; i < S::LOADS_B / 4; ++i) {
            const int v = tid + i * GEMM_THREADS;
            const int c = TB ? v / (S::BK / 4) : (v % (S::BN / 4)) * 4;
            const int kk = TB ? (v % (S::BK / 4)) * 4 : v / (S::BN / 4);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                if (TB) {
                    Bs[kk + e][c] = st.b[4 * i + e];
                } else {
                    Bs[kk][c + e] = st.b[4 * i + e];
                }
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < S::LOADS_A; ++i) {
            const int l = tid + i * GEMM_THREADS;
            As[TA ? l / S::BM : l % S::BK][TA ? l % S::BM : l / S::BK] = st.a[i];
        }
#pragma unroll
        for (int i = 0; i < S::LOADS_B; ++i) {
            const int l = tid + i * GEMM_THREADS;
            Bs[TB ? l % S::BK : l / S::BN][TB ? l / S::BK : l % S::BN] = st.b[i];
        }
    }
}

// The parameters every gemm tile loop needs, passed as one value.
template <class T>
struct GemmArgs {
    const T* a;
    const T* b;
    T* c;
    const T* bias;
    int m, n, k;
    cv_i64 batch;
    int splits;
    cv_i64 lda, ldb, ldc, stride_a, stride_b, stride_c;
    T alpha, beta;
    int bias_kind, activation, factor;
    T* partial;
    unsigned* tile_counters;
};

#include "gemm_splitk.cuh"

template <class T, class S, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm_tiles(const GemmArgs<T>& p, T (*As)[S::BK][S::LDA],
                                           T (*Bs)[S::BK][S::LDB]) {
    const int tid = (int)threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    // This lane's first row and column inside the block tile.
    const int row_base = (warp / 2) * (4 * S::TM) + (lane / 8) * S::CW;
    const int col_base = (warp % 2) * (8 * S::TN) + (lane % 8) * S::CW;
    // Every split covers kc values of k, a whole number of slices.
    const int per_split = (int)(((cv_i64)p.k + p.splits - 1) / p.splits);
    const int kc = (per_split + S::BK - 1) / S::BK * S::BK;
    const cv_i64 work = p.batch * p.splits;

    for (cv_i64 zz = blockIdx.z; zz < work; zz += gridDim.z) {
        const cv_i64 z = zz % p.batch;
        const int split = (int)(zz / p.batch);
        const int k_begin = (int)((cv_i64)split * kc < p.k ? (cv_i64)split * kc : p.k);
        const int k_end = (int)((cv_i64)k_begin + kc < p.k ? (cv_i64)k_begin + kc : p.k);
        const T* az = p.a + z * p.stride_a;
        const T* bz = p.b + z * p.stride_b;
        T* cz = p.c + z * p.stride_c;
        for (cv_i64 row0 = (cv_i64)blockIdx.y * S::BM; row0 < p.m;
             row0 += (cv_i64)gridDim.y * S::BM) {
            for (cv_i64 col0 = (cv_i64)blockIdx.x * S::BN; col0 < p.n;
                 col0 += (cv_i64)gridDim.x * S::BN) {
                const int rows = (int)(p.m - row0);
                const int cols = (int)(p.n - col0);
                const GemmCursor<T> ca = gemm_cursor<T, S::BM, S::BK, TA, VEC>(
                    TA ? az + row0 : az + row0 * p.lda, p.lda, tid);
                const GemmCursor<T> cb = gemm_cursor<T, S::BN, S::BK, !TB, VEC>(
                    TB ? bz + col0 * p.ldb : bz + col0, p.ldb, tid);
                T acc[S::TM][S::TN];
#pragma unroll
                for (int i = 0; i < S::TM; ++i) {
#pragma unroll
                    for (int j = 0; j < S::TN; ++j) {
                        acc[i][j] = T(0);
                    }
                }
                GemmStage<T, S> st;
                gemm_load<T, S, TA, TB, VEC>(st, ca, cb, rows, cols, k_begin, k_end);
                gemm_stash<T, S, TA, TB, VEC>(st, As[0], Bs[0], tid);
                __syncthreads();
                int buf = 0;
                // The next slice's loads are issued before this slice's products (register
                // double-buffering) on the float4 path and for f64; the f32 scalar path, with
                // four times the load instructions, issues them after, which keeps it within
                // the register budget.
                constexpr bool prefetch = VEC || sizeof(T) == 8;
                for (int k0 = k_begin; k0 < k_end; k0 += S::BK) {
                    const bool more = k0 + S::BK < k_end;
                    if (prefetch && more) {
                        gemm_load<T, S, TA, TB, VEC>(st, ca, cb, rows, cols, k0 + S::BK,
                                                     k_end);
                    }
                    // Partly unrolled: fully unrolled, the scheduler hoists the shared loads of
                    // the whole slice and runs out of registers.
#pragma unroll 4
                    for (int kk = 0; kk < S::BK; ++kk) {
                        T af[S::TM];
                        T bf[S::TN];
#pragma unroll
                        for (int q = 0; q < S::TM / S::CW; ++q) {
#pragma unroll
                            for (int e = 0; e < S::CW; ++e) {
                                af[S::CW * q + e] = As[buf][kk][row_base + 4 * S::CW * q + e];
                            }
                        }
#pragma unroll
                        for (int q = 0; q < S::TN / S::CW; ++q) {
#pragma unroll
                            for (int e = 0; e < S::CW; ++e) {
                                bf[S::CW * q + e] = Bs[buf][kk][col_base + 8 * S::CW * q + e];
                            }
                        }
#pragma unroll
                        for (int i = 0; i < S::TM; ++i) {
#pragma unroll
                            for (int j = 0; j < S::TN; ++j) {
                                acc[i][j] += af[i] * bf[j];
                            }
                        }
                    }
                    if (more) {
                        if (!prefetch) {
                            gemm_load<T, S, TA, TB, VEC>(st, ca, cb, rows, cols, k0 + S::BK,
                                                         k_end);
                        }
                        // The other buffer was last read before the previous barrier.
                        gemm_stash<T, S, TA, TB, VEC>(st, As[buf ^ 1], Bs[buf ^ 1], tid);
                    }
                    __syncthreads();
                    buf ^= 1;
                }
                // Split-K: this split's raw sums go to its slice of the workspace.
                const bool partial_only = p.splits > 1;
                const cv_i64 ldc = partial_only ? (cv_i64)p.n : p.ldc;
                T* ct = partial_only ? gemm_splitk_slice(p, z, split) + row0 * ldc + col0
                                     : cz + row0 * ldc + col0;
#pragma unroll
                for (int i = 0; i < S::TM; ++i) {
                    const int r = row_base + 4 * S::CW * (i / S::CW) + i % S::CW;
                    if (r >= rows) {
                        continue;
                    }
#pragma unroll
                    for (int j = 0; j < S::TN; ++j) {
                        const int c = col_base + 8 * S::CW * (j / S::CW) + j % S::CW;
                        if (c < cols) {
                            T* dst = ct + r * ldc + c;
                            *dst = partial_only
                                       ? acc[i][j]
                                       : gemm_affine(dst, acc[i][j], p.bias, row0 + r,
                                                     col0 + c, p.alpha, p.beta, p.bias_kind);
                        }
                    }
                }
                // The activation as a second pass over this thread's own elements, once the
                // accumulators are dead: one copy of its code, no register pressure.
                if (partial_only) {
                    gemm_splitk_arrive<T, S>(p, z, row0, col0, rows, cols, row_base, col_base);
                } else if (gemm_has_activation(p.activation, p.factor)) {
#pragma unroll 1
                    for (int e = 0; e < S::TM * S::TN; ++e) {
                        const int i = e / S::TN;
                        const int j = e % S::TN;
                        const int r = row_base + 4 * S::CW * (i / S::CW) + i % S::CW;
                        const int c = col_base + 8 * S::CW * (j / S::CW) + j % S::CW;
                        if (r < rows && c < cols) {
                            T* dst = ct + r * p.ldc + c;
                            *dst = gemm_activate(*dst, p.activation, p.factor);
                        }
                    }
                }
            }
        }
    }
}

template <class T, class S, bool VEC>
__device__ __forceinline__ void gemm_dispatch(const GemmArgs<T>& p, int trans_a, int trans_b,
                                              T (*As)[S::BK][S::LDA], T (*Bs)[S::BK][S::LDB]) {
    if (trans_a) {
        if (trans_b) {
            gemm_tiles<T, S, true, true, VEC>(p, As, Bs);
        } else {
            gemm_tiles<T, S, true, false, VEC>(p, As, Bs);
        }
    } else if (trans_b) {
        gemm_tiles<T, S, false, true, VEC>(p, As, Bs);
    } else {
        gemm_tiles<T, S, false, false, VEC>(p, As, Bs);
    }
}

template <class T, class S>
__device__ __forceinline__ void gemm_kernel(const GemmArgs<T>& p, int trans_a, int trans_b) {
    // Declared once here (not per case) so all cases share the memory.
    __shared__ __align__(16) T As[2][S::BK][S::LDA];
    __shared__ __align__(16) T Bs[2][S::BK][S::LDB];
    if constexpr (sizeof(T) == 4) {
        // float4 loads when every vector is 16-byte aligned: aligned bases, leading dimensions
        // and batch strides, and the contiguous extent of each matrix a multiple of 4 (so a
        // vector is wholly inside or wholly outside it; split boundaries are whole slices).
        const bool vec = ((cv_u64)p.a % 16 == 0) && ((cv_u64)p.b % 16 == 0) &&
                         p.lda % 4 == 0 && p.ldb % 4 == 0 && p.stride_a % 4 == 0 &&
                         p.stride_b % 4 == 0 && (trans_a ? p.m : p.k) % 4 == 0 &&
                         (trans_b ? p.k : p.n) % 4 == 0;
        if (vec) {
            gemm_dispatch<T, S, true>(p, trans_a, trans_b, As, Bs);
            return;
        }
    }
    gemm_dispatch<T, S, false>(p, trans_a, trans_b, As, Bs);
}

// MINB: blocks per SM the register allocation must allow (__launch_bounds__).
#define CV_GEMM_KERNEL(tile, dt, T, TM, TN, BK, MINB)                                           \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, MINB)                            \
        gemm_##tile##_##dt(const T* a, const T* b, T* c, const T* bias, int m, int n, int k,    \
                           long long batch, int splits, long long lda, long long ldb,           \
                           long long ldc, long long stride_a, long long stride_b,               \
                           long long stride_c, int trans_a, int trans_b, T alpha, T beta,       \
                           int bias_kind, int activation, int factor, T* partial,               \
                           unsigned* tile_counters) {                                           \
        const GemmArgs<T> p = {a,        b,        c,        bias,    m,         n,          k, \
                               batch,    splits,   lda,      ldb,     ldc,       stride_a,      \
                               stride_b, stride_c, alpha,    beta,    bias_kind, activation,    \
                               factor,   partial,  tile_counters};                              \
        gemm_kernel<T, GemmTile<T, TM, TN, BK>>(p, trans_a, trans_b);                           \
    }
CV_GEMM_KERNEL(large, f32, float, 8, 4, 16, 1)
CV_GEMM_KERNEL(small, f32, float, 2, 2, 32, 2)
CV_GEMM_KERNEL(large, f64, double, 4, 4, 16, 1)
CV_GEMM_KERNEL(small, f64, double, 2, 2, 32, 2)
