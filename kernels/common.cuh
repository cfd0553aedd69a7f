// common.cuh: prelude prepended (as text, not #include) to every kernel family.
//
// The same text compiles under NVRTC (no toolkit headers) and under the host C++ compiler
// against kernels/emulator/cuda_emu.h (the emulated GPU). Everything here is a template or
// `__forceinline__`, so one definition per translation unit is fine.
//
// Conventions for every family:
// - tensors are dense, row-major, contiguous; element counts and offsets are 64-bit;
// - kernels are `extern "C" __global__`, named `{op}_{dtype}` with dtype `f32` / `f64`;
// - 1D element-wise kernels use grid-stride loops, so any grid size is correct.

typedef unsigned long long cv_u64;
typedef long long cv_i64;

// ---- math helpers, overloaded on float / double --------------------------------------------
__device__ __forceinline__ float cv_exp(float x) { return expf(x); }
__device__ __forceinline__ double cv_exp(double x) { return exp(x); }
__device__ __forceinline__ float cv_log(float x) { return logf(x); }
__device__ __forceinline__ double cv_log(double x) { return log(x); }
__device__ __forceinline__ float cv_sin(float x) { return sinf(x); }
__device__ __forceinline__ double cv_sin(double x) { return sin(x); }
__device__ __forceinline__ float cv_cos(float x) { return cosf(x); }
__device__ __forceinline__ double cv_cos(double x) { return cos(x); }
__device__ __forceinline__ float cv_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double cv_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float cv_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double cv_abs(double x) { return fabs(x); }
__device__ __forceinline__ float cv_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double cv_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float cv_pow(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double cv_pow(double x, double p) { return pow(x, p); }
__device__ __forceinline__ float cv_erf(float x) { return erff(x); }
__device__ __forceinline__ double cv_erf(double x) { return erf(x); }
__device__ __forceinline__ float cv_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double cv_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float cv_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double cv_expm1(double x) { return expm1(x); }

// +infinity, built from its bit pattern (no INFINITY macro without toolkit headers).
__device__ __forceinline__ float cv_inf(float) { return __int_as_float(0x7f800000); }
__device__ __forceinline__ double cv_inf(double) { return __longlong_as_double(0x7ff0000000000000LL); }

// True for finite values, false for ±inf and NaN (x − x is 0 only for finite x).
template <class T>
__device__ __forceinline__ bool cv_isfinite(T x) {
    T d = x - x;
    return d == d;
}

// Maximum that propagates NaN (like torch.max): if either side is NaN the result is NaN.
template <class T>
__device__ __forceinline__ T cv_max(T a, T b) {
    return (a > b || a != a) ? a : b;
}

// Numerically stable logistic function 1 / (1 + e^−x).
template <class T>
__device__ __forceinline__ T cv_sigmoid(T x) {
    if (x >= T(0)) {
        return T(1) / (T(1) + cv_exp(-x));
    }
    T e = cv_exp(x);
    return e / (T(1) + e);
}

// ---- 16-bit storage (f16, bf16) ------------------------------------------------------------
// Stored as their bits in `unsigned short`; kernels load them into f32 (exact), compute in f32
// and round to nearest even on store. Integer arithmetic only, so NVRTC needs no toolkit header
// and the emulated GPU rounds exactly like the GPU.
typedef unsigned short cv_half_bits;

// f16 bits → f32 (exact).
__device__ __forceinline__ float cv_f16_to_f32(cv_half_bits h) {
    const unsigned sign = ((unsigned)h & 0x8000u) << 16;
    const unsigned e = ((unsigned)h >> 10) & 0x1fu;
    const unsigned m = (unsigned)h & 0x3ffu;
    if (e == 0x1fu) {
        return __int_as_float((int)(sign | 0x7f800000u | (m << 13)));
    }
    if (e != 0u) {
        return __int_as_float((int)(sign | ((e + 112u) << 23) | (m << 13)));
    }
    // Zero or subnormal: m·2⁻²⁴, exact in f32.
    const float v = (float)m * 5.9604644775390625e-8f;
    return sign ? -v : v;
}

// f32 → f16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
__device__ __forceinline__ cv_half_bits cv_f32_to_f16(float f) {
    const unsigned x = (unsigned)__float_as_int(f);
    const unsigned sign = (x >> 16) & 0x8000u;
    const unsigned a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        return (cv_half_bits)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    }
    if (a >= 0x477ff000u) {  // ≥ 65520, the midpoint above 65504: rounds to infinity
        return (cv_half_bits)(sign | 0x7c00u);
    }
    if (a >= 0x38800000u) {  // ≥ 2⁻¹⁴: normal, rebias the exponent and round 13 bits away
        const unsigned r = a - 0x38000000u;
        unsigned h = r >> 13;
        const unsigned rem = r & 0x1fffu;
        h += (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ? 1u : 0u;
        return (cv_half_bits)(sign | h);
    }
    const unsigned e = a >> 23;
    if (e < 102u) {  // below 2⁻²⁵: rounds to zero
        return (cv_half_bits)sign;
    }
    // Subnormal: the significand (hidden bit included) in units of 2⁻²⁴, rounded.
    const unsigned m = (a & 0x7fffffu) | 0x800000u;
    const unsigned s = 126u - e;
    unsigned h = m >> s;
    const unsigned rem = m & ((1u << s) - 1u);
    const unsigned mid = 1u << (s - 1u);
    h += (rem > mid || (rem == mid && (h & 1u))) ? 1u : 0u;
    return (cv_half_bits)(sign | h);
}

// bf16 bits → f32 (exact).
__device__ __forceinline__ float cv_bf16_to_f32(cv_half_bits h) {
    return __int_as_float((int)((unsigned)h << 16));
}

// f32 → bf16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
__device__ __forceinline__ cv_half_bits cv_f32_to_bf16(float f) {
    const unsigned x = (unsigned)__float_as_int(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (cv_half_bits)((x >> 16) | 0x40u);
    }
    return (cv_half_bits)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// f64 → f32 rounded to odd (truncate, then set the last bit when inexact): rounding that to
// f16 or bf16 equals rounding the f64 value directly (f32 keeps more than 2 extra bits).
__device__ __forceinline__ float cv_f64_to_f32_odd(double d) {
    float f = (float)d;
    if (d != d || (double)f == d) {
        return f;
    }
    int bits = __float_as_int(f);
    if ((double)(f < 0.0f ? -f : f) > (d < 0.0 ? -d : d)) {
        bits -= 1;  // one step toward zero (same sign, smaller magnitude)
    }
    return __int_as_float(bits | 1);
}

// f32 unchanged (the widening step of a cast from f32).
__device__ __forceinline__ float cv_f32_to_f32(float f) { return f; }

// True when a finite value `wide` was stored as an infinite 16-bit value `bits`.
__device__ __forceinline__ bool cv_f16_overflowed(float wide, cv_half_bits bits) {
    return ((unsigned)bits & 0x7fffu) == 0x7c00u && cv_isfinite(wide);
}
__device__ __forceinline__ bool cv_bf16_overflowed(float wide, cv_half_bits bits) {
    return ((unsigned)bits & 0x7fffu) == 0x7f80u && cv_isfinite(wide);
}

// ---- indexing helpers ---------------------------------------------------------------------
// First global index and stride of a 1D grid-stride loop, both 64-bit.
__device__ __forceinline__ cv_u64 cv_global_index() {
    return (cv_u64)blockIdx.x * (cv_u64)blockDim.x + (cv_u64)threadIdx.x;
}
__device__ __forceinline__ cv_u64 cv_grid_stride() {
    return (cv_u64)blockDim.x * (cv_u64)gridDim.x;
}

// Offset of flat row-major index `i` (in a tensor of dims `dims[0..rank)`) in a strided view
// with element strides `strides[0..rank)`.
__device__ __forceinline__ cv_i64 cv_offset(cv_u64 i, int rank, const cv_i64* dims,
                                            const cv_i64* strides) {
    cv_i64 off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        cv_u64 dim = (cv_u64)dims[d];
        cv_u64 idx = i % dim;
        i /= dim;
        off += (cv_i64)idx * strides[d];
    }
    return off;
}

// Two offsets for one flat index (binary broadcasting: strides of a, then of b).
__device__ __forceinline__ void cv_offset2(cv_u64 i, int rank, const cv_i64* dims,
                                           const cv_i64* sa, const cv_i64* sb, cv_i64* oa,
                                           cv_i64* ob) {
    cv_i64 a = 0, b = 0;
    for (int d = rank - 1; d >= 0; --d) {
        cv_u64 dim = (cv_u64)dims[d];
        cv_u64 idx = i % dim;
        i /= dim;
        a += (cv_i64)idx * sa[d];
        b += (cv_i64)idx * sb[d];
    }
    *oa = a;
    *ob = b;
}

// Three offsets for one flat index (ternary broadcasting).
__device__ __forceinline__ void cv_offset3(cv_u64 i, int rank, const cv_i64* dims,
                                           const cv_i64* sa, const cv_i64* sb, const cv_i64* sc,
                                           cv_i64* oa, cv_i64* ob, cv_i64* oc) {
    cv_i64 a = 0, b = 0, c = 0;
    for (int d = rank - 1; d >= 0; --d) {
        cv_u64 dim = (cv_u64)dims[d];
        cv_u64 idx = i % dim;
        i /= dim;
        a += (cv_i64)idx * sa[d];
        b += (cv_i64)idx * sb[d];
        c += (cv_i64)idx * sc[d];
    }
    *oa = a;
    *ob = b;
    *oc = c;
}

// Threads per block of the 1D grid-stride kernels (geometry::BLOCK_1D): their
// __launch_bounds__, so ptxas keeps registers × threads within an SM.
#define CV_BLOCK_1D 256

// Instantiates a kernel for both dtypes: KERNEL(dt, T) must expand to one definition.
#define CV_FOR_EACH_DTYPE(KERNEL) KERNEL(f32, float) KERNEL(f64, double)

// Instantiates a kernel that only moves elements for the 16-bit storage dtypes (their bits).
#define CV_FOR_EACH_HALF(KERNEL) KERNEL(f16, cv_half_bits) KERNEL(bf16, cv_half_bits)

// ---- tensor cores and asynchronous copies (sm_80+) -----------------------------------------
// The same inline functions on every target: PTX `mma.sync` / `cp.async` under NVRTC for
// sm_80 and newer, the emulated GPU's warp-wide implementations (kernels/emulator/cuda_emu.h,
// which documents the fragment layouts and when copies land) on the host. Older architectures
// trap: the host never launches tensor-core kernels there.

// x rounded to TF32 (cvt.rna.tf32.f32: round to nearest, ties away from zero, 10 mantissa
// bits), as the bits of an f32.
__device__ __forceinline__ unsigned cv_tf32(float x) {
#if defined(CURVATURE_EMULATOR)
    return (unsigned)__float_as_int(emu_tf32_round(x));
#elif __CUDA_ARCH__ >= 800
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#else
    return (unsigned)__float_as_int(x);
#endif
}

// d = A·B + c over one m16n8k8 TF32 tile (row-major A, column-major B, f32 accumulate).
__device__ __forceinline__ void cv_mma_m16n8k8_tf32(float d[4], const unsigned a[4],
                                                    const unsigned b[2], const float c[4]) {
#if defined(CURVATURE_EMULATOR)
    emu_mma_m16n8k8_tf32(d, a, b, c);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    asm volatile("trap;");
#endif
}

// d = A·B + c over one m16n8k16 tile of f16 (two per register, lower index in the low half).
__device__ __forceinline__ void cv_mma_m16n8k16_f16(float d[4], const unsigned a[4],
                                                    const unsigned b[2], const float c[4]) {
#if defined(CURVATURE_EMULATOR)
    emu_mma_m16n8k16<false>(d, a, b, c);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    asm volatile("trap;");
#endif
}

// d = A·B + c over one m16n8k16 tile of bf16 (two per register, lower index in the low half).
__device__ __forceinline__ void cv_mma_m16n8k16_bf16(float d[4], const unsigned a[4],
                                                     const unsigned b[2], const float c[4]) {
#if defined(CURVATURE_EMULATOR)
    emu_mma_m16n8k16<true>(d, a, b, c);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    asm volatile("trap;");
#endif
}

// cp.async of BYTES (4, 8 or 16) from global `src` to shared `dst`, both BYTES-aligned; only the
// first `src_bytes` are read, the rest of the destination is zero-filled (src_bytes = 0: all
// zeros, `src` is not read but must still be a valid address).
template <int BYTES>
__device__ __forceinline__ void cv_cp_async(void* dst, const void* src, unsigned src_bytes) {
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(CURVATURE_EMULATOR)
    emu_cp_async(dst, src, BYTES, src_bytes);
#elif __CUDA_ARCH__ >= 800
    unsigned saddr;
    asm("{ .reg .u64 p; cvta.to.shared.u64 p, %1; cvt.u32.u64 %0, p; }"
        : "=r"(saddr)
        : "l"(dst));
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(saddr), "l"(src),
                 "n"(BYTES), "r"(src_bytes)
                 : "memory");
#else
    asm volatile("trap;");
#endif
}

// cp.async.commit_group: the copies issued since the last commit become one group.
__device__ __forceinline__ void cv_cp_async_commit() {
#if defined(CURVATURE_EMULATOR)
    emu_cp_async_commit();
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// cp.async.wait_group N: all but the newest N committed groups have landed in shared memory
// (for this thread; other threads see them after a barrier).
template <int N>
__device__ __forceinline__ void cv_cp_async_wait() {
#if defined(CURVATURE_EMULATOR)
    emu_cp_async_wait(N);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

// cp.async.wait_all: every copy issued so far, committed or not, has landed.
__device__ __forceinline__ void cv_cp_async_wait_all() {
#if defined(CURVATURE_EMULATOR)
    emu_cp_async_commit();
    emu_cp_async_wait(0);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}
