//! The nn crate's error type.

use curvature_tape::TapeError;
use curvature_tensor::TensorError;

use crate::model_file::ModelFileError;

/// Everything the layers, the losses and the model files can reject.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A model file could not be read.
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    /// The tape rejected a recording (shapes, tapes, backward passes).
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// A tensor op failed (shapes, dtypes, devices).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Two lists that must have equal length do not.
    #[error("{what}: expected {expected} entries, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A module was given a number of inputs it does not take.
    #[error("{module}: takes {expected} input(s), got {got}")]
    InputCount {
        module: &'static str,
        expected: usize,
        got: usize,
    },
    /// A module's forward pass was given a number of parameter variables other than its
    /// parameters' count.
    #[error("{module}: expected {expected} parameter variable(s), got {got}")]
    ParamCount {
        module: &'static str,
        expected: usize,
        got: usize,
    },
    /// Any other invalid argument, with an explanation.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
}

/// Result alias of the nn crate.
pub type Result<T> = std::result::Result<T, NnError>;
