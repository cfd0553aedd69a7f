//! Data movement on host tensors (integer and boolean values, and the index lists the float
//! lowerings build): numpy broadcasting, picking entries per axis (slices, gathers, splits),
//! axis permutation and concatenation. Every function checks its sizes and errors, naming the
//! node, instead of panicking.

use super::util::checked_count;
use super::{node_error, IntTensor};
use crate::ir::Node;
use crate::Result;

/// The numpy (multidirectional) broadcast of two shapes.
pub fn broadcast_dims(node: &Node, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, dim) in out.iter_mut().enumerate() {
        let da = dim_from_end(a, rank - 1 - i);
        let db = dim_from_end(b, rank - 1 - i);
        *dim = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(node_error(
                    node,
                    format!("shapes {a:?} and {b:?} do not broadcast"),
                ))
            }
        };
    }
    checked_count(node, &out)?;
    Ok(out)
}

fn dim_from_end(dims: &[usize], k: usize) -> usize {
    if k < dims.len() {
        dims[dims.len() - 1 - k]
    } else {
        1
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1].saturating_mul(dims[d + 1]);
    }
    s
}

/// For each element of `out` (row-major), the offset of the element of a tensor of shape `src`
/// broadcast to it. `src` must broadcast to `out` (checked by the caller).
fn broadcast_offsets(src: &[usize], out: &[usize]) -> Vec<usize> {
    let count: usize = out.iter().product();
    let offset = out.len() - src.len();
    let src_strides = strides(src);
    // The stride of each output axis in the source: 0 where the source is broadcast.
    let step: Vec<usize> = (0..out.len())
        .map(|i| {
            if i < offset || src[i - offset] == 1 {
                0
            } else {
                src_strides[i - offset]
            }
        })
        .collect();
    let mut index = vec![0usize; out.len()];
    let mut pos = 0usize;
    let mut offsets = Vec::with_capacity(count);
    for _ in 0..count {
        offsets.push(pos);
        for axis in (0..out.len()).rev() {
            index[axis] += 1;
            pos += step[axis];
            if index[axis] < out[axis] {
                break;
            }
            pos -= step[axis] * index[axis];
            index[axis] = 0;
        }
    }
    offsets
}

/// `t` broadcast to `dims` (which it must broadcast to, as numpy's `broadcast_to`).
pub fn broadcast_to(node: &Node, t: &IntTensor, dims: &[usize]) -> Result<IntTensor> {
    let joint = broadcast_dims(node, &t.dims, dims)?;
    if joint != dims {
        return Err(node_error(
            node,
            format!("shape {:?} does not broadcast to {dims:?}", t.dims),
        ));
    }
    let data = broadcast_offsets(&t.dims, dims)
        .into_iter()
        .map(|o| t.data[o])
        .collect();
    Ok(IntTensor {
        dims: dims.to_vec(),
        data,
    })
}

/// The broadcast shape of `a` and `b` and, per element of it, the offsets of the elements
/// of `a` and of `b` it reads.
pub fn pair_offsets(
    node: &Node,
    a: &[usize],
    b: &[usize],
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let dims = broadcast_dims(node, a, b)?;
    let oa = broadcast_offsets(a, &dims);
    let ob = broadcast_offsets(b, &dims);
    Ok((dims, oa, ob))
}

/// `f` applied elementwise to `a` and `b` broadcast together.
pub fn zip_with(
    node: &Node,
    a: &IntTensor,
    b: &IntTensor,
    f: impl Fn(i64, i64) -> Result<i64>,
) -> Result<IntTensor> {
    let dims = broadcast_dims(node, &a.dims, &b.dims)?;
    let oa = broadcast_offsets(&a.dims, &dims);
    let ob = broadcast_offsets(&b.dims, &dims);
    let data = oa
        .into_iter()
        .zip(ob)
        .map(|(i, j)| f(a.data[i], b.data[j]))
        .collect::<Result<Vec<_>>>()?;
    Ok(IntTensor { dims, data })
}

