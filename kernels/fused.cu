// fused.cu: fused elementwise steps, one launch per step (the plan's `FusedStep`).
//
// fused_eval_{dt}(const __grid_constant__ struct cv_fused_args args)
//   The whole step travels by value in `args` (3336 bytes of kernel parameters: no upload, one
//   driver call per launch). The iteration shape is dims[0..rank) with n elements. At element
//   e (row-major multi-index idx) the program runs over a register file of
//   CV_FUSED_MAX_REGS values per thread:
//     load     regs[dst] = view[op] at idx: data[offset + Σ_d idx_d·strides[d]], or 0 when the
//              view has bounds (bit op of `bounded`) and some idx_d lies outside [lo_d, hi_d)
//     unary    regs[dst] = op(regs[a], params[param])   (op codes: CV_UNARY_OPS' order)
//     binary   regs[dst] = op(regs[a], regs[b])          (CV_BINARY_OPS' order)
//     ternary  regs[dst] = op(regs[a], regs[b], regs[c]) (CV_TERNARY_OPS' order)
//   Without a reduction (reduce == 0) each store s writes out[s][e] = regs[store_regs[s]]. With
//   one, the iteration shape is viewed as [outer, reduced, inner] and each store writes
//   out[s][o·inner + i] = Σ_r regs[store_regs[s]] at element (o, r, i).
// Launch:
//   no reduction: 1D, CV_BLOCK_1D threads per block, any grid (a grid-stride loop);
//   reduction: block (bx, by) with bx·by = CV_BLOCK_1D — threadIdx.x walks `inner`,
//     threadIdx.y strides over `reduced` (r = y, y + by, …, in increasing order), and the by
//     partial sums are combined by a shared-memory tree over y, so a given launch shape always
//     sums in the same order. Any grid.x: blocks grid-stride over the outer·⌈inner/bx⌉ tiles.
// The launcher (crates/tensor/src/cuda/fused.rs) checks every index, op code, register, bound
// and length; the kernel trusts them the way the other kernels trust their sizes.

#define CV_FUSED_MAX_RANK 6
#define CV_FUSED_MAX_REGS 32
#define CV_FUSED_MAX_OPERANDS 16
#define CV_FUSED_MAX_STORES 4
#define CV_FUSED_MAX_INSTRS 128
#define CV_FUSED_MAX_PARAMS 24

#define CV_FUSED_LOAD 0
#define CV_FUSED_UNARY 1
#define CV_FUSED_BINARY 2
#define CV_FUSED_TERNARY 3

// One operand view (112 bytes).
struct cv_fused_view {
    const void* data;
    cv_i64 offset;
    cv_i64 strides[CV_FUSED_MAX_RANK];
    unsigned lo[CV_FUSED_MAX_RANK];
    unsigned hi[CV_FUSED_MAX_RANK];
};

// One instruction (8 bytes): `op` is the operand index of a load, else the op code.
struct cv_fused_instr {
    unsigned char kind;
    unsigned char op;
    unsigned char dst;
    unsigned char a;
    unsigned char b;
    unsigned char c;
    unsigned char param;
    unsigned char unused;
};

// The whole step (3336 bytes; the byte layout is written by the launcher field by field).
struct cv_fused_args {
    void* out[CV_FUSED_MAX_STORES];
    cv_i64 dims[CV_FUSED_MAX_RANK];
    cv_u64 n;
    cv_i64 outer;
    cv_i64 reduced;
    cv_i64 inner;
    unsigned rank;
    unsigned n_instrs;
    unsigned n_stores;
    unsigned bounded;
    unsigned reduce;
    unsigned char store_regs[CV_FUSED_MAX_STORES];
    double params[CV_FUSED_MAX_PARAMS][2];
    cv_fused_view views[CV_FUSED_MAX_OPERANDS];
    cv_fused_instr program[CV_FUSED_MAX_INSTRS];
};
static_assert(sizeof(cv_fused_view) == 112, "cv_fused_view layout");
static_assert(sizeof(cv_fused_instr) == 8, "cv_fused_instr layout");
static_assert(sizeof(cv_fused_args) == 3336, "cv_fused_args layout");

// op(x, p0, p1) for a unary op code (the launcher admits only codes of the list).
template <class T>
__device__ __forceinline__ T cv_fused_unary(unsigned op, T x, T p0, T p1) {
    switch (op) {
#define CV_FUSED_UNARY_CASE(name, expr) \
    case cv_unary_code_##name:          \
        return UnaryOp_##name::template apply<T>(x, p0, p1);
        CV_UNARY_OPS(CV_FUSED_UNARY_CASE)
        default:
            return x;
    }
}

template <class T>
__device__ __forceinline__ T cv_fused_binary(unsigned op, T a, T b) {
    switch (op) {
#define CV_FUSED_BINARY_CASE(name, expr) \
    case cv_binary_code_##name:          \
        return BinaryOp_##name::template apply<T>(a, b);
        CV_BINARY_OPS(CV_FUSED_BINARY_CASE)
        default:
            return a;
    }
}

template <class T>
__device__ __forceinline__ T cv_fused_ternary(unsigned op, T a, T b, T c) {
    switch (op) {
#define CV_FUSED_TERNARY_CASE(name, expr) \
    case cv_ternary_code_##name:          \
        return TernaryOp_##name::template apply<T>(a, b, c);
        CV_TERNARY_OPS(CV_FUSED_TERNARY_CASE)
        default:
            return a;
    }
}

