// race_test.cu: test-only kernels that check the emulated GPU catches a missing barrier.
//
// block_sum_{nobarrier,barrier}_f32(const float* x, float* out, int n)
//   One block per output: thread t stores x[blockIdx.x·n + t] in shared memory, then thread 0
//   sums the n ≤ blockDim.x ≤ 256 values into out[blockIdx.x]. Without the __syncthreads()
//   thread 0 may read slots the other threads have not written yet: a data race.

template <bool kBarrier>
__device__ __forceinline__ void block_sum_kernel(const float* x, float* out, int n) {
    __shared__ float s[256];
    const int t = (int)threadIdx.x;
    if (t < n) {
        s[t] = x[(cv_i64)blockIdx.x * n + t];
    }
    if (kBarrier) {
        __syncthreads();
    }
    if (t == 0) {
        float acc = 0.0f;
        for (int i = 0; i < n; ++i) {
            acc += s[i];
        }
        out[blockIdx.x] = acc;
    }
}

extern "C" __global__ void block_sum_nobarrier_f32(const float* x, float* out, int n) {
    block_sum_kernel<false>(x, out, n);
}

extern "C" __global__ void block_sum_barrier_f32(const float* x, float* out, int n) {
    block_sum_kernel<true>(x, out, n);
}

// warp_sum_shfl_f32(const float* x, float* out): one warp per block (blockDim.x == 32) sums 32
// values with __shfl_down_sync; lane 0 writes out[blockIdx.x]. Exercises the warp shuffles.
extern "C" __global__ void warp_sum_shfl_f32(const float* x, float* out) {
    float v = x[(cv_i64)blockIdx.x * 32 + threadIdx.x];
    for (int off = 16; off > 0; off >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, off);
    }
    if (threadIdx.x == 0) {
        out[blockIdx.x] = v;
    }
}

// divergent_barriers_f32(float* out): lanes 0–15 wait in __syncwarp() while lanes 16–31 wait in
// __syncthreads(): neither barrier can complete (undefined behaviour on a GPU); the emulated
// GPU reports it as a launch error instead of hanging.
extern "C" __global__ void divergent_barriers_f32(float* out) {
    if (threadIdx.x < 16) {
        __syncwarp();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

// Deliberately broken kernels the emulated GPU's checker must catch (tests/emulator_strict.rs),
// and the correct counterparts they are compared with.

// shared_uninit_read_f32(float* out): thread t writes s[t] and, after a barrier, reads s[t + 1]:
// thread blockDim.x − 1 reads a slot no thread wrote.
extern "C" __global__ void shared_uninit_read_f32(float* out) {
    __shared__ float s[257];
    const unsigned t = threadIdx.x;
    s[t] = (float)t;
    __syncthreads();
    out[t] = s[t + 1];
}

// shared_race_f32(float* out): after a barrier, thread 0 writes s[1] while thread 1 reads it in
// the same barrier interval.
extern "C" __global__ void shared_race_f32(float* out) {
    __shared__ float s[64];
    const unsigned t = threadIdx.x;
    s[t] = 1.0f;
    __syncthreads();
    if (t == 0) {
        s[1] = 2.0f;
    }
    out[t] = s[t];
}

// write_before_f32(float* p, long long back): p[−back] = 1 (before the start of the buffer).
extern "C" __global__ void write_before_f32(float* p, long long back) {
    if (threadIdx.x == 0) {
        p[-back] = 1.0f;
    }
}

// shfl_half_mask_f32(float* out): every lane shuffles with mask 0x0000ffff, which excludes lanes
// 16–31. shfl_exited_lane_f32: lanes 16–31 exit, lanes 0–15 shuffle with the full mask.
// shfl_half_warp_f32: lanes 16–31 exit, lanes 0–15 shuffle with mask 0x0000ffff (correct).
extern "C" __global__ void shfl_half_mask_f32(float* out) {
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, (float)threadIdx.x, 0);
}

extern "C" __global__ void shfl_exited_lane_f32(float* out) {
    if (threadIdx.x >= 16) {
        return;
    }
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (float)threadIdx.x, 1);
}

extern "C" __global__ void shfl_half_warp_f32(float* out) {
    if (threadIdx.x >= 16) {
        return;
    }
    out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, (float)threadIdx.x, 1, 16);
}

// dynamic_shared_sum_f32(const float* x, float* out, int n): thread t < n stores x[t] in the
// dynamic shared array, and thread 0 sums the first n after a barrier.
extern "C" __global__ void dynamic_shared_sum_f32(const float* x, float* out, int n) {
    extern __shared__ float dyn[];
    const int t = (int)threadIdx.x;
    if (t < n) {
        dyn[t] = x[t];
    }
    __syncthreads();
    if (t == 0) {
        float acc = 0.0f;
        for (int i = 0; i < n; ++i) {
            acc += dyn[i];
        }
        out[0] = acc;
    }
}

