// matmul.cu: tiled, register-blocked batched GEMM.
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
// Launch: block (16, 16, 1) — exactly 256 threads; grid (ceil(n / 64), ceil(m / 64),
//   min(batch, 65535)). Grid dimensions may be smaller: every dimension is a grid-stride loop.
//
// Scheme: each block computes a 64×64 tile of C; every thread a 4×4 register block at rows
// ty + 16·i, cols tx + 16·j (strided so that shared-memory reads are broadcast / conflict-free
// and global stores are 16-wide contiguous). The k dimension advances in steps of 16 through
// shared-memory tiles As[16][64] (A transposed, so a thread's 4 A values are one column) and
// Bs[16][64]; global loads are coalesced along whichever dimension is contiguous in memory.

#define MM_BM 64
#define MM_BN 64
#define MM_BK 16
#define MM_THREADS 256
#define MM_PAD 1

template <class T>
__device__ __forceinline__ void matmul_kernel(const T* a, const T* b, T* c, int m, int n, int k,
                                              cv_i64 batch, cv_i64 stride_a, cv_i64 stride_b,
                                              cv_i64 stride_c, int trans_a, int trans_b, T alpha,
                                              T beta) {
    __shared__ T As[MM_BK][MM_BM + MM_PAD];
    __shared__ T Bs[MM_BK][MM_BN + MM_PAD];
    const int tx = (int)threadIdx.x;
    const int ty = (int)threadIdx.y;
    const int tid = ty * 16 + tx;

    for (cv_i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* az = a + z * stride_a;
        const T* bz = b + z * stride_b;
        T* cz = c + z * stride_c;
        for (cv_i64 row0 = (cv_i64)blockIdx.y * MM_BM; row0 < m; row0 += (cv_i64)gridDim.y * MM_BM) {
            for (cv_i64 col0 = (cv_i64)blockIdx.x * MM_BN; col0 < n;
                 col0 += (cv_i64)gridDim.x * MM_BN) {
                T acc[4][4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        acc[i][j] = T(0);
                    }
                }
                for (int k0 = 0; k0 < k; k0 += MM_BK) {
                    // Stage op(A)[row0.., k0..] into As[kk][r] and op(B)[k0.., col0..] into Bs[kk][c].
#pragma unroll
                    for (int l = tid; l < MM_BM * MM_BK; l += MM_THREADS) {
                        int r, kk;
                        if (trans_a) {
                            kk = l / MM_BM;
                            r = l % MM_BM;
                        } else {
                            r = l / MM_BK;
                            kk = l % MM_BK;
                        }
                        cv_i64 gr = row0 + r;
                        int gk = k0 + kk;
                        T v = T(0);
                        if (gr < m && gk < k) {
                            v = trans_a ? az[(cv_i64)gk * m + gr] : az[gr * k + gk];
                        }
                        As[kk][r] = v;
                    }
#pragma unroll
                    for (int l = tid; l < MM_BN * MM_BK; l += MM_THREADS) {
                        int cc, kk;
                        if (trans_b) {
                            cc = l / MM_BK;
                            kk = l % MM_BK;
                        } else {
                            kk = l / MM_BN;
                            cc = l % MM_BN;
                        }
                        cv_i64 gc = col0 + cc;
                        int gk = k0 + kk;
                        T v = T(0);
                        if (gc < n && gk < k) {
                            v = trans_b ? bz[gc * k + gk] : bz[(cv_i64)gk * n + gc];
                        }
                        Bs[kk][cc] = v;
                    }
                    __syncthreads();
#pragma unroll
                    for (int kk = 0; kk < MM_BK; ++kk) {
                        T af[4];
                        T bf[4];
#pragma unroll
                        for (int i = 0; i < 4; ++i) {
                            af[i] = As[kk][ty + 16 * i];
                            bf[i] = Bs[kk][tx + 16 * i];
                        }
#pragma unroll
                        for (int i = 0; i < 4; ++i) {
#pragma unroll
                            for (int j = 0; j < 4; ++j) {
                                acc[i][j] += af[i] * bf[j];
                            }
                        }
                    }
                    __syncthreads();
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    cv_i64 gr = row0 + ty + 16 * i;
                    if (gr >= m) {
                        continue;
                    }
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        cv_i64 gc = col0 + tx + 16 * j;
                        if (gc < n) {
                            T* dst = cz + gr * n + gc;
                            *dst = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *dst;
                        }
                    }
                }
            }
        }
    }
}

#define CV_MATMUL_KERNEL(dt, T)                                                               \
    extern "C" __global__ void matmul_##dt(const T* a, const T* b, T* c, int m, int n, int k, \
                                           long long batch, long long stride_a,               \
                                           long long stride_b, long long stride_c,            \
                                           int trans_a, int trans_b, T alpha, T beta) {       \
        matmul_kernel<T>(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a,      \
                         trans_b, alpha, beta);                                               \
    }
CV_FOR_EACH_DTYPE(CV_MATMUL_KERNEL)
