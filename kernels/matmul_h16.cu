// matmul_h16.cu: batched GEMM of 16-bit operands on tensor cores (mma.sync m16n8k16, f16 or
// bf16 inputs read from storage, f32 accumulate), with a multi-stage cp.async pipeline (sm_80
// and newer; the emulated GPU runs both).
//
// matmul_h16_f16, matmul_h16_bf16(const unsigned short* a, const unsigned short* b,
//             unsigned short* c, int m, int n, int k, long long batch, long long stride_a,
//             long long stride_b, long long stride_c, int trans_a, int trans_b, float alpha,
//             float beta, unsigned* overflow, unsigned code)
//   The contract of matmul_tf32_f32 (matmul_tc.cu) on the bits of f16 or bf16 values: for
//   every batch index z,
//     C_z[m×n] = round(alpha·op(A_z)·op(B_z) + beta·C_z)
//   (element batch strides, 0 broadcasts; op(A) is A row-major m×k, or stored k×m when
//   trans_a != 0; likewise op(B) k×n or stored n×k; beta == 0 does not read C), m, n, k at
//   most INT_MAX − 256. Products of 16-bit values are exact in f32 and are summed in f32; the
//   result is rounded once to the dtype, to nearest even (common.cuh). A finite result that
//   rounds to infinity stores `code` in *overflow, like the cast kernels of elementwise.cu.
//
// Launch: block (128, 1, 1) — exactly 128 threads, four warps; grid (ceil(n / 64),
//   min(ceil(m / 64), 65535), min(batch, 65535)). Every grid dimension is a grid-stride loop.
//
// Scheme: a block computes a 64×64 tile of C, each warp a 32×32 quarter as 2×4 m16n8 tiles
// (32 f32 accumulators per thread). k advances 32 at a time (two mma k-steps of 16) through
// STAGES = 3 shared-memory buffers: while slice s is multiplied, slices s+1 and s+2 are in
// flight (one commit group per slice, `wait_group STAGES − 2` before a slice is used, then a
// barrier). Shared tiles keep the global orientation (A as [64][32] or, transposed, [32][64];
// B as [32][64] or [64][32]), rows padded by 8 values, so every copy is one contiguous run of a
// global row. The copy width is chosen once per launch, for both operands:
//   - 16-byte cp.async (8 values) when each matrix's contiguous dimension and batch stride are
//     multiples of 8 and the bases are 16-byte aligned;
//   - else 4-byte cp.async (2 values) when they are even and the bases 4-byte aligned;
//   - else plain 2-byte loads stored to shared memory (any layout), two adjacent values per
//     thread so that each shared word has one writer.
// A cp.async copy is wholly inside or outside its matrix; outside ones zero-fill. A fragment's pair of
// values adjacent in k is one 32-bit shared load when k is the tile's contiguous dimension (A
// not transposed, B transposed), else two 16-bit loads.

constexpr int H16_THREADS = 128;
constexpr int H16_TILE = 64;
constexpr int H16_BK = 32;
constexpr int H16_STAGES = 3;
constexpr int H16_PAD = 8;
// One stage of A or B: [64][32 + 8] or [32][64 + 8] values, whichever is larger.
constexpr int H16_STAGE = H16_TILE * (H16_BK + H16_PAD);

// Shared offset of op(A)[r][kk] (r < 64, kk < 32) within a stage.
template <bool TA>
__device__ __forceinline__ int h16_a_at(int r, int kk) {
    return TA ? kk * (H16_TILE + H16_PAD) + r : r * (H16_BK + H16_PAD) + kk;
}

// Shared offset of op(B)[kk][col] (kk < 32, col < 64) within a stage.
template <bool TB>
__device__ __forceinline__ int h16_b_at(int kk, int col) {
    return TB ? col * (H16_BK + H16_PAD) + kk : kk * (H16_TILE + H16_PAD) + col;
}

