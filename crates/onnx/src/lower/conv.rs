//! Convolution and pooling: `Conv` (1-D and 2-D), `MaxPool`, `AveragePool`, `GlobalAveragePool`.
//!
//! Every window op works on images `[N, C, H, W]`, a 1-D input `[N, C, L]` being an image of
//! height 1. ONNX's padding may differ before and after an axis; the part two sides share is
//! the convolution's own zero padding, and the rest is added with `pad_zeros` first.

use curvature_tape::Var;
use curvature_tensor::{Conv1dOptions, Conv2dOptions, Tensor, Window2d};

use super::operand::{
    flag_attr, float_input, input_count, int_attr, known_attributes, optional_float, output_count,
    sizes_attr,
};
use super::window::{resolve, Resolved};
use super::{node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    let y = match node.op_type.as_str() {
        "Conv" => conv(node, inputs)?,
        "MaxPool" => pool(node, inputs, ctx, Pooling::Max)?,
        "AveragePool" => pool(node, inputs, ctx, Pooling::Average)?,
        _ => global_average_pool(node, inputs)?,
    };
    Ok(vec![Val::Float(y)])
}

/// The number of spatial axes of `x` (1 or 2), or the error for other ranks.
fn spatial_rank(node: &Node, x: &Var) -> Result<usize> {
    match x.rank() {
        3 => Ok(1),
        4 => Ok(2),
        5 => Err(unsupported(
            node,
            "input",
            format!(
                "3-D windows (input {}) are not supported; inputs are [N, C, L] or [N, C, H, W]",
                x.shape()
            ),
        )),
        _ => Err(node_error(
            node,
            format!(
                "needs an input [N, C, L] or [N, C, H, W], got {}",
                x.shape()
            ),
        )),
    }
}

