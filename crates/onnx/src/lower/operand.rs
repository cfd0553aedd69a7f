//! What the matrix, convolution and normalisation lowerings read beyond `util`'s readers: float
//! inputs named by their role (an integer one is an unsupported dtype), the outputs and
//! attributes an op computes and accepts (any other is refused), flags and lists of sizes.

use curvature_tape::Var;

use super::util::attr_int;
use super::{node_error, unsupported, Val};
use crate::ir::{Attribute, Node};
use crate::Result;

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

/// The `INT` attribute `name` (default `default`), which must be 0 or 1.
pub(super) fn flag_attr(node: &Node, name: &str, default: bool) -> Result<bool> {
    match attr_int(node, name, i64::from(default))? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(node_error(
            node,
            format!("attribute '{name}' must be 0 or 1, got {v}"),
        )),
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

/// The product of `dims`, or an error naming the node when it overflows.
pub(super) fn product(node: &Node, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| node_error(node, format!("the size of {dims:?} overflows")))
}
