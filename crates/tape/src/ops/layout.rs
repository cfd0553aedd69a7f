//! Shape ops on variables.

use curvature_tensor::{IntoShape, Tensor};

use crate::op::Op;
use crate::{Result, TapeError, Var};

impl Var {
    /// The same values with a new shape; derivative: reshape back.
    pub fn reshape(&self, shape: impl IntoShape) -> Result<Var> {
        let value = self.value().reshape(shape)?;
        if value.shape() == self.shape() {
            return Ok(self.clone());
        }
        self.tape().record(Op::Reshape, &[self], value)
    }

    /// Inserts an axis of length 1.
    pub fn unsqueeze(&self, axis: usize) -> Result<Var> {
        let value = self.value().unsqueeze(axis)?;
        self.tape().record(Op::Reshape, &[self], value)
    }

    /// Reorders axes; derivative: the inverse permutation.
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let value = self.value().permute(perm)?;
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        self.tape()
            .record(Op::Permute(perm.to_vec()), &[self], value)
    }

    /// Swaps two axes.
    pub fn transpose(&self, axis0: isize, axis1: isize) -> Result<Var> {
        let a = self.shape().axis("transpose", axis0)?;
        let b = self.shape().axis("transpose", axis1)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two axes.
    pub fn t(&self) -> Result<Var> {
        if self.rank() < 2 {
            return Err(TapeError::InvalidArgument {
                op: "t",
                msg: format!("needs at least 2 dimensions, got {}", self.shape()),
            });
        }
        self.transpose(-2, -1)
    }

    /// Broadcasts to `shape`; derivative: `sum_to` back.
    pub fn broadcast_to(&self, shape: impl IntoShape) -> Result<Var> {
        let value = self.value().broadcast_to(shape)?;
        if value.shape() == self.shape() {
            return Ok(self.clone());
        }
        self.tape().record(Op::BroadcastTo, &[self], value)
    }

    /// Alias of [`Var::broadcast_to`].
    pub fn expand(&self, shape: impl IntoShape) -> Result<Var> {
        self.broadcast_to(shape)
    }

    /// `len` entries of `axis` from `start`; derivative: zero padding.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        let value = self.value().narrow(axis, start, len)?;
        if value.shape() == self.shape() {
            return Ok(self.clone());
        }
        let axis = self.shape().axis("narrow", axis)?;
        self.tape()
            .record(Op::Narrow { axis, start }, &[self], value)
    }

    /// Zero padding of `axis`; derivative: narrow.
    pub fn pad_zeros(&self, axis: isize, before: usize, after: usize) -> Result<Var> {
        let value = self.value().pad_zeros(axis, before, after)?;
        let axis = self.shape().axis("pad_zeros", axis)?;
        self.tape().record(Op::Pad { axis, before }, &[self], value)
    }

    /// Concatenation along `axis`; derivative: the matching slices.
    pub fn cat(vars: &[&Var], axis: isize) -> Result<Var> {
        let first = vars
            .first()
            .ok_or(curvature_tensor::TensorError::Empty { op: "cat" })?;
        for v in vars {
            first.check_tape("cat", v)?;
        }
        let values: Vec<&Tensor> = vars.iter().map(|v| v.value()).collect();
        let value = Tensor::cat(&values, axis)?;
        let axis = first.shape().axis("cat", axis)?;
        first.tape().record(Op::Cat { axis }, vars, value)
    }

    /// Stacks equally shaped variables along a new axis.
    pub fn stack(vars: &[&Var], axis: usize) -> Result<Var> {
        let unsqueezed = vars
            .iter()
            .map(|v| v.unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Var> = unsqueezed.iter().collect();
        Var::cat(&refs, axis as isize)
    }

    /// Picks `x[i, labels[i]]` from a `[n, classes]` matrix (for class labels), as the sum of
    /// a product with a one-hot mask, so its derivatives are those of `mul` and `sum`.
    pub fn gather_labels(&self, labels: &[usize]) -> Result<Var> {
        if self.rank() != 2 || self.dims()[0] != labels.len() {
            return Err(TapeError::InvalidArgument {
                op: "gather_labels",
                msg: format!(
                    "needs a [n, classes] matrix with one label per row, got {} and {} labels",
                    self.shape(),
                    labels.len()
                ),
            });
        }
        let mask = Tensor::one_hot(labels, self.dims()[1], self.dtype(), self.device())?;
        self.mul(&self.constant(mask))?.sum(&[1], false)
    }
}
