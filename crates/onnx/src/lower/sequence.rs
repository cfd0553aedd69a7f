//! Sequences of tensors: `SplitToSequence`, `SequenceConstruct`, `SequenceAt`,
//! `SequenceLength` and `ConcatFromSequence`. A sequence holds tape variables (or host
//! tensors) as they are, so derivatives flow through every element unchanged. PyTorch's
//! `Tensor.split` and `chunk` export as `SplitToSequence` followed by `SequenceAt`.

use curvature_tape::Var;

use super::util::{attr_int, attr_int_opt, checked_count, dims_of, norm_axis, to_i64};
use super::{host, node_error, Binding, Ctx, IntTensor, Val};
use crate::ir::Node;
use crate::Result;

/// Whether `op` is one of this family's ops.
pub fn is_sequence_op(op: &str) -> bool {
    matches!(
        op,
        "SplitToSequence"
            | "SequenceConstruct"
            | "SequenceAt"
            | "SequenceLength"
            | "ConcatFromSequence"
    )
}

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Binding>], _ctx: &Ctx) -> Result<Vec<Binding>> {
    let out = match node.op_type.as_str() {
        "SplitToSequence" => {
            check_count(node, inputs, 1, 2)?;
            let split = match inputs.get(1).and_then(Option::as_ref) {
                None => None,
                Some(b) => Some(host_ints(node, b, 1)?),
            };
            Binding::Sequence(split_to_sequence(node, tensor(node, inputs, 0)?, split)?)
        }
        "SequenceConstruct" => {
            check_count(node, inputs, 1, usize::MAX)?;
            let items = (0..inputs.len())
                .map(|i| tensor(node, inputs, i).cloned())
                .collect::<Result<Vec<_>>>()?;
            same_kind(node, &items)?;
            Binding::Sequence(items)
        }
        "SequenceAt" => {
            check_count(node, inputs, 2, 2)?;
            let items = sequence(node, inputs, 0)?;
            let position = host_ints(node, tensor_binding(node, inputs, 1)?, 1)?;
            let [position] = position.data[..] else {
                return Err(node_error(
                    node,
                    format!(
                        "position must be one integer, got shape {:?}",
                        position.dims
                    ),
                ));
            };
            Binding::Tensor(items[resolve_position(node, position, items.len())?].clone())
        }
        "SequenceLength" => {
            check_count(node, inputs, 1, 1)?;
            let len = to_i64(node, sequence(node, inputs, 0)?.len())?;
            Binding::Tensor(Val::Int(IntTensor {
                dims: Vec::new(),
                data: vec![len],
            }))
        }
        "ConcatFromSequence" => {
            check_count(node, inputs, 1, 1)?;
            Binding::Tensor(concat_from_sequence(node, sequence(node, inputs, 0)?)?)
        }
        other => return Err(node_error(node, format!("'{other}' is not a sequence op"))),
    };
    Ok(vec![out])
}

fn check_count(node: &Node, inputs: &[Option<Binding>], min: usize, max: usize) -> Result<()> {
    if inputs.len() < min || inputs.len() > max {
        let expected = match max {
            usize::MAX => format!("at least {min}"),
            _ if min == max => format!("{min}"),
            _ => format!("{min} to {max}"),
        };
        return Err(node_error(
            node,
            format!("expects {expected} inputs, got {}", inputs.len()),
        ));
    }
    Ok(())
}

fn tensor_binding<'a>(node: &Node, inputs: &'a [Option<Binding>], i: usize) -> Result<&'a Binding> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| node_error(node, format!("input {i} is required but missing")))
}

/// Input `i`, which must be a tensor.
fn tensor<'a>(node: &Node, inputs: &'a [Option<Binding>], i: usize) -> Result<&'a Val> {
    match tensor_binding(node, inputs, i)? {
        Binding::Tensor(v) => Ok(v),
        Binding::Sequence(items) => Err(node_error(
            node,
            format!(
                "input {i} must be a tensor, got a sequence of {} tensors",
                items.len()
            ),
        )),
    }
}

