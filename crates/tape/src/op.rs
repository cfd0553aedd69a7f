//! The recorded ops and what each saves for its backward rule.

/// One recorded operation. Axes are resolved (non-negative) at record time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Leaf,
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
    Powf(f64),
    Affine { mul: f64 },
    Add,
    Sub,
    Mul,
    Div,
    TanhBackward,
    SigmoidBackward,
    TanhBackwardGradY,
    SigmoidBackwardGradY,
    MatMul { trans_a: bool, trans_b: bool },
    Sum { axes: Vec<usize>, keepdim: bool },
    SumTo,
    BroadcastTo,
    Reshape,
    Permute(Vec<usize>),
    Max { axis: usize, keepdim: bool },
    LogSumExp { axis: usize, keepdim: bool },
    LogSoftmax { axis: usize },
    Narrow { axis: usize, start: usize },
    Pad { axis: usize, before: usize },
    Cat { axis: usize },
    Trace,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Neg => "neg",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Sqrt => "sqrt",
            Op::Abs => "abs",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Square => "square",
            Op::Powf(_) => "powf",
            Op::Affine { .. } => "affine",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::TanhBackward => "tanh_backward",
            Op::SigmoidBackward => "sigmoid_backward",
            Op::TanhBackwardGradY => "tanh_backward_grad_y",
            Op::SigmoidBackwardGradY => "sigmoid_backward_grad_y",
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
        }
    }

    /// Whether the backward rule reads the inputs' values.
    pub fn saves_inputs(&self) -> bool {
        matches!(
            self,
            Op::Log
                | Op::Sin
                | Op::Cos
                | Op::Abs
                | Op::Square
                | Op::Powf(_)
                | Op::Mul
                | Op::Div
                | Op::TanhBackward
                | Op::SigmoidBackward
                | Op::TanhBackwardGradY
                | Op::SigmoidBackwardGradY
                | Op::MatMul { .. }
                | Op::Max { .. }
                | Op::LogSumExp { .. }
        )
    }

    /// Whether the backward rule reads the output's value.
    pub fn saves_output(&self) -> bool {
        matches!(
            self,
            Op::Exp
                | Op::Sqrt
                | Op::Tanh
                | Op::Sigmoid
                | Op::Max { .. }
                | Op::LogSumExp { .. }
                | Op::LogSoftmax { .. }
        )
    }
}
