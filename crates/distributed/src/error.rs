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
    /// A rank returned from its work while the others still called collectives: the
    /// collective can never complete.
    #[error("{op} on rank {rank}: rank {peer} finished without calling it")]
    PeerFinished {
        op: &'static str,
        rank: usize,
        peer: usize,
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

/// Everything the distributed operator and the sample split can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// A collective failed (a peer's failure, a back-end error).
    #[error(transparent)]
    Collective(#[from] CollectiveError),
    /// The local operator, model or loss failed.
    #[error(transparent)]
    Hessian(#[from] curvature_hessian::HessianError),
    /// A tensor op on this rank failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// N samples cannot be split over R ranks so that every rank gets one.
    #[error(
        "{op}: {samples} samples cannot be split over {ranks} ranks (each rank needs at least one)"
    )]
    TooFewSamples {
        op: &'static str,
        samples: usize,
        ranks: usize,
    },
    /// Any other invalid argument, with an explanation.
    #[error("{op} on rank {rank}: {message}")]
    InvalidArgument {
        op: &'static str,
        rank: usize,
        message: String,
    },
    /// Two ranks hold different models or data layouts: the first field of rank `peer`'s
    /// fingerprint that differs from rank 0's.
    #[error(
        "rank {rank}: the ranks do not hold the same problem: {field} is {got} on rank {peer} \
         but {expected} on rank 0"
    )]
    FingerprintMismatch {
        rank: usize,
        peer: usize,
        field: String,
        expected: u64,
        got: u64,
    },
}

/// Result alias of the distributed operator.
pub type DistributedResult<T> = std::result::Result<T, DistributedError>;

/// `rank {rank}: {message}`, the way a rank's error is reported, unless `message` already
/// begins with that prefix (an error of this crate that names its rank first), so that the
/// rank is named once.
pub fn on_rank(rank: usize, message: &str) -> String {
    let prefix = format!("rank {rank}: ");
    if message.starts_with(&prefix) {
        message.to_string()
    } else {
        format!("{prefix}{message}")
    }
}

/// Writes `error: rank {rank}: {message}` ([`on_rank`]) and a line break to standard error in
/// one write, so that a launcher merging the ranks' output cannot cut the line.
pub fn report_on_rank(rank: usize, message: &str) {
    use std::io::Write;
    let line = format!("error: {}\n", on_rank(rank, message));
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_is_named_once() {
        assert_eq!(
            on_rank(1, "the loss is not finite"),
            "rank 1: the loss is not finite"
        );
        let mismatch = DistributedError::FingerprintMismatch {
            rank: 1,
            peer: 1,
            field: "the data".into(),
            expected: 1,
            got: 2,
        };
        assert_eq!(
            on_rank(1, &mismatch.to_string()),
            "rank 1: the ranks do not hold the same problem: the data is 2 on rank 1 but 1 on \
             rank 0"
        );
        // Another rank's name is not this rank's prefix.
        assert_eq!(on_rank(2, "rank 1: x"), "rank 2: rank 1: x");
        assert_eq!(on_rank(1, "rank 10: x"), "rank 1: rank 10: x");
    }
}
