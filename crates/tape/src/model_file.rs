//! Models stored as safetensors in the golden-data format: layer tensors `"{i}.weight"`
//! `[out, in]` and `"{i}.bias"` `[out]` for layers `i = 0..L`, data `x` and `y`, and metadata
//! `widths`, `activations`, `final_activation` and `loss` (JSON-encoded strings). Every other
//! tensor in the file (reference results) is kept by name.

use std::collections::BTreeMap;
use std::path::Path;

use curvature_tensor::{DType, Device, Shape, Tensor};
use safetensors::{Dtype as FileDtype, SafeTensors};

use crate::nn::{Activation, Layer, Linear, Loss, Sequential};
use crate::{Result, Var};

/// Why a model file could not be used; each message names the problem in one line.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {got}, expected {expected}")]
    WrongShape {
        name: String,
        expected: Shape,
        got: Shape,
    },
    #[error("tensor '{name}' has dtype {dtype}, expected F64 or F32")]
    WrongDtype { name: String, dtype: String },
    #[error("metadata '{key}': {msg}")]
    Metadata { key: String, msg: String },
    #[error("tensor '{name}' contains a non-finite value at index {index}")]
    NotFinite { name: String, index: usize },
}

/// A model, its data and its loss, read from a file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub widths: Vec<usize>,
    pub activations: Vec<Activation>,
    pub final_activation: Option<Activation>,
    pub loss: Loss,
    pub model: Sequential,
    pub x: Tensor,
    pub y: Tensor,
    /// Every other tensor of the file, by name.
    pub extra: BTreeMap<String, Tensor>,
}

