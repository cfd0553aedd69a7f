//! The `layers` form of a model file: one JSON object per module of a PyTorch `nn.Sequential`
//! (`{"type": "Conv2d", "in_channels": 2, …}`), parsed and checked into [`LayerSpec`]s. From
//! the list alone, before any tensor is read, each layer gives the tensors it needs (named by
//! PyTorch's `state_dict` keys), the shape of its output for a given input, and, once its
//! tensors are read, the crate's module computing it.

use curvature_tensor::UnaryOp;
use serde_json::{json, Map, Value};

mod build;
mod shapes;

/// One module of a model file's `layers` list, with PyTorch's type name and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// `nn.Linear`: tensors `weight` `[out, in]` and, with `bias`, `bias` `[out]`.
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
    /// `nn.Conv1d` on `[N, C, L]`: `weight` `[O, C/groups, k]`, optional `bias` `[O]`.
    Conv1d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
        bias: bool,
    },
    /// `nn.Conv2d` on `[N, C, H, W]`: `weight` `[O, C/groups, kh, kw]`, optional `bias` `[O]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
        bias: bool,
    },
    /// `nn.BatchNorm1d` (`[N, C]` or `[N, C, L]`) or `nn.BatchNorm2d` (`[N, C, H, W]`, when
    /// `spatial` is 2) in evaluation form: `running_mean`, `running_var` `[C]` and, with
    /// `affine`, `weight` and `bias` `[C]`.
    BatchNorm {
        spatial: usize,
        num_features: usize,
        eps: f64,
        affine: bool,
    },
    /// `nn.LayerNorm` over the last axis of length `normalized_shape`; with
    /// `elementwise_affine`, `weight` and `bias` `[normalized_shape]`.
    LayerNorm {
        normalized_shape: usize,
        eps: f64,
        elementwise_affine: bool,
    },
    /// An elementwise activation: `ReLU`, `LeakyReLU`, `ELU`, `GELU`, `SiLU`, `Softplus`,
    /// `Tanh` or `Sigmoid`, as the op it applies.
    Activation(UnaryOp),
    /// `nn.Dropout` (the identity: curvature is computed at evaluation).
    Dropout { p: f64 },
    /// `nn.Flatten(start_dim, end_dim)`.
    Flatten { start_dim: isize, end_dim: isize },
    /// `nn.MaxPool2d` (no dilation, floor mode).
    MaxPool2d {
        kernel_size: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    /// `nn.AvgPool2d` (padded zeros counted, floor mode).
    AvgPool2d {
        kernel_size: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    /// `nn.AdaptiveAvgPool2d` to `output_size` (oh, ow).
    AdaptiveAvgPool2d { output_size: (usize, usize) },
}

/// The type names a `layers` entry may have.
pub const LAYER_TYPES: &[&str] = &[
    "Linear",
    "Conv1d",
    "Conv2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softplus",
    "Tanh",
    "Sigmoid",
    "Dropout",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
];

type Checked<T> = std::result::Result<T, String>;

impl LayerSpec {
    /// Parses and checks one entry of the `layers` list. The error names the problem without
    /// the entry's position (the caller adds it); values from the file are bounded.
    pub fn parse(entry: &Value) -> Checked<LayerSpec> {
        let Some(fields) = entry.as_object() else {
            return Err("is not a JSON object".to_string());
        };
        let kind = match fields.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("'type' is not a string".to_string()),
            None => return Err("has no 'type'".to_string()),
        };
        let f = Fields { fields };
        let (spec, keys): (LayerSpec, &[&str]) = match kind {
            "Linear" => {
                if !f.flag("bias")? {
                    return Err("'bias' must be true (a Linear layer without a bias is not \
                                supported)"
                        .to_string());
                }
                let spec = LayerSpec::Linear {
                    in_features: f.positive("in_features")?,
                    out_features: f.positive("out_features")?,
                    bias: true,
                };
                (spec, &["in_features", "out_features", "bias"])
            }
            "Conv1d" => {
                let [in_channels, out_channels, groups] =
                    f.channels(["in_channels", "out_channels", "groups"])?;
                let spec = LayerSpec::Conv1d {
                    in_channels,
                    out_channels,
                    kernel_size: f.sizes::<1>("kernel_size", 1)?[0],
                    stride: f.sizes::<1>("stride", 1)?[0],
                    padding: f.sizes::<1>("padding", 0)?[0],
                    dilation: f.sizes::<1>("dilation", 1)?[0],
                    groups,
                    bias: f.flag("bias")?,
                };
                (spec, CONV_KEYS)
            }
            "Conv2d" => {
                let [in_channels, out_channels, groups] =
                    f.channels(["in_channels", "out_channels", "groups"])?;
                let spec = LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel_size: pair(f.sizes::<2>("kernel_size", 1)?),
                    stride: pair(f.sizes::<2>("stride", 1)?),
                    padding: pair(f.sizes::<2>("padding", 0)?),
                    dilation: pair(f.sizes::<2>("dilation", 1)?),
                    groups,
                    bias: f.flag("bias")?,
                };
                (spec, CONV_KEYS)
            }
            "BatchNorm1d" | "BatchNorm2d" => {
                let spec = LayerSpec::BatchNorm {
                    spatial: if kind == "BatchNorm1d" { 1 } else { 2 },
                    num_features: f.positive("num_features")?,
                    eps: f.eps("eps")?,
                    affine: f.flag("affine")?,
                };
                (spec, &["num_features", "eps", "affine"])
            }
            "LayerNorm" => {
                let shape = f.sizes::<1>("normalized_shape", 1).map_err(|_| {
                    "'normalized_shape' must be a list of one positive integer (normalisation \
                     over the last axis only)"
                        .to_string()
                })?;
                let spec = LayerSpec::LayerNorm {
                    normalized_shape: shape[0],
                    eps: f.eps("eps")?,
                    elementwise_affine: f.flag("elementwise_affine")?,
                };
                (spec, &["normalized_shape", "eps", "elementwise_affine"])
            }
            "ReLU" => (LayerSpec::Activation(UnaryOp::Relu), &[]),
            "SiLU" => (LayerSpec::Activation(UnaryOp::Silu), &[]),
            "Tanh" => (LayerSpec::Activation(UnaryOp::Tanh), &[]),
            "Sigmoid" => (LayerSpec::Activation(UnaryOp::Sigmoid), &[]),
            "LeakyReLU" => {
                let slope = f.finite("negative_slope")?;
                let op = UnaryOp::LeakyRelu { slope };
                (LayerSpec::Activation(op), &["negative_slope"])
            }
            "ELU" => {
                let alpha = f.finite("alpha")?;
                (LayerSpec::Activation(UnaryOp::Elu { alpha }), &["alpha"])
            }
            "GELU" => {
                let op = match f.get("approximate")? {
                    Value::String(s) if s == "none" => UnaryOp::Gelu,
                    Value::String(s) if s == "tanh" => UnaryOp::GeluTanh,
                    _ => return Err("'approximate' must be \"none\" or \"tanh\"".to_string()),
                };
                (LayerSpec::Activation(op), &["approximate"])
            }
            "Softplus" => {
                if f.finite("beta")? != 1.0 {
                    return Err("'beta' must be 1 (other values are not supported)".to_string());
                }
                if f.finite("threshold")? <= 0.0 {
                    return Err("'threshold' must be positive".to_string());
                }
                (
                    LayerSpec::Activation(UnaryOp::Softplus),
                    &["beta", "threshold"],
                )
            }
            "Dropout" => {
                let p = f.finite("p")?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("'p' must be in [0, 1], got {p}"));
                }
                (LayerSpec::Dropout { p }, &["p"])
            }
            "Flatten" => {
                let spec = LayerSpec::Flatten {
                    start_dim: f.axis("start_dim")?,
                    end_dim: f.axis("end_dim")?,
                };
                (spec, &["start_dim", "end_dim"])
            }
            "MaxPool2d" | "AvgPool2d" => {
                let kernel_size = pair(f.sizes::<2>("kernel_size", 1)?);
                let stride = pair(f.sizes::<2>("stride", 1)?);
                let padding = pair(f.sizes::<2>("padding", 0)?);
                if 2 * padding.0 > kernel_size.0 || 2 * padding.1 > kernel_size.1 {
                    return Err(format!(
                        "'padding' {:?} must be at most half of 'kernel_size' {:?}",
                        [padding.0, padding.1],
                        [kernel_size.0, kernel_size.1]
                    ));
                }
                let spec = if kind == "MaxPool2d" {
                    LayerSpec::MaxPool2d {
                        kernel_size,
                        stride,
                        padding,
                    }
                } else {
                    LayerSpec::AvgPool2d {
                        kernel_size,
                        stride,
                        padding,
                    }
                };
                (spec, &["kernel_size", "stride", "padding"])
            }
            "AdaptiveAvgPool2d" => {
                let output_size = pair(f.sizes::<2>("output_size", 1)?);
                (
                    LayerSpec::AdaptiveAvgPool2d { output_size },
                    &["output_size"],
                )
            }
            other => {
                return Err(format!(
                    "unknown type '{}' (not a supported module)",
                    super::shown(other)
                ))
            }
        };
        if let Some(key) = fields
            .keys()
            .find(|k| *k != "type" && !keys.contains(&k.as_str()))
        {
            return Err(format!("unknown key '{}' for {kind}", super::shown(key)));
        }
        Ok(spec)
    }

    /// PyTorch's name of the module type (`Conv2d`, `BatchNorm2d`, `GELU`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "Linear",
            LayerSpec::Conv1d { .. } => "Conv1d",
            LayerSpec::Conv2d { .. } => "Conv2d",
            LayerSpec::BatchNorm { spatial: 2, .. } => "BatchNorm2d",
            LayerSpec::BatchNorm { .. } => "BatchNorm1d",
            LayerSpec::LayerNorm { .. } => "LayerNorm",
            LayerSpec::Activation(op) => match op {
                UnaryOp::Relu => "ReLU",
                UnaryOp::LeakyRelu { .. } => "LeakyReLU",
                UnaryOp::Elu { .. } => "ELU",
                UnaryOp::Gelu | UnaryOp::GeluTanh => "GELU",
                UnaryOp::Silu => "SiLU",
                UnaryOp::Softplus => "Softplus",
                UnaryOp::Sigmoid => "Sigmoid",
                _ => "Tanh",
            },
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::Flatten { .. } => "Flatten",
            LayerSpec::MaxPool2d { .. } => "MaxPool2d",
            LayerSpec::AvgPool2d { .. } => "AvgPool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "AdaptiveAvgPool2d",
        }
    }

    /// The entry as the file writes it (what [`LayerSpec::parse`] reads back).
    pub fn to_json(&self) -> Value {
        let mut v = match *self {
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => json!({"in_features": in_features, "out_features": out_features, "bias": bias}),
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => json!({
                "in_channels": in_channels, "out_channels": out_channels,
                "kernel_size": [kernel_size], "stride": [stride], "padding": [padding],
                "dilation": [dilation], "groups": groups, "bias": bias,
            }),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size: k,
                stride: s,
                padding: p,
                dilation: d,
                groups,
                bias,
            } => json!({
                "in_channels": in_channels, "out_channels": out_channels,
                "kernel_size": [k.0, k.1], "stride": [s.0, s.1], "padding": [p.0, p.1],
                "dilation": [d.0, d.1], "groups": groups, "bias": bias,
            }),
            LayerSpec::BatchNorm {
                num_features,
                eps,
                affine,
                ..
            } => json!({"num_features": num_features, "eps": eps, "affine": affine}),
            LayerSpec::LayerNorm {
                normalized_shape,
                eps,
                elementwise_affine,
            } => json!({
                "normalized_shape": [normalized_shape], "eps": eps,
                "elementwise_affine": elementwise_affine,
            }),
            LayerSpec::Activation(op) => match op {
                UnaryOp::LeakyRelu { slope } => json!({ "negative_slope": slope }),
                UnaryOp::Elu { alpha } => json!({ "alpha": alpha }),
                UnaryOp::Gelu => json!({"approximate": "none"}),
                UnaryOp::GeluTanh => json!({"approximate": "tanh"}),
                UnaryOp::Softplus => json!({"beta": 1.0, "threshold": 20.0}),
                _ => json!({}),
            },
            LayerSpec::Dropout { p } => json!({ "p": p }),
            LayerSpec::Flatten { start_dim, end_dim } => {
                json!({"start_dim": start_dim, "end_dim": end_dim})
            }
            LayerSpec::MaxPool2d {
                kernel_size: k,
                stride: s,
                padding: p,
            }
            | LayerSpec::AvgPool2d {
                kernel_size: k,
                stride: s,
                padding: p,
            } => json!({"kernel_size": [k.0, k.1], "stride": [s.0, s.1], "padding": [p.0, p.1]}),
            LayerSpec::AdaptiveAvgPool2d { output_size: o } => {
                json!({"output_size": [o.0, o.1]})
            }
        };
        if let Value::Object(map) = &mut v {
            let mut entry = Map::new();
            entry.insert("type".into(), json!(self.type_name()));
            entry.append(map);
            return Value::Object(entry);
        }
        v
    }
}

