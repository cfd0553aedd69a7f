//! Models stored as safetensors, in one of two forms:
//!
//! - the MLP form (the golden-data format): layer tensors `"{i}.weight"` `[out, in]` and
//!   `"{i}.bias"` `[out]` for the Linear layers `i = 0..L`, and metadata `widths`,
//!   `activations`, `final_activation` (JSON-encoded strings);
//! - the `layers` form, for any `nn.Sequential` of the supported modules: metadata `layers`, a
//!   JSON list with one object per module (`{"type": "Conv2d", "in_channels": 2, …}`, see
//!   [`LayerSpec`]), and tensors named by PyTorch's `state_dict` keys (`0.weight`,
//!   `1.running_mean`, …).
//!
//! Both hold data `x` and `y` and the metadata `loss`. Every other tensor in the file
//! (reference results) is kept by name and read when first asked for.
//!
//! Reading is defensive: only regular files are opened, the header's length is checked
//! against the file's size before the header is read, every shape is checked against the
//! metadata before any tensor data is read, and values echoed in errors are escaped and cut
//! short ([`bounded_text`]).

mod layout;
mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

use crate::{Activation, Loss, Module, Result, Sequential};
pub use curvature_tensor::io::{bounded_text, file_kind, shown, MAX_HEADER_BYTES};
use curvature_tensor::io::{Accept, Entry, FileError, Source};
pub use layout::ModelLayout;
pub use spec::{LayerSpec, LAYER_TYPES};

/// Why a model file could not be used; each message names the problem in one line, with
/// every value taken from the file escaped and cut to a bounded length.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A FIFO, device, directory or socket instead of a regular file.
    #[error("cannot read {path}: it is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {}, expected {}", dims(.got), dims(.expected))]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("tensor '{name}' has dtype {dtype}, expected F64 or F32")]
    WrongDtype { name: String, dtype: String },
    /// A tensor whose values (as f64) cannot be allocated.
    #[error("tensor '{name}' needs {bytes} bytes as f64, more than can be allocated")]
    TooLarge { name: String, bytes: usize },
    #[error("metadata '{key}': {msg}")]
    Metadata { key: String, msg: String },
    #[error("tensor '{name}' contains a non-finite value at index {index}")]
    NotFinite { name: String, index: usize },
    /// A finite f64 value beyond the range of f32, when the model is read as f32.
    #[error("tensor '{name}' has the value {value:e} at index {index}, which overflows f32 (largest {max:e})", max = f32::MAX)]
    OverflowsF32 {
        name: String,
        index: usize,
        value: f64,
    },
    /// A layer tensor (`{i}.weight`, `{i}.bias`) that `widths` has no layer for.
    #[error("tensor '{name}' is a layer tensor, but metadata 'widths' describes {layers} layers")]
    ExtraLayer { name: String, layers: usize },
    /// A `state_dict`-like tensor (`{i}.…`) that no entry of `layers` reads.
    #[error("tensor '{name}' is not a tensor of any of the {layers} entries of metadata 'layers'")]
    UnusedTensor { name: String, layers: usize },
}

/// The file reader's errors, as the model file's.
impl From<FileError> for ModelFileError {
    fn from(e: FileError) -> ModelFileError {
        match e {
            FileError::Io { path, source } => ModelFileError::Io { path, source },
            FileError::NotRegular { path, kind } => ModelFileError::NotRegular { path, kind },
            FileError::Format(msg) => ModelFileError::Format(msg),
            FileError::WrongDtype { name, dtype, .. } => ModelFileError::WrongDtype { name, dtype },
            FileError::TooLarge { name, bytes } => ModelFileError::TooLarge { name, bytes },
            other => ModelFileError::Format(other.to_string()),
        }
    }
}

impl From<FileError> for crate::NnError {
    fn from(e: FileError) -> crate::NnError {
        ModelFileError::from(e).into()
    }
}

/// A model, its data and its loss, read from a file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// The MLP form's widths, inputs first (empty for the `layers` form).
    pub widths: Vec<usize>,
    /// The MLP form's hidden activations (empty for the `layers` form).
    pub activations: Vec<Activation>,
    /// The MLP form's final activation (none for the `layers` form).
    pub final_activation: Option<Activation>,
    /// The model, one entry per module of [`ModelFile::model`].
    pub layers: Vec<LayerSpec>,
    pub loss: Loss,
    pub model: Sequential,
    pub x: Tensor,
    pub y: Tensor,
    /// Every other tensor of the file, by name, read on first use.
    extra: BTreeMap<String, Extra>,
    source: Source,
    dtype: DType,
    device: Device,
}

