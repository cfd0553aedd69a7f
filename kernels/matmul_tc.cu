// matmul_tc.cu: batched GEMM on tensor cores (mma.sync m16n8k8, TF32 inputs, f32 accumulate),
// with a multi-stage cp.async pipeline (sm_80 and newer; the emulated GPU runs both).
//
// matmul_tf32_f32, matmul_tf32x3_f32(const float* a, const float* b, float* c, int m, int n,
//             int k, long long batch, long long stride_a, long long stride_b,
//             long long stride_c, int trans_a, int trans_b, float alpha, float beta)
//   The contract of matmul_f32 (matmul.cu): for every batch index z,
//     C_z[m×n] = alpha·op(A_z)·op(B_z) + beta·C_z
//   (element batch strides, 0 broadcasts; op(A) is A row-major m×k, or stored k×m when
//   trans_a != 0; likewise op(B) k×n or stored n×k; beta == 0 does not read C), m, n, k at
//   most INT_MAX − 256.
//   - tf32: every product uses A and B rounded to TF32 (10 mantissa bits, cvt.rna): relative
//     error about 2^-11 per product, ~1e-3 of the result's scale for random data.
//   - tf32x3 ("3xTF32"): each value x splits into big = tf32(x) and small = tf32(x − big), and
//     the tile accumulates small·big + big·small + big·big: the dropped small·small term is
//     about 2^-22 of a product, so the result is as accurate as an f32 FMA GEMM.
//
// Launch: block (128, 1, 1) — exactly 128 threads, four warps; grid (ceil(n / 64),
//   min(ceil(m / 64), 65535), min(batch, 65535)). Every grid dimension is a grid-stride loop.
//
// Scheme: a block computes a 64×64 tile of C, each warp a 32×32 quarter as 2×4 m16n8 tiles
// (32 f32 accumulators per thread). k advances 16 at a time through STAGES = 3 shared-memory
// buffers filled by cp.async: while slice s is multiplied, slices s+1 and s+2 are in flight
// (one commit group per slice, `wait_group STAGES − 2` before a slice is used, then a barrier).
// Shared tiles keep the global orientation (A as [64][16] or, transposed, [16][64]; B as
// [16][64] or [64][16]), rows padded by 4 floats, so every copy is one contiguous run: 16-byte
// copies when each matrix's contiguous dimension is a multiple of 4 and the bases and batch
// strides are 16-byte aligned, else 4-byte copies. Out-of-range elements are zero-filled by
// the copy (src-size 0). Fragments are read from shared memory in the layouts of cuda_emu.h.

constexpr int TC_THREADS = 128;
constexpr int TC_TILE = 64;
constexpr int TC_BK = 16;
constexpr int TC_STAGES = 3;
constexpr int TC_PAD = 4;
// One stage of A or B: [64][16 + 4] or [16][64 + 4] floats, whichever is larger.
constexpr int TC_STAGE_FLOATS = TC_TILE * (TC_BK + TC_PAD);

// Shared offset of op(A)[r][kk] (r < 64, kk < 16) within a stage.
template <bool TA>
__device__ __forceinline__ int tc_a_at(int r, int kk) {
    return TA ? kk * (TC_TILE + TC_PAD) + r : r * (TC_BK + TC_PAD) + kk;
}

// Shared offset of op(B)[kk][col] (kk < 16, col < 64) within a stage.
template <bool TB>
__device__ __forceinline__ int tc_b_at(int kk, int col) {
    return TB ? col * (TC_BK + TC_PAD) + kk : kk * (TC_TILE + TC_PAD) + col;
}