/// The keys of a convolution entry.
const CONV_KEYS: &[&str] = &[
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
];

/// The fields of one entry, read with bounded errors.
struct Fields<'a> {
    fields: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Checked<&Value> {
        self.fields
            .get(key)
            .ok_or_else(|| format!("missing '{key}'"))
    }

    fn count(&self, key: &str) -> Checked<usize> {
        self.get(key)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| format!("'{key}' must be a non-negative integer"))
    }

    fn positive(&self, key: &str) -> Checked<usize> {
        match self.count(key)? {
            0 => Err(format!("'{key}' must be positive")),
            v => Ok(v),
        }
    }

    fn flag(&self, key: &str) -> Checked<bool> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| format!("'{key}' must be true or false"))
    }

    fn finite(&self, key: &str) -> Checked<f64> {
        self.get(key)?
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("'{key}' must be a finite number"))
    }

    fn axis(&self, key: &str) -> Checked<isize> {
        self.get(key)?
            .as_i64()
            .and_then(|v| isize::try_from(v).ok())
            .ok_or_else(|| format!("'{key}' must be an integer"))
    }

    /// A normalisation's eps: finite and non-negative.
    fn eps(&self, key: &str) -> Checked<f64> {
        let eps = self.finite(key)?;
        if eps < 0.0 {
            return Err(format!("'{key}' must not be negative, got {eps}"));
        }
        Ok(eps)
    }

    /// A list of `N` sizes (or one integer, repeated), each at least `min`.
    fn sizes<const N: usize>(&self, key: &str, min: usize) -> Checked<[usize; N]> {
        let value = self.get(key)?;
        let bad = || {
            let what = if min == 0 { "non-negative" } else { "positive" };
            format!("'{key}' must be a list of {N} {what} integers")
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) if items.len() == N => items.iter().collect(),
            Value::Number(_) => vec![value; N],
            _ => return Err(bad()),
        };
        let mut out = [0; N];
        for (slot, item) in out.iter_mut().zip(items) {
            *slot = item
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v >= min)
                .ok_or_else(bad)?;
        }
        Ok(out)
    }

    /// Input channels, output channels and groups: all positive, groups dividing both.
    fn channels(&self, keys: [&str; 3]) -> Checked<[usize; 3]> {
        let [inputs, outputs, groups] = keys.map(|k| self.positive(k));
        let (inputs, outputs, groups) = (inputs?, outputs?, groups?);
        if inputs % groups != 0 || outputs % groups != 0 {
            return Err(format!(
                "'groups' {groups} must divide 'in_channels' {inputs} and 'out_channels' \
                 {outputs}"
            ));
        }
        Ok([inputs, outputs, groups])
    }
}

fn pair([a, b]: [usize; 2]) -> (usize, usize) {
    (a, b)
}
