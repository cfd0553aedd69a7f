//! Where a tensor's data lives.

use curvature_kernels::{GpuCounters, Precision};

use crate::{cuda, Result, TensorError};

/// A compute device: the host CPU or a CUDA GPU by ordinal.
///
/// `Device::Cuda(i)` is backed by a real NVIDIA GPU, or by the emulated GPU (the same kernels
/// compiled for the host, see ARCHITECTURE.md) when it was selected with `CURVATURE_CUDA=emulate` or
/// [`Device::cuda_emulated`]. The GPU behind an ordinal is opened on first use and shared by
/// every tensor of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The CUDA device `ordinal`, or an error saying why it cannot be used (no driver, no
    /// NVRTC, no such device). Never panics: the driver and NVRTC libraries are probed before
    /// any call into them. With `CURVATURE_CUDA=emulate` (and the `emulator` feature of
    /// `curvature-kernels` compiled in) this is the emulated GPU.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        cuda::gpu_device(ordinal).map(|_| Device::Cuda(ordinal))
    }

    /// The CUDA device `ordinal` when one can be used, the CPU otherwise.
    pub fn cuda_if_available(ordinal: usize) -> Device {
        Device::cuda(ordinal).unwrap_or(Device::Cpu)
    }

    /// `Device::Cuda(0)` backed by the emulated GPU, whatever the environment says. Errors when
    /// the emulator is not compiled in (the `emulator` feature of this crate or of
    /// `curvature-kernels`) or when `cuda:0` is already a real GPU in this process.
    pub fn cuda_emulated() -> Result<Device> {
        cuda::emulated_device().map(|_| Device::Cuda(0))
    }

    /// The device CUDA tests run on: the real GPU `cuda:0` when it can be opened, otherwise
    /// the emulated GPU — unless `CURVATURE_REQUIRE_GPU=1`, when anything but a real GPU
    /// (none, or the emulated one selected by `CURVATURE_CUDA=emulate`) is an error.
    pub fn cuda_or_emulated() -> Result<Device> {
        let require_gpu = std::env::var("CURVATURE_REQUIRE_GPU").is_ok_and(|v| v == "1");
        let required = |reason: String| TensorError::CudaUnavailable {
            ordinal: 0,
            reason: format!("CURVATURE_REQUIRE_GPU=1 but no real GPU: {reason}"),
        };
        match Device::cuda(0) {
            Ok(device) if require_gpu && device.is_emulated() => Err(required(
                "cuda:0 is the emulated GPU (CURVATURE_CUDA=emulate)".to_string(),
            )),
            Ok(device) => Ok(device),
            Err(e) if require_gpu => Err(required(e.to_string())),
            Err(_) => Device::cuda_emulated(),
        }
    }

    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// Whether this is a CUDA device backed by the emulated GPU.
    pub fn is_emulated(self) -> bool {
        match self {
            Device::Cpu => false,
            Device::Cuda(i) => cuda::gpu_device(i).is_ok_and(|gpu| gpu.is_emulated()),
        }
    }

    /// A readable name for reports: `cpu`, `NVIDIA H100 80GB HBM3 (cuda:0)`,
    /// `emulated GPU (cuda:0)`, or why a CUDA device is unavailable.
    pub fn description(self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(i) => cuda::describe(i),
        }
    }

    /// The work counters of the GPU behind `Device::Cuda(i)` (launches, allocations, copies,
    /// synchronizations and driver calls since it was opened; subtract two snapshots for the
    /// work in between), `None` on the CPU. Errors when the CUDA device cannot be opened.
    pub fn gpu_counters(self) -> Result<Option<GpuCounters>> {
        match self {
            Device::Cpu => Ok(None),
            Device::Cuda(i) => cuda::gpu_device(i).map(|gpu| Some(gpu.counters())),
        }
    }

    /// The precision of the device's f32 matrix products (see [`Precision`]): always
    /// [`Precision::Ieee`] on the CPU; on a GPU what [`Device::set_matmul_precision`] last set
    /// (`Ieee` by default). Errors when the CUDA device cannot be opened.
    pub fn matmul_precision(self) -> Result<Precision> {
        match self {
            Device::Cpu => Ok(Precision::Ieee),
            Device::Cuda(i) => cuda::gpu_device(i).map(|gpu| gpu.matmul_precision()),
        }
    }

    /// Sets the precision of the device's f32 matrix products for every tensor on it, from now
    /// on: on a GPU, [`Precision::Tf32`] and [`Precision::Tf32x3`] run them on tensor cores
    /// (compute capability 8.0 or newer, or the emulated GPU); f64 products are unaffected.
    /// The CPU computes f32 products with IEEE f32 arithmetic only: it accepts `Ieee` and
    /// refuses the tensor-core modes with an error rather than emulating their rounding.
    pub fn set_matmul_precision(self, precision: Precision) -> Result<()> {
        match self {
            Device::Cpu if precision == Precision::Ieee => Ok(()),
            Device::Cpu => Err(TensorError::InvalidArgument {
                op: "set_matmul_precision",
                msg: format!(
                    "the CPU computes matrix products in IEEE precision only, not {precision} \
                     (tensor-core modes need a CUDA device)"
                ),
            }),
            Device::Cuda(i) => Ok(cuda::gpu_device(i)?.set_matmul_precision(precision)?),
        }
    }

    /// Waits until all work queued on the device has finished (kernel launches are
    /// asynchronous on a real GPU); immediate on the CPU and the emulated GPU. Call it before
    /// reading a clock.
    pub fn synchronize(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => cuda::synchronize(i),
        }
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
