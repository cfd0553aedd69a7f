//! The hessian crate's error type.

use curvature_nn::NnError;
use curvature_tape::TapeError;
use curvature_tensor::{DType, Device, Shape, Tensor, TensorError};

/// Everything the hessian functions can reject. Variants name the function (`op`) and what
/// was wrong with its arguments.
#[derive(Debug, thiserror::Error)]
pub enum HessianError {
    /// The tape rejected a recording or a backward pass.
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// A model, a loss or a model file rejected its arguments.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A tensor op failed (shapes, dtypes, devices).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An operator defined outside this crate failed (a collective across the ranks of a
    /// distributed operator, …); the boxed error says how and can be downcast to its type.
    #[error(transparent)]
    Operator(Box<dyn std::error::Error + Send + Sync>),
    /// A vector (or a row of a batch) whose length is not the operator's dimension.
    #[error("{op}: vectors must have length {expected}, got {got}")]
    VectorLength {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    /// A batch of zero vectors (K = 0) or zero probes.
    #[error("{op}: the batch is empty (K = 0); pass at least one vector")]
    EmptyBatch { op: &'static str },
    /// A function that must return a scalar returned something else.
    #[error("{op}: the function must return a scalar (one element), got shape {shape}")]
    NonScalar { op: &'static str, shape: Shape },
    /// More eigenvalues were asked for than the operator has.
    #[error("top_eigenvalues: asked for {k} eigenvalues of a {dim}-dimensional operator")]
    TooManyEigenvalues { k: usize, dim: usize },
    /// A tensor whose dtype differs from the one the operator or the other inputs use.
    #[error("{op}: dtype mismatch, expected {expected} got {got}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        got: DType,
    },
    /// A tensor on a different device from the operator or the other inputs.
    #[error("{op}: device mismatch, expected {expected} got {got}")]
    DeviceMismatch {
        op: &'static str,
        expected: Device,
        got: Device,
    },
    /// The host's symmetric eigensolver did not converge.
    #[error("{op}: the symmetric eigensolver did not converge")]
    NotConverged { op: &'static str },
    /// Any other invalid argument, with an explanation.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// A size computed from the arguments does not fit in `usize`: the element count of `what`,
    /// computed from `sizes` (the factors of a product or the terms of a sum).
    #[error("{op}: the element count of {what} overflows usize (sizes {sizes:?})")]
    SizeOverflow {
        op: &'static str,
        what: &'static str,
        sizes: Vec<usize>,
    },
    /// A host buffer the allocator refused: what it is, its elements and the bytes it needs.
    #[error("{op}: cannot allocate {what}: {elements} elements need {}", curvature_tensor::human_bytes(*bytes))]
    OutOfMemory {
        op: &'static str,
        what: &'static str,
        elements: usize,
        bytes: u128,
    },
    /// A count beyond the crate's bound for it (see the bound's documentation).
    #[error("{op}: {what} = {value} is more than the limit {limit}")]
    TooLarge {
        op: &'static str,
        what: &'static str,
        value: usize,
        limit: usize,
    },
    /// Conjugate gradients met a direction `p` with `pᵀ(C + λI)p ≤ 0`: the damped curvature is
    /// not positive definite. `rayleigh` is `pᵀCp / pᵀp` (an upper bound on C's smallest
    /// eigenvalue) and `suggested_damping` a damping that lifts that direction.
    #[error(
        "{op}: the damped curvature is not positive definite: column {column} at iteration \
         {iteration} met a direction with pᵀ(C + λI)p = {curvature:e} (λ = {damping:e}, \
         Rayleigh quotient pᵀCp/pᵀp = {rayleigh:e}); use a damping of at least \
         {suggested_damping:e}"
    )]
    IndefiniteCurvature {
        op: &'static str,
        column: usize,
        iteration: usize,
        curvature: f64,
        rayleigh: f64,
        damping: f64,
        suggested_damping: f64,
    },
}

/// Result alias of the hessian crate.
pub type Result<T> = std::result::Result<T, HessianError>;

pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> HessianError {
    HessianError::InvalidArgument {
        op,
        msg: msg.into(),
    }
}

/// Errors unless `t` has the expected dtype and device.
pub(crate) fn check_kind(op: &'static str, t: &Tensor, dtype: DType, device: Device) -> Result<()> {
    if t.device() != device {
        return Err(HessianError::DeviceMismatch {
            op,
            expected: device,
            got: t.device(),
        });
    }
    if t.dtype() != dtype {
        return Err(HessianError::DTypeMismatch {
            op,
            expected: dtype,
            got: t.dtype(),
        });
    }
    Ok(())
}
