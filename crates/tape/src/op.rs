//! The recorded ops and what each saves for its backward rule. Elementwise ops carry their
//! definition from the tensor crate's op tables; the others are defined here and in `rules.rs`.

use std::sync::Arc;

use curvature_tensor::{BinaryOp, Saves, TernaryOp, UnaryOp, Window2d};

/// One recorded operation. Axes are resolved (non-negative) at record time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Leaf,
    Unary(UnaryOp),
    Binary(BinaryOp),
    Ternary(TernaryOp),
    MatMul {
        trans_a: bool,
        trans_b: bool,
    },
    Sum {
        axes: Vec<usize>,
        keepdim: bool,
    },
    SumTo,
    BroadcastTo,
    Reshape,
    Permute(Vec<usize>),
    Max {
        axis: usize,
        keepdim: bool,
    },
    LogSumExp {
        axis: usize,
        keepdim: bool,
    },
    LogSoftmax {
        axis: usize,
    },
    Narrow {
        axis: usize,
        start: usize,
    },
    Pad {
        axis: usize,
        before: usize,
    },
    Cat {
        axis: usize,
    },
    Trace,
    IndexSelect {
        axis: usize,
        indices: Arc<[usize]>,
    },
    IndexAdd {
        axis: usize,
        indices: Arc<[usize]>,
    },
    /// im2col of an image of spatial `size`.
    Unfold {
        window: Window2d,
        size: (usize, usize),
    },
    /// col2im.
    Fold {
        window: Window2d,
    },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Unary(op) => op.name(),
            Op::Binary(op) => op.name(),
            Op::Ternary(op) => op.name(),
            Op::MatMul { .. } => "matmul",
            Op::Sum { .. } => "sum",
            Op::SumTo => "sum_to",
            Op::BroadcastTo => "broadcast_to",
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Max { .. } => "max",
            Op::LogSumExp { .. } => "logsumexp",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::Narrow { .. } => "narrow",
            Op::Pad { .. } => "pad_zeros",
            Op::Cat { .. } => "cat",
            Op::Trace => "trace",
            Op::IndexSelect { .. } => "index_select",
            Op::IndexAdd { .. } => "index_add",
            Op::Unfold { .. } => "unfold2d",
            Op::Fold { .. } => "fold2d",
        }
    }

    /// What the backward rule reads.
    fn saves(&self) -> Saves {
        match self {
            Op::Unary(op) => op.saves(),
            Op::Binary(op) => op.saves(),
            Op::Ternary(op) => op.saves(),
            Op::MatMul { .. } => Saves::Inputs,
            Op::LogSoftmax { .. } => Saves::Output,
            _ => Saves::Nothing,
        }
    }

    /// Whether the backward rule reads the inputs' values.
    pub fn saves_inputs(&self) -> bool {
        matches!(self, Op::Max { .. } | Op::LogSumExp { .. }) || self.saves() == Saves::Inputs
    }

    /// Whether the backward rule reads the output's value.
    pub fn saves_output(&self) -> bool {
        matches!(self, Op::Max { .. } | Op::LogSumExp { .. }) || self.saves() == Saves::Output
    }
}
