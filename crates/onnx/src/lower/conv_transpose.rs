//! `ConvTranspose` (1-D and 2-D): the adjoint of the convolution. Per group, the weight
//! `[C/g, M/g·k…]` transposed maps each input pixel to the columns of its output window, and
//! `fold2d` (col2im) sums the overlapping windows into the image; `output_padding` adds
//! zeros at the end and `pads` crop. Every step is a tape op, so derivatives of any order
//! follow (fold's derivative is unfold).

use curvature_tape::Var;
use curvature_tensor::Window2d;

use super::operand::{
    float_input, known_attributes, optional_float, output_count, product, sizes_attr,
};
use super::util::{attr_int, attr_string, check_inputs, checked_count};
use super::{node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], _ctx: &Ctx) -> Result<Vec<Val>> {
    known_attributes(
        node,
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "pads",
            "strides",
        ],
    )?;
    output_count(node, 1, "Y")?;
    check_inputs(node, inputs, 2, 3)?;
    let auto_pad = attr_string(node, "auto_pad", "NOTSET")?;
    if auto_pad != "NOTSET" {
        return Err(unsupported(
            node,
            "attribute",
            format!("auto_pad = '{auto_pad}' (supported: explicit pads, 'NOTSET')"),
        ));
    }
    let x = float_input(node, inputs, 0, "X")?;
    let w = float_input(node, inputs, 1, "W")?;
    let bias = optional_float(node, inputs, 2, "B")?;
    let rank = match x.rank() {
        3 => 1,
        4 => 2,
        _ => {
            return Err(unsupported(
                node,
                "input",
                format!("input {} (supported: [N, C, L] or [N, C, H, W])", x.shape()),
            ))
        }
    };
    if w.rank() != x.rank() {
        return Err(node_error(
            node,
            format!(
                "the weight must be [C, M/group, k…] of the input's rank, got X {} and W {}",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let (batch, channels) = (x.dims()[0], x.dims()[1]);
    let group = usize::try_from(attr_int(node, "group", 1)?)
        .ok()
        .filter(|&g| g >= 1 && channels % g == 0)
        .ok_or_else(|| {
            node_error(
                node,
                format!(
                    "attribute 'group' must be positive and divide the {channels} input channels"
                ),
            )
        })?;
    if w.dims()[0] != channels {
        return Err(node_error(
            node,
            format!(
                "W {} must have the {channels} input channels of X {} first",
                w.shape(),
                x.shape()
            ),
        ));
    }
    let per_group_out = w.dims()[1];
    let out_channels = per_group_out
        .checked_mul(group)
        .ok_or_else(|| node_error(node, "the output channel count overflows".to_string()))?;
    let kernel = w.dims()[2..].to_vec();
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
    let strides = sizes_attr(node, "strides", rank, 1)?.unwrap_or(vec![1; rank]);
    let dilations = sizes_attr(node, "dilations", rank, 1)?.unwrap_or(vec![1; rank]);
    let pads = sizes_attr(node, "pads", 2 * rank, 0)?.unwrap_or(vec![0; 2 * rank]);
    let extra = sizes_attr(node, "output_padding", rank, 0)?.unwrap_or(vec![0; rank]);
    // Per spatial axis: the folded extent s·(n − 1) + d·(k − 1) + 1, then + output_padding.
    let sizes = &x.dims()[2..];
    let mut folded = Vec::with_capacity(rank);
    let mut out = Vec::with_capacity(rank);
    for a in 0..rank {
        if extra[a] >= strides[a].max(dilations[a]) {
            return Err(node_error(
                node,
                format!(
                    "output_padding {:?} must be smaller than the stride or the dilation of \
                     each axis ({:?}, {:?})",
                    extra, strides, dilations
                ),
            ));
        }
        let span = sizes[a]
            .checked_sub(1)
            .and_then(|n| n.checked_mul(strides[a]))
            .and_then(|v| {
                kernel[a]
                    .checked_sub(1)?
                    .checked_mul(dilations[a])?
                    .checked_add(1)?
                    .checked_add(v)
            })
            .ok_or_else(|| {
                node_error(
                    node,
                    format!("X {} and W {} give no output extent", x.shape(), w.shape()),
                )
            })?;
        let total = span + extra[a];
        let cropped = total
            .checked_sub(pads[a])
            .and_then(|v| v.checked_sub(pads[a + rank]))
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                node_error(
                    node,
                    format!(
                        "pads {pads:?} crop the whole output extent {total} of axis {a} \
                         (X {}, W {})",
                        x.shape(),
                        w.shape()
                    ),
                )
            })?;
        folded.push(span);
        out.push(cropped);
    }
    // The folded image is the largest tensor made: bounded like every size read from the graph.
    let mut folded_dims = vec![batch, out_channels];
    folded_dims.extend(&folded);
    checked_count(node, &folded_dims)?;
    let mut out_dims = vec![batch, out_channels];
    out_dims.extend(&out);
    // 1-D as an image of height 1.
    let as_2d = |v: &[usize]| -> (usize, usize) {
        if rank == 1 {
            (1, v[0])
        } else {
            (v[0], v[1])
        }
    };
    let window = Window2d {
        kernel: as_2d(&kernel),
        stride: as_2d(&strides),
        padding: (0, 0),
        dilation: as_2d(&dilations),
    };
    let pixels = product(node, sizes)?;
    let taps = product(node, &kernel)?;
    let x_flat = x.reshape([batch, channels, pixels])?;
    let per_group_in = channels / group;
    let mut parts = Vec::with_capacity(group);
    for g in 0..group {
        let xg = x_flat.narrow(1, g * per_group_in, per_group_in)?;
        let wg = w
            .narrow(0, g * per_group_in, per_group_in)?
            .reshape([per_group_in, per_group_out * taps])?;
        // [M/g·k…, C/g] · [N, C/g, pixels], the weight broadcast over the batch.
        let columns = wg.transpose(0, 1)?.matmul(&xg)?;
        parts.push(columns.fold2d(as_2d(&folded), &window)?);
    }
    let refs: Vec<&Var> = parts.iter().collect();
    let mut y = if parts.len() == 1 {
        parts.swap_remove(0)
    } else {
        Var::cat(&refs, 1)?
    };
    // [N, M, H, W] (height 1 for 1-D): output_padding, then the pads cropped.
    for a in 0..rank {
        let axis = (2 + a + 2 - rank) as isize;
        if extra[a] > 0 {
            y = y.pad_zeros(axis, 0, extra[a])?;
        }
        if pads[a] > 0 || pads[a + rank] > 0 {
            y = y.narrow(axis, pads[a], out[a])?;
        }
    }
    let mut y = y.reshape(out_dims)?;
    if let Some(bias) = bias {
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
        y = y.add(&bias.reshape(dims)?)?;
    }
    Ok(vec![Val::Float(y)])
}
