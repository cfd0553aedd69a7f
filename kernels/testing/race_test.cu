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