// Issues the copies of the k-slice starting at k0 into one stage of As and Bs.
template <bool TA, bool TB, bool VEC>
__device__ __forceinline__ void tc_load(float* As, float* Bs, const float* az, const float* bz,
                                        int m, int n, int k, cv_i64 row0, cv_i64 col0, int k0,
                                        int tid) {
    if constexpr (VEC) {
#pragma unroll
        for (int i = 0; i < TC_TILE * TC_BK / 4 / TC_THREADS; ++i) {
            const int q = tid + i * TC_THREADS;
            // A: 4 consecutive kk of row r, or 4 consecutive r of slice row kk.
            const int ar = TA ? (q % (TC_TILE / 4)) * 4 : q / (TC_BK / 4);
            const int ak = TA ? q / (TC_TILE / 4) : (q % (TC_BK / 4)) * 4;
            const cv_i64 gr = row0 + ar;
            const int gk = k0 + ak;
            const bool va = gr < m && gk < k;
            const float* sa = va ? (TA ? az + (cv_i64)gk * m + gr : az + gr * k + gk) : az;
            cv_cp_async<16>(&As[tc_a_at<TA>(ar, ak)], sa, va ? 16u : 0u);
            // B: 4 consecutive col of slice row kk, or 4 consecutive kk of column col.
            const int bc = TB ? q / (TC_BK / 4) : (q % (TC_TILE / 4)) * 4;
            const int bk = TB ? (q % (TC_BK / 4)) * 4 : q / (TC_TILE / 4);
            const cv_i64 gc = col0 + bc;
            const int gkb = k0 + bk;
            const bool vb = gc < n && gkb < k;
            const float* sb = vb ? (TB ? bz + gc * k + gkb : bz + (cv_i64)gkb * n + gc) : bz;
            cv_cp_async<16>(&Bs[tc_b_at<TB>(bk, bc)], sb, vb ? 16u : 0u);
        }
    } else {
        // A rolled loop: unrolled, the compiler keeps all eight copies' 64-bit addresses live
        // across the k loop (over 200 registers instead of under 128).
#pragma unroll 1
        for (int i = 0; i < TC_TILE * TC_BK / TC_THREADS; ++i) {
            const int l = tid + i * TC_THREADS;
            const int ar = TA ? l % TC_TILE : l / TC_BK;
            const int ak = TA ? l / TC_TILE : l % TC_BK;
            const cv_i64 gr = row0 + ar;
            const int gk = k0 + ak;
            const bool va = gr < m && gk < k;
            const float* sa = va ? (TA ? az + (cv_i64)gk * m + gr : az + gr * k + gk) : az;
            cv_cp_async<4>(&As[tc_a_at<TA>(ar, ak)], sa, va ? 4u : 0u);
            const int bc = TB ? l / TC_BK : l % TC_TILE;
            const int bk = TB ? l % TC_BK : l / TC_TILE;
            const cv_i64 gc = col0 + bc;
            const int gkb = k0 + bk;
            const bool vb = gc < n && gkb < k;
            const float* sb = vb ? (TB ? bz + gc * k + gkb : bz + (cv_i64)gkb * n + gc) : bz;
            cv_cp_async<4>(&Bs[tc_b_at<TB>(bk, bc)], sb, vb ? 4u : 0u);
        }
    }
}

// x as TF32 (`big`) and, for 3xTF32, the TF32 rounding of the remainder (`small`).
template <bool SPLIT>
__device__ __forceinline__ void tc_split(float x, unsigned& big, unsigned& small) {
    big = cv_tf32(x);
    if constexpr (SPLIT) {
        small = cv_tf32(x - __int_as_float((int)big));
    }
}

// Multiplies one resident stage into the warp's 2×4 accumulator tiles: per k-step of 8, the
// two A fragments are split once, then each B fragment in turn (few live registers, no spills
// in the 3xTF32 variant).
template <bool TA, bool TB, bool SPLIT>
__device__ __forceinline__ void tc_compute(const float* As, const float* Bs, float acc[2][4][4],
                                           int wm, int wn, int g, int t) {
#pragma unroll 1
    for (int ks = 0; ks < TC_BK; ks += 8) {
        unsigned ab[2][4], as[2][4];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = wm + 16 * i + g;
            tc_split<SPLIT>(As[tc_a_at<TA>(r, ks + t)], ab[i][0], as[i][0]);
            tc_split<SPLIT>(As[tc_a_at<TA>(r + 8, ks + t)], ab[i][1], as[i][1]);
            tc_split<SPLIT>(As[tc_a_at<TA>(r, ks + t + 4)], ab[i][2], as[i][2]);
            tc_split<SPLIT>(As[tc_a_at<TA>(r + 8, ks + t + 4)], ab[i][3], as[i][3]);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = wn + 8 * j + g;
            unsigned bb[2], bs[2];
            tc_split<SPLIT>(Bs[tc_b_at<TB>(ks + t, col)], bb[0], bs[0]);
            tc_split<SPLIT>(Bs[tc_b_at<TB>(ks + t + 4, col)], bb[1], bs[1]);
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                if constexpr (SPLIT) {
                    cv_mma_m16n8k8_tf32(acc[i][j], as[i], bb, acc[i][j]);
                    cv_mma_m16n8k8_tf32(acc[i][j], ab[i], bs, acc[i][j]);
                }
                cv_mma_m16n8k8_tf32(acc[i][j], ab[i], bb, acc[i][j]);
            }
        }
    }
}

