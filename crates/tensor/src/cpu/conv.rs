//! The sliding-window copies of convolution and pooling on the host: unfold (im2col) and its
//! adjoint fold (col2im), the same sums `kernels/conv.cu` computes one element per thread.

use std::iter::repeat_n;

use super::{try_filled, try_vec};
use crate::backend::Im2Col;
use crate::{Element, Result};

/// Where tap `k` of a window reads along one axis: the output positions `lo..hi` whose read
/// falls inside the input (the others read padding), and the input index read at `lo` (when
/// `lo < hi`).
/// Every quantity is bounded by the padded extent, which the geometry checked.
struct Taps {
    lo: usize,
    hi: usize,
    first: usize,
}

fn taps(k: usize, stride: usize, dilation: usize, pad: usize, len: usize, out: usize) -> Taps {
    let offset = k * dilation;
    // Position o reads o·stride + offset − pad, inside when 0 ≤ it < len.
    let lo = pad.saturating_sub(offset).div_ceil(stride).min(out);
    let hi = (len + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .clamp(lo, out);
    Taps {
        lo,
        hi,
        first: (lo * stride + offset).saturating_sub(pad),
    }
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
            let rows = taps(ki, w.stride.0, w.dilation.0, w.padding.0, h_in, oh);
            for kj in 0..w.kernel.1 {
                let cols = taps(kj, w.stride.1, w.dilation.1, w.padding.1, w_in, ow);
                out.extend(repeat_n(fill, rows.lo * ow));
                for oy in rows.lo..rows.hi {
                    let y = rows.first + (oy - rows.lo) * w.stride.0;
                    let row = &plane[y * w_in..(y + 1) * w_in];
                    out.extend(repeat_n(fill, cols.lo));
                    let count = cols.hi - cols.lo;
                    if count > 0 && w.stride.1 == 1 {
                        out.extend_from_slice(&row[cols.first..cols.first + count]);
                    } else if count > 0 {
                        let read = row[cols.first..].iter().step_by(w.stride.1);
                        out.extend(read.take(count));
                    }
                    out.extend(repeat_n(fill, ow - cols.hi));
                }
                out.extend(repeat_n(fill, (oh - rows.hi) * ow));
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
    let per_plane = w.kernel.0 * w.kernel.1 * oh * ow;
    if per_plane == 0 || h_in * w_in == 0 {
        return Ok(out);
    }
    for (plane, block) in out
        .chunks_exact_mut(h_in * w_in)
        .zip(cols.chunks_exact(per_plane))
    {
        let mut entries = block.chunks_exact(oh * ow);
        for ki in 0..w.kernel.0 {
            let rows = taps(ki, w.stride.0, w.dilation.0, w.padding.0, h_in, oh);
            for kj in 0..w.kernel.1 {
                let cols = taps(kj, w.stride.1, w.dilation.1, w.padding.1, w_in, ow);
                let Some(entry) = entries.next() else {
                    return Ok(out);
                };
                if cols.hi == cols.lo {
                    continue;
                }
                for oy in rows.lo..rows.hi {
                    let y = rows.first + (oy - rows.lo) * w.stride.0;
                    let row = &mut plane[y * w_in..(y + 1) * w_in];
                    let sources = &entry[oy * ow + cols.lo..oy * ow + cols.hi];
                    let targets = row[cols.first..].iter_mut().step_by(w.stride.1);
                    for (target, &v) in targets.zip(sources) {
                        *target = *target + v;
                    }
                }
            }
        }
    }
    Ok(out)
}
