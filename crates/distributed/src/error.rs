//! The errors of collectives and of the distributed operator.

use curvature_tensor::{DType, Shape, TensorError};

/// Everything a collective can fail with. Every variant names the collective (`op`) and the
/// rank that reports it (`rank`).
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// A rank failed (its closure returned an error, panicked or called
    /// [`abort`](crate::Collective::abort)): every rank waiting in a collective, or entering one
    /// later, gets this error with the failed rank's number and message.
    #[error("{op} on rank {rank}: rank {failed} failed: {message}")]
    PeerFailed {
        op: &'static str,
        rank: usize,
        failed: usize,
        message: String,
    },
    /// Two ranks passed tensors of different shapes or dtypes to the same collective.
    #[error(
        "{op} on rank {rank}: rank {peer} passed a {peer_dtype} tensor of shape {peer_shape}, \
         rank {reference} a {dtype} tensor of shape {shape}"
    )]
    Mismatch {
        op: &'static str,
        rank: usize,
        reference: usize,
        shape: Shape,
        dtype: DType,
        peer: usize,
        peer_shape: Shape,
        peer_dtype: DType,
    },
    /// Two ranks entered different collectives at the same step.
    #[error("{op} on rank {rank}: rank {peer} called {peer_op} at the same step")]
    OrderMismatch {
        op: &'static str,
        rank: usize,
        peer: usize,
        peer_op: &'static str,
    },
    /// An argument the collective cannot take (a root out of range, a leading dimension that
    /// the ranks do not divide, a tensor of rank 0 where a leading axis is needed).
    #[error("{op} on rank {rank}: {message}")]
    InvalidArgument {
        op: &'static str,
        rank: usize,
        message: String,
    },
    /// A tensor op inside the collective failed (copies, sums, concatenation).
    #[error("{op} on rank {rank}: {source}")]
    Tensor {
        op: &'static str,
        rank: usize,
        #[source]
        source: TensorError,
    },
    /// The back end's library reported an error (an MPI or NCCL error code and its text).
    #[error("{backend} {op} on rank {rank}: {message}")]
    Backend {
        backend: &'static str,
        op: &'static str,
        rank: usize,
        message: String,
    },
    /// The back end cannot run here: not built in, its library not found, no launcher.
    #[error("the {backend} back end is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
}

/// Result alias of the collectives.
pub type CollectiveResult<T> = std::result::Result<T, CollectiveError>;