/// Input `i`, which must be a sequence.
fn sequence<'a>(node: &Node, inputs: &'a [Option<Binding>], i: usize) -> Result<&'a [Val]> {
    match tensor_binding(node, inputs, i)? {
        Binding::Sequence(items) => Ok(items),
        Binding::Tensor(v) => Err(node_error(
            node,
            format!(
                "input {i} must be a sequence, got a tensor of shape {:?}",
                dims_of(v)
            ),
        )),
    }
}

/// A tensor binding holding integers (a split, a position).
fn host_ints<'a>(node: &Node, b: &'a Binding, i: usize) -> Result<&'a IntTensor> {
    match b {
        Binding::Tensor(Val::Int(t)) => Ok(t),
        Binding::Tensor(Val::Float(v)) => Err(node_error(
            node,
            format!(
                "input {i} must be an integer tensor, got a floating-point one of shape {:?}",
                v.dims()
            ),
        )),
        Binding::Sequence(items) => Err(node_error(
            node,
            format!(
                "input {i} must be a tensor, got a sequence of {} tensors",
                items.len()
            ),
        )),
    }
}

/// Errors unless the items are all floating-point or all integer (ONNX sequences hold one
/// element type).
fn same_kind(node: &Node, items: &[Val]) -> Result<()> {
    let floats = items.iter().filter(|v| matches!(v, Val::Float(_))).count();
    if floats != 0 && floats != items.len() {
        return Err(node_error(
            node,
            format!(
                "a sequence holds one element type, got {floats} floating-point and {} integer \
                 tensors",
                items.len() - floats
            ),
        ));
    }
    Ok(())
}

/// A position in `[-len, len)` as an index.
fn resolve_position(node: &Node, position: i64, len: usize) -> Result<usize> {
    let resolved = if position < 0 {
        i128::from(position) + len as i128
    } else {
        i128::from(position)
    };
    usize::try_from(resolved)
        .ok()
        .filter(|&r| r < len)
        .ok_or_else(|| {
            node_error(
                node,
                format!("position {position} is out of range for a sequence of {len} tensors"),
            )
        })
}

/// The part `start..start + len` of `x` along `axis`.
fn narrow(node: &Node, x: &Val, axis: usize, start: usize, len: usize) -> Result<Val> {
    Ok(match x {
        Val::Float(v) => Val::Float(v.narrow(axis as isize, start, len)?),
        Val::Int(t) => {
            let picks = host::picks_along(&t.dims, axis, (start..start + len).collect());
            let mut dims = t.dims.clone();
            dims[axis] = len;
            Val::Int(IntTensor {
                data: host::select(node, &t.data, &t.dims, &picks)?,
                dims,
            })
        }
    })
}

/// `x` with new dimensions of the same element count.
fn reshaped(node: &Node, x: &Val, dims: Vec<usize>) -> Result<Val> {
    Ok(match x {
        Val::Float(v) => Val::Float(v.reshape(dims)?),
        Val::Int(t) => {
            if checked_count(node, &dims)? != t.data.len() {
                return Err(node_error(
                    node,
                    format!("cannot reshape {:?} to {dims:?}", t.dims),
                ));
            }
            Val::Int(IntTensor {
                dims,
                data: t.data.clone(),
            })
        }
    })
}

