// elementwise.cu: unary, broadcasting binary and ternary ops, casts, fill, strided copies.
//
// All kernels are 1D grid-stride loops: any grid / block size is correct (256 threads per
// block and min(ceil(n / 256), 65535) blocks is a good default).
//
// unary_{op}_{dt}(const T* x, T* out, size_t n, T p0, T p1): out[i] = op(x[i]); p0/p1 are
// parameters of `powf`, `affine`, `leaky_relu`, `elu`, `clamp` and `between`, ignored by the
// others. One kernel pair per entry of CV_UNARY_OPS (elementwise_ops.cuh, which says what each
// op computes).

template <class Op, class T>
__device__ __forceinline__ void unary_kernel(const T* x, T* out, size_t n, T p0, T p1) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        out[i] = Op::template apply<T>(x[i], p0, p1);
    }
}

#define CV_UNARY_KERNEL(op, dt, T)                                                         \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) unary_##op##_##dt(const T* x, T* out, size_t n, T p0, T p1) { \
        unary_kernel<UnaryOp_##op, T>(x, out, n, p0, p1);                                  \
    }
#define CV_UNARY(name, expr) CV_UNARY_KERNEL(name, f32, float) CV_UNARY_KERNEL(name, f64, double)
CV_UNARY_OPS(CV_UNARY)

// binary_{op}_{dt}(const T* a, const T* b, T* out, size_t n, int rank,
//                  const long long* shape_and_strides)
//   out[i] = op(a[oa(i)], b[ob(i)]) with NumPy broadcasting. `shape_and_strides` is a DEVICE
//   array of 3·rank int64: the out dims, then a's element strides (0 on broadcast dims), then
//   b's element strides. n = product of the out dims.
// binary_{op}_contig_{dt}(const T* a, const T* b, T* out, size_t n): same-shape contiguous.
// One kernel of each form and dtype per entry of CV_BINARY_OPS (elementwise_ops.cuh).

template <class Op, class T>
__device__ __forceinline__ void binary_kernel(const T* a, const T* b, T* out, size_t n, int rank,
                                              const cv_i64* ss) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        cv_i64 oa, ob;
        cv_offset2(i, rank, ss, ss + rank, ss + 2 * rank, &oa, &ob);
        out[i] = Op::template apply<T>(a[oa], b[ob]);
    }
}

template <class Op, class T>
__device__ __forceinline__ void binary_contig_kernel(const T* a, const T* b, T* out, size_t n) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        out[i] = Op::template apply<T>(a[i], b[i]);
    }
}

#define CV_BINARY_KERNEL(op, dt, T)                                                         \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) binary_##op##_##dt(const T* a, const T* b, T* out, size_t n, \
                                                  int rank, const long long* ss) {          \
        binary_kernel<BinaryOp_##op, T>(a, b, out, n, rank, ss);                            \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) binary_##op##_contig_##dt(const T* a, const T* b, T* out,    \
                                                         size_t n) {                        \
        binary_contig_kernel<BinaryOp_##op, T>(a, b, out, n);                               \
    }
#define CV_BINARY(op, expr) CV_BINARY_KERNEL(op, f32, float) CV_BINARY_KERNEL(op, f64, double)
CV_BINARY_OPS(CV_BINARY)

// ternary_{op}_{dt}(const T* a, const T* b, const T* c, T* out, size_t n, int rank,
//                   const long long* shape_and_strides)
//   Broadcasting like binary, with 4·rank int64: out dims, strides of a, of b, of c.
// ternary_{op}_contig_{dt}(const T* a, const T* b, const T* c, T* out, size_t n).
// One kernel of each form and dtype per entry of CV_TERNARY_OPS (elementwise_ops.cuh).

template <class Op, class T>
__device__ __forceinline__ void ternary_kernel(const T* a, const T* b, const T* c, T* out,
                                               size_t n, int rank, const cv_i64* ss) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        cv_i64 oa, ob, oc;
        cv_offset3(i, rank, ss, ss + rank, ss + 2 * rank, ss + 3 * rank, &oa, &ob, &oc);
        out[i] = Op::template apply<T>(a[oa], b[ob], c[oc]);
    }
}

template <class Op, class T>
__device__ __forceinline__ void ternary_contig_kernel(const T* a, const T* b, const T* c, T* out,
                                                      size_t n) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        out[i] = Op::template apply<T>(a[i], b[i], c[i]);
    }
}

#define CV_TERNARY_KERNEL(op, dt, T)                                                           \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) ternary_##op##_##dt(const T* a, const T* b, const T* c, T* out, \
                                                   size_t n, int rank, const long long* ss) {  \
        ternary_kernel<TernaryOp_##op, T>(a, b, c, out, n, rank, ss);                          \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) ternary_##op##_contig_##dt(const T* a, const T* b, const T* c,  \
                                                          T* out, size_t n) {                  \
        ternary_contig_kernel<TernaryOp_##op, T>(a, b, c, out, n);                             \
    }