// Issues the copies of a ROWS×COLS tile whose origin is (row0, col0) of the global row-major
// matrix `base` (rows × cols, leading dimension `cols`) into `dst` (leading dimension
// COLS + PAD). W = 8 or 2: cp.async of W values, wholly inside the matrix or zero-filling;
// W = 1: plain loads of two values, each checked, so one thread writes each shared word.
template <int ROWS, int COLS, int W>
__device__ __forceinline__ void h16_copy(cv_half_bits* dst, const cv_half_bits* base, int rows,
                                         int cols, int row0, int col0, int tid) {
    constexpr int RUN = W == 1 ? 2 : W;
    constexpr int PER_ROW = COLS / RUN;
    constexpr int PER_THREAD = ROWS * PER_ROW / H16_THREADS;
    static_assert(PER_THREAD * H16_THREADS == ROWS * PER_ROW, "copies divide among threads");
    // Each thread copies the same columns of rows tid / PER_ROW + i·(THREADS / PER_ROW).
    const int c = (tid % PER_ROW) * RUN;
    const int r_first = tid / PER_ROW;
    const int gc = col0 + c;
#pragma unroll 1
    for (int i = 0; i < PER_THREAD; ++i) {
        const int r = r_first + i * (H16_THREADS / PER_ROW);
        const int gr = row0 + r;
        const cv_half_bits* row = gr < rows ? base + (cv_i64)gr * cols : base;
        cv_half_bits* to = dst + r * (COLS + H16_PAD) + c;
        if constexpr (W == 1) {
            to[0] = gr < rows && gc < cols ? row[gc] : (cv_half_bits)0;
            to[1] = gr < rows && gc + 1 < cols ? row[gc + 1] : (cv_half_bits)0;
        } else {
            const bool ok = gr < rows && gc < cols;
            const cv_half_bits* src = ok ? row + gc : base;
            cv_cp_async<2 * W>(to, src, ok ? 2u * W : 0u);
        }
    }
}

// Issues the copies of the k-slice starting at k0 into one stage of As and Bs.
template <bool TA, bool TB, int W>
__device__ __forceinline__ void h16_load(cv_half_bits* As, cv_half_bits* Bs,
                                         const cv_half_bits* az, const cv_half_bits* bz, int m,
                                         int n, int k, int row0, int col0, int k0, int tid) {
    if constexpr (TA) {
        h16_copy<H16_BK, H16_TILE, W>(As, az, k, m, k0, row0, tid);
    } else {
        h16_copy<H16_TILE, H16_BK, W>(As, az, m, k, row0, k0, tid);
    }
    if constexpr (TB) {
        h16_copy<H16_TILE, H16_BK, W>(Bs, bz, n, k, col0, k0, tid);
    } else {
        h16_copy<H16_BK, H16_TILE, W>(Bs, bz, k, n, k0, col0, tid);
    }
}

// The values at s[at] and s[at + step] as one register, the first in the low half: one 32-bit
// load when they are adjacent (step 1, `at` even), else two 16-bit loads.
template <bool ADJACENT>
__device__ __forceinline__ unsigned h16_pair(const cv_half_bits* s, int at, int step) {
#if !defined(CURVATURE_EMULATOR)
    if constexpr (ADJACENT) {
        return *reinterpret_cast<const unsigned*>(s + at);
    }
#endif
    return (unsigned)s[at] | ((unsigned)s[at + (ADJACENT ? 1 : step)] << 16);
}

template <bool BF16>
__device__ __forceinline__ void h16_mma(float d[4], const unsigned a[4], const unsigned b[2]) {
    if constexpr (BF16) {
        cv_mma_m16n8k16_bf16(d, a, b, d);
    } else {
        cv_mma_m16n8k16_f16(d, a, b, d);
    }
}

