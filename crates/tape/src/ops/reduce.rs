//! Reductions on variables.

use curvature_tensor::IntoShape;

use crate::op::Op;
use crate::{Result, Var};

impl Var {
    /// Σ of all elements (a scalar); derivative: ones.
    pub fn sum_all(&self) -> Result<Var> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    /// Mean of all elements (a scalar). 16-bit values are scaled before they are summed, so a
    /// mean in range never overflows through its sum.
    pub fn mean_all(&self) -> Result<Var> {
        let count = self.value().elem_count().max(1) as f64;
        if self.value().dtype().is_half() {
            // Scaled first, so a sum beyond the 16-bit range never has to be stored.
            return self.div_scalar(count)?.sum_all();
        }
        self.sum_all()?.div_scalar(count)
    }

    /// Σ over `axes`; derivative: the cotangent broadcast back.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        let value = self.value().sum(axes, keepdim)?;
        let mut resolved = axes
            .iter()
            .map(|&a| self.shape().axis("sum", a))
            .collect::<curvature_tensor::Result<Vec<_>>>()?;
        resolved.sort_unstable();
        resolved.dedup();
        self.tape().record(
            Op::Sum {
                axes: resolved,
                keepdim,
            },
            &[self],
            value,
        )
    }

    /// Mean over `axes` (16-bit values scaled before the sum, as in [`Var::mean_all`]).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        if self.value().dtype().is_half() {
            // Scaled first, so a sum beyond the 16-bit range never has to be stored.
            let mut resolved = axes
                .iter()
                .map(|&a| self.shape().axis("mean", a))
                .collect::<curvature_tensor::Result<Vec<_>>>()?;
            resolved.sort_unstable();
            resolved.dedup();
            let count: usize = resolved.iter().map(|&d| self.dims()[d]).product();
            return self.div_scalar(count.max(1) as f64)?.sum(axes, keepdim);
        }
        let before = self.value().elem_count();
        let summed = self.sum(axes, keepdim)?;
        let count = before / summed.value().elem_count().max(1);
        summed.div_scalar(count.max(1) as f64)
    }

    /// Sums a broadcast value back to `shape`; derivative: broadcast.
    pub fn sum_to(&self, shape: impl IntoShape) -> Result<Var> {
        let value = self.value().sum_to(shape)?;
        if value.shape() == self.shape() {
            return Ok(self.clone());
        }
        self.tape().record(Op::SumTo, &[self], value)
    }

    /// Maximum over `axis`; the derivative is shared equally among tied maxima.
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let value = self.value().max(axis, keepdim)?;
        let axis = self.shape().axis("max", axis)?;
        self.tape()
            .record(Op::Max { axis, keepdim }, &[self], value)
    }

    /// log Σ exp over `axis`; derivative: softmax.
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Var> {
        let value = self.value().logsumexp(axis, keepdim)?;
        let axis = self.shape().axis("logsumexp", axis)?;
        self.tape()
            .record(Op::LogSumExp { axis, keepdim }, &[self], value)
    }

    /// x − logsumexp(x) over `axis`; derivative g − softmax·Σg.
    pub fn log_softmax(&self, axis: isize) -> Result<Var> {
        let value = self.value().log_softmax(axis)?;
        let axis = self.shape().axis("log_softmax", axis)?;
        self.tape().record(Op::LogSoftmax { axis }, &[self], value)
    }

    /// The trace of a matrix; derivative g·I.
    pub fn trace(&self) -> Result<Var> {
        let value = self.value().trace()?;
        self.tape().record(Op::Trace, &[self], value)
    }
}
