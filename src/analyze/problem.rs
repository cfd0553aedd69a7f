//! What `analyze` analyses, whatever the model's format: a [`Problem`] is a model on the tape
//! (any [`Module`]), its inputs, the targets, the loss and the layout of θ. A model file and an
//! ONNX graph with its data file both become one; everything after loading reads only this.

use curvature::nn::{Activation, LayerSpec, Loss, ModelFile, Module};
use curvature::tensor::Tensor;

/// One parameter tensor's place in θ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterEntry {
    /// Its name (`0.weight`, an ONNX initializer's name, …).
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// The index in θ of its first element.
    pub offset: usize,
}

/// What the model is, for the summary and the results' metadata.
#[derive(Debug, Clone)]
pub enum ModelKind {
    /// A model file: the MLP form (widths, activations) or a `layers` list.
    File {
        widths: Vec<usize>,
        activations: Vec<Activation>,
        final_activation: Option<Activation>,
        layers: Vec<LayerSpec>,
    },
    /// An ONNX graph.
    Onnx {
        /// The graph's inputs, in order (the data file's tensors besides `y`).
        inputs: Vec<String>,
        /// The graph's nodes.
        nodes: usize,
        /// Its distinct op types, in the order they first occur.
        ops: Vec<String>,
    },
}

/// A model, its data and its loss: everything the analysis reads.
pub struct Problem {
    pub model: Box<dyn Module>,
    /// The model's inputs, in its order, each `[samples, …]`.
    pub inputs: Vec<Tensor>,
    /// The targets, `[samples, …]`.
    pub y: Tensor,
    pub loss: Loss,
    /// Every parameter tensor's name, shape and offset in θ, in θ's order.
    pub parameters: Vec<ParameterEntry>,
    pub kind: ModelKind,
}

impl Problem {
    /// The problem a model file holds: its `Sequential`, `x`, `y` and loss.
    pub fn from_model_file(file: ModelFile) -> Result<Problem, String> {
        let parameters = parameter_layout(&file.model)?;
        Ok(Problem {
            kind: ModelKind::File {
                widths: file.widths,
                activations: file.activations,
                final_activation: file.final_activation,
                layers: file.layers,
            },
            model: Box::new(file.model),
            inputs: vec![file.x],
            y: file.y,
            loss: file.loss,
            parameters,
        })
    }
}

/// The offset of each of `model`'s parameter tensors in θ (an error if P overflows).
pub fn parameter_layout(model: &dyn Module) -> Result<Vec<ParameterEntry>, String> {
    let mut offset = 0usize;
    model
        .named_parameters()
        .into_iter()
        .map(|(name, tensor)| {
            let entry = ParameterEntry {
                name,
                shape: tensor.dims().to_vec(),
                offset,
            };
            offset = offset
                .checked_add(tensor.elem_count())
                .ok_or_else(|| "the model's parameter count overflows".to_string())?;
            Ok(entry)
        })
        .collect()
}

/// The layout as JSON: `[{"name": …, "shape": […], "offset": …}, …]`.
pub fn layout_json(parameters: &[ParameterEntry]) -> String {
    let entries: Vec<serde_json::Value> = parameters
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "shape": p.shape, "offset": p.offset}))
        .collect();
    serde_json::to_string(&entries).unwrap_or_default()
}
