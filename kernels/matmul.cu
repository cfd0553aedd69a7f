// matmul.cu: warp-tiled, register-blocked batched GEMM with a cp.async pipeline, leading
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
// Tiles (BM × BN, k-slice BK, per-thread TM × TN in CW-wide chunks, cp.async stages):
//   f32 large 128×64, BK 16, 8×4, 3 stages;  f32 small 32×32, BK 32, 2×2, 3 stages;
//   f64 large 64×64, BK 16, 4×4, 2 stages;   f64 small 32×32, BK 32, 2×2, 2 stages.
//   (f64 keeps two stages: three of its slices would exceed 48 KiB of static shared memory.)
//
// Scheme: 8 warps in a 4 (rows) × 2 (columns) grid, each warp a (4·TM) × (8·TN) tile with its
// lanes in a 4 × 8 grid; a lane owns TM × TN accumulators in chunks of CW × CW at rows
// warp_m·4TM + ic·4CW + lane_m·CW + e and columns warp_n·8TN + jc·8CW + lane_n·CW + e. Its
// shared-memory reads are CW consecutive values (vectorisable; broadcast or conflict-free).
// k advances BK at a time through STAGES shared-memory buffers As[BK][BM] (A transposed) and
// Bs[BK][BN], filled straight from global memory by cp.async (sm_80 and newer; the emulated
// GPU runs it): while slice s is multiplied, slices s+1 .. s+STAGES−1 are in flight (one
// commit group per slice, `wait_group STAGES − 2` and a barrier before a slice is used). An
// operand whose tile dimension is contiguous in memory (A stored transposed, B as is) is copied
// 16 bytes at a time when every vector is aligned and wholly inside or outside the matrix,
// else one element at a time; an operand contiguous along k is copied one element at a time
// into its transposed place. Out-of-range elements are zero-filled by the copy (src-size 0).
// A transpose only changes the copies' strides (element (d, k) of an operand at
// d·sd + k·sk, (sd, sk) = (ld, 1) or (1, ld)), so one k loop serves all four cases; the strides
// and the copy width are uniform runtime values.

#define GEMM_THREADS 256

template <class T, int TM_, int TN_, int BK_, int STAGES_>
struct GemmTile {
    static const int TM = TM_;
    static const int TN = TN_;
    static const int CW = TM_ < 4 ? TM_ : 4;
    static const int BM = 16 * TM_;
    static const int BN = 16 * TN_;
    static const int BK = BK_;
    static const int STAGES = STAGES_;
    // Elements of one 16-byte copy.
    static const int W = 16 / (int)sizeof(T);
    // Row padding keeps rows 16-byte aligned and spreads the transposing copies over banks.
    static const int LDA = BM + 4;
    static const int LDB = BN + 4;
    static_assert(TM_ % CW == 0 && TN_ % CW == 0, "per-thread tile must be whole chunks");
    static_assert(STAGES_ >= 2, "the pipeline needs at least two stages");
    static_assert(GEMM_THREADS % BK_ == 0 && (BM * BK_) % GEMM_THREADS == 0 &&
                      (BN * BK_) % GEMM_THREADS == 0,
                  "element copies of a slice must split evenly over threads");
    static_assert(GEMM_THREADS % (BM / W) == 0 && GEMM_THREADS % (BN / W) == 0 &&
                      (BM * BK_ / W) % GEMM_THREADS == 0 && (BN * BK_ / W) % GEMM_THREADS == 0,
                  "16-byte copies of a slice must split evenly over threads");
};

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

// Where one operand's elements lie: element (d, kk) — d the tile dimension (the row of op(A),
// the column of op(B)), kk along k — at base + d·sd + kk·sk, so a transpose only swaps
// (sd, sk) between (ld, 1) and (1, ld). `vec`: d is contiguous (sd = 1) and every 16-byte
// vector along d is aligned and wholly inside or outside the matrix.
struct GemmLayout {
    cv_i64 sd;
    cv_i64 sk;
    bool vec;
};

