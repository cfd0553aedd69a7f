//! The primitive operations every backend implements: the CPU backend is the specification,
//! the CUDA backend implements the same trait. The elementwise ops themselves are defined in
//! their tables (`ops/elementwise/`); a test ties every one of them to a CUDA kernel.

pub use crate::ops::conv::Im2Col;
pub use crate::ops::elementwise::{BinaryOp, TernaryOp, UnaryOp};
use crate::{DType, Result, Shape};

/// Reductions over one axis of a tensor viewed as `[outer, reduced, inner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
}

impl ReduceOp {
    /// Every op.
    pub const ALL: &'static [ReduceOp] = &[ReduceOp::Sum, ReduceOp::Max];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Max => "reduce_max",
        }
    }
}

/// How the operands of an elementwise op map onto the output: element strides per output
/// dimension, 0 along broadcast dimensions.
#[derive(Debug, Clone)]
pub struct BroadcastLayout {
    pub out: Shape,
    pub strides: Vec<Vec<usize>>,
}

impl BroadcastLayout {
    /// True when every operand already has the output's shape (no index arithmetic needed).
    pub fn is_contiguous(&self) -> bool {
        let own = self.out.strides();
        self.strides.iter().all(|s| *s == own)
    }
}

/// One (possibly batched) GEMM: for z in 0..batch, `C_z = op(A_z) · op(B_z)` with `C_z` of
/// `m × n`, `A_z = a[z·stride_a..]` of `m × k` (stored `k × m` when `trans_a`), `B_z` of
/// `k × n` (stored `n × k` when `trans_b`). A batch stride of 0 broadcasts that operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// A gather by strides: `out[i] = src[offset + Σ_d idx_d(i)·strides[d]]` over the row-major
/// multi-index of `i` in `out`. Transpose, expand, narrow and diagonal are all such copies.
#[derive(Debug, Clone)]
pub struct StridedCopy {
    pub out: Shape,
    pub strides: Vec<usize>,
    pub offset: usize,
}

/// The primitive operations of one backend's storage.
pub trait BackendStorage: Sized {
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    fn unary(&self, op: UnaryOp) -> Result<Self>;
    fn binary(&self, op: BinaryOp, rhs: &Self, layout: &BroadcastLayout) -> Result<Self>;
    fn ternary(&self, op: TernaryOp, b: &Self, c: &Self, layout: &BroadcastLayout) -> Result<Self>;
    fn matmul(&self, rhs: &Self, spec: &MatmulSpec) -> Result<Self>;
    /// Reduces the middle axis of `[outer, reduced, inner]`, giving `[outer, inner]`.
    fn reduce(&self, op: ReduceOp, outer: usize, reduced: usize, inner: usize) -> Result<Self>;
    /// Stable log-softmax over the last axis of `[rows, cols]`.
    fn log_softmax(&self, rows: usize, cols: usize) -> Result<Self>;
    /// Stable log Σ exp over the last axis of `[rows, cols]`, giving `[rows]`.
    fn logsumexp(&self, rows: usize, cols: usize) -> Result<Self>;
    fn copy_strided(&self, copy: &StridedCopy) -> Result<Self>;
    /// Concatenates parts viewed as `[outer, width_i]` along the second axis.
    fn cat(parts: &[&Self], outer: usize, widths: &[usize]) -> Result<Self>;
    /// `out[o, j, i] = x[o, indices[j], i]` for `x` viewed as `[outer, axis_len, inner]`.
    fn index_select(
        &self,
        indices: &[usize],
        outer: usize,
        axis_len: usize,
        inner: usize,
    ) -> Result<Self>;
    /// The adjoint of `index_select`: for `x` viewed as `[outer, indices.len(), inner]`,
    /// `out[o, k, i] = Σ x[o, j, i]` over the `j` with `indices[j] == k`, summed in increasing
    /// `j`, with `out` of `[outer, len, inner]` (indices were validated against `len`).
    fn index_add(&self, indices: &[usize], outer: usize, len: usize, inner: usize) -> Result<Self>;
    fn to_dtype(&self, dtype: DType) -> Result<Self>;
    /// im2col: the image `[N, C, H, W]` as columns `[N, C·kh·kw, oh·ow]`, `fill` where a window
    /// lies in the padding.
    fn unfold(&self, geometry: &Im2Col, fill: f64) -> Result<Self>;
    /// col2im, the adjoint of `unfold`: columns `[N, C·kh·kw, oh·ow]` summed back onto the
    /// image `[N, C, H, W]` (each image element sums its entries in a fixed order).
    fn fold(&self, geometry: &Im2Col) -> Result<Self>;
}