// The row-major multi-index of element e of the iteration shape.
__device__ __forceinline__ void cv_fused_index(const cv_fused_args& args, cv_u64 e, cv_i64* idx) {
#pragma unroll
    for (int d = CV_FUSED_MAX_RANK - 1; d >= 0; --d) {
        idx[d] = 0;
        if (d < (int)args.rank) {
            const cv_u64 dim = (cv_u64)args.dims[d];
            idx[d] = (cv_i64)(e % dim);
            e /= dim;
        }
    }
}

// View `v` at multi-index idx: its element, or 0 outside its bounds.
template <class T>
__device__ __forceinline__ T cv_fused_load(const cv_fused_args& args, unsigned v, const cv_i64* idx) {
    const cv_fused_view& view = args.views[v];
    const bool bounded = ((args.bounded >> v) & 1u) != 0;
    cv_i64 off = view.offset;
    bool inside = true;
#pragma unroll
    for (int d = 0; d < CV_FUSED_MAX_RANK; ++d) {
        if (d < (int)args.rank) {
            off += idx[d] * view.strides[d];
            if (bounded) {
                inside = inside && idx[d] >= (cv_i64)view.lo[d] && idx[d] < (cv_i64)view.hi[d];
            }
        }
    }
    return inside ? static_cast<const T*>(view.data)[off] : T(0);
}

// Runs the program at multi-index idx, leaving the values in regs.
template <class T>
__device__ __forceinline__ void cv_fused_run(const cv_fused_args& args, const cv_i64* idx, T* regs) {
    for (unsigned k = 0; k < args.n_instrs; ++k) {
        const cv_fused_instr in = args.program[k];
        T v;
        if (in.kind == CV_FUSED_LOAD) {
            v = cv_fused_load<T>(args, in.op, idx);
        } else if (in.kind == CV_FUSED_UNARY) {
            v = cv_fused_unary<T>(in.op, regs[in.a], T(args.params[in.param][0]),
                                  T(args.params[in.param][1]));
        } else if (in.kind == CV_FUSED_BINARY) {
            v = cv_fused_binary<T>(in.op, regs[in.a], regs[in.b]);
        } else {
            v = cv_fused_ternary<T>(in.op, regs[in.a], regs[in.b], regs[in.c]);
        }
        regs[in.dst] = v;
    }
}

template <class T>
__device__ __forceinline__ void fused_map(const cv_fused_args& args) {
    T regs[CV_FUSED_MAX_REGS];
    cv_i64 idx[CV_FUSED_MAX_RANK];
    for (cv_u64 e = cv_global_index(); e < args.n; e += cv_grid_stride()) {
        cv_fused_index(args, e, idx);
        cv_fused_run<T>(args, idx, regs);
        for (unsigned s = 0; s < args.n_stores; ++s) {
            static_cast<T*>(args.out[s])[e] = regs[args.store_regs[s]];
        }
    }
}

template <class T>
__device__ __forceinline__ void fused_reduce(const cv_fused_args& args) {
    __shared__ T sm[CV_FUSED_MAX_STORES * CV_BLOCK_1D];
    T regs[CV_FUSED_MAX_REGS];
    cv_i64 idx[CV_FUSED_MAX_RANK];
    const unsigned tx = threadIdx.x;
    const unsigned ty = threadIdx.y;
    const unsigned bx = blockDim.x;
    const unsigned by = blockDim.y;
    const unsigned tid = ty * bx + tx;
    const unsigned threads = bx * by;
    unsigned top = 1;
    while (top < by) {
        top <<= 1;
    }
    const cv_i64 inner_tiles = (args.inner + bx - 1) / bx;
    const cv_i64 tiles = args.outer * inner_tiles;
    for (cv_i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const cv_i64 o = t / inner_tiles;
        const cv_i64 i = (t % inner_tiles) * bx + tx;
        T acc[CV_FUSED_MAX_STORES];
        for (unsigned s = 0; s < CV_FUSED_MAX_STORES; ++s) {
            acc[s] = T(0);
        }
        if (i < args.inner) {
            for (cv_i64 r = ty; r < args.reduced; r += by) {
                cv_fused_index(args, (cv_u64)((o * args.reduced + r) * args.inner + i), idx);
                cv_fused_run<T>(args, idx, regs);
                for (unsigned s = 0; s < args.n_stores; ++s) {
                    acc[s] += regs[args.store_regs[s]];
                }
            }
        }
        for (unsigned s = 0; s < args.n_stores; ++s) {
            sm[s * threads + tid] = acc[s];
        }
        __syncthreads();
        for (unsigned h = top >> 1; h > 0; h >>= 1) {
            if (ty < h && ty + h < by) {
                for (unsigned s = 0; s < args.n_stores; ++s) {
                    sm[s * threads + tid] += sm[s * threads + (ty + h) * bx + tx];
                }
            }
            __syncthreads();
        }
        if (ty == 0 && i < args.inner) {
            for (unsigned s = 0; s < args.n_stores; ++s) {
                static_cast<T*>(args.out[s])[o * args.inner + i] = sm[s * threads + tx];
            }
        }
        __syncthreads();
    }
}

#define CV_FUSED_KERNEL(dt, T)                                                               \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D)                                \
        fused_eval_##dt(const __grid_constant__ struct cv_fused_args args) {                 \
        if (args.reduce != 0) {                                                              \
            fused_reduce<T>(args);                                                           \
        } else {                                                                             \
            fused_map<T>(args);                                                              \
        }                                                                                    \
    }
CV_FOR_EACH_DTYPE(CV_FUSED_KERNEL)
