//! # curvature-onnx
//!
//! ONNX models, as PyTorch exports them, on the curvature tape.

mod check;
mod error;
mod external;
pub mod ir;
pub mod lower;
mod model;
mod parse;
mod proto;
mod select;

pub use error::{OnnxError, Result};
pub use model::{OnnxModel, OnnxOptions};
pub use parse::{parse_graph, read_graph, MAX_MODEL_BYTES};
pub use select::{select_parameters, OnnxParameter};
