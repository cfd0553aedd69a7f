//! Ops that pick or join entries along axes: `Concat`, `Slice`, `Split`, `Gather`. On floats
//! they are `cat`, `narrow` and `index_select` on the tape (derivatives: slices, zero padding
//! and `index_add`); on integers the same picks on the host.

use curvature_tape::Var;

use super::super::util::{
    attr_int, attr_ints, check_inputs, checked_count, dims_of, input, int_input, int_list,
    norm_axis, optional_input, to_float,
};
use super::super::{host, node_error, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// `Concat(axis)` of one or more tensors: on the tape unless all are integers.
pub fn concat(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Val> {
    if inputs.is_empty() {
        return Err(node_error(node, "needs at least one input".to_string()));
    }
    let values = (0..inputs.len())
        .map(|i| input(node, inputs, i))
        .collect::<Result<Vec<_>>>()?;
    let axis = attr_int(node, "axis", i64::MIN)?;
    if axis == i64::MIN {
        return Err(node_error(
            node,
            "the attribute 'axis' is required".to_string(),
        ));
    }
    let axis = norm_axis(node, axis, dims_of(values[0]).len())?;
    let ints: Vec<&IntTensor> = values
        .iter()
        .filter_map(|v| match v {
            Val::Int(t) => Some(t),
            Val::Float(_) => None,
        })
        .collect();
    if ints.len() == values.len() {
        return host::concat(node, &ints, axis).map(Val::Int);
    }
    let floats = values
        .iter()
        .map(|v| to_float(ctx, v))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Var> = floats.iter().collect();
    Ok(Val::Float(Var::cat(&refs, axis as isize)?))
}

/// The positions one axis of length `dim` keeps under ONNX `Slice` with `start`, `end` and
/// `step` (negative values count from the end; out-of-range values are clamped).
fn slice_positions(node: &Node, dim: usize, start: i64, end: i64, step: i64) -> Result<Vec<usize>> {
    if step == 0 {
        return Err(node_error(node, "a slice step is 0".to_string()));
    }
    let dim = dim as i128;
    let resolve = |v: i64| {
        let v = i128::from(v);
        if v < 0 {
            v + dim
        } else {
            v
        }
    };
    let (mut start, mut end, step) = (resolve(start), resolve(end), i128::from(step));
    if step > 0 {
        start = start.clamp(0, dim);
        end = end.clamp(0, dim);
    } else {
        start = start.clamp(0, dim - 1);
        end = end.clamp(-1, dim - 1);
    }
    let mut positions = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        positions.push(i as usize);
        i += step;
    }
    Ok(positions)
}

/// `Slice(data, starts, ends, axes, steps)`.
pub fn slice(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 3, 5)?;
    let x = input(node, inputs, 0)?;
    let dims = dims_of(x).to_vec();
    let starts = int_list(node, inputs, 1)?;
    let ends = int_list(node, inputs, 2)?;
    let n = starts.len();
    let axes = match optional_input(inputs, 3) {
        Some(_) => int_list(node, inputs, 3)?,
        None => (0..n as i64).collect(),
    };
    let steps = match optional_input(inputs, 4) {
        Some(_) => int_list(node, inputs, 4)?,
        None => vec![1; n],
    };
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(node_error(
            node,
            format!(
                "starts, ends, axes and steps must have equal lengths, got {}, {}, {}, {}",
                n,
                ends.len(),
                axes.len(),
                steps.len()
            ),
        ));
    }
    let mut picks: Vec<Option<Vec<usize>>> = vec![None; dims.len()];
    for i in 0..n {
        let axis = norm_axis(node, axes[i], dims.len())?;
        if picks[axis].is_some() {
            return Err(node_error(
                node,
                format!("axis {} is sliced twice", axes[i]),
            ));
        }
        picks[axis] = Some(slice_positions(
            node, dims[axis], starts[i], ends[i], steps[i],
        )?);
    }
    match x {
        Val::Float(v) => {
            let mut out = v.clone();
            for (axis, pick) in picks.into_iter().enumerate() {
                if let Some(pick) = pick {
                    out = pick_along(&out, axis, &pick)?;
                }
            }
            Ok(Val::Float(out))
        }
        Val::Int(t) => {
            let picks: Vec<Vec<usize>> = picks
                .into_iter()
                .zip(&dims)
                .map(|(p, &d)| p.unwrap_or_else(|| (0..d).collect()))
                .collect();
            let out_dims: Vec<usize> = picks.iter().map(Vec::len).collect();
            let data = host::select(node, &t.data, &t.dims, &picks)?;
            Ok(Val::Int(IntTensor {
                dims: out_dims,
                data,
            }))
        }
    }
}

