//! Choosing an imported model's trainable parameters among its initializers, and their place
//! in the flat parameter vector θ.

use curvature_nn::glob_match;
use curvature_tensor::io::shown;

use crate::ir::HostTensor;
use crate::{OnnxError, Result};

/// How many initializer names an error about a glob lists at most.
const LISTED_NAMES: usize = 12;

/// One parameter's place in θ (the selected initializers flattened row-major and concatenated
/// in the graph's initializer order): coordinates `offset .. offset + len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxParameter {
    /// The initializer's name.
    pub name: String,
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// Its first coordinate in θ.
    pub offset: usize,
    /// Its element count.
    pub len: usize,
}

/// The positions in `initializers` of the trainable parameters, in order. Without globs:
/// every floating-point initializer with more than one element. With globs (`*` any run of
/// characters, `?` one character): every floating-point initializer whose name some glob
/// matches; a glob that matches none is an error listing the available names.
pub fn select_parameters(initializers: &[HostTensor], globs: &[String]) -> Result<Vec<usize>> {
    let floats = || {
        initializers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.elem_type.is_float())
    };
    if globs.is_empty() {
        return Ok(floats()
            .filter(|(_, t)| t.dims.iter().product::<usize>() > 1)
            .map(|(i, _)| i)
            .collect());
    }
    for glob in globs {
        if !floats().any(|(_, t)| glob_match(glob, &t.name)) {
            let names: Vec<String> = floats()
                .take(LISTED_NAMES)
                .map(|(_, t)| shown(&t.name))
                .collect();
            let total = floats().count();
            let more = if total > LISTED_NAMES {
                format!(", … ({} more)", total - LISTED_NAMES)
            } else {
                String::new()
            };
            return Err(OnnxError::Selection(format!(
                "'{}' matches no floating-point initializer (available: {}{more})",
                shown(glob),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    Ok(floats()
        .filter(|(_, t)| globs.iter().any(|g| glob_match(g, &t.name)))
        .map(|(i, _)| i)
        .collect())
}

/// The layout in θ of the initializers at `chosen`; an offset overflowing `usize` is an error.
pub fn parameter_layout(
    initializers: &[HostTensor],
    chosen: &[usize],
) -> Result<Vec<OnnxParameter>> {
    let mut offset = 0usize;
    chosen
        .iter()
        .map(|&i| {
            let t = &initializers[i];
            let len = t.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let entry = len.and_then(|len| {
                let start = offset;
                offset = offset.checked_add(len)?;
                Some(OnnxParameter {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    offset: start,
                    len,
                })
            });
            entry.ok_or_else(|| {
                OnnxError::Selection(format!(
                    "the parameters' sizes overflow at '{}'",
                    shown(&t.name)
                ))
            })
        })
        .collect()
}
