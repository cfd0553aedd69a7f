//! The crate's error type.

use cudarc::driver::DriverError;
use cudarc::nvrtc::result::NvrtcError;

/// Everything that can go wrong compiling kernels, moving memory or launching.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No usable CUDA driver / GPU (libcuda missing, no device, bad ordinal).
    #[error("no CUDA device available: {reason}")]
    NoDriver {
        /// Why the device could not be opened.
        reason: String,
    },
    /// libnvrtc could not be loaded, so no kernel can be compiled.
    #[error("NVRTC is not available: {reason}")]
    NoNvrtc {
        /// Why NVRTC could not be used.
        reason: String,
    },
    /// `CURVATURE_CUDA=emulate` or [`crate::GpuDevice::emulated`] without the `emulator` feature.
    #[error(
        "the emulated GPU is not compiled in: enable the `emulator` feature of curvature-kernels"
    )]
    NoEmulator,
    /// `CURVATURE_CUDA` set to something other than `emulate`.
    #[error("CURVATURE_CUDA={value:?} is not recognised: set it to `emulate` for the emulated GPU, or leave it unset for a real GPU")]
    UnknownCudaMode {
        /// The variable's value (its first 40 characters).
        value: String,
    },
    /// NVRTC rejected a source; `log` is NVRTC's program log.
    #[error("kernel source `{family}` failed to compile for {arch}:\n{log}")]
    Compile {
        /// Kernel family (or test source) name.
        family: String,
        /// Target architecture, e.g. `sm_90`.
        arch: String,
        /// NVRTC's program log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver error: {0}")]
    Driver(#[from] DriverError),
    /// An NVRTC call other than the compilation itself failed.
    #[error("NVRTC error: {0}")]
    Nvrtc(#[from] NvrtcError),
    /// A kernel could not be launched (unknown name, bad arguments or launch configuration).
    #[error("launch of kernel `{kernel}` failed: {reason}")]
    Launch {
        /// Kernel name.
        kernel: String,
        /// What was wrong.
        reason: String,
    },
    /// The device ran out of memory.
    #[error("out of device memory allocating {bytes} bytes")]
    OutOfMemory {
        /// Size of the failed allocation.
        bytes: usize,
    },
    /// A host slice and a device buffer of different sizes in one copy.
    #[error(
        "size mismatch: the device buffer has {buffer_bytes} bytes, the host slice {host_bytes}"
    )]
    SizeMismatch {
        /// Bytes in the device buffer.
        buffer_bytes: usize,
        /// Bytes in the host slice.
        host_bytes: usize,
    },
    /// `cuda:{ordinal}` already names another device in this process.
    #[error("cuda:{ordinal} is already the real GPU {name} in this process")]
    OrdinalInUse {
        /// The ordinal asked for.
        ordinal: usize,
        /// The name of the device it names.
        name: String,
    },
    /// A struct kernel argument that does not fit its limits.
    #[error("invalid struct kernel argument: {reason}")]
    InvalidStruct {
        /// What was wrong.
        reason: String,
    },
    /// A matmul precision name that is not one of `ieee`, `tf32`, `tf32x3`.
    #[error("unknown matmul precision {value:?}: the accepted values are ieee, tf32 and tf32x3")]
    UnknownPrecision {
        /// The name given (at most 40 characters of it).
        value: String,
    },
    /// A tensor-core precision asked of a GPU without tensor cores for it.
    #[error(
        "matmul precision {precision} needs tensor cores of compute capability 8.0 or newer; \
         {device} is {arch}"
    )]
    PrecisionUnsupported {
        /// The precision asked for.
        precision: crate::Precision,
        /// The device.
        device: String,
        /// Its architecture.
        arch: String,
    },
    /// A buffer used with a device it was not allocated on.
    #[error("buffer allocated on {buffer_device} used on {device}")]
    DeviceMismatch {
        /// The device performing the operation.
        device: String,
        /// The device owning the buffer.
        buffer_device: String,
    },
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