/// A tensor of the file that is not part of the model, and its value once read.
#[derive(Debug, Clone)]
struct Extra {
    entry: Entry,
    tensor: OnceLock<Tensor>,
}

impl ModelFile {
    /// Reads `path`, converting the model's tensors to `dtype` on `device`. Only a regular
    /// file is opened (a FIFO, device or directory is an error, and opening never blocks);
    /// the other tensors are read when [`ModelFile::tensor`] asks for them.
    /// [`ModelLayout::open`] then [`ModelLayout::load`].
    pub fn load(path: impl AsRef<Path>, dtype: DType, device: Device) -> Result<ModelFile> {
        ModelLayout::open(path)?.load(dtype, device)
    }

    /// Parses the bytes of a safetensors file.
    pub fn from_bytes(bytes: &[u8], dtype: DType, device: Device) -> Result<ModelFile> {
        ModelLayout::from_bytes(bytes)?.load(dtype, device)
    }

    /// A reference tensor of the file by name, read from the file (and converted to the
    /// model's dtype and device) on first use.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        let extra = self
            .extra
            .get(name)
            .ok_or_else(|| ModelFileError::MissingTensor(shown(name)))?;
        if let Some(tensor) = extra.tensor.get() {
            return Ok(tensor);
        }
        let values = self.source.values(name, &extra.entry, Accept::Full)?;
        let tensor =
            Tensor::from_f64s(&values, extra.entry.shape.clone(), self.dtype, self.device)?;
        Ok(extra.tensor.get_or_init(|| tensor))
    }

    /// The names of the file's tensors that are not part of the model, in order.
    pub fn extra_names(&self) -> impl Iterator<Item = &str> {
        self.extra.keys().map(String::as_str)
    }

    /// The loss as a function of the flat parameter vector θ (on θ's tape).
    pub fn loss_of(&self, theta: &Var) -> Result<Var> {
        let x = theta.constant(self.x.clone());
        let out = self.model.forward_flat(theta, &x)?;
        self.loss.compute(&out, &self.y)
    }
}

/// The metadata of the format, parsed.
struct Meta {
    form: Form,
    loss: Loss,
}

/// What the metadata says the model is.
enum Form {
    Mlp {
        widths: Vec<usize>,
        activations: Vec<Activation>,
        final_activation: Option<Activation>,
    },
    Layers(Vec<LayerSpec>),
}

/// The keys of the MLP form.
const MLP_KEYS: [&str; 3] = ["widths", "activations", "final_activation"];

impl Meta {
    fn parse(meta: &HashMap<String, String>) -> std::result::Result<Meta, ModelFileError> {
        let form = if meta.contains_key("layers") {
            if let Some(key) = MLP_KEYS.iter().find(|k| meta.contains_key(**k)) {
                return Err(metadata_error(key, "not allowed together with 'layers'"));
            }
            Form::Layers(parse_layers(meta)?)
        } else {
            parse_mlp(meta)?
        };
        let loss_name = meta
            .get("loss")
            .ok_or_else(|| metadata_error("loss", "missing"))?;
        let loss = parse_name(loss_name, "loss")?;
        Ok(Meta { form, loss })
    }
}

impl Form {
    /// The layers, and the prefix of each layer's tensor names: the Linear layer's index in
    /// the MLP form, the module's index in the `layers` form.
    fn layers(&self) -> (Vec<LayerSpec>, Vec<String>) {
        match self {
            Form::Layers(layers) => {
                let names = (0..layers.len()).map(|i| i.to_string()).collect();
                (layers.clone(), names)
            }
            Form::Mlp {
                widths,
                activations,
                final_activation,
            } => {
                let (mut layers, mut names) = (Vec::new(), Vec::new());
                for (i, pair) in widths.windows(2).enumerate() {
                    layers.push(LayerSpec::Linear {
                        in_features: pair[0],
                        out_features: pair[1],
                        bias: true,
                    });
                    names.push(i.to_string());
                    let act = activations.get(i).copied().or(match i + 2 == widths.len() {
                        true => *final_activation,
                        false => None,
                    });
                    if let Some(act) = act {
                        layers.push(LayerSpec::Activation(act.op()));
                        names.push(String::new());
                    }
                }
                (layers, names)
            }
        }
    }
}

