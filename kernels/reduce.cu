// reduce.cu: axis reductions, log-softmax / logsumexp, gather and its adjoint index_add,
// strided scatter-copy.

struct ReduceSum {
    template <class T>
    __device__ __forceinline__ static T identity() {
        return T(0);
    }
    template <class T>
    __device__ __forceinline__ static T combine(T a, T b) {
        return a + b;
    }
};

struct ReduceMax {
    template <class T>
    __device__ __forceinline__ static T identity() {
        return -cv_inf(T(0));
    }
    template <class T>
    __device__ __forceinline__ static T combine(T a, T b) {
        return cv_max(a, b);
    }
};

// reduce_sum_{dt} / reduce_max_{dt}(const T* x, T* out, long long outer, long long red,
//                                   long long inner)
//   x viewed as [outer, red, inner]; out[o, i] = Σ_r x[o, r, i]  (max: max_r, NaN-propagating,
//   −inf when red == 0; sum: 0 when red == 0).
// Launch: 2D block (bx, by) with bx·by ≤ 1024: threadIdx.x walks `inner` (coalesced loads),
//   threadIdx.y strides over `red`, and the partials are combined by a shared-memory tree over y.
//   Use (1, 256) when inner == 1, (32, 8) when inner ≥ 32. grid.x: any count, each block
//   grid-strides over the outer · ceil(inner / bx) output tiles.
template <class Op, class T>
__device__ __forceinline__ void reduce_axis_kernel(const T* x, T* out, cv_i64 outer, cv_i64 red,
                                                   cv_i64 inner) {
    __shared__ T sm[1024];
    const unsigned tx = threadIdx.x;
    const unsigned ty = threadIdx.y;
    const unsigned bx = blockDim.x;
    const unsigned by = blockDim.y;
    unsigned top = 1;
    while (top < by) {
        top <<= 1;
    }
    const cv_i64 inner_tiles = (inner + bx - 1) / bx;
    const cv_i64 tiles = outer * inner_tiles;
    for (cv_i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const cv_i64 o = t / inner_tiles;
        const cv_i64 i = (t % inner_tiles) * bx + tx;
        T acc = Op::template identity<T>();
        if (i < inner) {
            for (cv_i64 r = ty; r < red; r += by) {
                acc = Op::template combine<T>(acc, x[(o * red + r) * inner + i]);
            }
        }
        sm[ty * bx + tx] = acc;
        __syncthreads();
        for (unsigned s = top >> 1; s > 0; s >>= 1) {
            if (ty < s && ty + s < by) {
                sm[ty * bx + tx] = Op::template combine<T>(sm[ty * bx + tx], sm[(ty + s) * bx + tx]);
            }
            __syncthreads();
        }
        if (ty == 0 && i < inner) {
            out[o * inner + i] = sm[tx];
        }
        __syncthreads();
    }
}

#define CV_REDUCE_KERNEL(dt, T)                                                             \
    extern "C" __global__ void __launch_bounds__(1024) reduce_sum_##dt(const T* x, T* out, long long outer,         \
                                               long long red, long long inner) {            \
        reduce_axis_kernel<ReduceSum, T>(x, out, outer, red, inner);                        \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(1024) reduce_max_##dt(const T* x, T* out, long long outer,         \
                                               long long red, long long inner) {            \
        reduce_axis_kernel<ReduceMax, T>(x, out, outer, red, inner);                        \
    }
CV_FOR_EACH_DTYPE(CV_REDUCE_KERNEL)

