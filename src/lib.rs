//! # curvature
//!
//! Second-order derivatives of neural networks and tensor functions: Hessian-vector products
//! (one or many at once), Hessians, diagonals, traces and spectra, on the CPU and on NVIDIA
//! GPUs. This crate re-exports the workspace's crates under one name and holds the
//! `curvature` command line.
//!
//! ```
//! use curvature::tape::{grad, GradOptions, Tape};
//! use curvature::tensor::{DType, Device, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tape = Tape::new();
//! let x = tape.leaf(Tensor::from_f64s(&[0.5, -1.0], [2], DType::F64, Device::Cpu)?);
//! let f = x.tanh()?.sum_all()?;
//! let g = grad(&[f], &[x.clone()], GradOptions::create_graph())?;
//! let t = 0.5f64.tanh();
//! assert!((g[0].value().to_vec::<f64>()?[0] - (1.0 - t * t)).abs() < 1e-15);
//! # Ok(())
//! # }
//! ```

pub use curvature_distributed as distributed;
pub use curvature_hessian as hessian;
pub use curvature_nn as nn;
pub use curvature_onnx as onnx;
pub use curvature_tape as tape;
pub use curvature_tensor as tensor;

/// A fingerprint of the CUDA sources (`kernels/`) this build was made from: 16 hex digits of
/// a hash of every file there, computed by the package's `build.rs`.
pub const KERNELS_FINGERPRINT: &str = env!("CURVATURE_KERNELS_FINGERPRINT");

pub mod allocator;
pub mod bench;
pub mod bench_ranks;
pub mod gemm_bench;
pub mod generic_functions;
pub mod workloads;

/// A readable name of a device for reports: `cpu (2 threads)`, the GPU's own name such as
/// `NVIDIA H100 80GB HBM3 (cuda:0)`, or `emulated GPU (cuda:0)`.
pub fn device_description(device: curvature_tensor::Device) -> String {
    match device {
        curvature_tensor::Device::Cpu => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!("cpu ({threads} threads)")
        }
        cuda => cuda.description(),
    }
}

/// The README's code, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
