//! # curvature-onnx
//!
//! ONNX models, as PyTorch exports them, on the curvature tape.

mod error;
pub mod ir;
pub mod lower;
mod model;

pub use error::{OnnxError, Result};
pub use model::{OnnxModel, OnnxOptions};
