//! Reading a node's operands and attributes for the matrix, convolution and normalisation
//! lowerings: required and optional float inputs, the attributes an op accepts (any other is
//! refused), typed attribute values with their defaults, and axes.

use curvature_tape::Var;

use super::{node_error, unsupported, Val};
use crate::ir::{Attribute, Node};
use crate::Result;

/// Errors unless `inputs` has between `min` and `max` entries.
pub(super) fn input_count(
    node: &Node,
    inputs: &[Option<Val>],
    min: usize,
    max: usize,
) -> Result<()> {
    if inputs.len() < min || inputs.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(node_error(
            node,
            format!("takes {expected} inputs, got {}", inputs.len()),
        ));
    }
    Ok(())
}

/// The float input at `index`, which must be present.
pub(super) fn float_input<'a>(
    node: &Node,
    inputs: &'a [Option<Val>],
    index: usize,
    role: &str,
) -> Result<&'a Var> {
    optional_float(node, inputs, index, role)?
        .ok_or_else(|| node_error(node, format!("input {index} ({role}) is missing")))
}

/// The float input at `index`, or `None` when it is omitted.
pub(super) fn optional_float<'a>(
    node: &Node,
    inputs: &'a [Option<Val>],
    index: usize,
    role: &str,
) -> Result<Option<&'a Var>> {
    match inputs.get(index) {
        None | Some(None) => Ok(None),
        Some(Some(Val::Float(v))) => Ok(Some(v)),
        Some(Some(Val::Int(t))) => Err(unsupported(
            node,
            "dtype",
            format!(
                "input {index} ({role}) is an integer or boolean tensor of shape {:?}; this op \
                 takes floating-point values",
                t.dims
            ),
        )),
    }
}

/// Errors when the node declares an output past the first `max` (those the lowering
/// computes), such as the `Indices` of `MaxPool`.
pub(super) fn output_count(node: &Node, max: usize, names: &str) -> Result<()> {
    match node.outputs.iter().skip(max).position(|o| !o.is_empty()) {
        Some(extra) => Err(unsupported(
            node,
            "output",
            format!(
                "output {} is not computed (supported outputs: {names})",
                max + extra
            ),
        )),
        None => Ok(()),
    }
}

/// Errors when the node carries an attribute outside `known`.
pub(super) fn known_attributes(node: &Node, known: &[&str]) -> Result<()> {
    match node
        .attributes
        .iter()
        .find(|(name, _)| !known.contains(&name.as_str()))
    {
        Some((name, _)) => Err(unsupported(
            node,
            "attribute",
            format!(
                "'{name}' is not supported here (supported: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )),
        None => Ok(()),
    }
}

fn wrong_type(node: &Node, name: &str, expected: &str, got: &Attribute) -> crate::OnnxError {
    node_error(
        node,
        format!("attribute '{name}' must be {expected}, got {got:?}"),
    )
}

/// The `INT` attribute `name`, or `default`.
pub(super) fn int_attr(node: &Node, name: &str, default: i64) -> Result<i64> {
    match node.attribute(name) {
        None => Ok(default),
        Some(Attribute::Int(v)) => Ok(*v),
        Some(other) => Err(wrong_type(node, name, "an integer", other)),
    }
}

/// The `INT` attribute `name` (default `default`), which must be 0 or 1.
pub(super) fn flag_attr(node: &Node, name: &str, default: bool) -> Result<bool> {
    match int_attr(node, name, i64::from(default))? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(node_error(
            node,
            format!("attribute '{name}' must be 0 or 1, got {v}"),
        )),
    }
}

/// The `FLOAT` attribute `name`, or `default`.
pub(super) fn float_attr(node: &Node, name: &str, default: f64) -> Result<f64> {
    match node.attribute(name) {
        None => Ok(default),
        Some(Attribute::Float(v)) => Ok(f64::from(*v)),
        Some(other) => Err(wrong_type(node, name, "a float", other)),
    }
}

/// The `STRING` attribute `name`, or `default`.
pub(super) fn string_attr<'a>(node: &'a Node, name: &str, default: &'a str) -> Result<&'a str> {
    match node.attribute(name) {
        None => Ok(default),
        Some(Attribute::String(v)) => Ok(v),
        Some(other) => Err(wrong_type(node, name, "a string", other)),
    }
}

/// The `INTS` attribute `name` as non-negative sizes of exactly `len` entries (at least
/// `min` each), or `None` when absent.
pub(super) fn sizes_attr(
    node: &Node,
    name: &str,
    len: usize,
    min: usize,
) -> Result<Option<Vec<usize>>> {
    let values = match node.attribute(name) {
        None => return Ok(None),
        Some(Attribute::Ints(v)) => v,
        Some(other) => return Err(wrong_type(node, name, "a list of integers", other)),
    };
    if values.len() != len {
        return Err(node_error(
            node,
            format!(
                "attribute '{name}' needs {len} entries, got {values:?} ({})",
                values.len()
            ),
        ));
    }
    values
        .iter()
        .map(|&v| {
            usize::try_from(v)
                .ok()
                .filter(|&u| u >= min)
                .ok_or_else(|| {
                    node_error(
                        node,
                        format!(
                            "attribute '{name}' entries must be at least {min}, got {values:?}"
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Resolves the attribute `name` = `axis` (negative counts from the end) against `rank`;
/// valid axes are `-rank..rank`.
pub(super) fn axis(node: &Node, name: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = i64::try_from(rank).unwrap_or(i64::MAX);
    let resolved = if axis < 0 {
        axis.checked_add(r)
    } else {
        Some(axis)
    };
    match resolved {
        Some(a) if (0..r).contains(&a) => Ok(a as usize),
        _ => Err(node_error(
            node,
            format!(
                "attribute '{name}' = {axis} is out of range for an input of rank {rank} \
                 (valid: {} to {})",
                -r,
                r - 1
            ),
        )),
    }
}

/// The product of `dims`, or an error naming the node when it overflows.
pub(super) fn product(node: &Node, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| node_error(node, format!("the size of {dims:?} overflows")))
}
