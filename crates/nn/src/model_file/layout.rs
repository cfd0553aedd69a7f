//! A model file's layout: its header read and checked (metadata, and every tensor the model
//! needs present with the shape the metadata implies) without reading any tensor data. It
//! tells what loading will cost before anything is loaded, and [`ModelLayout::load`] then
//! reads exactly the tensors it checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use curvature_tensor::{DType, Device, Tensor};

use super::{
    check_labels, check_values, is_layer_name, shown, wrong_shape, Extra, Form, LayerSpec, Meta,
    ModelFile, ModelFileError,
};
use crate::{Activation, Loss, Module, Result, Sequential};
use curvature_tensor::io::{Accept, Entry, Source};

/// The checked header of a model file; no tensor data has been read.
#[derive(Debug)]
pub struct ModelLayout {
    /// The MLP form's widths, inputs first (empty for the `layers` form).
    pub widths: Vec<usize>,
    /// The MLP form's hidden activations (empty for the `layers` form).
    pub activations: Vec<Activation>,
    /// The MLP form's final activation (none for the `layers` form).
    pub final_activation: Option<Activation>,
    /// The model, one entry per module of the `Sequential` loading builds (for the MLP form,
    /// its Linear layers and activations).
    pub layers: Vec<LayerSpec>,
    /// The shape of each layer's output for the input `x`.
    pub layer_dims: Vec<Vec<usize>>,
    pub loss: Loss,
    /// The input's shape: the number of samples is `x_dims[0]`.
    pub x_dims: Vec<usize>,
    pub y_dims: Vec<usize>,
    /// Each layer's tensors, by name, in [`LayerSpec::tensor_shapes`] order.
    tensors: Vec<Vec<(String, Entry)>>,
    x: Entry,
    y: Entry,
    /// Every other tensor of the file, by name.
    extra: BTreeMap<String, Entry>,
    source: Source,
}

impl ModelLayout {
    /// Reads and checks the header of `path`. Only a regular file is opened (a FIFO, device
    /// or directory is an error, and opening never blocks).
    pub fn open(path: impl AsRef<Path>) -> Result<ModelLayout> {
        let (source, len) = Source::open(path.as_ref())?;
        ModelLayout::read(source, len)
    }

