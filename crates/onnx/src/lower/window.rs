//! The sliding windows of `Conv`, `MaxPool` and `AveragePool`: strides, dilations and the
//! padding before and after each spatial axis, from `pads` or `auto_pad`, resolved against
//! the input's spatial sizes with checked arithmetic.

use super::node_error;
use super::operand::{sizes_attr, string_attr};
use crate::ir::Node;
use crate::Result;

/// A node's windows resolved for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resolved {
    /// The input's spatial sizes.
    pub sizes: Vec<usize>,
    /// The kernel's extent per spatial axis.
    pub kernel: Vec<usize>,
    /// The step between windows.
    pub strides: Vec<usize>,
    /// The step between a window's taps.
    pub dilations: Vec<usize>,
    /// The zeros added before each axis.
    pub begin: Vec<usize>,
    /// The zeros added after each axis.
    pub end: Vec<usize>,
    /// The number of windows per axis.
    pub output: Vec<usize>,
    /// The number of windows per axis with `ceil_mode = 1`.
    pub ceil_output: Vec<usize>,
}

/// Reads `strides`, `dilations`, `pads` and `auto_pad` of `node` for an input of spatial
/// `sizes` and a kernel of extent `kernel`.
pub(super) fn resolve(node: &Node, sizes: &[usize], kernel: &[usize]) -> Result<Resolved> {
    let rank = sizes.len();
    let ones = vec![1; rank];
    let strides = sizes_attr(node, "strides", rank, 1)?.unwrap_or_else(|| ones.clone());
    let dilations = sizes_attr(node, "dilations", rank, 1)?.unwrap_or(ones);
    let pads = sizes_attr(node, "pads", 2 * rank, 0)?;
    let auto_pad = string_attr(node, "auto_pad", "NOTSET")?;
    if sizes.contains(&0) {
        return Err(node_error(
            node,
            format!("needs non-empty spatial axes, got sizes {sizes:?}"),
        ));
    }
    let overflow = || {
        node_error(
            node,
            format!("window arithmetic overflows for sizes {sizes:?}"),
        )
    };
    let spans = kernel
        .iter()
        .zip(&dilations)
        .map(|(&k, &d)| (k - 1).checked_mul(d).and_then(|s| s.checked_add(1)))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(overflow)?;
    let (begin, end) = match auto_pad {
        "NOTSET" => {
            let pads = pads.unwrap_or_else(|| vec![0; 2 * rank]);
            (pads[..rank].to_vec(), pads[rank..].to_vec())
        }
        "VALID" | "SAME_UPPER" | "SAME_LOWER" => {
            if pads.as_ref().is_some_and(|p| p.iter().any(|&v| v != 0)) {
                return Err(node_error(
                    node,
                    format!(
                        "attribute 'pads' {pads:?} cannot be combined with auto_pad = {auto_pad}"
                    ),
                ));
            }
            if auto_pad == "VALID" {
                (vec![0; rank], vec![0; rank])
            } else {
                same_padding(sizes, &strides, &spans, auto_pad == "SAME_LOWER")
                    .ok_or_else(overflow)?
            }
        }
        other => {
            return Err(node_error(
                node,
                format!(
                    "attribute 'auto_pad' = '{other}' is not one of NOTSET, VALID, SAME_UPPER, \
                     SAME_LOWER"
                ),
            ))
        }
    };
    let mut output = Vec::with_capacity(rank);
    let mut ceil_output = Vec::with_capacity(rank);
    for axis in 0..rank {
        let padded = sizes[axis]
            .checked_add(begin[axis])
            .and_then(|s| s.checked_add(end[axis]))
            .ok_or_else(overflow)?;
        if padded < spans[axis] {
            return Err(node_error(
                node,
                format!(
                    "spatial axis {axis}: the window spans {} (kernel {}, dilation {}) but the \
                     padded input has only {padded}",
                    spans[axis], kernel[axis], dilations[axis]
                ),
            ));
        }
        let room = padded - spans[axis];
        let floor = room / strides[axis] + 1;
        let mut ceil = room.div_ceil(strides[axis]) + 1;
        // A last window that would start in the padding after the input is dropped.
        if (ceil - 1).checked_mul(strides[axis]).ok_or_else(overflow)? >= sizes[axis] + begin[axis]
        {
            ceil -= 1;
        }
        output.push(floor);
        ceil_output.push(if auto_pad.starts_with("SAME") {
            floor
        } else {
            ceil
        });
    }
    Ok(Resolved {
        sizes: sizes.to_vec(),
        kernel: kernel.to_vec(),
        strides,
        dilations,
        begin,
        end,
        output,
        ceil_output,
    })
}

/// The padding of `auto_pad = SAME_UPPER` (or `SAME_LOWER`): `ceil(size / stride)` windows,
/// the total padding they need split evenly, the odd one after (before) the input.
fn same_padding(
    sizes: &[usize],
    strides: &[usize],
    spans: &[usize],
    lower: bool,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let mut begin = Vec::with_capacity(sizes.len());
    let mut end = Vec::with_capacity(sizes.len());
    for ((&size, &stride), &span) in sizes.iter().zip(strides).zip(spans) {
        let windows = size.div_ceil(stride);
        let needed = (windows - 1).checked_mul(stride)?.checked_add(span)?;
        let total = needed.saturating_sub(size);
        let (small, large) = (total / 2, total - total / 2);
        if lower {
            begin.push(large);
            end.push(small);
        } else {
            begin.push(small);
            end.push(large);
        }
    }
    Some((begin, end))
}

impl Resolved {
    /// True when any side of any axis is padded.
    pub fn is_padded(&self) -> bool {
        self.begin.iter().chain(&self.end).any(|&p| p > 0)
    }

    /// Per spatial axis and window, how many of the window's taps fall on the input itself
    /// rather than on the padding.
    pub fn real_counts(&self) -> Vec<Vec<usize>> {
        (0..self.sizes.len())
            .map(|axis| {
                (0..self.output[axis])
                    .map(|o| {
                        (0..self.kernel[axis])
                            .filter(|&t| {
                                // Position in the padded input; the sizes were checked to fit.
                                let at = o * self.strides[axis] + t * self.dilations[axis];
                                at >= self.begin[axis] && at < self.begin[axis] + self.sizes[axis]
                            })
                            .count()
                    })
                    .collect()
            })
            .collect()
    }

    /// Kernel, strides and dilations as the 2-D window of an image (height 1 in 1-D).
    pub fn as_2d(&self) -> ((usize, usize), (usize, usize), (usize, usize)) {
        let pair = |v: &[usize]| match v {
            [w] => (1, *w),
            [h, w, ..] => (*h, *w),
            [] => (1, 1),
        };
        (
            pair(&self.kernel),
            pair(&self.strides),
            pair(&self.dilations),
        )
    }
}