/// `f` applied elementwise to `a`, `b` and `c` broadcast together.
pub fn zip3_with(
    node: &Node,
    a: &IntTensor,
    b: &IntTensor,
    c: &IntTensor,
    f: impl Fn(i64, i64, i64) -> i64,
) -> Result<IntTensor> {
    let ab = broadcast_dims(node, &a.dims, &b.dims)?;
    let dims = broadcast_dims(node, &ab, &c.dims)?;
    let oa = broadcast_offsets(&a.dims, &dims);
    let ob = broadcast_offsets(&b.dims, &dims);
    let oc = broadcast_offsets(&c.dims, &dims);
    let data = (0..oa.len())
        .map(|k| f(a.data[oa[k]], b.data[ob[k]], c.data[oc[k]]))
        .collect();
    Ok(IntTensor { dims, data })
}

/// `f` applied to every element.
pub fn map(t: &IntTensor, f: impl Fn(i64) -> Result<i64>) -> Result<IntTensor> {
    Ok(IntTensor {
        dims: t.dims.clone(),
        data: t.data.iter().map(|&v| f(v)).collect::<Result<_>>()?,
    })
}

/// The entries of `data` (shape `dims`) at the positions `picks[axis]` along every axis: the
/// result has shape `picks[i].len()` per axis. Every pick must be inside its axis.
pub fn select<T: Copy>(
    node: &Node,
    data: &[T],
    dims: &[usize],
    picks: &[Vec<usize>],
) -> Result<Vec<T>> {
    if picks.len() != dims.len()
        || picks
            .iter()
            .zip(dims)
            .any(|(p, &d)| p.iter().any(|&i| i >= d))
    {
        return Err(node_error(
            node,
            format!("index out of range for shape {dims:?}"),
        ));
    }
    let out_dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let count = checked_count(node, &out_dims)?;
    let src_strides = strides(dims);
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        let offset: usize = index
            .iter()
            .zip(picks)
            .zip(&src_strides)
            .map(|((&i, p), &s)| p[i] * s)
            .sum();
        out.push(data[offset]);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < out_dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(out)
}

/// Every position of every axis except `axis`, which takes `picks`.
pub fn picks_along(dims: &[usize], axis: usize, picks: Vec<usize>) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    all[axis] = picks;
    all
}

/// The axes of `t` reordered: output axis `i` is input axis `perm[i]` (a valid permutation).
pub fn permute(node: &Node, t: &IntTensor, perm: &[usize]) -> Result<IntTensor> {
    let dims: Vec<usize> = perm.iter().map(|&p| t.dims[p]).collect();
    let count = checked_count(node, &dims)?;
    let src_strides = strides(&t.dims);
    let step: Vec<usize> = perm.iter().map(|&p| src_strides[p]).collect();
    let mut index = vec![0usize; dims.len()];
    let mut data = Vec::with_capacity(count);
    for _ in 0..count {
        let offset: usize = index.iter().zip(&step).map(|(&i, &s)| i * s).sum();
        data.push(t.data[offset]);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(IntTensor { dims, data })
}

/// Concatenation along `axis` of tensors whose other dimensions agree.
pub fn concat(node: &Node, parts: &[&IntTensor], axis: usize) -> Result<IntTensor> {
    let first = parts
        .first()
        .ok_or_else(|| node_error(node, "needs at least one input".to_string()))?;
    let mut dims = first.dims.clone();
    dims[axis] = 0;
    for p in parts {
        let same_rest = p.dims.len() == first.dims.len()
            && p.dims
                .iter()
                .zip(&first.dims)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same_rest {
            return Err(node_error(
                node,
                format!(
                    "cannot concatenate shapes {:?} and {:?} along axis {axis}",
                    first.dims, p.dims
                ),
            ));
        }
        dims[axis] = dims[axis]
            .checked_add(p.dims[axis])
            .ok_or_else(|| node_error(node, "concatenated length overflows".to_string()))?;
    }
    let count = checked_count(node, &dims)?;
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut data = Vec::with_capacity(count);
    for o in 0..outer {
        for p in parts {
            let block = p.dims[axis] * inner;
            data.extend_from_slice(&p.data[o * block..(o + 1) * block]);
        }
    }
    Ok(IntTensor { dims, data })
}