// Block-wide reduction of one value per thread over a 1D block (blockDim.x a multiple of 32,
// ≤ 1024): warp shuffles, then one shared-memory slot per warp. Every thread gets the result.
template <class Op, class T>
__device__ __forceinline__ T cv_block_reduce(T v, T* warp_buf) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warp = threadIdx.x >> 5;
    const unsigned nwarps = (blockDim.x + 31u) >> 5;
    for (int off = 16; off > 0; off >>= 1) {
        v = Op::template combine<T>(v, __shfl_xor_sync(0xffffffffu, v, off));
    }
    if (lane == 0) {
        warp_buf[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        T r = lane < nwarps ? warp_buf[lane] : Op::template identity<T>();
        for (int off = 16; off > 0; off >>= 1) {
            r = Op::template combine<T>(r, __shfl_xor_sync(0xffffffffu, r, off));
        }
        if (lane == 0) {
            warp_buf[32] = r;
        }
    }
    __syncthreads();
    T result = warp_buf[32];
    __syncthreads();
    return result;
}

// Row maximum and shift used by log_softmax / logsumexp: returns the shift s (the row max when
// finite, else 0, so all −inf rows give −inf and +inf rows give +inf instead of NaN) and
// Σ_j exp(x_j − s).
template <class T>
__device__ __forceinline__ void cv_row_shift_sum(const T* row, cv_i64 cols, T* warp_buf, T* shift,
                                                 T* sum) {
    T m = ReduceMax::identity<T>();
    for (cv_i64 j = threadIdx.x; j < cols; j += blockDim.x) {
        m = cv_max(m, row[j]);
    }
    m = cv_block_reduce<ReduceMax, T>(m, warp_buf);
    const T s = cv_isfinite(m) ? m : T(0);
    T acc = T(0);
    for (cv_i64 j = threadIdx.x; j < cols; j += blockDim.x) {
        acc += cv_exp(row[j] - s);
    }
    *sum = cv_block_reduce<ReduceSum, T>(acc, warp_buf);
    *shift = s;
}

// log_softmax_{dt}(const T* x, T* out, long long rows, long long cols)
//   out[r, j] = x[r, j] − log Σ_j' exp(x[r, j'])  (stable: the row max is subtracted first).
// logsumexp_{dt}(const T* x, T* out, long long rows, long long cols)
//   out[r] = log Σ_j exp(x[r, j])  (−inf for an empty row).
// Launch: 1D block, blockDim.x a multiple of 32 (≤ 1024; 128 or 256 suggested); grid.x any,
//   each block grid-strides over rows.
template <class T>
__device__ __forceinline__ void log_softmax_kernel(const T* x, T* out, cv_i64 rows, cv_i64 cols) {
    __shared__ T warp_buf[33];
    for (cv_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = x + r * cols;
        T shift, sum;
        cv_row_shift_sum<T>(row, cols, warp_buf, &shift, &sum);
        const T lse = shift + cv_log(sum);
        for (cv_i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            out[r * cols + j] = row[j] - lse;
        }
    }
}

template <class T>
__device__ __forceinline__ void logsumexp_kernel(const T* x, T* out, cv_i64 rows, cv_i64 cols) {
    __shared__ T warp_buf[33];
    for (cv_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        T shift, sum;
        cv_row_shift_sum<T>(x + r * cols, cols, warp_buf, &shift, &sum);
        if (threadIdx.x == 0) {
            out[r] = shift + cv_log(sum);
        }
    }
}

#define CV_SOFTMAX_KERNEL(dt, T)                                                              \
    extern "C" __global__ void __launch_bounds__(256) log_softmax_##dt(const T* x, T* out, long long rows,           \
                                                long long cols) {                             \
        log_softmax_kernel<T>(x, out, rows, cols);                                            \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(256) logsumexp_##dt(const T* x, T* out, long long rows,             \
                                              long long cols) {                               \
        logsumexp_kernel<T>(x, out, rows, cols);                                              \
    }
CV_FOR_EACH_DTYPE(CV_SOFTMAX_KERNEL)

