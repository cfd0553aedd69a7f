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
