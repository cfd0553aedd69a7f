//! Restricting an operator over all parameters θ to a subset of coordinates — one layer's or one
//! tensor's block of the Hessian — chosen by index or by parameter names with a glob.

use std::collections::HashSet;

use curvature_nn::Module;
use curvature_tensor::{DType, Device, Shape, Tensor};

pub use curvature_nn::glob_match;

use crate::alloc;
use crate::error::invalid;
use crate::operator::{apply, check_batch, LinearOperator};
use crate::Result;

/// One parameter tensor's place in the flattened parameter vector θ (the order of
/// [`Module::named_parameters`], each tensor flattened row-major): coordinates
/// `offset .. offset + len`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterBlock {
    /// The parameter's name (`0.weight`, `attn.in_proj_weight`, …).
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Its first coordinate in θ.
    pub offset: usize,
    /// Its element count.
    pub len: usize,
}

/// The blocks of every parameter of `model`, in order: offsets are the running sums of the
/// element counts (checked; an overflow is an error).
pub fn parameter_blocks<M: Module + ?Sized>(model: &M) -> Result<Vec<ParameterBlock>> {
    let mut offset = 0usize;
    let mut out = Vec::new();
    for (name, tensor) in model.named_parameters() {
        let len = tensor.elem_count();
        let block = ParameterBlock {
            name,
            shape: tensor.shape().clone(),
            offset,
            len,
        };
        offset = alloc::sum("parameter_blocks", "the parameters", &[offset, len])?;
        out.push(block);
    }
    Ok(out)
}

/// The blocks whose names match `pattern` ([`glob_match`]), in order; no match is an error
/// naming the glob and every available name.
pub fn select_blocks(blocks: &[ParameterBlock], pattern: &str) -> Result<Vec<ParameterBlock>> {
    let chosen: Vec<ParameterBlock> = blocks
        .iter()
        .filter(|b| glob_match(pattern, &b.name))
        .cloned()
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
        return Err(invalid(
            "select_blocks",
            format!(
                "no parameter matches the glob {pattern:?}; the parameters are [{}]",
                names.join(", ")
            ),
        ));
    }
    Ok(chosen)
}

/// The restriction `S·H·Sᵀ` of an operator H over θ to the coordinates `indices` (S selects
/// them): `apply_batch` scatters the `[K, p]` rows into `[K, dim]` zeros
/// ([`Tensor::index_add`]), applies H and gathers the same columns
/// ([`Tensor::index_select`]), so every estimator runs on the block. Row and column j of the
/// block are coordinate `indices[j]` of θ.
pub struct Restricted<'a, O: LinearOperator + ?Sized> {
    inner: &'a O,
    indices: Vec<usize>,
    names: Vec<String>,
}

impl<'a, O: LinearOperator + ?Sized> Restricted<'a, O> {
    /// The restriction to `indices`, which must be non-empty, below `inner.dim()` and distinct.
    pub fn new(inner: &'a O, indices: Vec<usize>) -> Result<Restricted<'a, O>> {
        const OP: &str = "Restricted::new";
        if indices.is_empty() {
            return Err(invalid(OP, "needs at least one coordinate"));
        }
        let dim = inner.dim();
        if let Some(&bad) = indices.iter().find(|&&i| i >= dim) {
            return Err(invalid(
                OP,
                format!("coordinate {bad} is outside the operator's dimension {dim}"),
            ));
        }
        let mut seen = HashSet::with_capacity(indices.len());
        if let Some(&dup) = indices.iter().find(|&&i| !seen.insert(i)) {
            return Err(invalid(OP, format!("coordinate {dup} is listed twice")));
        }
        Ok(Restricted {
            inner,
            indices,
            names: Vec::new(),
        })
    }

    /// The restriction to the coordinates of `blocks`, in order (their names are kept). The
    /// blocks must lie inside the operator and not overlap.
    pub fn from_blocks(inner: &'a O, blocks: &[ParameterBlock]) -> Result<Restricted<'a, O>> {
        const OP: &str = "Restricted::from_blocks";
        let total = alloc::sum(
            OP,
            "the selected blocks",
            &blocks.iter().map(|b| b.len).collect::<Vec<_>>(),
        )?;
        let mut indices = alloc::with_capacity(OP, "the selected coordinates", total)?;
        for b in blocks {
            let end = alloc::sum(OP, "the block's end", &[b.offset, b.len])?;
            if end > inner.dim() {
                return Err(invalid(
                    OP,
                    format!(
                        "block {:?} ({}..{end}) is outside the operator's dimension {}",
                        b.name,
                        b.offset,
                        inner.dim()
                    ),
                ));
            }
            indices.extend(b.offset..end);
        }
        let mut restricted = Restricted::new(inner, indices)?;
        restricted.names = blocks.iter().map(|b| b.name.clone()).collect();
        Ok(restricted)
    }

    /// The restriction to the parameters of `model` whose names match `pattern`
    /// ([`glob_match`]): `inner` must be an operator over all of `model`'s parameters (its
    /// dimension is their total element count). No match is an error naming the glob and the
    /// available names.
    pub fn by_glob<M: Module + ?Sized>(
        inner: &'a O,
        model: &M,
        pattern: &str,
    ) -> Result<Restricted<'a, O>> {
        let blocks = parameter_blocks(model)?;
        let total = blocks.last().map_or(0, |b| b.offset + b.len);
        if total != inner.dim() {
            return Err(invalid(
                "Restricted::by_glob",
                format!(
                    "the model has {total} parameters but the operator has dimension {}",
                    inner.dim()
                ),
            ));
        }
        let chosen = select_blocks(&blocks, pattern)?;
        Restricted::from_blocks(inner, &chosen)
    }

    /// The coordinates of θ the block keeps, in order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The names of the parameters it keeps (empty when built from indices).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for Restricted<'_, O> {
    fn dim(&self) -> usize {
        self.indices.len()
    }

    fn dtype(&self) -> DType {
        self.inner.dtype()
    }

    fn device(&self) -> Device {
        self.inner.device()
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        check_batch("Restricted::apply_batch", self, v)?;
        let full = v.index_add(1, &self.indices, self.inner.dim())?;
        Ok(apply(self.inner, &full)?.index_select(1, &self.indices)?)
    }
}
