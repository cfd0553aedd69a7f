//! Flat parameter vectors: splitting a `[P]` or `[K, P]` tensor into tensors shaped like a
//! module's parameters, and joining them back.

use curvature_tensor::{Shape, Tensor};

use crate::{NnError, Result};

/// P for these parameter shapes, with checked arithmetic.
pub(crate) fn total(op: &'static str, shapes: &[Shape]) -> Result<usize> {
    shapes.iter().try_fold(0usize, |sum, shape| {
        sum.checked_add(shape.elem_count())
            .ok_or_else(|| NnError::InvalidArgument {
                op,
                msg: "the parameters' element count overflows usize".to_string(),
            })
    })
}

/// `flat` (`[P]` or `[K, P]`) as one tensor per parameter, `[…shape]` or `[K, …shape]`.
pub(crate) fn split(named: &[(String, Tensor)], flat: &Tensor) -> Result<Vec<(String, Tensor)>> {
    const OP: &str = "split_flat";
    let shapes: Vec<Shape> = named.iter().map(|(_, t)| t.shape().clone()).collect();
    let p = total(OP, &shapes)?;
    let batch = match flat.dims() {
        [len] if *len == p => None,
        [k, len] if *len == p => Some(*k),
        _ => {
            return Err(NnError::InvalidArgument {
                op: OP,
                msg: format!(
                    "expected a [{p}] or [K, {p}] tensor for {} parameters, got {}",
                    named.len(),
                    flat.shape()
                ),
            })
        }
    };
    let axis = if batch.is_some() { 1 } else { 0 };
    let mut offset = 0;
    named
        .iter()
        .map(|(name, t)| {
            let len = t.elem_count();
            let mut dims: Vec<usize> = batch.into_iter().collect();
            dims.extend_from_slice(t.dims());
            let part = flat.narrow(axis, offset, len)?.reshape(dims)?;
            offset += len;
            Ok((name.clone(), part))
        })
        .collect()
}

/// `parts` (one per parameter, shaped like it, or `[K, …shape]` with one K when `batched`)
/// flattened and concatenated: `[P]` or `[K, P]`.
pub(crate) fn join(named: &[(String, Tensor)], parts: &[Tensor], batched: bool) -> Result<Tensor> {
    const OP: &str = "join_flat";
    if parts.len() != named.len() {
        return Err(NnError::LengthMismatch {
            what: "join_flat: one tensor per parameter",
            expected: named.len(),
            got: parts.len(),
        });
    }
    if parts.is_empty() {
        return Err(NnError::InvalidArgument {
            op: OP,
            msg: "the module has no parameters".to_string(),
        });
    }
    let k = match (batched, parts[0].dims().first()) {
        (false, _) => None,
        (true, Some(k)) => Some(*k),
        (true, None) => {
            return Err(NnError::InvalidArgument {
                op: OP,
                msg: "batched parts need a leading axis K, got a scalar".to_string(),
            })
        }
    };
    let mut flat = Vec::with_capacity(parts.len());
    for ((name, param), part) in named.iter().zip(parts) {
        let mut want: Vec<usize> = k.into_iter().collect();
        want.extend_from_slice(param.dims());
        if part.dims() != want.as_slice() {
            return Err(NnError::InvalidArgument {
                op: OP,
                msg: format!(
                    "parameter {name} needs shape {}, got {}",
                    Shape::new(want),
                    part.shape()
                ),
            });
        }
        flat.push(match k {
            Some(k) => part.reshape([k, param.elem_count()])?,
            None => part.reshape([param.elem_count()])?,
        });
    }
    let refs: Vec<&Tensor> = flat.iter().collect();
    Ok(Tensor::cat(&refs, if k.is_some() { 1 } else { 0 })?)
}