/// The `layers` list: every entry parsed and checked, the first bad one named.
fn parse_layers(
    meta: &HashMap<String, String>,
) -> std::result::Result<Vec<LayerSpec>, ModelFileError> {
    let entries: Vec<serde_json::Value> = parse_json(meta, "layers")?;
    if entries.is_empty() {
        return Err(metadata_error("layers", "the list is empty"));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            LayerSpec::parse(entry).map_err(|msg| {
                let kind = entry
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .map_or(String::new(), |t| format!(" ({})", shown(t)));
                metadata_error("layers", &format!("layer {index}{kind}: {msg}"))
            })
        })
        .collect()
}

/// The MLP form's `widths`, `activations` and `final_activation`.
fn parse_mlp(meta: &HashMap<String, String>) -> std::result::Result<Form, ModelFileError> {
    let widths: Vec<usize> = parse_json(meta, "widths")?;
    let activation_names: Vec<String> = parse_json(meta, "activations")?;
    let final_name = meta
        .get("final_activation")
        .map(String::as_str)
        .unwrap_or("None");
    if widths.len() < 2 || widths.contains(&0) {
        let msg = format!("{} needs at least 2 positive widths", dims(&widths));
        return Err(metadata_error("widths", &msg));
    }
    if activation_names.len() != widths.len() - 2 {
        let msg = format!(
            "{} entries for {} hidden layers",
            activation_names.len(),
            widths.len() - 2
        );
        return Err(metadata_error("activations", &msg));
    }
    let activations = activation_names
        .iter()
        .map(|a| parse_name(a, "activations"))
        .collect::<std::result::Result<Vec<Activation>, _>>()?;
    let final_activation = match final_name {
        "None" | "none" | "" => None,
        other => Some(parse_name(other, "final_activation")?),
    };
    Ok(Form::Mlp {
        widths,
        activations,
        final_activation,
    })
}

/// Parses a name from the metadata. The parser's error echoes what it was given, so it is
/// given the escaped and shortened name: a name that needs escaping or shortening is not a
/// valid one either, and a valid name is its own [`shown`] form.
fn parse_name<T: std::str::FromStr<Err = String>>(
    raw: &str,
    key: &str,
) -> std::result::Result<T, ModelFileError> {
    shown(raw)
        .parse()
        .map_err(|msg: String| metadata_error(key, &msg))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    meta: &HashMap<String, String>,
    key: &str,
) -> std::result::Result<T, ModelFileError> {
    let raw = meta
        .get(key)
        .ok_or_else(|| metadata_error(key, "missing"))?;
    serde_json::from_str(raw).map_err(|e| {
        let e = bounded_text(&e.to_string(), 120);
        metadata_error(key, &format!("cannot parse \"{}\": {e}", shown(raw)))
    })
}

fn metadata_error(key: &str, msg: &str) -> ModelFileError {
    ModelFileError::Metadata {
        key: key.to_string(),
        msg: msg.to_string(),
    }
}

fn wrong_shape(name: &str, expected: Vec<usize>, got: &[usize]) -> ModelFileError {
    ModelFileError::WrongShape {
        name: name.to_string(),
        expected,
        got: got.to_vec(),
    }
}

/// A list of sizes as `[3, 2]`, shortened like every echoed value.
fn dims(sizes: &[usize]) -> String {
    shown(&format!("{sizes:?}"))
}

/// Whether `name` is a layer tensor of the format: digits, then `.weight` or `.bias`.
fn is_layer_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((index, kind)) => {
            !index.is_empty()
                && index.bytes().all(|b| b.is_ascii_digit())
                && (kind == "weight" || kind == "bias")
        }
        None => false,
    }
}

/// Every value finite, and within f32's range when the model is read as f32.
fn check_values(
    name: &str,
    values: &[f64],
    dtype: DType,
) -> std::result::Result<(), ModelFileError> {
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(ModelFileError::NotFinite {
                name: name.to_string(),
                index,
            });
        }
        if dtype == DType::F32 && (value as f32).is_infinite() {
            return Err(ModelFileError::OverflowsF32 {
                name: name.to_string(),
                index,
                value,
            });
        }
    }
    Ok(())
}

/// Cross-entropy labels: non-negative integers below the number of classes.
fn check_labels(labels: &[f64], classes: usize) -> std::result::Result<(), ModelFileError> {
    for &label in labels {
        if label < 0.0 || label.fract() != 0.0 {
            let msg = format!("label {} is not a non-negative integer", number(label));
            return Err(metadata_error("y", &msg));
        }
        if label >= classes as f64 {
            let msg = format!("label {} is not below the {classes} classes", number(label));
            return Err(metadata_error("y", &msg));
        }
    }
    Ok(())
}

/// A number as `Display` writes it when that is short, in scientific notation otherwise
/// (`Display` writes 1e300 with 301 digits).
fn number(value: f64) -> String {
    let plain = value.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests;
