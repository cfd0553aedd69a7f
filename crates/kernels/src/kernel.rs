//! Typed kernel names: every kernel entry point is named by a [`Kernel`] value, built from its
//! family, op stem, operand indexing and dtype, and [`Kernel`]'s `Display` writes the exact
//! symbol defined in `kernels/*.cu`. No other code formats kernel names.

use std::fmt;

use crate::family::KernelFamily;
use crate::gemm_select::GemmTile;

/// The element type a kernel is instantiated for: the `_{dtype}` suffix of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `float`.
    F32,
    /// `double`.
    F64,
    /// IEEE binary16, stored as its bits in `unsigned short` (converted to and from f32 by
    /// `common.cuh`'s round-to-nearest-even helpers).
    F16,
    /// bfloat16, stored as its bits in `unsigned short`.
    BF16,
}

impl Dtype {
    /// Every dtype the compute kernels (elementwise, reductions, matmul, conv) are
    /// instantiated for.
    pub const ALL: [Dtype; 2] = [Dtype::F32, Dtype::F64];

    /// The 16-bit storage dtypes: casts to and from the compute dtypes and the kernels that
    /// only move elements are instantiated for them.
    pub const HALF: [Dtype; 2] = [Dtype::F16, Dtype::BF16];

    /// `f32`, `f64`, `f16` or `bf16`, as in kernel names.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a binary or ternary kernel reads its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Indexing {
    /// NumPy broadcasting through a device table of dims and strides (`binary_{op}_{dt}`).
    Broadcast,
    /// Every operand has the output's shape (`binary_{op}_contig_{dt}`).
    Contiguous,
}

/// The prefix and suffix rules of one group of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Group {
    /// `unary_{op}_{dt}`.
    Unary,
    /// `binary_{op}_{dt}` / `binary_{op}_contig_{dt}`.
    Binary(Indexing),
    /// `ternary_{op}_{dt}` / `ternary_{op}_contig_{dt}`.
    Ternary(Indexing),
    /// `cast_{from}_{to}`: the op stem is the source dtype, the dtype the target.
    Cast,
    /// `{op}_{dt}`.
    Plain,
}

/// One kernel entry point of a [`KernelFamily`].
///
/// ```
/// use curvature_kernels::{Dtype, Indexing, Kernel, KernelFamily};
///
/// assert_eq!(Kernel::unary("tanh", Dtype::F32).to_string(), "unary_tanh_f32");
/// let add = Kernel::binary("add", Indexing::Contiguous, Dtype::F64);
/// assert_eq!(add.name(), "binary_add_contig_f64");
/// assert_eq!(add.family(), KernelFamily::Elementwise);
/// assert_eq!(Kernel::cast(Dtype::F64, Dtype::F32).name(), "cast_f64_f32");
/// assert_eq!(Kernel::reduce("reduce_sum", Dtype::F32).name(), "reduce_sum_f32");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    family: KernelFamily,
    group: Group,
    op: &'static str,
    dtype: Dtype,
}

impl Kernel {
    const fn new(family: KernelFamily, group: Group, op: &'static str, dtype: Dtype) -> Kernel {
        Kernel {
            family,
            group,
            op,
            dtype,
        }
    }

    /// `unary_{op}_{dt}(const T* x, T* out, size_t n, T p0, T p1)`.
    pub const fn unary(op: &'static str, dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Elementwise, Group::Unary, op, dtype)
    }

    /// `binary_{op}_{dt}` (broadcasting) or `binary_{op}_contig_{dt}`.
    pub const fn binary(op: &'static str, indexing: Indexing, dtype: Dtype) -> Kernel {
        Kernel::new(
            KernelFamily::Elementwise,
            Group::Binary(indexing),
            op,
            dtype,
        )
    }

    /// `ternary_{op}_{dt}` (broadcasting) or `ternary_{op}_contig_{dt}`.
    pub const fn ternary(op: &'static str, indexing: Indexing, dtype: Dtype) -> Kernel {
        Kernel::new(
            KernelFamily::Elementwise,
            Group::Ternary(indexing),
            op,
            dtype,
        )
    }