    /// Reads and checks the header of a safetensors file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelLayout> {
        ModelLayout::read(Source::Bytes(Arc::from(bytes)), bytes.len() as u64)
    }

    pub(super) fn read(source: Source, len: u64) -> Result<ModelLayout> {
        let header = source.header(len)?;
        let Meta { form, loss } = Meta::parse(&header.metadata)?;
        let (widths, activations, final_activation) = match &form {
            Form::Mlp {
                widths,
                activations,
                final_activation,
            } => (widths.clone(), activations.clone(), *final_activation),
            Form::Layers(_) => (Vec::new(), Vec::new(), None),
        };
        let (layers, names) = form.layers();
        let mut entries = header.tensors;
        let mut take = |name: &str, expected: Option<&[usize]>| {
            let entry = entries
                .remove(name)
                .ok_or_else(|| ModelFileError::MissingTensor(name.to_string()))?;
            match expected {
                Some(expected) if expected != entry.shape => {
                    Err(wrong_shape(name, expected.to_vec(), &entry.shape))
                }
                _ => Ok(entry),
            }
        };
        let mut tensors = Vec::with_capacity(layers.len());
        for (spec, prefix) in layers.iter().zip(&names) {
            let mut taken = Vec::new();
            for (suffix, shape) in spec.tensor_shapes() {
                let name = format!("{prefix}.{suffix}");
                let entry = take(&name, Some(&shape))?;
                taken.push((name, entry));
            }
            tensors.push(taken);
        }
        let x = take("x", None)?;
        let y = take("y", None)?;
        if let Form::Mlp { widths, .. } = &form {
            if let Some(name) = entries.keys().find(|name| is_layer_name(name)) {
                return Err(ModelFileError::ExtraLayer {
                    name: shown(name),
                    layers: widths.len() - 1,
                }
                .into());
            }
        } else if let Some(name) = entries.keys().find(|name| is_state_dict_name(name)) {
            return Err(ModelFileError::UnusedTensor {
                name: shown(name),
                layers: layers.len(),
            }
            .into());
        }
        let n = x.shape.first().copied().unwrap_or(0);
        if let Form::Mlp { widths, .. } = &form {
            if x.shape != [n, widths[0]] {
                return Err(wrong_shape("x", vec![n, widths[0]], &x.shape).into());
            }
        } else if x.shape.is_empty() {
            return Err(wrong_shape("x", vec![n], &x.shape).into());
        }
        let mut layer_dims = Vec::with_capacity(layers.len());
        let mut dims = x.shape.clone();
        for (index, spec) in layers.iter().enumerate() {
            dims = spec.output_dims(&dims).map_err(|msg| {
                super::metadata_error(
                    "layers",
                    &format!("layer {index} ({}) {msg}", spec.type_name()),
                )
            })?;
            layer_dims.push(dims.clone());
        }
        check_targets(loss, &dims, &y.shape)?;
        Ok(ModelLayout {
            widths,
            activations,
            final_activation,
            layers,
            layer_dims,
            loss,
            x_dims: x.shape.clone(),
            y_dims: y.shape.clone(),
            tensors,
            x,
            y,
            extra: entries,
            source,
        })
    }

    /// The number of samples (rows of `x`).
    pub fn samples(&self) -> usize {
        self.x_dims[0]
    }

    /// The shapes of the tensors [`ModelLayout::load`] reads: every layer's tensors, then
    /// `x` and `y` (the file's other tensors are read only when asked for).
    pub fn model_shapes(&self) -> impl Iterator<Item = &[usize]> {
        self.tensors
            .iter()
            .flatten()
            .map(|(_, entry)| &entry.shape[..])
            .chain([&self.x.shape[..], &self.y.shape[..]])
    }

    /// The shape of the model's output for the input `x`.
    pub fn output_dims(&self) -> &[usize] {
        self.layer_dims.last().map_or(&self.x_dims, |d| d)
    }

    /// Reads the model's tensors (values checked: finite, within f32 when `dtype` is f32,
    /// labels in range) and converts them to `dtype` on `device`.
    pub fn load(self, dtype: DType, device: Device) -> Result<ModelFile> {
        let source = &self.source;
        let read = |name: &str, entry: &Entry| -> Result<(Tensor, Vec<f64>)> {
            let values = source.values(name, entry, Accept::Full)?;
            check_values(name, &values, dtype)?;
            let tensor = Tensor::from_f64s(&values, entry.shape.clone(), dtype, device)?;
            Ok((tensor, values))
        };
        let mut modules: Vec<Box<dyn Module>> = Vec::with_capacity(self.layers.len());
        for (spec, tensors) in self.layers.iter().zip(&self.tensors) {
            let values = tensors
                .iter()
                .map(|(name, entry)| Ok(read(name, entry)?.0))
                .collect::<Result<Vec<Tensor>>>()?;
            modules.push(spec.build(values)?);
        }
        let (x, _) = read("x", &self.x)?;
        let (y, labels) = read("y", &self.y)?;
        if self.loss == Loss::CrossEntropy {
            let classes = self.output_dims().last().copied().unwrap_or(0);
            check_labels(&labels, classes)?;
        }
        let extra = self
            .extra
            .into_iter()
            .map(|(name, entry)| {
                let tensor = OnceLock::new();
                (name, Extra { entry, tensor })
            })
            .collect();
        Ok(ModelFile {
            widths: self.widths,
            activations: self.activations,
            final_activation: self.final_activation,
            layers: self.layers,
            loss: self.loss,
            model: Sequential::new(modules),
            x,
            y,
            extra,
            source: self.source,
            dtype,
            device,
        })
    }
}

/// Whether `name` looks like a `state_dict` key of a Sequential's module: digits, a dot, more.
fn is_state_dict_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((index, rest)) => {
            !index.is_empty() && !rest.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Checks the targets' shape against the model's output `out` `[n, …]`: the class labels `[n]`
/// (or `[n, 1]`) of `[n, classes]` logits for cross-entropy, the output's shape for MSE, any
/// shape with n rows for the sum of squares.
fn check_targets(
    loss: Loss,
    out: &[usize],
    y: &[usize],
) -> std::result::Result<(), ModelFileError> {
    let n = out.first().copied().unwrap_or(0);
    let ok = match loss {
        Loss::CrossEntropy => out.len() == 2 && (y == [n] || y == [n, 1]),
        Loss::Mse => y == out,
        Loss::SumSq => y.first() == Some(&n),
        // Not a model-file loss: `FromStr` never produces it.
        Loss::SoftCrossEntropy | Loss::Nll | Loss::BceWithLogits => false,
    };
    if ok {
        return Ok(());
    }
    if loss == Loss::CrossEntropy && out.len() != 2 {
        let msg = format!(
            "cross_entropy needs logits [n, classes], but the model's output has shape {}",
            super::dims(out)
        );
        return Err(super::metadata_error("loss", &msg));
    }
    let expected = if loss == Loss::CrossEntropy {
        vec![n]
    } else {
        out.to_vec()
    };
    Err(wrong_shape("y", expected, y))
}
