//! Differentiable indexing: `index_select` (an embedding lookup), its adjoint `index_add`, and
//! `gather`. Each is the other's derivative, so derivatives of any order stay in these two ops.

use std::sync::Arc;

use curvature_tensor::Indices;

use crate::op::Op;
use crate::{Result, Var};

impl Var {
    /// The entries `indices` of `axis`, in that order (`torch.index_select`; an embedding
    /// lookup is `table.index_select(0, &tokens)`). Derivative: [`Var::index_add`] of the
    /// cotangent, which sums the rows of repeated indices. An index outside `axis` is an error
    /// naming it and the axis length.
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Var> {
        let axis = self.shape().axis("index_select", axis)?;
        self.index_select_shared(axis, indices.into())
    }

    /// The adjoint of [`Var::index_select`]: `axis` becomes `len` long, entry `k` holding the
    /// sum of the slices `j` with `indices[j] == k` (see `Tensor::index_add`). Derivative:
    /// `index_select` of the cotangent.
    pub fn index_add(&self, axis: isize, indices: &[usize], len: usize) -> Result<Var> {
        let axis = self.shape().axis("index_add", axis)?;
        self.index_add_shared(axis, indices.into(), len)
    }

    /// `torch.gather` (see `Tensor::gather`): `out[e] = self[e with its axis coordinate
    /// replaced by index[e]]`. Recorded as an `index_select` of the flattened values, so its
    /// derivative is a deterministic `index_add`.
    pub fn gather(&self, axis: isize, index: &Indices) -> Result<Var> {
        let offsets = index.gather_offsets(axis, self.shape())?;
        self.reshape([self.value().elem_count()])?
            .index_select_shared(0, offsets.into())?
            .reshape(index.shape().clone())
    }

    /// [`Var::index_select`] of a resolved axis with shared indices (backward rules reuse them).
    pub(crate) fn index_select_shared(&self, axis: usize, indices: Arc<[usize]>) -> Result<Var> {
        let value = self.value().index_select(axis as isize, &indices)?;
        self.tape()
            .record(Op::IndexSelect { axis, indices }, &[self], value)
    }

    /// [`Var::index_add`] of a resolved axis with shared indices.
    pub(crate) fn index_add_shared(
        &self,
        axis: usize,
        indices: Arc<[usize]>,
        len: usize,
    ) -> Result<Var> {
        let value = self.value().index_add(axis as isize, &indices, len)?;
        self.tape()
            .record(Op::IndexAdd { axis, indices }, &[self], value)
    }
}