// One thread's cp.async copies of one operand's k-slices into shared stages [BK][LD] (element
// (kk, d) at kk·LD + d). A thread copies `count` consecutive k of one tile position d: copy i
// reads global src + i·sk and writes shared (kk + i)·LD + d, one element, or with `vec` W
// elements (16 bytes) along d. The lanes of a warp take consecutive d, so the shared writes are
// conflict-free, and the global reads coalesced when d is contiguous. The layout is a runtime
// value (uniform over the launch), so one k loop serves every transpose case.
template <class T, int DIM, int BK, int LD>
struct GemmCopier {
    static const int W = 16 / (int)sizeof(T);
    // Copies per thread and slice, of single elements and of 16-byte vectors.
    static const int COUNT = DIM * BK / GEMM_THREADS;
    static const int COUNT_VEC = COUNT / W;
    static_assert(COUNT * (GEMM_THREADS / DIM) == BK && COUNT_VEC * (GEMM_THREADS / (DIM / W)) == BK,
                  "copies must tile the slice");
    const T* src;
    cv_i64 sk;
    int d;
    int kk;
    bool vec;

    // The copies of the tile whose element (d = 0, k offset 0) is at `origin`.
    __device__ __forceinline__ GemmCopier(const T* origin, const GemmLayout& layout, int tid) {
        vec = layout.vec;
        sk = layout.sk;
        const int width = vec ? W : 1;
        d = (tid % (DIM / width)) * width;
        kk = (tid / (DIM / width)) * (vec ? COUNT_VEC : COUNT);
        src = origin + (cv_i64)d * layout.sd + (cv_i64)kk * sk;
    }

    // Issues this thread's copies of the next slice into `stage`, zero-filling elements at or
    // past `limit` in the tile dimension or `k_left` in k (`fallback`: a valid, 16-byte aligned
    // address the zero-filling copies name), then moves on to the slice after.
    __device__ __forceinline__ void copy(T* stage, const T* fallback, int limit, int k_left) {
        const bool in_tile = d < limit;
        const int k_here = k_left - kk;
        const T* from = src;
        if (vec) {
#pragma unroll
            for (int i = 0; i < COUNT_VEC; ++i) {
                const bool inside = in_tile && i < k_here;
                cv_cp_async<16>(stage + (kk + i) * LD + d, inside ? from : fallback,
                                inside ? 16u : 0u);
                from += sk;
            }
        } else {
#pragma unroll
            for (int i = 0; i < COUNT; ++i) {
                const bool inside = in_tile && i < k_here;
                cv_cp_async<(int)sizeof(T)>(stage + (kk + i) * LD + d, inside ? from : fallback,
                                            inside ? (unsigned)sizeof(T) : 0u);
                from += sk;
            }
        }
        src += BK * sk;
    }
};