/// The entries `pick` of `axis`: a `narrow` when they are consecutive and increasing, else an
/// `index_select`.
fn pick_along(v: &Var, axis: usize, pick: &[usize]) -> Result<Var> {
    let consecutive = pick.windows(2).all(|w| w[1] == w[0] + 1);
    match pick.first() {
        Some(&start) if consecutive => Ok(v.narrow(axis as isize, start, pick.len())?),
        _ => Ok(v.index_select(axis as isize, pick)?),
    }
}

/// `Split(input, split)`: along `axis` into parts of the sizes in the `split` input (opset
/// ≥ 13) or attribute, else into `num_outputs` (opset ≥ 18; the last part may be smaller) or
/// one equal part per output.
pub fn split(node: &Node, inputs: &[Option<Val>]) -> Result<Vec<Val>> {
    check_inputs(node, inputs, 1, 2)?;
    let x = input(node, inputs, 0)?;
    let dims = dims_of(x);
    let axis = norm_axis(node, attr_int(node, "axis", 0)?, dims.len())?;
    let dim = dims[axis];
    let parts = node.outputs.len();
    let explicit = match optional_input(inputs, 1) {
        Some(_) => Some(int_list(node, inputs, 1)?),
        None => attr_ints(node, "split")?,
    };
    let sizes: Vec<usize> = if let Some(split) = explicit {
        let sizes = split
            .iter()
            .map(|&s| usize::try_from(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .ok();
        let total = sizes
            .as_ref()
            .and_then(|s| s.iter().try_fold(0usize, |a, &b| a.checked_add(b)));
        match sizes {
            Some(sizes) if total == Some(dim) && sizes.len() == parts => sizes,
            _ => {
                return Err(node_error(
                    node,
                    format!(
                        "split {split:?} does not divide axis {axis} of length {dim} into {parts} parts"
                    ),
                ))
            }
        }
    } else {
        let count = match crate::lower::util::attr_int_opt(node, "num_outputs")? {
            Some(n) if n as u128 == parts as u128 => parts,
            Some(n) => {
                return Err(node_error(
                    node,
                    format!("num_outputs = {n} but the node has {parts} outputs"),
                ))
            }
            None => parts,
        };
        let chunk = if count == 0 { 0 } else { dim.div_ceil(count) };
        let even = count > 0 && dim % count == 0;
        let uneven_allowed = node.attribute("num_outputs").is_some();
        let used = chunk * count.saturating_sub(1);
        if count == 0 || (!even && (!uneven_allowed || used > dim)) {
            return Err(node_error(
                node,
                format!("axis {axis} of length {dim} cannot be split into {count} parts"),
            ));
        }
        let mut sizes = vec![chunk; count];
        sizes[count - 1] = dim - used;
        sizes
    };
    let mut start = 0usize;
    let mut outputs = Vec::with_capacity(sizes.len());
    for size in sizes {
        outputs.push(match x {
            Val::Float(v) => Val::Float(v.narrow(axis as isize, start, size)?),
            Val::Int(t) => {
                let picks = host::picks_along(&t.dims, axis, (start..start + size).collect());
                let mut out_dims = t.dims.clone();
                out_dims[axis] = size;
                Val::Int(IntTensor {
                    data: host::select(node, &t.data, &t.dims, &picks)?,
                    dims: out_dims,
                })
            }
        });
        start += size;
    }
    Ok(outputs)
}

/// `Gather(data, indices, axis)`: `out[…, idx…, …] = data[…, indices[idx…], …]`; negative
/// indices count from the end. On floats an `index_select` and a reshape (an embedding is
/// `Gather(weight, ids)`).
pub fn gather(node: &Node, inputs: &[Option<Val>]) -> Result<Val> {
    check_inputs(node, inputs, 2, 2)?;
    let x = input(node, inputs, 0)?;
    let indices = int_input(node, inputs, 1)?;
    let dims = dims_of(x).to_vec();
    let axis = norm_axis(node, attr_int(node, "axis", 0)?, dims.len())?;
    let len = dims[axis];
    let picks = indices
        .data
        .iter()
        .map(|&i| {
            let resolved = if i < 0 {
                i128::from(i) + len as i128
            } else {
                i128::from(i)
            };
            usize::try_from(resolved)
                .ok()
                .filter(|&r| r < len)
                .ok_or_else(|| {
                    node_error(
                        node,
                        format!("index {i} is out of range for axis {axis} of length {len}"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out_dims = dims[..axis].to_vec();
    out_dims.extend_from_slice(&indices.dims);
    out_dims.extend_from_slice(&dims[axis + 1..]);
    checked_count(node, &out_dims)?;
    match x {
        Val::Float(v) => Ok(Val::Float(
            v.index_select(axis as isize, &picks)?.reshape(out_dims)?,
        )),
        Val::Int(t) => {
            let data = host::select(
                node,
                &t.data,
                &t.dims,
                &host::picks_along(&t.dims, axis, picks),
            )?;
            Ok(Val::Int(IntTensor {
                dims: out_dims,
                data,
            }))
        }
    }
}
