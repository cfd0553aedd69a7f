//! The kernel every op of the CUDA backend launches: tensor ops and dtypes mapped onto
//! `curvature_kernels::Kernel` values, whose op stems are the ops' own `name()`s.

use curvature_kernels::gemm_select::GemmTile;
use curvature_kernels::{Dtype, Indexing, Kernel};

use crate::backend::{BinaryOp, ReduceOp, TernaryOp, UnaryOp};
use crate::DType;

/// The kernels' element type for `dtype`.
pub fn dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
    }
}

/// `unary_{op}_{dt}`.
pub fn unary(op: UnaryOp, dt: DType) -> Kernel {
    Kernel::unary(op.name(), dtype(dt))
}

/// `binary_{op}_{dt}` (broadcasting) or `binary_{op}_contig_{dt}`.
pub fn binary(op: BinaryOp, indexing: Indexing, dt: DType) -> Kernel {
    Kernel::binary(op.name(), indexing, dtype(dt))
}

/// `ternary_{op}_{dt}` (broadcasting) or `ternary_{op}_contig_{dt}`.
pub fn ternary(op: TernaryOp, indexing: Indexing, dt: DType) -> Kernel {
    Kernel::ternary(op.name(), indexing, dtype(dt))
}

/// `reduce_sum_{dt}` / `reduce_max_{dt}`.
pub fn reduce(op: ReduceOp, dt: DType) -> Kernel {
    Kernel::reduce(op.name(), dtype(dt))
}

/// `cast_{from}_{to}`.
pub fn cast(from: DType, to: DType) -> Kernel {
    Kernel::cast(dtype(from), dtype(to))
}

/// The row kernel of a softmax-family op: `log_softmax_{dt}` or `logsumexp_{dt}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOp {
    LogSoftmax,
    Logsumexp,
}

impl RowOp {
    /// Both row ops.
    pub const ALL: &'static [RowOp] = &[RowOp::LogSoftmax, RowOp::Logsumexp];

    /// The op's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            RowOp::LogSoftmax => "log_softmax",
            RowOp::Logsumexp => "logsumexp",
        }
    }
}

/// `log_softmax_{dt}` / `logsumexp_{dt}`.
pub fn row(op: RowOp, dt: DType) -> Kernel {
    match op {
        RowOp::LogSoftmax => Kernel::log_softmax(dtype(dt)),
        RowOp::Logsumexp => Kernel::logsumexp(dtype(dt)),
    }
}

/// `fill_{dt}`.
pub fn fill(dt: DType) -> Kernel {
    Kernel::fill(dtype(dt))
}

/// `copy_strided_{dt}`: the gather of `copy_strided` (transpose, expand, narrow, diagonal).
pub fn copy_strided(dt: DType) -> Kernel {
    Kernel::copy_strided(dtype(dt))
}

/// `copy_into_strided_{dt}`: the scatter of `cat`.
pub fn copy_into_strided(dt: DType) -> Kernel {
    Kernel::copy_into_strided(dtype(dt))
}

/// `gather_{dt}`: `index_select`.
pub fn gather(dt: DType) -> Kernel {
    Kernel::gather(dtype(dt))
}

/// `index_add_{dt}`: the adjoint of `index_select`.
pub fn index_add(dt: DType) -> Kernel {
    Kernel::index_add(dtype(dt))
}

/// `matmul_tf32_f32` (`split` false) or `matmul_tf32x3_f32` (`split` true): f32 GEMMs on
/// tensor cores.
pub fn matmul_tensor_core(split: bool) -> Kernel {
    Kernel::matmul_tensor_core(split)
}

/// `matmul_h16_{f16,bf16}`: the tensor-core GEMM of 16-bit operands (`dt` F16 or BF16).
pub fn matmul_h16(dt: DType) -> Kernel {
    Kernel::matmul_h16(dtype(dt))
}

/// The tensor-core GEMMs: TF32 and 3xTF32 (f32), and those of f16 and bf16 operands.
pub fn tensor_core() -> [Kernel; 4] {
    [
        matmul_tensor_core(false),
        matmul_tensor_core(true),
        matmul_h16(DType::F16),
        matmul_h16(DType::BF16),
    ]
}

/// The kernels of the ops that have one per dtype and no op enum: fill, strided copy and
/// scatter, gather and its adjoint, the GEMM tiles (split-K included).
pub fn per_dtype(dt: DType) -> [Kernel; 7] {
    [
        fill(dt),
        copy_strided(dt),
        copy_into_strided(dt),
        gather(dt),
        index_add(dt),
        Kernel::gemm(GemmTile::Large, dtype(dt)),
        Kernel::gemm(GemmTile::Small, dtype(dt)),
    ]
}

/// The kernels the 16-bit storage dtypes run on their bits (every other op of theirs widens to
/// f32 through the casts): fill, strided copy and scatter, gather.
pub fn half_moves(dt: DType) -> [Kernel; 4] {
    [
        fill(dt),
        copy_strided(dt),
        copy_into_strided(dt),
        gather(dt),
    ]
}

/// `unfold_{dt}`: im2col (convolution and pooling).
pub fn unfold(dt: DType) -> Kernel {
    Kernel::unfold(dtype(dt))
}

/// `fold_{dt}`: col2im, the adjoint of unfold.
pub fn fold(dt: DType) -> Kernel {
    Kernel::fold(dtype(dt))
}

/// The kernels of convolution and pooling: unfold and fold.
pub fn conv(dt: DType) -> [Kernel; 2] {
    [unfold(dt), fold(dt)]
}

/// `fused_eval_{dt}`: one fused elementwise step (`crate::plan::FusedStep`).
pub fn fused(dt: DType) -> Kernel {
    Kernel::fused(dtype(dt))
}