// Multiplies one resident stage into the warp's 2×4 accumulator tiles: per k-step of 16 the
// two A fragments, then each B fragment in turn.
template <bool TA, bool TB, bool BF16>
__device__ __forceinline__ void h16_compute(const cv_half_bits* As, const cv_half_bits* Bs,
                                            float acc[2][4][4], int wm, int wn, int g, int t) {
    // Distance between k and k + 1 in each tile.
    constexpr int a_step = TA ? H16_TILE + H16_PAD : 1;
    constexpr int b_step = TB ? 1 : H16_TILE + H16_PAD;
#pragma unroll
    for (int ks = 0; ks < H16_BK; ks += 16) {
        unsigned af[2][4];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = wm + 16 * i + g;
            af[i][0] = h16_pair<!TA>(As, h16_a_at<TA>(r, ks + 2 * t), a_step);
            af[i][1] = h16_pair<!TA>(As, h16_a_at<TA>(r + 8, ks + 2 * t), a_step);
            af[i][2] = h16_pair<!TA>(As, h16_a_at<TA>(r, ks + 2 * t + 8), a_step);
            af[i][3] = h16_pair<!TA>(As, h16_a_at<TA>(r + 8, ks + 2 * t + 8), a_step);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = wn + 8 * j + g;
            unsigned bf[2];
            bf[0] = h16_pair<TB>(Bs, h16_b_at<TB>(ks + 2 * t, col), b_step);
            bf[1] = h16_pair<TB>(Bs, h16_b_at<TB>(ks + 2 * t + 8, col), b_step);
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                h16_mma<BF16>(acc[i][j], af[i], bf);
            }
        }
    }
}

// alpha·acc + beta·C rounded into C, with the overflow flag.
template <bool BF16>
__device__ __forceinline__ void h16_store(cv_half_bits* dst, float value, float alpha,
                                          float beta, unsigned* overflow, unsigned code) {
    float wide = alpha * value;
    if (beta != 0.0f) {
        wide += beta * (BF16 ? cv_bf16_to_f32(*dst) : cv_f16_to_f32(*dst));
    }
    const cv_half_bits bits = BF16 ? cv_f32_to_bf16(wide) : cv_f32_to_f16(wide);
    const bool overflowed = BF16 ? cv_bf16_overflowed(wide, bits) : cv_f16_overflowed(wide, bits);
    if (overflowed) {
        *overflow = code;
    }
    *dst = bits;
}

template <bool TA, bool TB, int W, bool BF16>
__device__ __forceinline__ void h16_tiles(const cv_half_bits* a, const cv_half_bits* b,
                                          cv_half_bits* c, int m, int n, int k, cv_i64 batch,
                                          cv_i64 sa, cv_i64 sb, cv_i64 sc, float alpha,
                                          float beta, unsigned* overflow, unsigned code,
                                          cv_half_bits* As, cv_half_bits* Bs) {
    const int tid = (int)threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const int slices = (k + H16_BK - 1) / H16_BK;
    for (cv_i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const cv_half_bits* az = a + z * sa;
        const cv_half_bits* bz = b + z * sb;
        cv_half_bits* cz = c + z * sc;
        // row0 < m and col0 < n fit an int; their increments need 64 bits.
        for (cv_i64 row_tile = (cv_i64)blockIdx.y * H16_TILE; row_tile < m;
             row_tile += (cv_i64)gridDim.y * H16_TILE) {
            for (cv_i64 col_tile = (cv_i64)blockIdx.x * H16_TILE; col_tile < n;
                 col_tile += (cv_i64)gridDim.x * H16_TILE) {
                const int row0 = (int)row_tile, col0 = (int)col_tile;
                float acc[2][4][4];
#pragma unroll
                for (int i = 0; i < 2; ++i) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            acc[i][j][e] = 0.0f;
                        }
                    }
                }
                // Prologue: slices 0 .. STAGES − 2 in flight, one group each (empty past k).
#pragma unroll
                for (int s = 0; s < H16_STAGES - 1; ++s) {
                    if (s < slices) {
                        h16_load<TA, TB, W>(As + s * H16_STAGE, Bs + s * H16_STAGE, az, bz, m,
                                            n, k, row0, col0, s * H16_BK, tid);
                    }
                    cv_cp_async_commit();
                }
                for (int s = 0; s < slices; ++s) {
                    // Slice s has landed (this thread's copies), then everyone's have.
                    cv_cp_async_wait<H16_STAGES - 2>();
                    __syncthreads();
                    // The stage slice s + STAGES − 1 reuses was last read in iteration s − 1,
                    // which every thread finished before the barrier above.
                    const int next = s + H16_STAGES - 1;
                    if (next < slices) {
                        const int st = next % H16_STAGES;
                        h16_load<TA, TB, W>(As + st * H16_STAGE, Bs + st * H16_STAGE, az, bz,
                                            m, n, k, row0, col0, next * H16_BK, tid);
                    }
                    cv_cp_async_commit();
                    const int cur = s % H16_STAGES;
                    h16_compute<TA, TB, BF16>(As + cur * H16_STAGE, Bs + cur * H16_STAGE, acc,
                                              wm, wn, g, t);
                }
                cv_cp_async_wait_all();
                // The next tile's copies must not land in stages other warps still read.
                __syncthreads();
#pragma unroll
                for (int i = 0; i < 2; ++i) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int gr = row0 + wm + 16 * i + g + (e >= 2 ? 8 : 0);
                            const int gc = col0 + wn + 8 * j + 2 * t + (e & 1);
                            if (gr < m && gc < n) {
                                h16_store<BF16>(cz + (cv_i64)gr * n + gc, acc[i][j][e], alpha,
                                                beta, overflow, code);
                            }
                        }
                    }
                }
            }
        }
    }
}

