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
#define __noinline__ __attribute__((noinline))
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

// __threadfence(): the writes of this thread before it are seen by every block before its
// writes after it (blocks of one launch may run on different OS threads).
EMU_UNCHECKED inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
// __ldcg(p): a global load that bypasses L1 on a GPU; the host has one coherent memory.
template <class T>
inline T __ldcg(const T* p) {
    return *p;
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

// ---- tensor cores: mma.sync -------------------------------------------------------------------
// `mma.sync.aligned` is a warp-wide operation: every lane of the (whole, converged) warp hands
// in its fragments of A, B and C and gets its fragment of D = A·B + C. The emulated GPU does the
// same: each lane publishes its A and B registers in the warp's wide slots (32 bytes per lane),
// a warp barrier over all 32 lanes (which must all exist and be live), each lane computes its
// four D elements from every lane's registers, and a second barrier before the slots are reused.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8 / m16n8k16"), with
// g = lane / 4 (group) and t = lane % 4 (thread in group):
//   m16n8k8 .tf32 (row-major A 16×8, column-major B 8×8):
//     A: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]  (f32 bits)
//     B: b0 = B[t][g], b1 = B[t+4][g]
//   m16n8k16 .f16 / .bf16 (A 16×16, B 16×8), each register two 16-bit values, the lower
//   column (A) or row (B) in the low half:
//     A: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1], a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9]
//     B: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C and D (16×8 f32) for both: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// TF32 operands are rounded inside the operation to TF32 (1 sign, 8 exponent, 10 mantissa
// bits), round to nearest with ties away from zero, as `cvt.rna.tf32.f32` does. Products of
// TF32, f16 or bf16 values are exact in f32; they are accumulated into C in k order with f32
// fused multiply-adds.
extern "C" void* emu_warp_wide_slot(unsigned lane);

// x rounded to TF32 (`cvt.rna.tf32.f32`): the low 13 mantissa bits cleared after adding half
// of their weight to the magnitude; infinities and NaN unchanged.
inline float emu_tf32_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) {
        u = (u + 0x1000u) & 0xffffe000u;
    }
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

// IEEE binary16 bits to f32 (exact).
inline float emu_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1fu) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {
        // Subnormal: man · 2^-24, exact in f32.
        float v = (float)man * 5.9604644775390625e-8f;
        memcpy(&u, &v, sizeof u);
        u |= sign;
    }
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

// bfloat16 bits to f32 (exact: the high half of an f32).
inline float emu_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

// Publishes this lane's 4 A words and 2 B words; returns after every lane of the warp has.
__attribute__((no_sanitize_thread)) inline void emu_mma_publish(const unsigned a[4],
                                                                const unsigned b[2]) {
    uint32_t* slot = static_cast<uint32_t*>(emu_warp_wide_slot(emu_current_thread()->lane));
    for (int i = 0; i < 4; ++i) {
        slot[i] = a[i];
    }
    slot[4] = b[0];
    slot[5] = b[1];
    emu_syncwarp(0xffffffffu, 0);
}