// gather_{dt}(const T* x, const long long* idx, T* out, long long outer, long long axis_len,
//             long long inner, long long n_idx)
//   x viewed as [outer, axis_len, inner], out as [outer, n_idx, inner]:
//   out[o, j, i] = x[o, idx[j], i]. The caller validates indices; an index outside
//   [0, axis_len) writes 0 instead of reading out of bounds. 1D grid-stride launch.
#define CV_GATHER_KERNEL(dt, T)                                                              \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) gather_##dt(const T* x, const long long* idx, T* out,         \
                                           long long outer, long long axis_len,              \
                                           long long inner, long long n_idx) {               \
        const cv_u64 total = (cv_u64)outer * (cv_u64)n_idx * (cv_u64)inner;                  \
        for (cv_u64 e = cv_global_index(); e < total; e += cv_grid_stride()) {               \
            const cv_i64 i = (cv_i64)(e % (cv_u64)inner);                                    \
            const cv_i64 j = (cv_i64)((e / (cv_u64)inner) % (cv_u64)n_idx);                  \
            const cv_i64 o = (cv_i64)(e / ((cv_u64)inner * (cv_u64)n_idx));                  \
            const cv_i64 src = idx[j];                                                       \
            out[e] = (src >= 0 && src < axis_len) ? x[(o * axis_len + src) * inner + i] : T(0); \
        }                                                                                    \
    }
CV_FOR_EACH_DTYPE(CV_GATHER_KERNEL)
CV_FOR_EACH_HALF(CV_GATHER_KERNEL)

// index_add_{dt}(const T* x, const long long* groups, T* out, long long outer, long long n_idx,
//                long long len, long long inner)
//   The adjoint of gather: x viewed as [outer, n_idx, inner], out as [outer, len, inner],
//   out[o, k, i] = Σ_j x[o, j, i] over the positions j with idx[j] = k. `groups` holds the
//   inverse of idx: starts[0..=len] (len + 1 words), then positions[0..n_idx], where the
//   positions selecting k are positions[starts[k]..starts[k + 1]] in increasing order. One
//   thread per output element sums them in that order: deterministic, no atomics, each output
//   written by exactly one thread. 1D grid-stride launch.
#define CV_INDEX_ADD_KERNEL(dt, T)                                                           \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) index_add_##dt(const T* x, const long long* groups, T* out,   \
                                              long long outer, long long n_idx,              \
                                              long long len, long long inner) {              \
        const cv_u64 total = (cv_u64)outer * (cv_u64)len * (cv_u64)inner;                    \
        const long long* positions = groups + len + 1;                                       \
        for (cv_u64 e = cv_global_index(); e < total; e += cv_grid_stride()) {               \
            const cv_i64 i = (cv_i64)(e % (cv_u64)inner);                                    \
            const cv_i64 k = (cv_i64)((e / (cv_u64)inner) % (cv_u64)len);                    \
            const cv_i64 o = (cv_i64)(e / ((cv_u64)inner * (cv_u64)len));                    \
            T acc = T(0);                                                                    \
            for (cv_i64 p = groups[k]; p < groups[k + 1]; ++p) {                             \
                acc += x[(o * n_idx + positions[p]) * inner + i];                            \
            }                                                                                \
            out[e] = acc;                                                                    \
        }                                                                                    \
    }
CV_FOR_EACH_DTYPE(CV_INDEX_ADD_KERNEL)

// copy_into_strided_{dt}(const T* src, T* dst, size_t n, int rank,
//                        const long long* shape_and_strides, long long dst_offset)
//   dst[dst_offset + Σ_d idx_d·dst_stride_d] = src[i], idx = row-major multi-index of i in the
//   src dims. `shape_and_strides`: device array of 2·rank int64 (src dims, then dst element
//   strides). Writes slices for cat / stack / pad. 1D grid-stride launch.
#define CV_COPY_INTO_KERNEL(dt, T)                                                             \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) copy_into_strided_##dt(const T* src, T* dst, size_t n,          \
                                                      int rank, const long long* ss,           \
                                                      long long dst_offset) {                  \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                    \
            dst[dst_offset + cv_offset(i, rank, ss, ss + rank)] = src[i];                      \
        }                                                                                      \
    }
CV_FOR_EACH_DTYPE(CV_COPY_INTO_KERNEL)
CV_FOR_EACH_HALF(CV_COPY_INTO_KERNEL)