// acc += the product of one resident stage: As[kk][r] = op(A)(row0 + r, k0 + kk) and
// Bs[kk][c] = op(B)(k0 + kk, col0 + c).
template <class T, class S>
__device__ __forceinline__ void gemm_multiply(const T (*As)[S::LDA], const T (*Bs)[S::LDB],
                                              T (&acc)[S::TM][S::TN], int row_base,
                                              int col_base) {
#pragma unroll 2
    for (int kk = 0; kk < S::BK; ++kk) {
        T af[S::TM];
        T bf[S::TN];
#pragma unroll
        for (int q = 0; q < S::TM / S::CW; ++q) {
#pragma unroll
            for (int e = 0; e < S::CW; ++e) {
                af[S::CW * q + e] = As[kk][row_base + 4 * S::CW * q + e];
            }
        }
#pragma unroll
        for (int q = 0; q < S::TN / S::CW; ++q) {
#pragma unroll
            for (int e = 0; e < S::CW; ++e) {
                bf[S::CW * q + e] = Bs[kk][col_base + 8 * S::CW * q + e];
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
}

// The row and column, inside the block tile, of accumulator (i, j) of the thread whose first
// row and column are row_base and col_base (the chunked layout of the header's scheme).
template <class S>
__device__ __forceinline__ int gemm_row_of(int row_base, int i) {
    return row_base + 4 * S::CW * (i / S::CW) + i % S::CW;
}

template <class S>
__device__ __forceinline__ int gemm_col_of(int col_base, int j) {
    return col_base + 8 * S::CW * (j / S::CW) + j % S::CW;
}

// The epilogue of one block tile: this thread's accumulators, through alpha, beta, the bias and
// the activation (see the header), into ct = C_z + row0·ldc + col0, whose `rows` × `cols`
// corner lies inside C; or, with split-K (`raw`), the raw sums into ct, the tile's corner in
// this split's slice of the workspace, leading dimension ldc = n.
template <class T, class S>
__device__ __forceinline__ void gemm_store_tile(const GemmArgs<T>& p, T* ct, cv_i64 ldc, bool raw,
                                                const T (&acc)[S::TM][S::TN], int row0, int col0,
                                                int rows, int cols, int row_base, int col_base) {
#pragma unroll
    for (int i = 0; i < S::TM; ++i) {
        const int r = gemm_row_of<S>(row_base, i);
        if (r >= rows) {
            continue;
        }
#pragma unroll
        for (int j = 0; j < S::TN; ++j) {
            const int c = gemm_col_of<S>(col_base, j);
            if (c < cols) {
                T* dst = ct + r * ldc + c;
                *dst = raw ? acc[i][j]
                           : gemm_affine(dst, acc[i][j], p.bias, (cv_i64)row0 + r,
                                         (cv_i64)col0 + c, p.alpha, p.beta, p.bias_kind);
            }
        }
    }
    // The activation as a second pass over this thread's own elements, once the accumulators
    // are dead: one copy of its code, no register pressure.
    if (!raw && gemm_has_activation(p.activation, p.factor)) {
#pragma unroll 1
        for (int e = 0; e < S::TM * S::TN; ++e) {
            const int i = e / S::TN;
            const int j = e % S::TN;
            const int r = gemm_row_of<S>(row_base, i);
            const int c = gemm_col_of<S>(col_base, j);
            if (r < rows && c < cols) {
                T* dst = ct + r * ldc + c;
                *dst = gemm_activate(*dst, p.activation, p.factor);
            }
        }
    }
}

#include "gemm_splitk.cuh"

// One block tile at (row0, col0) of C_z, batch index z, over k in [k_begin, k_end) (split
// `split`): the cp.async pipeline, then the epilogue, or with split-K the raw sums and the
// arrival (gemm_splitk.cuh).
template <class T, class S>
__device__ __forceinline__ void gemm_tile(const GemmArgs<T>& p, const T* az, const T* bz,
                                          cv_i64 z, int split, int row0, int col0, int k_begin,
                                          int k_end,
                                          const GemmLayout& la, const GemmLayout& lb,
                                          T (*As)[S::BK][S::LDA], T (*Bs)[S::BK][S::LDB]) {
    const int tid = (int)threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    // This lane's first row and column inside the block tile.
    const int row_base = (warp / 2) * (4 * S::TM) + (lane / 8) * S::CW;
    const int col_base = (warp % 2) * (8 * S::TN) + (lane % 8) * S::CW;
    const int rows = p.m - row0;
    const int cols = p.n - col0;
    GemmCopier<T, S::BM, S::BK, S::LDA> ca(az + row0 * la.sd + k_begin * la.sk, la, tid);
    GemmCopier<T, S::BN, S::BK, S::LDB> cb(bz + col0 * lb.sd + k_begin * lb.sk, lb, tid);
    T acc[S::TM][S::TN];
#pragma unroll
    for (int i = 0; i < S::TM; ++i) {
#pragma unroll
        for (int j = 0; j < S::TN; ++j) {
            acc[i][j] = T(0);
        }
    }
    const int slices = (k_end - k_begin + S::BK - 1) / S::BK;
    // k left from the next slice to copy.
    int k_left = k_end - k_begin;
    // Prologue: slices 0 .. STAGES − 2 in flight, one commit group each (empty past the end).
#pragma unroll
    for (int s = 0; s < S::STAGES - 1; ++s) {
        if (s < slices) {
            ca.copy(&As[s][0][0], p.a, rows, k_left);
            cb.copy(&Bs[s][0][0], p.b, cols, k_left);
            k_left -= S::BK;
        }
        cv_cp_async_commit();
    }
    int read = 0;
    int write = S::STAGES - 1;
    for (int s = 0; s < slices; ++s) {
        // Slice s has landed (this thread's copies), then everyone's have.
        cv_cp_async_wait<S::STAGES - 2>();
        __syncthreads();
        // The stage slice s + STAGES − 1 fills was last read in iteration s − 1, which every
        // thread finished before the barrier above.
        if (s + S::STAGES - 1 < slices) {
            ca.copy(&As[write][0][0], p.a, rows, k_left);
            cb.copy(&Bs[write][0][0], p.b, cols, k_left);
            k_left -= S::BK;
        }
        cv_cp_async_commit();
        gemm_multiply<T, S>(As[read], Bs[read], acc, row_base, col_base);
        read = read + 1 == S::STAGES ? 0 : read + 1;
        write = write + 1 == S::STAGES ? 0 : write + 1;
    }
    const bool raw = p.splits > 1;
    const cv_i64 ldc = raw ? (cv_i64)p.n : p.ldc;
    T* ct = (raw ? gemm_splitk_slice(p, z, split) : p.c + z * p.stride_c) + row0 * ldc + col0;
    gemm_store_tile<T, S>(p, ct, ldc, raw, acc, row0, col0, rows, cols, row_base, col_base);
    if (raw) {
        gemm_splitk_arrive<T, S>(p, z, row0, col0, rows, cols, row_base, col_base);
    }
    // Every copy has landed (the groups still open are empty); the next tile's copies must not
    // land in stages other warps still read.
    __syncthreads();
}

// Every (batch·split, row tile, column tile) this block covers. The tile loops count in
// unsigned 32-bit: row0 < m ≤ INT_MAX − 256 and the grid steps are at most 2³¹ (the launch
// contract), so they cannot wrap.
template <class T, class S>
__device__ __forceinline__ void gemm_tiles(const GemmArgs<T>& p, const GemmLayout& la,
                                           const GemmLayout& lb, T (*As)[S::BK][S::LDA],
                                           T (*Bs)[S::BK][S::LDB]) {
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
        for (unsigned row0 = blockIdx.y * S::BM; row0 < (unsigned)p.m;
             row0 += gridDim.y * S::BM) {
            for (unsigned col0 = blockIdx.x * S::BN; col0 < (unsigned)p.n;
                 col0 += gridDim.x * S::BN) {
                gemm_tile<T, S>(p, az, bz, z, split, (int)row0, (int)col0, k_begin, k_end, la,
                                lb, As, Bs);
            }
        }
    }
}

template <class T, class S>
__device__ __forceinline__ void gemm_kernel(const GemmArgs<T>& p, int trans_a, int trans_b) {
    __shared__ __align__(16) T As[S::STAGES][S::BK][S::LDA];
    __shared__ __align__(16) T Bs[S::STAGES][S::BK][S::LDB];
    // op(A)(i, p) at i·sd + p·sk: (lda, 1), or (1, lda) stored transposed; op(B)(p, j) at
    // j·sd + p·sk: (1, ldb), or (ldb, 1) stored transposed. 16-byte copies of an operand whose
    // tile dimension is contiguous (A stored transposed, B as is) when every one is 16-byte
    // aligned: aligned base, leading dimension and batch stride, and the contiguous extent a
    // multiple of W, so a vector is wholly inside or outside the matrix. The other operands
    // copy one element at a time.
    const GemmLayout la = {trans_a ? 1 : p.lda, trans_a ? p.lda : 1,
                           trans_a && (cv_u64)p.a % 16 == 0 && p.lda % S::W == 0 &&
                               p.stride_a % S::W == 0 && p.m % S::W == 0};
    const GemmLayout lb = {trans_b ? p.ldb : 1, trans_b ? 1 : p.ldb,
                           !trans_b && (cv_u64)p.b % 16 == 0 && p.ldb % S::W == 0 &&
                               p.stride_b % S::W == 0 && p.n % S::W == 0};
    gemm_tiles<T, S>(p, la, lb, As, Bs);
}

// Two blocks per SM: at most 128 registers a thread.
#define CV_GEMM_KERNEL(tile, dt, T, TM, TN, BK, STAGES)                                         \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)                               \
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
        gemm_kernel<T, GemmTile<T, TM, TN, BK, STAGES>>(p, trans_a, trans_b);                   \
    }
CV_GEMM_KERNEL(large, f32, float, 8, 4, 16, 3)
CV_GEMM_KERNEL(small, f32, float, 2, 2, 32, 3)
CV_GEMM_KERNEL(large, f64, double, 4, 4, 16, 2)
CV_GEMM_KERNEL(small, f64, double, 2, 2, 32, 2)