// Word `w` of lane `lane`'s published fragments.
__attribute__((no_sanitize_thread)) inline uint32_t emu_mma_word(unsigned lane, int w) {
    return static_cast<const uint32_t*>(emu_warp_wide_slot(lane))[w];
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 d, a, b, c.
__attribute__((no_sanitize_thread)) inline void emu_mma_m16n8k8_tf32(float d[4],
                                                                     const unsigned a[4],
                                                                     const unsigned b[2],
                                                                     const float c[4]) {
    emu_mma_publish(a, b);
    const unsigned lane = emu_current_thread()->lane;
    const unsigned g = lane / 4, t = lane % 4;
    float out[4];
    for (int e = 0; e < 4; ++e) {
        const unsigned row = g + (e >= 2 ? 8u : 0u);
        const unsigned col = 2 * t + (unsigned)(e & 1);
        float acc = c[e];
        for (unsigned kk = 0; kk < 8; ++kk) {
            // A[row][kk]: lane 4·(row % 8) + kk % 4, word (row ≥ 8) + 2·(kk ≥ 4).
            const uint32_t aw =
                emu_mma_word(4 * (row % 8) + kk % 4, (int)((row >= 8) + 2 * (kk >= 4)));
            // B[kk][col]: lane 4·col + kk % 4, word 4 + (kk ≥ 4).
            const uint32_t bw = emu_mma_word(4 * col + kk % 4, 4 + (int)(kk >= 4));
            acc = fmaf(emu_tf32_round(__int_as_float((int)aw)),
                       emu_tf32_round(__int_as_float((int)bw)), acc);
        }
        out[e] = acc;
    }
    emu_syncwarp(0xffffffffu, 0);
    for (int e = 0; e < 4; ++e) {
        d[e] = out[e];
    }
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 d, a, b, c.
template <bool kBf16>
__attribute__((no_sanitize_thread)) inline void emu_mma_m16n8k16(float d[4], const unsigned a[4],
                                                                 const unsigned b[2],
                                                                 const float c[4]) {
    emu_mma_publish(a, b);
    const unsigned lane = emu_current_thread()->lane;
    const unsigned g = lane / 4, t = lane % 4;
    float out[4];
    for (int e = 0; e < 4; ++e) {
        const unsigned row = g + (e >= 2 ? 8u : 0u);
        const unsigned col = 2 * t + (unsigned)(e & 1);
        float acc = c[e];
        for (unsigned kk = 0; kk < 16; ++kk) {
            // A[row][kk]: lane 4·(row % 8) + (kk % 8) / 2, word (row ≥ 8) + 2·(kk ≥ 8),
            // half kk % 2. B[kk][col]: lane 4·col + (kk % 8) / 2, word 4 + (kk ≥ 8), half kk % 2.
            const uint32_t aw =
                emu_mma_word(4 * (row % 8) + (kk % 8) / 2, (int)((row >= 8) + 2 * (kk >= 8)));
            const uint32_t bw = emu_mma_word(4 * col + (kk % 8) / 2, 4 + (int)(kk >= 8));
            const uint16_t ah = (uint16_t)(aw >> (16 * (kk % 2)));
            const uint16_t bh = (uint16_t)(bw >> (16 * (kk % 2)));
            const float av = kBf16 ? emu_bf16_to_f32(ah) : emu_f16_to_f32(ah);
            const float bv = kBf16 ? emu_bf16_to_f32(bh) : emu_f16_to_f32(bh);
            acc = fmaf(av, bv, acc);
        }
        out[e] = acc;
    }
    emu_syncwarp(0xffffffffu, 0);
    for (int e = 0; e < 4; ++e) {
        d[e] = out[e];
    }
}

// ---- asynchronous copies: cp.async --------------------------------------------------------------
// `cp.async` copies 4, 8 or 16 bytes from global to shared memory without blocking the thread.
// The emulated GPU reads the source when the copy is issued (a read past a buffer faults there)
// but writes shared memory only when the thread's `cp.async.wait_group N` / `wait_all` retires
// the copy's group: until then the destination keeps what it held (NaN at block start), so a
// missing or too-weak wait is a read of never-written shared memory for the checker, or wrong
// values. The landing write counts, for the race checker, as the waiting thread's write at the
// wait. `src_bytes` < `bytes` fills the rest of the destination with zeros (as PTX's src-size).
// The destination must lie in the block's shared memory, and a thread must not exit with
// copies it never waited for.
extern "C" void emu_cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes);
// cp.async.commit_group: the copies issued since the last commit form one group.
extern "C" void emu_cp_async_commit(void);
// cp.async.wait_group N: every committed group but the newest `pending` has landed.
extern "C" void emu_cp_async_wait(unsigned pending);
