//! The sliding-window copies of convolution and pooling on the host: unfold (im2col) and its
//! adjoint fold (col2im), the same loops `kernels/conv.cu` runs one element per thread.

use super::{try_filled, try_vec};
use crate::backend::Im2Col;
use crate::{Element, Result};

/// The image row (or column) under window entry `k` at position `o` along one axis: `None` in
/// the padding. Bounded by the padded extent, which the geometry checked.
fn source(
    o: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
) -> Option<usize> {
    (o * stride + k * dilation)
        .checked_sub(pad)
        .filter(|&i| i < len)
}

/// `[N, C, H, W]` → `[N, C·kh·kw, oh·ow]`, `fill` in the padding.
pub(super) fn unfold<T: Element>(x: &[T], g: &Im2Col, fill: f64) -> Result<Vec<T>> {
    let mut out = try_vec("unfold2d", g.columns_len())?;
    let fill = T::from_f64(fill);
    let w = &g.window;
    let (h_in, w_in) = g.size;
    let (oh, ow) = g.out;
    if h_in * w_in == 0 {
        return Ok(out);
    }
    for plane in x.chunks_exact(h_in * w_in).take(g.batch * g.channels) {
        for ki in 0..w.kernel.0 {
            for kj in 0..w.kernel.1 {
                for oy in 0..oh {
                    let y = source(oy, ki, w.stride.0, w.dilation.0, w.padding.0, h_in);
                    for ox in 0..ow {
                        let xx = source(ox, kj, w.stride.1, w.dilation.1, w.padding.1, w_in);
                        out.push(match (y, xx) {
                            (Some(y), Some(xx)) => plane[y * w_in + xx],
                            _ => fill,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `[N, C·kh·kw, oh·ow]` → `[N, C, H, W]`: every column entry added onto the image element it
/// was read from, in increasing window-entry order for each element.
pub(super) fn fold<T: Element>(cols: &[T], g: &Im2Col) -> Result<Vec<T>> {
    let mut out = try_filled("fold2d", g.image_len(), T::from_f64(0.0))?;
    let w = &g.window;
    let (h_in, w_in) = g.size;
    let (oh, ow) = g.out;
    let plane_cols = w.kernel.0 * w.kernel.1 * oh * ow;
    if plane_cols == 0 || h_in * w_in == 0 {
        return Ok(out);
    }
    for (plane, block) in out
        .chunks_exact_mut(h_in * w_in)
        .zip(cols.chunks_exact(plane_cols))
    {
        let mut entries = block.chunks_exact(oh * ow);
        for ki in 0..w.kernel.0 {
            for kj in 0..w.kernel.1 {
                let Some(entry) = entries.next() else {
                    return Ok(out);
                };
                for oy in 0..oh {
                    let Some(y) = source(oy, ki, w.stride.0, w.dilation.0, w.padding.0, h_in)
                    else {
                        continue;
                    };
                    for ox in 0..ow {
                        if let Some(xx) =
                            source(ox, kj, w.stride.1, w.dilation.1, w.padding.1, w_in)
                        {
                            let at = y * w_in + xx;
                            plane[at] = plane[at] + entry[oy * ow + ox];
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}
