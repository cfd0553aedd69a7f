//! Convolution and pooling on variables, built from the same steps as the tensor ops
//! (`ConvPlan`, `PoolPlan`): `unfold2d` (whose derivative is `fold2d`, and `fold2d`'s is
//! `unfold2d`: both linear), reshapes, batched matmul and reductions, so every derivative, of
//! any order, comes from those ops' rules.

use curvature_tensor::{Conv1dOptions, Conv2dOptions, ConvPlan, PoolPlan, Window2d};

use crate::op::Op;
use crate::{Result, Var};

impl Var {
    /// im2col ([`Tensor::unfold2d`](curvature_tensor::Tensor::unfold2d)); derivative: `fold2d`.
    pub fn unfold2d(&self, window: &Window2d) -> Result<Var> {
        self.unfold2d_filled(window, 0.0)
    }

    /// im2col with `fill` in the padding; derivative: `fold2d` (the padding is constant).
    pub fn unfold2d_filled(&self, window: &Window2d, fill: f64) -> Result<Var> {
        let value = self.value().unfold2d_filled(window, fill)?;
        let size = (self.dims()[2], self.dims()[3]);
        let op = Op::Unfold {
            window: *window,
            size,
        };
        self.tape().record(op, &[self], value)
    }

    /// col2im ([`Tensor::fold2d`](curvature_tensor::Tensor::fold2d)); derivative: `unfold2d`.
    pub fn fold2d(&self, size: (usize, usize), window: &Window2d) -> Result<Var> {
        let value = self.value().fold2d(size, window)?;
        self.tape()
            .record(Op::Fold { window: *window }, &[self], value)
    }

    /// 2-D convolution ([`Tensor::conv2d`](curvature_tensor::Tensor::conv2d)), differentiable
    /// in the input and the weight to any order.
    pub fn conv2d(
        &self,
        weight: &Var,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var> {
        let options = Conv2dOptions {
            stride,
            padding,
            ..Conv2dOptions::default()
        };
        self.conv2d_with(weight, &options)
    }

    /// 2-D convolution with stride, padding, dilation and groups
    /// ([`Tensor::conv2d_with`](curvature_tensor::Tensor::conv2d_with)).
    pub fn conv2d_with(&self, weight: &Var, options: &Conv2dOptions) -> Result<Var> {
        self.check_tape("conv2d", weight)?;
        self.value().check_same_kind("conv2d", weight.value())?;
        let plan = ConvPlan::conv2d(self.shape(), weight.shape(), options)?;
        self.convolve(weight, &plan)
    }

    /// 1-D convolution ([`Tensor::conv1d`](curvature_tensor::Tensor::conv1d)).
    pub fn conv1d(&self, weight: &Var, stride: usize, padding: usize) -> Result<Var> {
        let options = Conv1dOptions {
            stride,
            padding,
            ..Conv1dOptions::default()
        };
        self.conv1d_with(weight, &options)
    }

    /// 1-D convolution with stride, padding, dilation and groups
    /// ([`Tensor::conv1d_with`](curvature_tensor::Tensor::conv1d_with)).
    pub fn conv1d_with(&self, weight: &Var, options: &Conv1dOptions) -> Result<Var> {
        self.check_tape("conv1d", weight)?;
        self.value().check_same_kind("conv1d", weight.value())?;
        let plan = ConvPlan::conv1d(self.shape(), weight.shape(), options)?;
        self.convolve(weight, &plan)
    }

    fn convolve(&self, weight: &Var, plan: &ConvPlan) -> Result<Var> {
        let columns = self
            .reshape(plan.image.as_slice())?
            .unfold2d(&plan.window)?
            .reshape(plan.columns.as_slice())?;
        weight
            .reshape(plan.weight.as_slice())?
            .matmul(&columns)?
            .reshape(plan.output.as_slice())
    }

    /// 2-D max pooling ([`Tensor::max_pool2d`](curvature_tensor::Tensor::max_pool2d)): the
    /// derivative goes to each window's maximum (shared equally among ties); the second
    /// derivative is zero.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var> {
        let plan = PoolPlan::new("max_pool2d", self.shape(), kernel, stride, padding)?;
        self.unfold2d_filled(&plan.window, f64::NEG_INFINITY)?
            .reshape(plan.taps.as_slice())?
            .max(2, false)?
            .reshape(plan.output.as_slice())
    }

    /// 2-D average pooling, padded zeros counted
    /// ([`Tensor::avg_pool2d`](curvature_tensor::Tensor::avg_pool2d)).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var> {
        let plan = PoolPlan::new("avg_pool2d", self.shape(), kernel, stride, padding)?;
        self.unfold2d(&plan.window)?
            .reshape(plan.taps.as_slice())?
            .sum(&[2], false)?
            .div_scalar((kernel.0 * kernel.1) as f64)?
            .reshape(plan.output.as_slice())
    }

    /// Adaptive average pooling to `size` = (oh, ow); `(1, 1)` is global average pooling
    /// ([`Tensor::adaptive_avg_pool2d`](curvature_tensor::Tensor::adaptive_avg_pool2d)).
    pub fn adaptive_avg_pool2d(&self, size: (usize, usize)) -> Result<Var> {
        let (rows, cols) = self.value().adaptive_avg_pool2d_matrices(size)?;
        self.constant(rows)
            .matmul(&self.matmul(&self.constant(cols))?)
    }
}
