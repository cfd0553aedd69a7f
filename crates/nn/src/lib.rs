//! # curvature-nn
//!
//! Models on the curvature tape: layers with PyTorch's conventions, the losses of the golden
//! data, and model files in the golden-data safetensors format. Everything is exported from
//! the crate root:
//!
//! - layers: [`Linear`] (`y = x·Wᵀ + b`), [`Activation`] (tanh, sigmoid, with their scalar
//!   derivatives), [`Layer`] and [`Sequential`], whose parameters are named and ordered like
//!   PyTorch's (`0.weight`, `0.bias`, `2.weight`, …) and flatten into one vector θ;
//! - losses: [`Loss`] (MSE, sum of squares, softmax cross-entropy) and the functions
//!   [`mse`], [`sum_sq`], [`cross_entropy`], [`labels_from_tensor`], with the scalar pieces a
//!   hand-written sweep needs ([`Loss::output_scale`], [`Loss::output_gradient`],
//!   [`softmax_curvature`]);
//! - model files: [`ModelLayout`] (the checked header, nothing loaded) and [`ModelFile`] (a
//!   model, its data and its loss), with [`ModelFileError`] and the text helpers that keep
//!   echoed values to one bounded line ([`bounded_text`], [`shown`], [`file_kind`]).
//!
//! Models hold parameters; `forward_with` runs one with given parameter variables (like
//! `torch.func.functional_call`), so derivatives with respect to the parameters come from the
//! ordinary tape. Errors are [`NnError`], which wraps the tape's and the tensors' errors.
//!
//! ```
//! use curvature_nn::{Activation, Loss, Sequential};
//! use curvature_tape::{grad, GradOptions, Tape};
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_nn::Result<()> {
//! let model = Sequential::mlp(&[2, 3, 1], &[Activation::Tanh], None, DType::F64, Device::Cpu, 0)?;
//! assert_eq!(model.num_params(), 13);
//! let x = Tensor::from_f64s(&[0.5, -1.0, 2.0, 0.25], [2, 2], DType::F64, Device::Cpu)?;
//! let y = Tensor::from_f64s(&[1.0, -1.0], [2, 1], DType::F64, Device::Cpu)?;
//!
//! let tape = Tape::new();
//! let theta = tape.leaf(model.flat_params()?);
//! let output = model.forward_flat(&theta, &tape.constant(x))?;
//! let loss = Loss::Mse.compute(&output, &y)?;
//! let g = grad(&[loss], &[theta], GradOptions::default())?;
//! assert_eq!(g[0].dims(), &[13]);
//! # Ok(())
//! # }
//! ```

mod error;
mod layers;
mod loss;
mod model_file;

pub use error::{NnError, Result};
pub use layers::{Activation, Layer, Linear, Sequential};
pub use loss::{cross_entropy, labels_from_tensor, mse, softmax_curvature, sum_sq, Loss};
pub use model_file::{
    bounded_text, file_kind, shown, ModelFile, ModelFileError, ModelLayout, MAX_HEADER_BYTES,
};
