//! The tensor crate's error type: every variant names the op and what was wrong with it.

use crate::{DType, Device, Shape};

/// Everything a tensor operation can reject.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Two shapes cannot be broadcast together (NumPy rules).
    #[error("{op}: shapes {lhs} and {rhs} cannot be broadcast together")]
    BroadcastMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
    },
    /// A tensor had a different shape from the one the op needs.
    #[error("{op}: expected shape {expected}, got {got}")]
    ShapeMismatch {
        op: &'static str,
        expected: Shape,
        got: Shape,
    },
    /// The contracted dimensions of a matrix product differ.
    #[error("matmul: inner dimensions differ, {lhs} @ {rhs} contracts {lhs_k} with {rhs_k}")]
    MatmulShape {
        lhs: Shape,
        rhs: Shape,
        lhs_k: usize,
        rhs_k: usize,
    },
    /// Operands of one op have different dtypes (named `f32` / `f64`, as `DType` displays).
    #[error("{op}: dtype mismatch, {lhs} vs {rhs}")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    /// Operands of one op live on different devices.
    #[error("{op}: device mismatch, {lhs} vs {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    /// An axis is not valid for a tensor of this rank.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// `reshape` to a shape with a different number of elements.
    #[error("reshape: cannot reshape {from} ({from_len} elements) into {to} ({to_len} elements)")]
    ReshapeSize {
        from: Shape,
        to: Shape,
        from_len: usize,
        to_len: usize,
    },
    /// Host data whose length does not match the requested shape.
    #[error("{op}: {len} values do not fill shape {shape} ({expected} elements)")]
    DataLength {
        op: &'static str,
        len: usize,
        shape: Shape,
        expected: usize,
    },
    /// An index outside an axis.
    #[error("{op}: index {index} is out of range for an axis of length {len}")]
    IndexOutOfRange {
        op: &'static str,
        index: usize,
        len: usize,
    },
    /// The op needs at least one element but the tensor (or list) is empty.
    #[error("{op}: empty input")]
    Empty { op: &'static str },
    /// The host type asked for is not the tensor's dtype.
    #[error("{op}: tensor holds {actual}, asked for {requested}")]
    WrongElementType {
        op: &'static str,
        actual: DType,
        requested: DType,
    },
    /// A shape whose element count (or a row-major stride) exceeds
    /// [`MAX_ELEMENTS`](crate::MAX_ELEMENTS): no tensor of it can exist.
    #[error("{op}: shape {dims:?} has too many elements (more than {max}, the most a tensor can hold)", max = crate::MAX_ELEMENTS)]
    ShapeTooLarge { op: &'static str, dims: Vec<usize> },
    /// Memory for a result could not be allocated.
    #[error("{op}: cannot allocate {} for {elements} {dtype} elements on {device}", human_bytes(*.bytes as u128))]
    OutOfMemory {
        op: &'static str,
        elements: usize,
        dtype: DType,
        bytes: usize,
        device: Device,
    },
    /// A tensor file could not be read or written (`io`).
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    /// Any other invalid argument, with an explanation.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// A CUDA device was requested but cannot be used.
    #[error("CUDA device {ordinal} is not available: {reason}")]
    CudaUnavailable { ordinal: usize, reason: String },
    /// A kernel launch, device allocation or copy failed (CUDA driver, NVRTC or emulator).
    #[error("CUDA backend: {0}")]
    Kernel(#[from] curvature_kernels::KernelError),
    /// A computation a plan cannot replay (a traced value read on the host, an op on another
    /// device, a capture inside a capture): run it op by op instead.
    #[error("{op}: cannot be compiled into a plan: {msg}")]
    PlanUnsupported { op: &'static str, msg: String },
}

/// Result alias of the tensor crate.
pub type Result<T> = std::result::Result<T, TensorError>;

/// A byte count for people: `1.5 GiB`, `12 KiB`, `100 bytes`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
