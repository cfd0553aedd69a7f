//! What a layer needs and gives, from its description alone: its tensors' shapes, its
//! output's shape for a given input, and its working memory.

use super::{Checked, LayerSpec};
use crate::Flatten;

impl LayerSpec {
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
        let shape = || super::super::dims(input);
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
