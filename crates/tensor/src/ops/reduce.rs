//! Reductions: sum, mean, sum_to, max, logsumexp, log_softmax.

use crate::backend::ReduceOp;
use crate::plan::Prim;
use crate::{IntoShape, Result, Shape, Tensor, TensorError};

impl Tensor {
    /// Σ of all elements, a scalar `[]`.
    pub fn sum_all(&self) -> Result<Tensor> {
        let flat = self.reshape([1, self.elem_count(), 1])?;
        flat.reduce_axis(ReduceOp::Sum, 1)?.reshape(Shape::scalar())
    }

    /// Mean of all elements, a scalar `[]`.
    pub fn mean_all(&self) -> Result<Tensor> {
        if self.elem_count() == 0 {
            return Err(TensorError::Empty { op: "mean_all" });
        }
        self.sum_all()?.div_scalar(self.elem_count() as f64)
    }

    /// Σ over `axes` (negative axes count from the end); `keepdim` keeps them with length 1.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::Sum, "sum", axes, keepdim)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let resolved = self.resolve_axes("mean", axes)?;
        let count: usize = resolved.iter().map(|&a| self.dims()[a]).product();
        if count == 0 {
            return Err(TensorError::Empty { op: "mean" });
        }
        self.sum(axes, keepdim)?.div_scalar(count as f64)
    }

    /// Maximum over one axis.
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = self.shape().axis("max", axis)?;
        if self.dims()[a] == 0 {
            return Err(TensorError::Empty { op: "max" });
        }
        self.reduce_axes(ReduceOp::Max, "max", &[axis], keepdim)
    }

    /// Maximum of all elements, a scalar `[]`.
    pub fn max_all(&self) -> Result<Tensor> {
        if self.elem_count() == 0 {
            return Err(TensorError::Empty { op: "max_all" });
        }
        let flat = self.reshape([1, self.elem_count(), 1])?;
        flat.reduce_axis(ReduceOp::Max, 1)?.reshape(Shape::scalar())
    }

    /// Sums a broadcast result back to `shape`: the reverse of broadcasting `shape` to this
    /// tensor's shape (leading axes are summed away, axes of length 1 summed with keepdim).
    pub fn sum_to(&self, shape: impl IntoShape) -> Result<Tensor> {
        let shape = shape.into_shape("sum_to")?;
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let mismatch = || TensorError::ShapeMismatch {
            op: "sum_to",
            expected: shape.clone(),
            got: self.shape().clone(),
        };
        if shape.rank() > self.rank() {
            return Err(mismatch());
        }
        let lead = self.rank() - shape.rank();
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            let own = self.dims()[lead + i];
            if d == 1 && own != 1 {
                axes.push((lead + i) as isize);
            } else if d != own {
                return Err(mismatch());
            }
        }
        self.sum(&axes, true)?.reshape(shape)
    }

    /// log Σ exp over `axis`, computed stably.
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let (moved, rows, cols) = self.with_axis_last("logsumexp", axis)?;
        let mut dims = moved.dims().to_vec();
        dims.pop();
        let shape = Shape::for_op("logsumexp", dims)?;
        let reduced = moved.apply_prim_to(Prim::LogSumExp { rows, cols }, &[], shape)?;
        if keepdim {
            let a = self.shape().axis("logsumexp", axis)?;
            reduced.unsqueeze(a)
        } else {
            Ok(reduced)
        }
    }

    /// x − logsumexp(x) over `axis`, computed stably.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("log_softmax", axis)?;
        let (moved, rows, cols) = self.with_axis_last("log_softmax", axis)?;
        let shape = moved.shape().clone();
        let out = moved.apply_prim_to(Prim::LogSoftmax { rows, cols }, &[], shape)?;
        // Move the last axis back to `a` (the inverse of `with_axis_last`'s permutation).
        let mut back: Vec<usize> = (0..self.rank() - 1).collect();
        back.insert(a, self.rank() - 1);
        out.permute(&back)
    }

    /// This tensor with `axis` moved last and the other axes in their order (a permutation,
    /// not a swap: a swap would reorder the remaining axes when `axis` is not one of the
    /// last two), and its `[rows, cols]` view.
    fn with_axis_last(&self, op: &'static str, axis: isize) -> Result<(Tensor, usize, usize)> {
        let a = self.shape().axis(op, axis)?;
        if self.dims()[a] == 0 {
            return Err(TensorError::Empty { op });
        }
        let mut perm: Vec<usize> = (0..self.rank()).filter(|&d| d != a).collect();
        perm.push(a);
        let moved = self.permute(&perm)?;
        let cols = self.dims()[a];
        Ok((moved, self.elem_count() / cols, cols))
    }

    fn resolve_axes(&self, op: &'static str, axes: &[isize]) -> Result<Vec<usize>> {
        let mut resolved = axes
            .iter()
            .map(|&a| self.shape().axis(op, a))
            .collect::<Result<Vec<_>>>()?;
        resolved.sort_unstable();
        resolved.dedup();
        Ok(resolved)
    }

    fn reduce_axes(
        &self,
        op: ReduceOp,
        name: &'static str,
        axes: &[isize],
        keepdim: bool,
    ) -> Result<Tensor> {
        let resolved = self.resolve_axes(name, axes)?;
        let mut out = self.clone();
        for &axis in resolved.iter().rev() {
            out = out.reduce_axis(op, axis)?;
        }
        if keepdim {
            return Ok(out);
        }
        let dims: Vec<usize> = (0..self.rank())
            .filter(|d| !resolved.contains(d))
            .map(|d| self.dims()[d])
            .collect();
        out.reshape(dims)
    }

    /// Reduces one axis, keeping it with length 1.
    fn reduce_axis(&self, op: ReduceOp, axis: usize) -> Result<Tensor> {
        let outer: usize = self.dims()[..axis].iter().product();
        let inner: usize = self.dims()[axis + 1..].iter().product();
        let reduced = self.dims()[axis];
        let mut dims = self.dims().to_vec();
        dims[axis] = 1;
        let prim = Prim::Reduce {
            op,
            outer,
            reduced,
            inner,
        };
        self.apply_prim_to(prim, &[], Shape::for_op(op.name(), dims)?)
    }
}
