//! Pooling in PyTorch's layout `[N, C, H, W]`: max and average pooling as `unfold2d` and a
//! reduction over the window's taps; adaptive average pooling as two products with averaging
//! matrices (it is separable: the mean over a rectangle is the mean of the row means).

use crate::ops::conv::Window2d;
use crate::{DType, Device, Result, Shape, Tensor, TensorError};

/// A checked pooling: the window, the unfolded input viewed as `taps` `[N, C, kh·kw, oh·ow]`
/// (reduced over axis 2), and the `output` `[N, C, oh, ow]`. `Tensor::max_pool2d` and
/// `avg_pool2d` and the tape's differentiable pools all follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    /// The pooling window (unit dilation).
    pub window: Window2d,
    /// The unfolded input as `[N, C, kh·kw, oh·ow]`, reduced over axis 2.
    pub taps: Vec<usize>,
    /// The output `[N, C, oh, ow]`.
    pub output: Vec<usize>,
}

impl PoolPlan {
    /// The plan of pooling an input of shape `x` (`[N, C, H, W]`) over windows of `kernel`
    /// with `stride` and `padding`, named `op` in errors. As in PyTorch, the padding may be at
    /// most half the kernel (so every window overlaps the input).
    pub fn new(
        op: &'static str,
        x: &Shape,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<PoolPlan> {
        let invalid = |msg: String| TensorError::InvalidArgument { op, msg };
        let &[n, c, h, w] = x.dims() else {
            return Err(invalid(format!("needs an input [N, C, H, W], got {x}")));
        };
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return Err(invalid(format!(
                "padding {padding:?} must be at most half the kernel {kernel:?} (input {x})"
            )));
        }
        let window = Window2d {
            kernel,
            stride,
            padding,
            dilation: (1, 1),
        };
        let (oh, ow) = window.output_size(op, (h, w))?;
        // kh·kw·oh·ow ≤ the padded image's area times kh·kw, which the unfold checks; the
        // product is checked here too so the plan alone never overflows.
        let too_large = || TensorError::ShapeTooLarge {
            op,
            dims: vec![n, c, kernel.0, kernel.1, oh, ow],
        };
        let taps = kernel.0.checked_mul(kernel.1).ok_or_else(too_large)?;
        let positions = oh.checked_mul(ow).ok_or_else(too_large)?;
        let taps = Shape::for_op(op, vec![n, c, taps, positions])?;
        let output = Shape::for_op(op, vec![n, c, oh, ow])?;
        Ok(PoolPlan {
            window,
            taps: taps.dims().to_vec(),
            output: output.dims().to_vec(),
        })
    }
}

/// The `[out_len, in_len]` matrix of adaptive average pooling along one axis: row i averages
/// input `floor(i·in/out) .. ceil((i + 1)·in/out)` (PyTorch's windows). Errors, naming `op`,
/// when either length is zero.
fn adaptive_matrix(
    op: &'static str,
    in_len: usize,
    out_len: usize,
    dtype: DType,
    device: Device,
) -> Result<Tensor> {
    if in_len == 0 || out_len == 0 {
        return Err(TensorError::InvalidArgument {
            op,
            msg: format!("input size {in_len} and output size {out_len} must be positive"),
        });
    }
    let shape = Shape::for_op(op, vec![out_len, in_len])?;
    // i·in ≤ out·in, the element count of a valid shape: no overflow.
    Tensor::from_fn(shape, dtype, device, |at| {
        let (i, j) = (at / in_len, at % in_len);
        let start = i * in_len / out_len;
        let end = ((i + 1) * in_len).div_ceil(out_len);
        if (start..end).contains(&j) {
            1.0 / (end - start) as f64
        } else {
            0.0
        }
    })
}

impl Tensor {
    /// 2-D max pooling of `[N, C, H, W]` (`torch.nn.functional.max_pool2d`): each output is the
    /// maximum of its window, the padding counting as −∞ (at most half the kernel). Computed as
    /// `unfold2d_filled(−∞)` and a maximum over the taps. Its derivative goes to the window's
    /// maximum (shared equally among ties), and its second derivative is zero.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        let plan = PoolPlan::new("max_pool2d", self.shape(), kernel, stride, padding)?;
        self.unfold2d_filled(&plan.window, f64::NEG_INFINITY)?
            .reshape(plan.taps.as_slice())?
            .max(2, false)?
            .reshape(plan.output.as_slice())
    }

    /// 2-D average pooling of `[N, C, H, W]` (`torch.nn.functional.avg_pool2d` with its
    /// defaults): each output is the sum of its window divided by kh·kw, padded zeros included
    /// (`count_include_pad`). Padding is at most half the kernel.
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        let plan = PoolPlan::new("avg_pool2d", self.shape(), kernel, stride, padding)?;
        self.unfold2d(&plan.window)?
            .reshape(plan.taps.as_slice())?
            .sum(&[2], false)?
            .div_scalar((kernel.0 * kernel.1) as f64)?
            .reshape(plan.output.as_slice())
    }

    /// Adaptive average pooling of `[N, C, H, W]` to `[N, C, oh, ow]`
    /// (`torch.nn.functional.adaptive_avg_pool2d`): output (i, j) averages rows
    /// `floor(i·H/oh) .. ceil((i + 1)·H/oh)` and the same columns for `j`. `(1, 1)` is global
    /// average pooling. Computed as `rows · x · colsᵀ` with the averaging matrices of
    /// [`Tensor::adaptive_avg_pool2d_matrices`].
    pub fn adaptive_avg_pool2d(&self, size: (usize, usize)) -> Result<Tensor> {
        let (rows, cols) = self.adaptive_avg_pool2d_matrices(size)?;
        rows.matmul(&self.matmul(&cols)?)
    }

    /// The averaging matrices of [`Tensor::adaptive_avg_pool2d`] for this input
    /// (`[N, C, H, W]`): rows `[oh, H]` and columns `[W, ow]` (already transposed), in this
    /// tensor's dtype and device. Errors on another rank or a zero size.
    pub fn adaptive_avg_pool2d_matrices(&self, size: (usize, usize)) -> Result<(Tensor, Tensor)> {
        const OP: &str = "adaptive_avg_pool2d";
        let &[_, _, h, w] = self.dims() else {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("needs an input [N, C, H, W], got {}", self.shape()),
            });
        };
        let rows = adaptive_matrix(OP, h, size.0, self.dtype(), self.device())?;
        let cols = adaptive_matrix(OP, w, size.1, self.dtype(), self.device())?.t()?;
        Ok((rows, cols))
    }
}
