//! The `layers` form of a model file: one JSON object per module of a PyTorch `nn.Sequential`
//! (`{"type": "Conv2d", "in_channels": 2, …}`), parsed and checked into [`LayerSpec`]s. From
//! the list alone, before any tensor is read, each layer gives the tensors it needs (named by
//! PyTorch's `state_dict` keys), the shape of its output for a given input, and, once its
//! tensors are read, the crate's module computing it.

use curvature_tensor::{Conv1dOptions, Conv2dOptions, Tensor, UnaryOp};
use serde_json::{json, Map, Value};

use crate::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv1d, Conv2d, Dropout, Flatten,
    LayerNorm, Linear, MaxPool2d, Module, Result,
};

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

    /// The tensors the layer reads, as `state_dict` suffixes with their shapes, in the order
    /// [`LayerSpec::build`] takes them: `weight`, `bias`, then `running_mean`, `running_var`.
    pub fn tensor_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let weight_and_bias = |weight: Vec<usize>, out: usize, bias: bool| {
            let mut t = vec![("weight", weight)];
            if bias {
                t.push(("bias", vec![out]));
            }
            t
        };
        match *self {
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => weight_and_bias(vec![out_features, in_features], out_features, bias),
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                ..
            } => weight_and_bias(
                vec![out_channels, in_channels / groups, kernel_size],
                out_channels,
                bias,
            ),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                ..
            } => weight_and_bias(
                vec![
                    out_channels,
                    in_channels / groups,
                    kernel_size.0,
                    kernel_size.1,
                ],
                out_channels,
                bias,
            ),
            LayerSpec::BatchNorm {
                num_features: c,
                affine,
                ..
            } => {
                let mut t = if affine {
                    vec![("weight", vec![c]), ("bias", vec![c])]
                } else {
                    Vec::new()
                };
                t.push(("running_mean", vec![c]));
                t.push(("running_var", vec![c]));
                t
            }
            LayerSpec::LayerNorm {
                normalized_shape: d,
                elementwise_affine: true,
                ..
            } => vec![("weight", vec![d]), ("bias", vec![d])],
            _ => Vec::new(),
        }
    }

    /// The shape of the layer's output for an input of shape `input`, or why the input does
    /// not fit the layer.
    pub fn output_dims(&self, input: &[usize]) -> Checked<Vec<usize>> {
        let shape = || super::dims(input);
        let expect_rank = |ranks: &[usize], what: &str| -> Checked<()> {
            if ranks.contains(&input.len()) {
                Ok(())
            } else {
                Err(format!("needs {what}, but its input has shape {}", shape()))
            }
        };
        let channels = |expected: usize| -> Checked<()> {
            if input[1] == expected {
                Ok(())
            } else {
                Err(format!(
                    "expects {expected} channels on axis 1, but its input has shape {}",
                    shape()
                ))
            }
        };
        match *self {
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => {
                last_axis(input, in_features, &shape)?;
                let mut out = input.to_vec();
                *out.last_mut().unwrap_or(&mut 0) = out_features;
                Ok(out)
            }
            LayerSpec::LayerNorm {
                normalized_shape, ..
            } => {
                last_axis(input, normalized_shape, &shape)?;
                Ok(input.to_vec())
            }
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => {
                expect_rank(&[3], "an input [N, C, L]")?;
                channels(in_channels)?;
                let l = window_count(input[2], kernel_size, stride, padding, dilation, &shape)?;
                Ok(vec![input[0], out_channels, l])
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size: k,
                stride: s,
                padding: p,
                dilation: d,
                ..
            } => {
                expect_rank(&[4], "an input [N, C, H, W]")?;
                channels(in_channels)?;
                let h = window_count(input[2], k.0, s.0, p.0, d.0, &shape)?;
                let w = window_count(input[3], k.1, s.1, p.1, d.1, &shape)?;
                Ok(vec![input[0], out_channels, h, w])
            }
            LayerSpec::BatchNorm {
                spatial,
                num_features,
                ..
            } => {
                if spatial == 2 {
                    expect_rank(&[4], "an input [N, C, H, W]")?;
                } else {
                    expect_rank(&[2, 3], "an input [N, C] or [N, C, L]")?;
                }
                channels(num_features)?;
                Ok(input.to_vec())
            }
            LayerSpec::Activation(_) | LayerSpec::Dropout { .. } => Ok(input.to_vec()),
            LayerSpec::Flatten { start_dim, end_dim } => {
                let (start, end) = Flatten::range(start_dim, end_dim)
                    .axes(input.len())
                    .ok_or_else(|| {
                        format!(
                            "axes {start_dim}..={end_dim} are not an axis range of its input of \
                             shape {}",
                            shape()
                        )
                    })?;
                if input.is_empty() {
                    return Ok(vec![1]);
                }
                let merged = input[start..=end]
                    .iter()
                    .try_fold(1usize, |m, &d| m.checked_mul(d))
                    .ok_or_else(|| format!("its input of shape {} is too large", shape()))?;
                let mut out = input[..start].to_vec();
                out.push(merged);
                out.extend_from_slice(&input[end + 1..]);
                Ok(out)
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
            } => {
                expect_rank(&[4], "an input [N, C, H, W]")?;
                let h = window_count(input[2], k.0, s.0, p.0, 1, &shape)?;
                let w = window_count(input[3], k.1, s.1, p.1, 1, &shape)?;
                Ok(vec![input[0], input[1], h, w])
            }
            LayerSpec::AdaptiveAvgPool2d { output_size: o } => {
                expect_rank(&[4], "an input [N, C, H, W]")?;
                if input[2] == 0 || input[3] == 0 {
                    return Err(format!("its input of shape {} is empty", shape()));
                }
                Ok(vec![input[0], input[1], o.0, o.1])
            }
        }
    }

    /// Elements the layer's forward pass works on per sample beyond its output: a
    /// convolution's unfolded input (C · k… per output position); 0 for other layers.
    pub fn workspace_per_sample(&self, output: &[usize]) -> u128 {
        let positions: u128 = output.iter().skip(2).map(|&d| d as u128).product();
        match *self {
            LayerSpec::Conv1d {
                in_channels,
                kernel_size,
                ..
            } => positions * in_channels as u128 * kernel_size as u128,
            LayerSpec::Conv2d {
                in_channels,
                kernel_size: k,
                ..
            } => positions * in_channels as u128 * k.0 as u128 * k.1 as u128,
            _ => 0,
        }
    }

    /// The module computing the layer, from its tensors in [`LayerSpec::tensor_shapes`] order
    /// (already checked against those shapes).
    pub fn build(&self, tensors: Vec<Tensor>) -> Result<Box<dyn Module>> {
        let mut tensors = tensors.into_iter();
        let mut next = || {
            tensors
                .next()
                .ok_or_else(|| crate::NnError::InvalidArgument {
                    op: "LayerSpec::build",
                    msg: format!("{} needs more tensors", self.type_name()),
                })
        };
        Ok(match *self {
            LayerSpec::Linear { bias, .. } => {
                let weight = next()?;
                if !bias {
                    return Err(crate::NnError::InvalidArgument {
                        op: "LayerSpec::build",
                        msg: "Linear without a bias is not supported".to_string(),
                    });
                }
                Box::new(Linear {
                    weight,
                    bias: next()?,
                })
            }
            LayerSpec::Conv1d {
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let weight = next()?;
                let bias = if bias { Some(next()?) } else { None };
                let options = Conv1dOptions {
                    stride,
                    padding,
                    dilation,
                    groups,
                };
                Box::new(Conv1d::from_tensors(weight, bias, options))
            }
            LayerSpec::Conv2d {
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let weight = next()?;
                let bias = if bias { Some(next()?) } else { None };
                let options = Conv2dOptions {
                    stride,
                    padding,
                    dilation,
                    groups,
                };
                Box::new(Conv2d::from_tensors(weight, bias, options))
            }
            LayerSpec::BatchNorm { eps, affine, .. } => {
                let affine = if affine {
                    Some((next()?, next()?))
                } else {
                    None
                };
                Box::new(BatchNorm {
                    affine,
                    running_mean: next()?,
                    running_var: next()?,
                    eps,
                })
            }
            LayerSpec::LayerNorm {
                eps,
                elementwise_affine,
                ..
            } => {
                let affine = if elementwise_affine {
                    Some((next()?, next()?))
                } else {
                    None
                };
                Box::new(LayerNorm { affine, eps })
            }
            LayerSpec::Activation(op) => Box::new(Activation::new(op)),
            LayerSpec::Dropout { p } => Box::new(Dropout::new(p)?),
            LayerSpec::Flatten { start_dim, end_dim } => {
                Box::new(Flatten::range(start_dim, end_dim))
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            } => Box::new(MaxPool2d {
                kernel: kernel_size,
                stride,
                padding,
            }),
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => Box::new(AvgPool2d {
                kernel: kernel_size,
                stride,
                padding,
            }),
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                Box::new(AdaptiveAvgPool2d::new(output_size))
            }
        })
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

/// Checks that the input's last axis has length `expected`.
fn last_axis(input: &[usize], expected: usize, shape: &dyn Fn() -> String) -> Checked<()> {
    if input.last() == Some(&expected) {
        Ok(())
    } else {
        Err(format!(
            "expects a last axis of {expected}, but its input has shape {}",
            shape()
        ))
    }
}

/// Output positions of a sliding window along an axis of `len`, PyTorch's
/// `(len + 2p − d(k − 1) − 1) / s + 1` (floor division), or an error when the window does
/// not fit.
fn window_count(
    len: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    shape: &dyn Fn() -> String,
) -> Checked<usize> {
    let span = (kernel - 1)
        .checked_mul(dilation)
        .and_then(|s| s.checked_add(1));
    let padded = padding.checked_mul(2).and_then(|p| p.checked_add(len));
    match (span, padded) {
        (Some(span), Some(padded)) if padded >= span => Ok((padded - span) / stride + 1),
        _ => Err(format!(
            "its window does not fit its input of shape {} (with its padding)",
            shape()
        )),
    }
}