    /// `cast_{from}_{to}(const From* x, To* out, size_t n)`.
    pub const fn cast(from: Dtype, to: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Elementwise, Group::Cast, from.name(), to)
    }

    /// `fill_{dt}(T* out, size_t n, T value)`.
    pub const fn fill(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Elementwise, Group::Plain, "fill", dtype)
    }

    /// `copy_strided_{dt}`: a gather by strides.
    pub const fn copy_strided(dtype: Dtype) -> Kernel {
        Kernel::new(
            KernelFamily::Elementwise,
            Group::Plain,
            "copy_strided",
            dtype,
        )
    }

    /// `{op}_{dt}` of an axis reduction, whose op stem is its whole name stem (`reduce_sum`,
    /// `reduce_max`).
    pub const fn reduce(op: &'static str, dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Reduce, Group::Plain, op, dtype)
    }

    /// `log_softmax_{dt}(const T* x, T* out, long long rows, long long cols)`.
    pub const fn log_softmax(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Reduce, Group::Plain, "log_softmax", dtype)
    }

    /// `logsumexp_{dt}(const T* x, T* out, long long rows, long long cols)`.
    pub const fn logsumexp(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Reduce, Group::Plain, "logsumexp", dtype)
    }

    /// `gather_{dt}`: index selection along one axis.
    pub const fn gather(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Reduce, Group::Plain, "gather", dtype)
    }

    /// `index_add_{dt}`: the adjoint of [`Kernel::gather`], summing the slices that select
    /// each entry (in a fixed order, with no atomics).
    pub const fn index_add(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Reduce, Group::Plain, "index_add", dtype)
    }

    /// `copy_into_strided_{dt}`: a scatter by strides.
    pub const fn copy_into_strided(dtype: Dtype) -> Kernel {
        Kernel::new(
            KernelFamily::Reduce,
            Group::Plain,
            "copy_into_strided",
            dtype,
        )
    }

    /// `gemm_{tile}_{dt}`: batched GEMM with transpose flags, leading dimensions, split-K and
    /// an epilogue (`kernels/matmul.cu`).
    pub const fn gemm(tile: GemmTile, dtype: Dtype) -> Kernel {
        let stem = match tile {
            GemmTile::Large => "gemm_large",
            GemmTile::Small => "gemm_small",
        };
        Kernel::new(KernelFamily::Matmul, Group::Plain, stem, dtype)
    }

    /// `matmul_tf32_f32` (`split` false) or `matmul_tf32x3_f32` (`split` true): the batched
    /// GEMM of [`Kernel::matmul`] on tensor cores, f32 only.
    pub const fn matmul_tensor_core(split: bool) -> Kernel {
        let op = if split {
            "matmul_tf32x3"
        } else {
            "matmul_tf32"
        };
        Kernel::new(KernelFamily::MatmulTc, Group::Plain, op, Dtype::F32)
    }

    /// `matmul_h16_f16` or `matmul_h16_bf16` (`dtype` F16 or BF16): the batched GEMM of
    /// [`Kernel::matmul_tensor_core`] on the bits of 16-bit operands, on tensor cores (`mma.sync`
    /// m16n8k16, f32 accumulate), its result rounded to `dtype` with the overflow flag of the
    /// cast kernels (`kernels/matmul_h16.cu`).
    pub const fn matmul_h16(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::MatmulH16, Group::Plain, "matmul_h16", dtype)
    }

    /// `unfold_{dt}(const T* x, T* cols, size_t n, const long long* geometry, T fill)`: im2col.
    pub const fn unfold(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Conv, Group::Plain, "unfold", dtype)
    }

    /// `fold_{dt}(const T* cols, T* x, size_t n, const long long* geometry)`: col2im, the
    /// adjoint of unfold.
    pub const fn fold(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Conv, Group::Plain, "fold", dtype)
    }

    /// `fused_eval_{dt}(const struct cv_fused_args args)`: one fused elementwise step, its
    /// program and views passed by value (a [`crate::StructArg`]).
    pub const fn fused(dtype: Dtype) -> Kernel {
        Kernel::new(KernelFamily::Fused, Group::Plain, "fused_eval", dtype)
    }

    /// The family (source file, compiled module) defining the kernel.
    pub fn family(&self) -> KernelFamily {
        self.family
    }

    /// The dtype of the kernel's output.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The kernel's symbol, as defined in its `.cu` file.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, suffix) = match self.group {
            Group::Unary => ("unary_", ""),
            Group::Binary(Indexing::Broadcast) => ("binary_", ""),
            Group::Binary(Indexing::Contiguous) => ("binary_", "_contig"),
            Group::Ternary(Indexing::Broadcast) => ("ternary_", ""),
            Group::Ternary(Indexing::Contiguous) => ("ternary_", "_contig"),
            Group::Cast => ("cast_", ""),
            Group::Plain => ("", ""),
        };
        write!(f, "{prefix}{}{suffix}_{}", self.op, self.dtype)
    }
}
