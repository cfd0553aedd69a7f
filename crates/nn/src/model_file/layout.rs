//! A model file's layout: its header read and checked (metadata, and every tensor the model
//! needs present with the shape the metadata implies) without reading any tensor data. It
//! tells what loading will cost before anything is loaded, and [`ModelLayout::load`] then
//! reads exactly the tensors it checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use curvature_tensor::{DType, Device, Tensor};

use super::{
    check_labels, check_values, is_layer_name, shown, wrong_shape, Extra, Meta, ModelFile,
    ModelFileError,
};
use crate::{Activation, Linear, Loss, Module, Result, Sequential};
use curvature_tensor::io::{Accept, Entry, Source};

/// The checked header of a model file; no tensor data has been read.
#[derive(Debug)]
pub struct ModelLayout {
    pub widths: Vec<usize>,
    pub activations: Vec<Activation>,
    pub final_activation: Option<Activation>,
    pub loss: Loss,
    /// `[n, widths[0]]`: the number of samples is `x_dims[0]`.
    pub x_dims: Vec<usize>,
    pub y_dims: Vec<usize>,
    /// Each layer's weight and bias entries.
    layers: Vec<(Entry, Entry)>,
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
        let Meta {
            widths,
            activations,
            final_activation,
            loss,
        } = Meta::parse(&header.metadata)?;
        let mut entries = header.tensors;
        let mut take = |name: &str, expected: Option<Vec<usize>>| {
            let entry = entries
                .remove(name)
                .ok_or_else(|| ModelFileError::MissingTensor(name.to_string()))?;
            match expected {
                Some(expected) if expected != entry.shape => {
                    Err(wrong_shape(name, expected, &entry.shape))
                }
                _ => Ok(entry),
            }
        };
        let mut layers = Vec::with_capacity(widths.len() - 1);
        for (i, pair) in widths.windows(2).enumerate() {
            let weight = take(&format!("{i}.weight"), Some(vec![pair[1], pair[0]]))?;
            let bias = take(&format!("{i}.bias"), Some(vec![pair[1]]))?;
            layers.push((weight, bias));
        }
        let x = take("x", None)?;
        let y = take("y", None)?;
        if let Some(name) = entries.keys().find(|name| is_layer_name(name)) {
            return Err(ModelFileError::ExtraLayer {
                name: shown(name),
                layers: widths.len() - 1,
            }
            .into());
        }
        let n = x.shape.first().copied().unwrap_or(0);
        if x.shape != [n, widths[0]] {
            return Err(wrong_shape("x", vec![n, widths[0]], &x.shape).into());
        }
        let out = widths[widths.len() - 1];
        let y_ok = match loss {
            Loss::CrossEntropy => y.shape == [n] || y.shape == [n, 1],
            Loss::Mse => y.shape == [n, out],
            Loss::SumSq => y.shape.first() == Some(&n),
            // Not a model-file loss: `FromStr` never produces it.
            Loss::SoftCrossEntropy | Loss::Nll | Loss::BceWithLogits => false,
        };
        if !y_ok {
            let expected = if loss == Loss::CrossEntropy {
                vec![n]
            } else {
                vec![n, out]
            };
            return Err(wrong_shape("y", expected, &y.shape).into());
        }
        Ok(ModelLayout {
            widths,
            activations,
            final_activation,
            loss,
            x_dims: x.shape.clone(),
            y_dims: y.shape.clone(),
            layers,
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

    /// The shapes of the tensors [`ModelLayout::load`] reads: every layer's weight and bias,
    /// then `x` and `y` (the file's other tensors are read only when asked for).
    pub fn model_shapes(&self) -> impl Iterator<Item = &[usize]> {
        self.layers
            .iter()
            .flat_map(|(weight, bias)| [&weight.shape[..], &bias.shape[..]])
            .chain([&self.x.shape[..], &self.y.shape[..]])
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
        let mut layers: Vec<Box<dyn Module>> = Vec::with_capacity(2 * self.layers.len());
        for (i, (weight, bias)) in self.layers.iter().enumerate() {
            let (weight, _) = read(&format!("{i}.weight"), weight)?;
            let (bias, _) = read(&format!("{i}.bias"), bias)?;
            layers.push(Box::new(Linear { weight, bias }));
            let act = if i + 2 < self.widths.len() {
                Some(self.activations[i])
            } else {
                self.final_activation
            };
            if let Some(act) = act {
                layers.push(Box::new(act));
            }
        }
        let (x, _) = read("x", &self.x)?;
        let (y, labels) = read("y", &self.y)?;
        if self.loss == Loss::CrossEntropy {
            check_labels(&labels, self.widths[self.widths.len() - 1])?;
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
            loss: self.loss,
            model: Sequential::new(layers),
            x,
            y,
            extra,
            source: self.source,
            dtype,
            device,
        })
    }
}