template <int W, bool BF16>
__device__ __forceinline__ void h16_dispatch(const cv_half_bits* a, const cv_half_bits* b,
                                             cv_half_bits* c, int m, int n, int k, cv_i64 batch,
                                             cv_i64 sa, cv_i64 sb, cv_i64 sc, int trans_a,
                                             int trans_b, float alpha, float beta,
                                             unsigned* overflow, unsigned code,
                                             cv_half_bits* As, cv_half_bits* Bs) {
    if (trans_a) {
        if (trans_b) {
            h16_tiles<true, true, W, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta,
                                           overflow, code, As, Bs);
        } else {
            h16_tiles<true, false, W, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta,
                                            overflow, code, As, Bs);
        }
    } else if (trans_b) {
        h16_tiles<false, true, W, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta,
                                        overflow, code, As, Bs);
    } else {
        h16_tiles<false, false, W, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta,
                                         overflow, code, As, Bs);
    }
}

// Whether copies of `w` values are aligned and wholly inside or outside both matrices.
__device__ __forceinline__ bool h16_copies_fit(int w, const cv_half_bits* a,
                                               const cv_half_bits* b, int m, int n, int k,
                                               cv_i64 sa, cv_i64 sb, int trans_a, int trans_b) {
    const cv_u64 bytes = 2u * (cv_u64)w;
    return (cv_u64)a % bytes == 0 && (cv_u64)b % bytes == 0 && sa % w == 0 && sb % w == 0 &&
           (trans_a ? m : k) % w == 0 && (trans_b ? k : n) % w == 0;
}

template <bool BF16>
__device__ __forceinline__ void h16_kernel(const cv_half_bits* a, const cv_half_bits* b,
                                           cv_half_bits* c, int m, int n, int k, cv_i64 batch,
                                           cv_i64 sa, cv_i64 sb, cv_i64 sc, int trans_a,
                                           int trans_b, float alpha, float beta,
                                           unsigned* overflow, unsigned code) {
    __shared__ __align__(16) cv_half_bits As[H16_STAGES * H16_STAGE];
    __shared__ __align__(16) cv_half_bits Bs[H16_STAGES * H16_STAGE];
    if (h16_copies_fit(8, a, b, m, n, k, sa, sb, trans_a, trans_b)) {
        h16_dispatch<8, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                              beta, overflow, code, As, Bs);
    } else if (h16_copies_fit(2, a, b, m, n, k, sa, sb, trans_a, trans_b)) {
        h16_dispatch<2, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                              beta, overflow, code, As, Bs);
    } else {
        h16_dispatch<1, BF16>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                              beta, overflow, code, As, Bs);
    }
}

#define CV_MATMUL_H16_KERNEL(dt, BF16)                                                        \
    extern "C" __global__ void __launch_bounds__(128) matmul_h16_##dt(                     \
        const cv_half_bits* a, const cv_half_bits* b, cv_half_bits* c, int m, int n, int k,   \
        long long batch, long long stride_a, long long stride_b, long long stride_c,          \
        int trans_a, int trans_b, float alpha, float beta, unsigned* overflow,                \
        unsigned code) {                                                                      \
        h16_kernel<BF16>(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a,      \
                         trans_b, alpha, beta, overflow, code);                               \
    }
CV_MATMUL_H16_KERNEL(f16, false)
CV_MATMUL_H16_KERNEL(bf16, true)
