//! # curvature-nn
//!
//! Models on the curvature tape: the [`Module`] trait, layers with PyTorch's conventions,
//! losses, and model files in the golden-data safetensors format. Everything is exported from
//! the crate root:
//!
//! - [`Module`]: named parameters in a stable order (PyTorch's `state_dict` names: `weight`,
//!   `0.bias`, `block.0.weight`, …) and a forward pass over given parameter variables (like
//!   `torch.func.functional_call`), so derivatives with respect to the parameters come from the
//!   ordinary tape; provided methods for the flat parameter vector θ ([`Module::flat_params`],
//!   [`Module::forward_flat`], [`Module::split_flat`], [`Module::join_flat`]) and for modules
//!   with several inputs ([`Module::forward_inputs`]). Implement it for your own structs (see
//!   its documentation); [`prefixed`] and [`check_param_count`] help;
//! - layers: [`Linear`] (`y = x·Wᵀ + b`), [`Activation`] (any elementwise op, tanh and
//!   sigmoid with their scalar derivatives), [`Dropout`] (the identity at evaluation),
//!   [`Flatten`], [`Sequential`] (of any modules, named `0.weight`, `0.bias`, `2.weight`, …)
//!   and [`Residual`] (`x + f(x)`);
//! - losses: [`Loss`] (MSE, sum of squares and softmax cross-entropy, the losses of model files
//!   and of the fused sweep, with its scalar pieces [`Loss::output_scale`],
//!   [`Loss::output_gradient`], [`softmax_curvature`]; soft cross-entropy, negative
//!   log-likelihood and binary cross-entropy with logits on the tape) and the functions [`mse`], [`sum_sq`],
//!   [`cross_entropy`], [`cross_entropy_soft`], [`nll_loss`], [`gaussian_nll`],
//!   [`binary_cross_entropy_with_logits`], [`labels_from_tensor`]; [`Objective`] is a built-in
//!   loss against targets or any closure of the output;
//! - model files: [`ModelLayout`] (the checked header, nothing loaded) and [`ModelFile`] (a
//!   model, its data and its loss), with [`ModelFileError`] and the text helpers that keep
//!   echoed values to one bounded line ([`bounded_text`], [`shown`], [`file_kind`]).
//!
//! Errors are [`NnError`], which wraps the tape's and the tensors' errors.
//!
//! ```
//! use curvature_nn::{Activation, Dropout, Linear, Loss, Module, Residual, Sequential};
//! use curvature_tape::{grad, GradOptions, Tape};
//! use curvature_tensor::{DType, Device, Tensor, UnaryOp};
//!
//! # fn main() -> curvature_nn::Result<()> {
//! let (dtype, device) = (DType::F64, Device::Cpu);
//! let model = Sequential::default()
//!     .with(Linear::seeded(2, 3, dtype, device, 0)?)
//!     .with(Activation::new(UnaryOp::Softplus))
//!     .with(Residual::new(Linear::seeded(3, 3, dtype, device, 1)?))
//!     .with(Dropout::new(0.1)?)
//!     .with(Linear::seeded(3, 1, dtype, device, 2)?);
//! assert_eq!(model.num_params(), 9 + 12 + 4);
//! assert_eq!(model.named_parameters()[2].0, "2.weight");
//!
//! let x = Tensor::from_f64s(&[0.5, -1.0, 2.0, 0.25], [2, 2], dtype, device)?;
//! let y = Tensor::from_f64s(&[1.0, -1.0], [2, 1], dtype, device)?;
//! let tape = Tape::new();
//! let theta = tape.leaf(model.flat_params()?);
//! let output = model.forward_flat(&theta, &tape.constant(x))?;
//! let loss = Loss::Mse.compute(&output, &y)?;
//! let g = grad(&[loss], &[theta], GradOptions::default())?;
//! let named = model.split_flat(g[0].value())?; // the gradient per parameter
//! assert_eq!((named[0].0.as_str(), named[0].1.dims()), ("0.weight", &[3, 2][..]));
//! # Ok(())
//! # }
//! ```

mod attention;
mod conv;
mod embedding;
mod error;
mod flat;
mod glob;
mod init;
mod layers;
mod loss;
mod model_file;
mod module;
mod norm;
mod sequential;

pub use attention::MultiheadAttention;
pub use conv::{AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d};
pub use embedding::Embedding;
pub use error::{NnError, Result};
pub use glob::glob_match;
pub use layers::{Activation, Dropout, Flatten, Linear};
pub use loss::{
    binary_cross_entropy_with_logits, cross_entropy, cross_entropy_soft, gaussian_nll,
    labels_from_tensor, mse, nll_loss, softmax_curvature, sum_sq, Loss, Objective,
};
pub use model_file::{
    bounded_text, file_kind, shown, LayerSpec, ModelFile, ModelFileError, ModelLayout, LAYER_TYPES,
    MAX_HEADER_BYTES,
};
pub use module::{check_param_count, prefixed, Module, ModuleBase};
pub use norm::{BatchNorm, LayerNorm};
pub use sequential::{Residual, Sequential};
