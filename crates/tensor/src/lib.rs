//! # curvature-tensor
//!
//! Dense tensors in f32 and f64 on the CPU (and, through the CUDA backend, on NVIDIA GPUs),
//! with the op set second-order autodiff needs: elementwise functions, NumPy broadcasting,
//! `torch.matmul`-style products, reductions and shape ops. Every op returns a [`Result`]
//! whose error names the op and the shapes, dtypes or devices involved.
//!
//! ```
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_tensor::Result<()> {
//! let a = Tensor::from_f64s(&[1.0, 2.0, 3.0, 4.0], [2, 2], DType::F64, Device::Cpu)?;
//! let b = Tensor::eye(2, 2, DType::F64, Device::Cpu)?;
//! let c = a.matmul(&b)?.add_scalar(1.0)?; // broadcasting scalar form
//! assert_eq!(c.to_vec::<f64>()?, vec![2.0, 3.0, 4.0, 5.0]);
//! assert_eq!(c.sum(&[0], false)?.to_vec::<f64>()?, vec![6.0, 8.0]);
//!
//! let bad = a.matmul(&Tensor::ones([3, 1], DType::F64, Device::Cpu)?);
//! assert!(bad.unwrap_err().to_string().contains("inner dimensions"));
//! # Ok(())
//! # }
//! ```
//!
//! The same code runs on an NVIDIA GPU: `Device::Cuda(i)` tensors live in device memory and
//! every op is a launch of the project's kernels (`kernels/*.cu`, compiled by NVRTC at run
//! time). [`Device::cuda_if_available`] falls back to the CPU, without panicking, when there is
//! no driver; [`Device::cuda_emulated`] runs the same kernels on the emulated GPU (tests).
//!
//! ```
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_tensor::Result<()> {
//! let device = Device::cuda_if_available(0);
//! println!("running on {}", device.description());
//! let x = Tensor::from_f64s(&[0.5, -1.0], [2], DType::F64, device)?;
//! let y = x.tanh()?.mul(&x)?; // kernel launches on a GPU
//! device.synchronize()?; // before reading a clock
//! assert_eq!(y.device(), device);
//! let cpu = Tensor::from_f64s(&[0.5, -1.0], [2], DType::F64, Device::Cpu)?;
//! assert!(cpu.add(&y).is_err() || device == Device::Cpu); // devices never mix silently
//! let host = y.to_device(Device::Cpu)?.to_vec::<f64>()?;
//! assert!((host[1] - (-1.0f64).tanh() * -1.0).abs() < 1e-15);
//! # Ok(())
//! # }
//! ```

pub(crate) mod backend;
pub(crate) mod cpu;
mod cuda;
mod device;
mod dtype;
mod epilogue;
mod error;
mod gemm;
pub mod host_gemm;
pub mod io;
mod ops;
pub mod plan;
mod shape;
mod storage;
mod tensor;

pub use backend::ReduceOp;
pub use cpu::CpuStorage;
pub use cuda::kernels as cuda_kernels;
pub use cuda::CudaStorage;
pub use curvature_kernels::GpuCounters;
pub use curvature_kernels::Precision;
pub use device::Device;
pub use dtype::{DType, Element};
pub use epilogue::{Activation, Bias, Epilogue, Factor};
pub use error::{human_bytes, Result, TensorError};
pub use gemm::{gemm_into, GemmCall, MatrixLayout};
pub use ops::conv::{Conv1dOptions, Conv2dOptions, ConvPlan, Window2d};
pub use ops::elementwise::{BinaryOp, Differentiable, Saves, TernaryOp, UnaryOp};
pub use ops::norm::checks as norm_checks;
pub use ops::pool::PoolPlan;
pub use ops::Indices;
pub use shape::{IntoShape, Shape, MAX_ELEMENTS};
pub use tensor::Tensor;
