//! The primitive operations every backend implements.
//!
//! Each op is defined once here (its name, which is also the CUDA kernel name's stem, and its
//! formula). The CPU backend is the specification; the CUDA backend implements the same trait,
//! so the compiler enforces parity between them.

use crate::{DType, Result, Shape};

/// Elementwise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sin,
    Cos,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Square,
    /// −1, 0 or 1.
    Sign,
    /// 1 / x.
    Recip,
    /// x^p.
    Powf(f64),
    /// x·mul + add.
    Affine {
        mul: f64,
        add: f64,
    },
}

impl UnaryOp {
    /// Every op, with one sample parameter for `Powf` and `Affine`.
    pub const ALL: &'static [UnaryOp] = &[
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Square,
        UnaryOp::Sign,
        UnaryOp::Recip,
        UnaryOp::Powf(2.0),
        UnaryOp::Affine { mul: 2.0, add: 1.0 },
    ];

    /// The op's name, and the stem of its kernel name `unary_{name}_{dtype}`.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Square => "square",
            UnaryOp::Sign => "sign",
            UnaryOp::Recip => "recip",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Affine { .. } => "affine",
        }
    }

    /// The two scalar parameters passed to the kernel (unused ones are 0).
    pub fn params(self) -> (f64, f64) {
        match self {
            UnaryOp::Powf(p) => (p, 0.0),
            UnaryOp::Affine { mul, add } => (mul, add),
            _ => (0.0, 0.0),
        }
    }
}

/// Elementwise functions of two broadcast tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// 1 where a == b, else 0.
    Eq,
    /// a·(1 − b²): the tanh derivative applied to a cotangent `a`, given the output `b = tanh(x)`.
    TanhBackward,
    /// a·b·(1 − b): the sigmoid derivative applied to `a`, given the output `b = σ(x)`.
    SigmoidBackward,
}

impl BinaryOp {
    /// Every op.
    pub const ALL: &'static [BinaryOp] = &[
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Eq,
        BinaryOp::TanhBackward,
        BinaryOp::SigmoidBackward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Eq => "eq",
            BinaryOp::TanhBackward => "tanh_backward",
            BinaryOp::SigmoidBackward => "sigmoid_backward",
        }
    }
}

/// Elementwise functions of three broadcast tensors: the double-backward rules of the fused
/// activation derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TernaryOp {
    /// ∂/∂y of `tanh_backward(g, y)` applied to `gg`: −2·y·g·gg, with (a, b, c) = (gg, g, y).
    TanhBackwardGradY,
    /// ∂/∂y of `sigmoid_backward(g, y)` applied to `gg`: gg·g·(1 − 2y), with (a, b, c) = (gg, g, y).
    SigmoidBackwardGradY,
}

impl TernaryOp {
    /// Every op.
    pub const ALL: &'static [TernaryOp] = &[
        TernaryOp::TanhBackwardGradY,
        TernaryOp::SigmoidBackwardGradY,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TernaryOp::TanhBackwardGradY => "tanh_backward_grad_y",
            TernaryOp::SigmoidBackwardGradY => "sigmoid_backward_grad_y",
        }
    }
}

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
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    fn to_dtype(&self, dtype: DType) -> Result<Self>;
}
