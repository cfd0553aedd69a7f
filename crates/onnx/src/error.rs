//! [`OnnxError`]: everything that can go wrong reading or running an ONNX model, each variant
//! one line naming the node, op type or tensor involved.

use curvature_nn::NnError;
use curvature_tape::TapeError;
use curvature_tensor::TensorError;
use thiserror::Error;

/// Errors of the ONNX loader and of running an imported graph.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The bytes are not a well-formed ONNX protobuf (truncated, wrong wire types, limits).
    #[error("malformed ONNX file: {0}")]
    Malformed(String),
    /// The file is well-formed but the graph is not valid (cycles, undefined values, …).
    #[error("invalid ONNX graph: {0}")]
    InvalidGraph(String),
    /// An op, attribute value or dtype this importer does not support.
    #[error("unsupported ONNX {what} in node '{node}' ({op_type}): {detail}")]
    Unsupported {
        /// The node's op type (`Conv`, `Gemm`, …).
        op_type: String,
        /// The node's name (or `#index` when unnamed).
        node: String,
        /// What is unsupported: `op`, `attribute`, `dtype`, `input`.
        what: &'static str,
        /// The offending value and what is supported instead.
        detail: String,
    },
    /// A node's inputs do not fit it (shapes, counts, values).
    #[error("ONNX node '{node}' ({op_type}): {detail}")]
    Node {
        /// The node's op type.
        op_type: String,
        /// The node's name (or `#index` when unnamed).
        node: String,
        /// What is wrong.
        detail: String,
    },
    /// The parameter globs do not fit the model's initializers.
    #[error("parameter selection: {0}")]
    Selection(String),
    /// Inputs or parameter variables given to a forward pass do not fit the model.
    #[error("ONNX model {0}")]
    Input(String),
    /// Reading the model file or its external data failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A tape operation failed.
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// A module-level error.
    #[error(transparent)]
    Nn(#[from] NnError),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, OnnxError>;
