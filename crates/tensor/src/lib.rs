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

pub mod backend;
mod cpu;
mod cuda;
mod device;
mod dtype;
mod error;
mod ops;
mod shape;
mod storage;
mod tensor;

pub use cpu::CpuStorage;
pub use cuda::CudaStorage;
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Result, TensorError};
pub use shape::Shape;
pub use tensor::Tensor;
