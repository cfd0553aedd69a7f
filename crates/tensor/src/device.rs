//! Where a tensor's data lives.

use crate::{Result, TensorError};

/// A compute device: the host CPU or a CUDA GPU by ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The CUDA device `ordinal`, or an error saying why it cannot be used.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        Err(TensorError::CudaUnavailable {
            ordinal,
            reason: "this build has no CUDA backend".to_string(),
        })
    }

    /// The CUDA device `ordinal` when one can be used, the CPU otherwise.
    pub fn cuda_if_available(ordinal: usize) -> Device {
        Device::cuda(ordinal).unwrap_or(Device::Cpu)
    }

    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