/// `SplitToSequence(input, split?; axis, keepdims)`: without `split`, pieces of length 1 (the
/// axis dropped unless `keepdims`); a scalar `split` cuts pieces of that length (the last one
/// shorter when the length does not divide); a list gives every piece's length.
fn split_to_sequence(node: &Node, x: &Val, split: Option<&IntTensor>) -> Result<Vec<Val>> {
    let dims = dims_of(x).to_vec();
    let axis = norm_axis(node, attr_int(node, "axis", 0)?, dims.len())?;
    let dim = dims[axis];
    let keepdims = match attr_int(node, "keepdims", 1)? {
        0 => false,
        1 => true,
        v => {
            return Err(node_error(
                node,
                format!("attribute 'keepdims' must be 0 or 1, got {v}"),
            ))
        }
    };
    let lengths: Vec<usize> = match split {
        None => vec![1; dim],
        Some(t) if t.dims.is_empty() => {
            let chunk = usize::try_from(t.data[0])
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| {
                    node_error(node, format!("split length {} must be positive", t.data[0]))
                })?;
            let mut lengths = vec![chunk; dim / chunk];
            if dim % chunk != 0 {
                lengths.push(dim % chunk);
            }
            lengths
        }
        Some(t) if t.dims.len() == 1 => {
            let lengths = t
                .data
                .iter()
                .map(|&l| usize::try_from(l).ok())
                .collect::<Option<Vec<_>>>();
            let total = lengths
                .as_ref()
                .and_then(|l| l.iter().try_fold(0usize, |a, &b| a.checked_add(b)));
            match lengths {
                Some(lengths) if total == Some(dim) => lengths,
                _ => {
                    return Err(node_error(
                        node,
                        format!(
                            "split {:?} does not add up to axis {axis} of length {dim}",
                            t.data
                        ),
                    ))
                }
            }
        }
        Some(t) => {
            return Err(node_error(
                node,
                format!(
                    "split must be a scalar or a 1-D list, got shape {:?}",
                    t.dims
                ),
            ))
        }
    };
    let squeeze = split.is_none() && !keepdims;
    let mut start = 0usize;
    let mut items = Vec::with_capacity(lengths.len());
    for len in lengths {
        let mut piece = narrow(node, x, axis, start, len)?;
        if squeeze {
            let mut piece_dims = dims.clone();
            piece_dims.remove(axis);
            piece = reshaped(node, &piece, piece_dims)?;
        }
        items.push(piece);
        start += len;
    }
    Ok(items)
}

/// `ConcatFromSequence(seq; axis, new_axis)`: the items joined along `axis`, or stacked along
/// a new axis at `axis` (in `[-rank - 1, rank]`) when `new_axis` is 1 (items of one shape).
fn concat_from_sequence(node: &Node, items: &[Val]) -> Result<Val> {
    let first = items
        .first()
        .ok_or_else(|| node_error(node, "cannot concatenate an empty sequence".to_string()))?;
    same_kind(node, items)?;
    let axis = attr_int_opt(node, "axis")?
        .ok_or_else(|| node_error(node, "the attribute 'axis' is required".to_string()))?;
    let rank = dims_of(first).len();
    let new_axis = match attr_int(node, "new_axis", 0)? {
        0 => false,
        1 => true,
        v => {
            return Err(node_error(
                node,
                format!("attribute 'new_axis' must be 0 or 1, got {v}"),
            ))
        }
    };
    let (axis, items) = if new_axis {
        let axis = norm_axis(node, axis, rank + 1)?;
        let stacked = items
            .iter()
            .map(|item| {
                let mut dims = dims_of(item).to_vec();
                if dims != dims_of(first) {
                    return Err(node_error(
                        node,
                        format!("cannot stack shapes {:?} and {dims:?}", dims_of(first)),
                    ));
                }
                dims.insert(axis, 1);
                reshaped(node, item, dims)
            })
            .collect::<Result<Vec<_>>>()?;
        (axis, stacked)
    } else {
        (norm_axis(node, axis, rank)?, items.to_vec())
    };
    if let Val::Float(_) = items[0] {
        let vars: Vec<&Var> = items
            .iter()
            .filter_map(|v| match v {
                Val::Float(v) => Some(v),
                Val::Int(_) => None,
            })
            .collect();
        return Ok(Val::Float(Var::cat(&vars, axis as isize)?));
    }
    let ints: Vec<&IntTensor> = items
        .iter()
        .filter_map(|v| match v {
            Val::Int(t) => Some(t),
            Val::Float(_) => None,
        })
        .collect();
    host::concat(node, &ints, axis).map(Val::Int)
}
