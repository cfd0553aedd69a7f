//! # curvature-tape
//!
//! Reverse-mode automatic differentiation whose backward rules are themselves recorded with
//! differentiable ops, so gradients can be differentiated again to any order. Cotangents may
//! carry leading batch axes: `vjp` of a gradient with K stacked vectors is K Hessian-vector
//! products in one sweep. Layers, losses and model files are built on it in `curvature-nn`.
//!
//! ```
//! use curvature_tape::{grad, GradOptions, Tape};
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_tape::Result<()> {
//! let tape = Tape::new();
//! let x = tape.leaf(Tensor::from_f64s(&[1.0], [1], DType::F64, Device::Cpu)?);
//! let y = x.powf(4.0)?.sum_all()?; // x⁴
//! let dy = grad(&[y], &[x.clone()], GradOptions::create_graph())?; // 4x³
//! let d2y = grad(&[dy[0].sum_all()?], &[x.clone()], GradOptions::create_graph())?; // 12x²
//! let d3y = grad(&[d2y[0].sum_all()?], &[x], GradOptions::default())?; // 24x
//! assert_eq!(dy[0].value().to_vec::<f64>()?, vec![4.0]);
//! assert_eq!(d2y[0].value().to_vec::<f64>()?, vec![12.0]);
//! assert_eq!(d3y[0].value().to_vec::<f64>()?, vec![24.0]);
//! # Ok(())
//! # }
//! ```

pub mod check;
mod error;
mod grad;
mod op;
mod ops;
mod rules;
mod tape;
mod var;

pub use error::{Result, TapeError};
pub use grad::{grad, vjp, GradOptions};
pub use ops::nn::scaled_dot_product_attention;
pub use tape::{NodeId, NodeInfo, Tape};
pub use var::Var;