#define CV_TERNARY(op, expr) CV_TERNARY_KERNEL(op, f32, float) CV_TERNARY_KERNEL(op, f64, double)
CV_TERNARY_OPS(CV_TERNARY)

// cast_f32_f64(const float* x, double* out, size_t n) and cast_f64_f32(const double* x,
// float* out, size_t n): out[i] = x[i] converted (f64 → f32 rounds to nearest).
extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) cast_f32_f64(const float* x, double* out, size_t n) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        out[i] = (double)x[i];
    }
}

extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) cast_f64_f32(const double* x, float* out, size_t n) {
    for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {
        out[i] = (float)x[i];
    }
}

// The casts of the 16-bit storage dtypes (their bits in `unsigned short`):
// cast_{f16,bf16}_{f32,f64}(const unsigned short* x, To* out, size_t n): exact widening.
// cast_{from}_{f16,bf16}(const From* x, unsigned short* out, size_t n, unsigned* overflow,
//                        unsigned code), from f32, f64 or the other 16-bit dtype: rounds to
//   nearest even (f64 through f32 rounded to odd, so the value is rounded once); a finite value
//   that rounds to infinity stores `code` in *overflow, the flag the host reads when it next
//   downloads or synchronises (every thread that overflows stores the same code).
#define CV_CAST_FROM_HALF(h, to, To)                                                        \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) cast_##h##_##to(             \
        const cv_half_bits* x, To* out, size_t n) {                                         \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                 \
            out[i] = (To)cv_##h##_to_f32(x[i]);                                             \
        }                                                                                   \
    }
CV_CAST_FROM_HALF(f16, f32, float)
CV_CAST_FROM_HALF(f16, f64, double)
CV_CAST_FROM_HALF(bf16, f32, float)
CV_CAST_FROM_HALF(bf16, f64, double)

#define CV_CAST_TO_HALF(from, From, widen, h)                                               \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) cast_##from##_##h(           \
        const From* x, cv_half_bits* out, size_t n, unsigned* overflow, unsigned code) {    \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                 \
            const float wide = widen(x[i]);                                                 \
            const cv_half_bits bits = cv_f32_to_##h(wide);                                  \
            if (cv_##h##_overflowed(wide, bits)) {                                          \
                *overflow = code;                                                           \
            }                                                                               \
            out[i] = bits;                                                                  \
        }                                                                                   \
    }
CV_CAST_TO_HALF(f32, float, cv_f32_to_f32, f16)
CV_CAST_TO_HALF(f32, float, cv_f32_to_f32, bf16)
CV_CAST_TO_HALF(f64, double, cv_f64_to_f32_odd, f16)
CV_CAST_TO_HALF(f64, double, cv_f64_to_f32_odd, bf16)
CV_CAST_TO_HALF(bf16, cv_half_bits, cv_bf16_to_f32, f16)
CV_CAST_TO_HALF(f16, cv_half_bits, cv_f16_to_f32, bf16)

// fill_{dt}(T* out, size_t n, T value): out[i] = value.
// fill_{f16,bf16}(unsigned short* out, size_t n, unsigned bits): out[i] = the low 16 bits.
#define CV_FILL_KERNEL(dt, T)                                                   \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) fill_##dt(T* out, size_t n, T value) {          \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {     \
            out[i] = value;                                                     \
        }                                                                       \
    }
CV_FOR_EACH_DTYPE(CV_FILL_KERNEL)
#define CV_FILL_HALF_KERNEL(dt, T)                                                          \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) fill_##dt(T* out, size_t n,   \
                                                                        unsigned bits) {    \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                 \
            out[i] = (T)bits;                                                               \
        }                                                                                   \
    }
CV_FOR_EACH_HALF(CV_FILL_HALF_KERNEL)

// copy_strided_{dt}(const T* src, T* out, size_t n, int rank,
//                   const long long* shape_and_strides, long long offset)
//   out[i] = src[offset + Σ_d idx_d·stride_d], idx = row-major multi-index of i in the out
//   dims. `shape_and_strides` is a device array of 2·rank int64: out dims, then src element
//   strides. Covers transpose / permute, expand (stride 0), narrow (offset) and diagonal.
#define CV_COPY_STRIDED_KERNEL(dt, T)                                                       \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) copy_strided_##dt(const T* src, T* out, size_t n, int rank,  \
                                                 const long long* ss, long long offset) {   \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                 \
            out[i] = src[offset + cv_offset(i, rank, ss, ss + rank)];                       \
        }                                                                                   \
    }
CV_FOR_EACH_DTYPE(CV_COPY_STRIDED_KERNEL)
CV_FOR_EACH_HALF(CV_COPY_STRIDED_KERNEL)
