// cuda_emu.h: the CUDA built-ins for the emulated GPU (ARCHITECTURE.md, "The emulated GPU").
//
// Force-included (`-include cuda_emu.h`) when the host C++ compiler builds kernels/*.cu for the
// `emulator` feature of curvature-kernels. A block runs as blockDim cooperative fibers on one OS
// thread (see emu_runtime.cpp); barriers and warp collectives switch fibers.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>

#define CURVATURE_EMULATOR 1

#define __global__
// Threads-per-block bounds matter to ptxas only; launches are checked against the real limits.
#define __launch_bounds__(...)
#define __device__
#define __host__
#define __forceinline__ inline
// A by-value kernel parameter read in place (no per-thread copy) matters to nvcc only.
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// `__shared__` declarations are rewritten by build.rs (the emulated GPU has no `__shared__`):
// `__shared__ T name[N];` becomes a reference into the running block's shared memory,
//     static emu_shared_site emu_site_name{"name", 0, 0};
//     T (&name)[N] = emu_shared_ref<T[N]>(&emu_site_name, align);
// and `extern __shared__ T name[];` a pointer to the block's dynamic shared memory,
//     T* const name = reinterpret_cast<T*>(emu_shared_dynamic());
// (emu_check.cpp: NaN-filled at every block start, reads and races checked).
struct emu_shared_site {
    const char* name;
    uint32_t epoch;
    uint32_t offset;
};
extern "C" char* emu_shared_place(emu_shared_site* site, size_t bytes, size_t align);
extern "C" char* emu_shared_dynamic(void);
template <class A>
inline A& emu_shared_ref(emu_shared_site* site, size_t align) {
    return *reinterpret_cast<A*>(emu_shared_place(site, sizeof(A), align));
}

struct emu_dim3 {
    unsigned x, y, z;
};

// The record of the fiber that is running now.
struct emu_thread_state {
    emu_dim3 thread_idx;
    emu_dim3 block_idx;
    emu_dim3 block_dim;
    emu_dim3 grid_dim;
    unsigned lane;
};

extern "C" emu_thread_state* emu_current_thread(void);
extern "C" void emu_syncthreads(void);
// A warp barrier over the lanes of `mask` (`fence`: __syncwarp, which also orders the lanes'
// memory accesses; a shuffle does not). Lanes outside the mask or exited lanes in it are errors.
extern "C" void emu_syncwarp(unsigned mask, int fence);
extern "C" void* emu_warp_slot(unsigned lane);
// Reports a shuffle reading lane `src` that `mask` excludes.
extern "C" void emu_shfl_bad_source(unsigned mask, unsigned src);

#define threadIdx (emu_current_thread()->thread_idx)
#define blockIdx (emu_current_thread()->block_idx)
#define blockDim (emu_current_thread()->block_dim)
#define gridDim (emu_current_thread()->grid_dim)
#define warpSize 32

inline void __syncthreads() { emu_syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu_syncwarp(mask, 1); }

// Exchange through the warp's slots: every lane of `mask` publishes `v`, a warp barrier (which
// checks the mask), each lane reads its source lane (which must be in the mask), and a second
// barrier so no lane overwrites a slot before everyone has read it.
template <class T>
__attribute__((no_sanitize_thread)) inline T emu_shfl(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
    const unsigned lane = emu_current_thread()->lane;
    memcpy(emu_warp_slot(lane), &v, sizeof(T));
    emu_syncwarp(mask, 0);
    T r = v;
    if (src >= 0 && src < 32) {
        if ((mask >> src) & 1u) {
            memcpy(&r, emu_warp_slot((unsigned)src), sizeof(T));
        } else {
            emu_shfl_bad_source(mask, (unsigned)src);
        }
    }
    emu_syncwarp(mask, 0);
    return r;
}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    const int lane = (int)emu_current_thread()->lane;
    return emu_shfl(mask, v, (lane / width) * width + (src_lane % width));
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = (int)emu_current_thread()->lane;
    const int src = (lane % width) + (int)delta < width ? lane + (int)delta : lane;
    return emu_shfl(mask, v, src);
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = (int)emu_current_thread()->lane;
    const int src = (lane % width) >= (int)delta ? lane - (int)delta : lane;
    return emu_shfl(mask, v, src);
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = (int)emu_current_thread()->lane;
    const int src = lane ^ lane_mask;
    return emu_shfl(mask, v, (src / width) == (lane / width) ? src : lane);
}

// Atomics: blocks may run on several OS threads at once, so these are real atomics (not seen by
// the shared-memory checker).
#define EMU_UNCHECKED __attribute__((no_sanitize_thread))
EMU_UNCHECKED inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
EMU_UNCHECKED inline unsigned atomicAdd(unsigned* p, unsigned v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
EMU_UNCHECKED inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
template <class T, class Bits>
EMU_UNCHECKED inline T emu_atomic_add_float(T* p, T v) {
    Bits* bp = reinterpret_cast<Bits*>(p);
    Bits old_bits = __atomic_load_n(bp, __ATOMIC_SEQ_CST);
    for (;;) {
        T old_val;
        memcpy(&old_val, &old_bits, sizeof(T));
        T new_val = old_val + v;
        Bits new_bits;
        memcpy(&new_bits, &new_val, sizeof(T));
        if (__atomic_compare_exchange_n(bp, &old_bits, new_bits, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            return old_val;
        }
    }
}
inline float atomicAdd(float* p, float v) { return emu_atomic_add_float<float, uint32_t>(p, v); }
inline double atomicAdd(double* p, double v) {
    return emu_atomic_add_float<double, uint64_t>(p, v);
}

// CUDA's 16-byte vector type (used by vectorised loads).
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// Bit casts and math functions CUDA has but the host library lacks.
inline float __int_as_float(int x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}
inline int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, sizeof i);
    return i;
}
inline double __longlong_as_double(long long x) {
    double d;
    memcpy(&d, &x, sizeof d);
    return d;
}
inline long long __double_as_longlong(double x) {
    long long i;
    memcpy(&i, &x, sizeof i);
    return i;
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }

// One launchable kernel: build.rs generates a null-terminated table of these per family, with
// `fn` unpacking `params[i]` as `*(T_i*)params[i]`, `signature` listing the parameter types
// as comma-separated codes (ptr, i32, u32, i64, u64, f32, f64, and struct for a struct passed
// by value) and `param_bytes[i]` the size of parameter i.
struct emu_kernel_entry {
    const char* name;
    void (*fn)(void** params);
    const char* signature;
    const unsigned* param_bytes;
};