template <bool TA, bool TB, bool VEC, bool SPLIT>
__device__ __forceinline__ void tc_tiles(const float* a, const float* b, float* c, int m, int n,
                                         int k, cv_i64 batch, cv_i64 sa, cv_i64 sb, cv_i64 sc,
                                         float alpha, float beta, float* As, float* Bs) {
    const int tid = (int)threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const int slices = (k + TC_BK - 1) / TC_BK;
    for (cv_i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* az = a + z * sa;
        const float* bz = b + z * sb;
        float* cz = c + z * sc;
        for (cv_i64 row0 = (cv_i64)blockIdx.y * TC_TILE; row0 < m;
             row0 += (cv_i64)gridDim.y * TC_TILE) {
            for (cv_i64 col0 = (cv_i64)blockIdx.x * TC_TILE; col0 < n;
                 col0 += (cv_i64)gridDim.x * TC_TILE) {
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
                for (int s = 0; s < TC_STAGES - 1; ++s) {
                    if (s < slices) {
                        tc_load<TA, TB, VEC>(As + s * TC_STAGE_FLOATS, Bs + s * TC_STAGE_FLOATS,
                                             az, bz, m, n, k, row0, col0, s * TC_BK, tid);
                    }
                    cv_cp_async_commit();
                }
                for (int s = 0; s < slices; ++s) {
                    // Slice s has landed (this thread's copies), then everyone's have.
                    cv_cp_async_wait<TC_STAGES - 2>();
                    __syncthreads();
                    // The stage slice s + STAGES − 1 reuses was last read in iteration s − 1,
                    // which every thread finished before the barrier above.
                    const int next = s + TC_STAGES - 1;
                    if (next < slices) {
                        const int st = next % TC_STAGES;
                        tc_load<TA, TB, VEC>(As + st * TC_STAGE_FLOATS,
                                             Bs + st * TC_STAGE_FLOATS, az, bz, m, n, k, row0,
                                             col0, next * TC_BK, tid);
                    }
                    cv_cp_async_commit();
                    const int cur = s % TC_STAGES;
                    tc_compute<TA, TB, SPLIT>(As + cur * TC_STAGE_FLOATS,
                                              Bs + cur * TC_STAGE_FLOATS, acc, wm, wn, g, t);
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
                            const cv_i64 gr = row0 + wm + 16 * i + g + (e >= 2 ? 8 : 0);
                            const cv_i64 gc = col0 + wn + 8 * j + 2 * t + (e & 1);
                            if (gr < m && gc < n) {
                                float* dst = cz + gr * n + gc;
                                *dst = beta == 0.0f ? alpha * acc[i][j][e]
                                                    : alpha * acc[i][j][e] + beta * *dst;
                            }
                        }
                    }
                }
            }
        }
    }
}

template <bool VEC, bool SPLIT>
__device__ __forceinline__ void tc_dispatch(const float* a, const float* b, float* c, int m,
                                            int n, int k, cv_i64 batch, cv_i64 sa, cv_i64 sb,
                                            cv_i64 sc, int trans_a, int trans_b, float alpha,
                                            float beta, float* As, float* Bs) {
    if (trans_a) {
        if (trans_b) {
            tc_tiles<true, true, VEC, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        } else {
            tc_tiles<true, false, VEC, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
        }
    } else if (trans_b) {
        tc_tiles<false, true, VEC, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    } else {
        tc_tiles<false, false, VEC, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, alpha, beta, As, Bs);
    }
}

template <bool SPLIT>
__device__ __forceinline__ void tc_kernel(const float* a, const float* b, float* c, int m, int n,
                                          int k, cv_i64 batch, cv_i64 sa, cv_i64 sb, cv_i64 sc,
                                          int trans_a, int trans_b, float alpha, float beta) {
    __shared__ __align__(16) float As[TC_STAGES * TC_STAGE_FLOATS];
    __shared__ __align__(16) float Bs[TC_STAGES * TC_STAGE_FLOATS];
    // 16-byte copies when every one is aligned and wholly inside or outside its matrix.
    const bool vec = ((cv_u64)a % 16 == 0) && ((cv_u64)b % 16 == 0) && sa % 4 == 0 &&
                     sb % 4 == 0 && (trans_a ? m : k) % 4 == 0 && (trans_b ? k : n) % 4 == 0;
    if (vec) {
        tc_dispatch<true, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                                 beta, As, Bs);
    } else {
        tc_dispatch<false, SPLIT>(a, b, c, m, n, k, batch, sa, sb, sc, trans_a, trans_b, alpha,
                                  beta, As, Bs);
    }
}

#define CV_MATMUL_TC_KERNEL(name, SPLIT)                                                      \
    extern "C" __global__ void __launch_bounds__(128)                                          \
        name(const float* a, const float* b, float* c, int m, int n, int k, long long batch,   \
             long long stride_a, long long stride_b, long long stride_c, int trans_a,          \
             int trans_b, float alpha, float beta) {                                           \
        tc_kernel<SPLIT>(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a,       \
                         trans_b, alpha, beta);                                                \
    }
CV_MATMUL_TC_KERNEL(matmul_tf32_f32, false)
CV_MATMUL_TC_KERNEL(matmul_tf32x3_f32, true)