/// `Conv`: 1-D or 2-D convolution with strides, pads (or `auto_pad`), dilations, groups and
/// an optional bias.
fn conv(node: &Node, inputs: &[Option<Val>]) -> Result<Var> {
    known_attributes(
        node,
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ],
    )?;
    output_count(node, 1, "Y")?;
    input_count(node, inputs, 2, 3)?;
    let x = float_input(node, inputs, 0, "X")?;
    let w = float_input(node, inputs, 1, "W")?;
    let bias = optional_float(node, inputs, 2, "B")?;
    let rank = spatial_rank(node, x)?;
    if w.rank() != x.rank() {
        return Err(node_error(
            node,
            format!(
                "the weight must be [M, C/group, k…] of the input's rank, got X {} and W {}",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let channels = x.dims()[1];
    let out_channels = w.dims()[0];
    let group = usize::try_from(int_attr(node, "group", 1)?)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or_else(|| node_error(node, "attribute 'group' must be positive".to_string()))?;
    if channels % group != 0 || out_channels % group != 0 || w.dims()[1] * group != channels {
        return Err(node_error(
            node,
            format!(
                "with group = {group}, X {} and W {} do not fit: needs C and M divisible by \
                 group and W [M, C/group, k…]",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let kernel = &w.dims()[2..];
    if let Some(declared) = sizes_attr(node, "kernel_shape", rank, 1)? {
        if declared != kernel {
            return Err(node_error(
                node,
                format!(
                    "attribute 'kernel_shape' {declared:?} differs from the weight's kernel \
                     {kernel:?}"
                ),
            ));
        }
    }
    let window = resolve(node, &x.dims()[2..], kernel)?;
    let (x, padding) = shared_padding(x, &window)?;
    let y = if rank == 1 {
        let options = Conv1dOptions {
            stride: window.strides[0],
            padding: padding[0],
            dilation: window.dilations[0],
            groups: group,
        };
        x.conv1d_with(w, &options)?
    } else {
        let options = Conv2dOptions {
            stride: (window.strides[0], window.strides[1]),
            padding: (padding[0], padding[1]),
            dilation: (window.dilations[0], window.dilations[1]),
            groups: group,
        };
        x.conv2d_with(w, &options)?
    };
    let Some(bias) = bias else {
        return Ok(y);
    };
    if bias.dims() != [out_channels] {
        return Err(node_error(
            node,
            format!(
                "the bias must be [M] = [{out_channels}], got {}",
                bias.shape()
            ),
        ));
    }
    let mut dims = vec![out_channels];
    dims.resize(rank + 1, 1);
    Ok(y.add(&bias.reshape(dims)?)?)
}

/// Pads `x` with zeros where the padding before and after an axis differ, and returns the
/// padding both sides still share (for the convolution to add).
fn shared_padding(x: &Var, window: &Resolved) -> Result<(Var, Vec<usize>)> {
    let mut x = x.clone();
    let mut shared = Vec::with_capacity(window.begin.len());
    for (i, (&b, &e)) in window.begin.iter().zip(&window.end).enumerate() {
        let common = b.min(e);
        if b != e {
            x = x.pad_zeros((i + 2) as isize, b - common, e - common)?;
        }
        shared.push(common);
    }
    Ok((x, shared))
}

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Max,
    Average,
}

/// `MaxPool` and `AveragePool` over 1-D or 2-D windows.
fn pool(node: &Node, inputs: &[Option<Val>], ctx: &Ctx, pooling: Pooling) -> Result<Var> {
    let mut known = vec!["auto_pad", "kernel_shape", "pads", "strides"];
    // Dilations and ceil_mode are part of MaxPool from opset 10, of AveragePool's ceil_mode
    // from opset 10 and its dilations from opset 19.
    if ctx.opset >= 10 {
        known.push("ceil_mode");
    }
    match pooling {
        Pooling::Max => {
            known.push("storage_order");
            if ctx.opset >= 10 {
                known.push("dilations");
            }
        }
        Pooling::Average => {
            known.push("count_include_pad");
            if ctx.opset >= 19 {
                known.push("dilations");
            }
        }
    }
    known_attributes(node, &known)?;
    output_count(node, 1, "Y")?;
    input_count(node, inputs, 1, 1)?;
    let x = float_input(node, inputs, 0, "X")?;
    let rank = spatial_rank(node, x)?;
    let kernel = sizes_attr(node, "kernel_shape", rank, 1)?
        .ok_or_else(|| node_error(node, "attribute 'kernel_shape' is required".to_string()))?;
    // storage_order only orders the Indices output, which is refused above.
    flag_attr(node, "storage_order", false)?;
    let count_include_pad = flag_attr(node, "count_include_pad", false)?;
    let ceil_mode = flag_attr(node, "ceil_mode", false)?;
    let window = resolve(node, &x.dims()[2..], &kernel)?;
    if ceil_mode && window.ceil_output != window.output {
        return Err(unsupported(
            node,
            "attribute",
            format!(
                "ceil_mode = 1 gives {:?} outputs where floor gives {:?}; only ceil_mode = 1 \
                 that changes nothing is supported",
                window.ceil_output, window.output
            ),
        ));
    }
    let counts = window.real_counts();
    if let Some(axis) = counts.iter().position(|c| c.contains(&0)) {
        return Err(node_error(
            node,
            format!(
                "a window along spatial axis {axis} lies entirely in the padding (pads {:?} \
                 and {:?}, kernel {:?})",
                window.begin, window.end, kernel
            ),
        ));
    }
    let image = as_image(x, &window)?;
    let (n, c) = (x.dims()[0], x.dims()[1]);
    let (h, w) = (image.dims()[2], image.dims()[3]);
    let (kernel_2d, stride, dilation) = window.as_2d();
    let padded = match pooling {
        Pooling::Max if window.is_padded() => {
            image.add(&image.constant(padding_mask(&window, (h, w), x)?))?
        }
        _ => image,
    };
    let unfold = Window2d {
        kernel: kernel_2d,
        stride,
        padding: (0, 0),
        dilation,
    };
    let (oh, ow) = unfold.output_size("pool", (h, w))?;
    let taps = padded
        .unfold2d(&unfold)?
        .reshape([n, c, kernel_2d.0 * kernel_2d.1, oh * ow])?;
    let pooled = match pooling {
        Pooling::Max => taps.max(2, false)?,
        Pooling::Average if count_include_pad || !window.is_padded() => taps
            .sum(&[2], false)?
            .div_scalar((kernel_2d.0 * kernel_2d.1) as f64)?,
        Pooling::Average => {
            let per_output = Tensor::from_fn([oh * ow], x.dtype(), x.device(), |e| {
                let along = |axis: usize, i: usize| counts.get(axis).map_or(1, |c| c[i]);
                let (i, j) = (e / ow, e % ow);
                let real = if rank == 1 {
                    along(0, j)
                } else {
                    along(0, i) * along(1, j)
                };
                1.0 / real as f64
            })?;
            taps.sum(&[2], false)?.mul(&taps.constant(per_output))?
        }
    };
    let mut out = vec![n, c];
    out.extend_from_slice(&window.output);
    Ok(pooled.reshape(out)?)
}

/// `x` zero-padded by the window's pads, as an image `[N, C, H, W]`.
fn as_image(x: &Var, window: &Resolved) -> Result<Var> {
    let mut padded = x.clone();
    for (i, (&b, &e)) in window.begin.iter().zip(&window.end).enumerate() {
        if b + e > 0 {
            padded = padded.pad_zeros((i + 2) as isize, b, e)?;
        }
    }
    if padded.rank() == 3 {
        padded = padded.unsqueeze(2)?;
    }
    Ok(padded)
}

/// `[H, W]` with −∞ at the padded positions of an image padded by `window` and 0 at the
/// input's own, so that no padding wins a maximum.
fn padding_mask(window: &Resolved, (h, w): (usize, usize), x: &Var) -> Result<Tensor> {
    let (top, left) = if window.begin.len() == 1 {
        ((0, 0), (window.begin[0], window.end[0]))
    } else {
        (
            (window.begin[0], window.end[0]),
            (window.begin[1], window.end[1]),
        )
    };
    let inside =
        |i: usize, size: usize, (before, after): (usize, usize)| i >= before && i < size - after;
    Ok(Tensor::from_fn([h, w], x.dtype(), x.device(), |e| {
        if inside(e / w, h, top) && inside(e % w, w, left) {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    })?)
}

/// `GlobalAveragePool`: the mean over every spatial axis, kept as axes of length 1.
fn global_average_pool(node: &Node, inputs: &[Option<Val>]) -> Result<Var> {
    known_attributes(node, &[])?;
    output_count(node, 1, "Y")?;
    input_count(node, inputs, 1, 1)?;
    let x = float_input(node, inputs, 0, "X")?;
    if x.rank() < 3 || x.dims()[2..].contains(&0) {
        return Err(node_error(
            node,
            format!(
                "needs an input [N, C, D1, …] with non-empty spatial axes, got {}",
                x.shape()
            ),
        ));
    }
    let axes: Vec<isize> = (2..x.rank() as isize).collect();
    Ok(x.mean(&axes, true)?)
}
