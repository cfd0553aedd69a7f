//! curvature-kernels: the project's hand-written CUDA kernels and the GPU runtime that runs them.
//!
//! - `kernels/*.cu` (embedded with `include_str!`, see [`KernelFamily`]) are compiled by NVRTC on
//!   first use per (family, architecture); PTX / CUBIN are cached per process and modules per
//!   device. A real GPU loads the CUBIN (SASS for its exact architecture, so no driver JIT and
//!   no PTX-version mismatch when NVRTC is newer than the driver), falling back to PTX.
//! - [`GpuDevice`] is one runtime with two implementations: cudarc on a real NVIDIA GPU, and,
//!   with the `emulator` feature, the emulated GPU described in ARCHITECTURE.md (the same sources compiled by
//!   the host C++ compiler and run as cooperative fibers), selected by `CURVATURE_CUDA=emulate`
//!   or [`GpuDevice::emulated`]. The process has one device per ordinal and kind:
//!   [`GpuDevice::new`] returns the device `cuda:{ordinal}` names, fixed on first use
//!   ([`GpuDevice::emulated_as_cuda0`] makes it the emulated GPU for `cuda:0`).
//! - [`GpuBuffer`] is device memory on either; [`KernelArg`] a launch argument.
//! - A [`Kernel`] names one kernel entry point (family, op stem, operand indexing, dtype) and
//!   writes its exact symbol; a [`Launch`] is a kernel with its grid geometry and arguments,
//!   run by [`GpuDevice::launch`]. The kernels a family defines are read from the compiled
//!   sources (`emulated_kernel_names` with the `emulator` feature, [`compiled_kernel_names`]
//!   from NVRTC's PTX), never listed by hand.
//!
//! Each kernel's parameters and launch geometry are documented at the top of its `.cu` file,
//! and [`geometry`] computes suggested grids and blocks. This crate knows nothing of tensors.
//!
//! Launches trust their arguments the way `cuLaunchKernel` does: the element counts and shapes
//! passed must describe buffers that are large enough. The emulated GPU checks what it can — the
//! number and C types of the arguments against the kernel's signature, a guard page after every
//! buffer (an overrun faults at once, naming the kernel), barriers that can never complete, and,
//! by resuming fibers in varying orders, missing `__syncthreads()`.
//!
//! ```
//! use curvature_kernels::{geometry, Dtype, GpuDevice, Kernel, KernelArg, Launch};
//!
//! # fn main() -> Result<(), curvature_kernels::KernelError> {
//! // A real GPU (or the emulated one when CURVATURE_CUDA=emulate), else the emulated GPU when
//! // the `emulator` feature is on; without either there is nothing to run on.
//! let Ok(dev) = GpuDevice::new(0).or_else(|_| GpuDevice::emulated()) else {
//!     return Ok(());
//! };
//! let x: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_ne_bytes()).collect();
//! let x = dev.upload(&x)?;
//! let out = dev.alloc_zeros(x.len_bytes())?;
//! // out = x·2 + 1
//! dev.launch(
//!     &Launch::new(Kernel::unary("affine", Dtype::F32), geometry::launch_1d(3)).args([
//!         KernelArg::Buffer(&x),
//!         KernelArg::Buffer(&out),
//!         KernelArg::U64(3),
//!         KernelArg::F32(2.0),
//!         KernelArg::F32(1.0),
//!     ]),
//! )?;
//! let mut bytes = vec![0u8; out.len_bytes()];
//! dev.download(&out, &mut bytes)?;
//! let y: Vec<f32> = bytes
//!     .chunks_exact(4)
//!     .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
//!     .collect();
//! assert_eq!(y, [3.0, 5.0, 7.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Compiling needs only libnvrtc, no GPU:
//!
//! ```
//! use curvature_kernels::{compile_ptx, nvrtc_available, KernelFamily};
//!
//! if nvrtc_available() {
//!     let ptx = compile_ptx(KernelFamily::Matmul, "sm_90").expect("matmul compiles");
//!     assert!(ptx.contains(".entry gemm_large_f32"));
//! }
//! ```

//! # Modules
//!
//! Each module imports only modules of lower layers, so dependencies point one way:
//!
//! ```text
//! 4  registry                       the process's devices, what each cuda:{ordinal} names
//!    gemm_tune                      the opt-in GEMM autotuner and its file
//! 3  device                         GpuDevice: opens a backend, dispatches to it, counts
//! 2  cuda, emulator                 the two backends (buffers and modules, no devices)
//!    cache                          each device's free buffers, by size class
//!    launch, geometry               Launch descriptions; suggested grids and blocks
//! 1  nvrtc                          run-time compilation, the compiled-image cache
//!    kernel                         Kernel and Dtype: the one place symbols are written
//!    buffer                         GpuBuffer, KernelArg, both backends' memory
//! 0  family, error, counters        the embedded sources; KernelError; GpuCounters
//! ```

mod buffer;
mod cache;
mod counters;
mod cuda;
mod device;
mod disk_cache;
#[cfg(feature = "emulator")]
mod emulator;
mod error;
mod family;
pub mod gemm_select;
pub mod gemm_tune;
pub mod geometry;
mod includes;
mod kernel;
mod launch;
mod launch_log;
mod nvrtc;
mod precision;
mod registry;
mod targets;
mod tile_counters;

pub use buffer::{GpuBuffer, KernelArg, StructArg};
pub use counters::GpuCounters;
pub use device::GpuDevice;
pub use disk_cache::{CachedOutput, DiskCache};
#[cfg(feature = "emulator")]
pub use emulator::{emulated_kernel_names, emulator_contracts_fma};
pub use error::KernelError;
pub use family::{elementwise_op_names, KernelFamily, OpArity};
pub use kernel::{Dtype, Indexing, Kernel};
pub use launch::{Dim3, Launch};
pub use launch_log::LaunchRecord;
pub use nvrtc::{
    compile_cubin, compile_cubin_log, compile_ptx, compile_source, compiled_kernel_names,
    nvrtc_available, nvrtc_version, ptx_entry_names, supported_archs,
};
pub use precision::Precision;
pub use registry::emulation_requested;
pub use targets::{TargetPlan, Toolchain};