// register_hog_f64(const double* x, double* out): keeps 48 loaded values live at once (about
// 100 registers per thread): 1024 threads need more than an SM's 65 536 registers.
extern "C" __global__ void register_hog_f64(const double* x, double* out) {
    double v[48];
#pragma unroll
    for (int i = 0; i < 48; ++i) {
        v[i] = x[threadIdx.x + i * blockDim.x];
    }
    double acc = 0.0;
#pragma unroll
    for (int i = 0; i < 48; ++i) {
#pragma unroll
        for (int j = i; j < 48; ++j) {
            acc += v[i] * v[j];
        }
    }
    out[threadIdx.x] = acc;
}

// fma_residual_f64(const double* a, const double* b, const double* p, double* out):
// out = a·b − p, contracted to fma(a, b, −p) like NVRTC's default: with p = fl(a·b) it is the
// rounding error of a·b, not 0.
extern "C" __global__ void fma_residual_f64(const double* a, const double* b, const double* p,
                                            double* out) {
    out[threadIdx.x] = a[threadIdx.x] * b[threadIdx.x] - p[threadIdx.x];
}

// Tensor-core and asynchronous-copy instructions of common.cuh, for tests/tensor_core.rs
// (each against a scalar reference) and tests/emulator_strict.rs.
//
// mma_m16n8k8_tf32_test(const float* a, const float* b, const float* c, float* d, int round)
//   One warp: d = a·b + c with a 16×8, b 8×8 (k×n) and c, d 16×8, all row-major f32; each lane
//   gathers its fragments in the layouts cuda_emu.h documents, rounding them with cv_tf32 first
//   when `round` != 0 (else the instruction gets the raw f32 bits).
__device__ __forceinline__ unsigned cv_test_bits(float x) { return (unsigned)__float_as_int(x); }

__device__ __forceinline__ void cv_test_c_fragment(const float* c, int g, int t, float f[4]) {
    f[0] = c[g * 8 + 2 * t];
    f[1] = c[g * 8 + 2 * t + 1];
    f[2] = c[(g + 8) * 8 + 2 * t];
    f[3] = c[(g + 8) * 8 + 2 * t + 1];
}

__device__ __forceinline__ void cv_test_store_d(float* d, int g, int t, const float f[4]) {
    d[g * 8 + 2 * t] = f[0];
    d[g * 8 + 2 * t + 1] = f[1];
    d[(g + 8) * 8 + 2 * t] = f[2];
    d[(g + 8) * 8 + 2 * t + 1] = f[3];
}

extern "C" __global__ void __launch_bounds__(32)
    mma_m16n8k8_tf32_test(const float* a, const float* b, const float* c, float* d, int round) {
    const int lane = (int)threadIdx.x, g = lane / 4, t = lane % 4;
    unsigned af[4] = {cv_test_bits(a[g * 8 + t]), cv_test_bits(a[(g + 8) * 8 + t]),
                      cv_test_bits(a[g * 8 + t + 4]), cv_test_bits(a[(g + 8) * 8 + t + 4])};
    unsigned bf[2] = {cv_test_bits(b[t * 8 + g]), cv_test_bits(b[(t + 4) * 8 + g])};
    if (round) {
        for (int i = 0; i < 4; ++i) {
            af[i] = cv_tf32(__int_as_float((int)af[i]));
        }
        for (int i = 0; i < 2; ++i) {
            bf[i] = cv_tf32(__int_as_float((int)bf[i]));
        }
    }
    float cf[4];
    float df[4];
    cv_test_c_fragment(c, g, t, cf);
    cv_mma_m16n8k8_tf32(df, af, bf, cf);
    cv_test_store_d(d, g, t, df);
}

// mma_m16n8k16_{f16,bf16}_test(const unsigned short* a, const unsigned short* b,
//                              const float* c, float* d)
//   One warp: d = a·b + c with a 16×16 and b 16×8 (k×n) half-precision bit patterns, c and d
//   16×8 f32, all row-major.
__device__ __forceinline__ unsigned cv_test_pack(unsigned short lo, unsigned short hi) {
    return (unsigned)lo | ((unsigned)hi << 16);
}

