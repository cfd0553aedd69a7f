//! The tape's error type.

use curvature_tensor::{Shape, TensorError};

/// Everything the tape and the checks can reject.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// A tensor op failed (shapes, dtypes, devices).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `grad` of a non-scalar output without `grad_outputs`.
    #[error("grad: output {index} has shape {shape}; gradients can only be implicitly seeded for scalar outputs, pass grad_outputs")]
    NonScalarOutput { index: usize, shape: Shape },
    /// A requested input does not influence the outputs.
    #[error("grad: input {index} (shape {shape}) is not part of the graph of the outputs; set allow_unused to get zeros")]
    NotInGraph { index: usize, shape: Shape },
    /// A second backward pass through nodes whose saved values were freed.
    #[error("{op}: trying to backward through the graph a second time; its saved values were freed by the first backward, pass retain_graph = true to keep them")]
    BackwardTwice { op: &'static str },
    /// A cotangent whose shape is not `[batch…] + output shape`.
    #[error("grad: cotangent {index} has shape {got}, expected the output shape {expected} with the same leading batch axes as cotangent 0")]
    CotangentShape {
        index: usize,
        expected: Shape,
        got: Shape,
    },
    /// Variables from two different tapes in one op.
    #[error("{op}: variables belong to different tapes")]
    TapeMismatch { op: &'static str },
    /// Two lists that must have equal length do not.
    #[error("{what}: expected {expected} entries, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Any other invalid argument, with an explanation.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
}

/// Result alias of the tape crate.
pub type Result<T> = std::result::Result<T, TapeError>;