impl ModelFile {
    /// Reads `path`, converting every tensor to `dtype` on `device`.
    pub fn load(path: impl AsRef<Path>, dtype: DType, device: Device) -> Result<ModelFile> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        ModelFile::from_bytes(&bytes, dtype, device)
    }

    /// Parses the bytes of a safetensors file.
    pub fn from_bytes(bytes: &[u8], dtype: DType, device: Device) -> Result<ModelFile> {
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| ModelFileError::Format(e.to_string()))?;
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| ModelFileError::Format(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let widths: Vec<usize> = parse_meta(&meta, "widths")?;
        let activation_names: Vec<String> = parse_meta(&meta, "activations")?;
        let final_name = meta
            .get("final_activation")
            .map(String::as_str)
            .unwrap_or("None");
        let loss_name = meta
            .get("loss")
            .ok_or_else(|| metadata_error("loss", "missing"))?;
        if widths.len() < 2 || widths.contains(&0) {
            return Err(metadata_error(
                "widths",
                &format!("{widths:?} needs at least 2 positive widths"),
            )
            .into());
        }
        if activation_names.len() != widths.len() - 2 {
            return Err(metadata_error(
                "activations",
                &format!(
                    "{} entries for {} hidden layers",
                    activation_names.len(),
                    widths.len() - 2
                ),
            )
            .into());
        }
        let activations = activation_names
            .iter()
            .map(|a| {
                a.parse::<Activation>()
                    .map_err(|msg| metadata_error("activations", &msg))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let final_activation = match final_name {
            "None" | "none" | "" => None,
            other => Some(
                other
                    .parse::<Activation>()
                    .map_err(|msg| metadata_error("final_activation", &msg))?,
            ),
        };
        let loss: Loss = loss_name
            .parse()
            .map_err(|msg: String| metadata_error("loss", &msg))?;

        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            tensors.insert(name.clone(), read_tensor(&name, &view, dtype, device)?);
        }
        let mut take = |name: &str, expected: Option<Shape>| -> Result<Tensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| ModelFileError::MissingTensor(name.to_string()))?;
            if let Some(expected) = expected.filter(|e| e != t.shape()) {
                return Err(ModelFileError::WrongShape {
                    name: name.to_string(),
                    expected,
                    got: t.shape().clone(),
                }
                .into());
            }
            check_finite(name, &t)?;
            Ok(t)
        };
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            let weight = take(
                &format!("{i}.weight"),
                Some(Shape::new([pair[1], pair[0]])?),
            )?;
            let bias = take(&format!("{i}.bias"), Some(Shape::new([pair[1]])?))?;
            layers.push(Layer::Linear(Linear { weight, bias }));
            let act = if i + 2 < widths.len() {
                Some(activations[i])
            } else {
                final_activation
            };
            if let Some(act) = act {
                layers.push(Layer::Activation(act));
            }
        }
        let x = take("x", None)?;
        let n = x.dims().first().copied().unwrap_or(0);
        if x.dims() != [n, widths[0]] {
            return Err(wrong_shape("x", Shape::new([n, widths[0]])?, x.shape()).into());
        }
        let y = take("y", None)?;
        let out = *widths.last().unwrap_or(&0);
        let y_ok = match loss {
            Loss::CrossEntropy => y.dims() == [n] || y.dims() == [n, 1],
            Loss::Mse => y.dims() == [n, out],
            Loss::SumSq => y.dims().first() == Some(&n),
        };
        if !y_ok {
            let expected = if loss == Loss::CrossEntropy {
                Shape::new([n])?
            } else {
                Shape::new([n, out])?
            };
            return Err(wrong_shape("y", expected, y.shape()).into());
        }
        if loss == Loss::CrossEntropy {
            let labels = crate::nn::labels_from_tensor(&y)?;
            if let Some(&bad) = labels.iter().find(|&&l| l >= out) {
                return Err(metadata_error(
                    "y",
                    &format!("label {bad} is not below the {out} classes"),
                )
                .into());
            }
        }
        Ok(ModelFile {
            widths,
            activations,
            final_activation,
            loss,
            model: Sequential::new(layers),
            x,
            y,
            extra: tensors,
        })
    }

    /// A reference tensor of the file by name.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.extra
            .get(name)
            .ok_or_else(|| ModelFileError::MissingTensor(name.to_string()).into())
    }

    /// The loss as a function of the flat parameter vector θ (on θ's tape).
    pub fn loss_of(&self, theta: &Var) -> Result<Var> {
        let x = theta.constant(self.x.clone());
        let out = self.model.forward_flat(theta, &x)?;
        self.loss.compute(&out, &self.y)
    }
}

fn parse_meta<T: serde::de::DeserializeOwned>(
    meta: &std::collections::HashMap<String, String>,
    key: &str,
) -> std::result::Result<T, ModelFileError> {
    let raw = meta
        .get(key)
        .ok_or_else(|| metadata_error(key, "missing"))?;
    serde_json::from_str(raw)
        .map_err(|e| metadata_error(key, &format!("cannot parse {raw:?}: {e}")))
}

fn metadata_error(key: &str, msg: &str) -> ModelFileError {
    ModelFileError::Metadata {
        key: key.to_string(),
        msg: msg.to_string(),
    }
}

fn wrong_shape(name: &str, expected: Shape, got: &Shape) -> ModelFileError {
    ModelFileError::WrongShape {
        name: name.to_string(),
        expected,
        got: got.clone(),
    }
}

fn read_tensor(
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
    dtype: DType,
    device: Device,
) -> Result<Tensor> {
    let values: Vec<f64> = match view.dtype() {
        FileDtype::F64 => bytemuck_f64(view.data()),
        FileDtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        other => {
            return Err(ModelFileError::WrongDtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            }
            .into())
        }
    };
    Ok(Tensor::from_f64s(&values, view.shape(), dtype, device)?)
}

fn bytemuck_f64(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

fn check_finite(name: &str, t: &Tensor) -> Result<()> {
    if let Some(index) = t.to_f64s()?.iter().position(|v| !v.is_finite()) {
        return Err(ModelFileError::NotFinite {
            name: name.to_string(),
            index,
        }
        .into());
    }
    Ok(())
}