template <bool kBf16>
__device__ __forceinline__ void mma_m16n8k16_test(const unsigned short* a,
                                                  const unsigned short* b, const float* c,
                                                  float* d) {
    const int lane = (int)threadIdx.x, g = lane / 4, t = lane % 4;
    const unsigned af[4] = {
        cv_test_pack(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
        cv_test_pack(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
        cv_test_pack(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
        cv_test_pack(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
    const unsigned bf[2] = {cv_test_pack(b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]),
                            cv_test_pack(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g])};
    float cf[4];
    float df[4];
    cv_test_c_fragment(c, g, t, cf);
    if (kBf16) {
        cv_mma_m16n8k16_bf16(df, af, bf, cf);
    } else {
        cv_mma_m16n8k16_f16(df, af, bf, cf);
    }
    cv_test_store_d(d, g, t, df);
}

extern "C" __global__ void __launch_bounds__(32)
    mma_m16n8k16_f16_test(const unsigned short* a, const unsigned short* b, const float* c,
                          float* d) {
    mma_m16n8k16_test<false>(a, b, c, d);
}

extern "C" __global__ void __launch_bounds__(32)
    mma_m16n8k16_bf16_test(const unsigned short* a, const unsigned short* b, const float* c,
                           float* d) {
    mma_m16n8k16_test<true>(a, b, c, d);
}

// cp_async_test(const float* src, float* out, int mode): one warp. Group 0: each thread t
// copies src[t] (4 bytes) and src[32 + 2t ..] (8 bytes); group 1: src[96 + 4t ..] (16 bytes, of
// which odd threads read only 8: the last two floats zero-filled). Thread t then writes
// out[0..224) from the slots of thread (t + 1) % 32: out[t] ← region 0, out[32 + 2t ..] ←
// region 1, out[96 + 4t ..] ← region 2.
//   mode 0: wait_group 1, barrier, read regions 0 and 1; wait_group 0, barrier, read region 2;
//   mode 1: no wait before reading (the copies have not landed);
//   mode 2: only wait_group 1 before reading all three (group 1 has not landed);
//   mode 3: every wait, then four more copies the thread never waits for before exiting.
extern "C" __global__ void __launch_bounds__(32) cp_async_test(const float* src, float* out,
                                                               int mode) {
    __shared__ __align__(16) float s[224];
    const int t = (int)threadIdx.x;
    const int u = (t + 1) % 32;
    cv_cp_async<4>(&s[t], &src[t], 4);
    cv_cp_async<8>(&s[32 + 2 * t], &src[32 + 2 * t], 8);
    cv_cp_async_commit();
    cv_cp_async<16>(&s[96 + 4 * t], &src[96 + 4 * t], t % 2 == 0 ? 16 : 8);
    cv_cp_async_commit();
    if (mode == 0 || mode == 2 || mode == 3) {
        cv_cp_async_wait<1>();
    }
    __syncthreads();
    out[t] = s[u];
    out[32 + 2 * t] = s[32 + 2 * u];
    out[33 + 2 * t] = s[33 + 2 * u];
    if (mode == 0 || mode == 3) {
        cv_cp_async_wait<0>();
    }
    __syncthreads();
    for (int e = 0; e < 4; ++e) {
        out[96 + 4 * t + e] = s[96 + 4 * u + e];
    }
    if (mode == 3) {
        __syncthreads();
        cv_cp_async<16>(&s[4 * t], &src[4 * t], 16);
        cv_cp_async_commit();
    }
}

// last_block_total_f32(const float* x, float* partial, unsigned* counter, float* out, int n):
// thread 0 of block b stores partial[b] = Σ x[b·n .. b·n + n), fences and counts the block's
// arrival in *counter (0 before the launch); the block that arrives last (told through shared
// memory after a barrier) stores out[0] = Σ_b partial[b] in increasing b and resets *counter to
// 0. No block waits for another. Exercises __threadfence, atomicAdd on unsigned and __ldcg.
extern "C" __global__ void last_block_total_f32(const float* x, float* partial,
                                                unsigned* counter, float* out, int n) {
    __shared__ unsigned is_last[1];
    if (threadIdx.x == 0) {
        float s = 0.f;
        for (int i = 0; i < n; ++i) {
            s += x[(long long)blockIdx.x * n + i];
        }
        partial[blockIdx.x] = s;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned arrived = atomicAdd(counter, 1u);
        is_last[0] = arrived + 1 == gridDim.x ? 1u : 0u;
    }
    __syncthreads();
    if (is_last[0] != 0 && threadIdx.x == 0) {
        __threadfence();
        float total = 0.f;
        for (unsigned b = 0; b < gridDim.x; ++b) {
            total += __ldcg(partial + b);
        }
        out[0] = total;
        *counter = 0;
    }
}
