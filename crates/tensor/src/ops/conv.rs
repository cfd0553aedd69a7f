//! Convolution in PyTorch's layouts (`[N, C, L]`, `[N, C, H, W]`, weight `[O, C/groups, k…]`),
//! computed as im2col (`unfold2d`, a backend primitive) followed by one batched GEMM. 1-D
//! convolution is 2-D convolution of an image of height 1.

use crate::plan::Prim;
use crate::{Result, Shape, Tensor, TensorError};

/// A 2-D sliding window along (height, width): kernel extent, stride, zero padding on both
/// sides, and dilation (the step between kernel taps), as in `torch.nn.functional.unfold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window2d {
    /// Kernel extent (kh, kw).
    pub kernel: (usize, usize),
    /// Step between window positions.
    pub stride: (usize, usize),
    /// Padding added before and after each axis.
    pub padding: (usize, usize),
    /// Step between kernel taps.
    pub dilation: (usize, usize),
}

impl Window2d {
    /// A window of extent `kernel` with unit stride and dilation and no padding.
    pub fn new(kernel: (usize, usize)) -> Window2d {
        Window2d {
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    /// The number of window positions along each axis of an image of `size` = (H, W):
    /// PyTorch's `(size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`. Errors, naming
    /// `op`, when an extent, kernel, stride or dilation is zero, when the dilated kernel is
    /// larger than the padded image, or when the arithmetic overflows.
    pub fn output_size(&self, op: &'static str, size: (usize, usize)) -> Result<(usize, usize)> {
        let along = |axis, size, kernel, stride, padding, dilation| {
            positions(op, axis, size, kernel, stride, padding, dilation)
        };
        Ok((
            along(
                "height",
                size.0,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            along(
                "width",
                size.1,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }
}

/// Window positions along one axis (see [`Window2d::output_size`]).
fn positions(
    op: &'static str,
    axis: &str,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize> {
    let invalid = |msg: String| TensorError::InvalidArgument { op, msg };
    if size == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return Err(invalid(format!(
            "{axis}: input size {size}, kernel {kernel}, stride {stride} and dilation {dilation} \
             must all be positive"
        )));
    }
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1));
    let padded = padding.checked_mul(2).and_then(|p| p.checked_add(size));
    let (Some(span), Some(padded)) = (span, padded) else {
        return Err(invalid(format!(
            "{axis}: size {size} with padding {padding}, kernel {kernel} and dilation {dilation} \
             overflows"
        )));
    };
    if span > padded {
        return Err(invalid(format!(
            "{axis}: the kernel spans {span} (kernel {kernel}, dilation {dilation}) but the \
             padded input has {padded} (size {size}, padding {padding})"
        )));
    }
    Ok((padded - span) / stride + 1)
}

/// The geometry of one unfold / fold: an image `[batch, channels, H, W]`, a window, and the
/// number of window positions `out` = (oh, ow). Columns are `[batch, channels·kh·kw, oh·ow]`.
/// Both element counts are valid tensor sizes once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Im2Col {
    /// N.
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// The image's (H, W).
    pub size: (usize, usize),
    /// The sliding window.
    pub window: Window2d,
    /// Window positions (oh, ow).
    pub out: (usize, usize),
}

impl Im2Col {
    /// The geometry of `window` over an image of shape `image` (`[N, C, H, W]`), with the
    /// image and column shapes checked.
    fn new(op: &'static str, image: &Shape, window: &Window2d) -> Result<(Im2Col, Shape)> {
        let &[batch, channels, h, w] = image.dims() else {
            return Err(TensorError::InvalidArgument {
                op,
                msg: format!("needs an image [N, C, H, W], got {image}"),
            });
        };
        let out = window.output_size(op, (h, w))?;
        let geometry = Im2Col {
            batch,
            channels,
            size: (h, w),
            window: *window,
            out,
        };
        let too_large = || TensorError::ShapeTooLarge {
            op,
            dims: vec![
                batch,
                channels,
                window.kernel.0,
                window.kernel.1,
                out.0,
                out.1,
            ],
        };
        let rows = channels
            .checked_mul(window.kernel.0)
            .and_then(|r| r.checked_mul(window.kernel.1))
            .ok_or_else(too_large)?;
        let cols = out.0.checked_mul(out.1).ok_or_else(too_large)?;
        let columns = Shape::for_op(op, vec![batch, rows, cols])?;
        Ok((geometry, columns))
    }

    /// Elements of the image `[N, C, H, W]`.
    pub fn image_len(&self) -> usize {
        self.batch * self.channels * self.size.0 * self.size.1
    }

    /// Elements of the columns `[N, C·kh·kw, oh·ow]`.
    pub fn columns_len(&self) -> usize {
        self.batch
            * self.channels
            * self.window.kernel.0
            * self.window.kernel.1
            * self.out.0
            * self.out.1
    }

    /// The table the CUDA kernels read: N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow.
    pub fn table(&self) -> [usize; 14] {
        let w = &self.window;
        [
            self.batch,
            self.channels,
            self.size.0,
            self.size.1,
            w.kernel.0,
            w.kernel.1,
            w.stride.0,
            w.stride.1,
            w.padding.0,
            w.padding.1,
            w.dilation.0,
            w.dilation.1,
            self.out.0,
            self.out.1,
        ]
    }
}

/// Options of [`Tensor::conv2d_with`]; `Default` is PyTorch's: stride 1, no padding, no
/// dilation, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between output positions (height, width).
    pub stride: (usize, usize),
    /// Zeros added before and after each spatial axis.
    pub padding: (usize, usize),
    /// Step between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels are split into `groups` blocks, output block
    /// `g` seeing only input block `g`.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Options of [`Tensor::conv1d_with`]; `Default` is PyTorch's: stride 1, no padding, no
/// dilation, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dOptions {
    /// Step between output positions.
    pub stride: usize,
    /// Zeros added before and after the sequence.
    pub padding: usize,
    /// Step between kernel taps.
    pub dilation: usize,
    /// Channel groups (see [`Conv2dOptions::groups`]).
    pub groups: usize,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl From<&Conv1dOptions> for Conv2dOptions {
    /// The 2-D options of a 1-D convolution seen as an image of height 1.
    fn from(o: &Conv1dOptions) -> Conv2dOptions {
        Conv2dOptions {
            stride: (1, o.stride),
            padding: (0, o.padding),
            dilation: (1, o.dilation),
            groups: o.groups,
        }
    }
}

/// A checked convolution: the shapes its steps reshape to. The input `image` `[N, C, H, W]`
/// is unfolded by `window` into `[N, C·kh·kw, oh·ow]`, viewed as `columns` `[N, g, C/g·kh·kw,
/// oh·ow]`; the weight viewed as `weight` `[g, O/g, C/g·kh·kw]` multiplies it (one batched
/// GEMM) into `[N, g, O/g, oh·ow]`, viewed as `output` (`[N, O, oh, ow]`, or `[N, O, L]` in
/// 1-D). `Tensor::conv2d_with` and the tape's differentiable convolution both follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvPlan {
    /// The window the input is unfolded by (the weight's kernel with the options).
    pub window: Window2d,
    /// The input as an image `[N, C, H, W]` (height 1 in 1-D).
    pub image: Vec<usize>,
    /// The unfolded input grouped: `[N, groups, C/groups·kh·kw, oh·ow]`.
    pub columns: Vec<usize>,
    /// The weight grouped: `[groups, O/groups, C/groups·kh·kw]`.
    pub weight: Vec<usize>,
    /// The output: `[N, O, oh, ow]`, or `[N, O, L]` in 1-D.
    pub output: Vec<usize>,
}

impl ConvPlan {
    /// The plan of `conv2d` of an input of shape `x` (`[N, C, H, W]`) by a weight of shape `w`
    /// (`[O, C/groups, kh, kw]`), or the error naming what does not fit.
    pub fn conv2d(x: &Shape, w: &Shape, options: &Conv2dOptions) -> Result<ConvPlan> {
        let (&[n, c, h, wd], &[o, cg, kh, kw]) = (x.dims(), w.dims()) else {
            return Err(rank_error(
                "conv2d",
                "[N, C, H, W]",
                "[O, C/groups, kh, kw]",
                x,
                w,
            ));
        };
        let plan = ConvPlan::new("conv2d", x, w, options, [n, c, h, wd], [o, cg, kh, kw])?;
        Ok(plan)
    }

    /// The plan of `conv1d` of an input of shape `x` (`[N, C, L]`) by a weight of shape `w`
    /// (`[O, C/groups, k]`): a 2-D convolution of height 1 with a `[N, O, L_out]` output.
    pub fn conv1d(x: &Shape, w: &Shape, options: &Conv1dOptions) -> Result<ConvPlan> {
        let (&[n, c, l], &[o, cg, k]) = (x.dims(), w.dims()) else {
            return Err(rank_error("conv1d", "[N, C, L]", "[O, C/groups, k]", x, w));
        };
        let mut plan = ConvPlan::new("conv1d", x, w, &options.into(), [n, c, 1, l], [o, cg, 1, k])?;
        plan.output.remove(2);
        Ok(plan)
    }

    fn new(
        op: &'static str,
        x: &Shape,
        w: &Shape,
        options: &Conv2dOptions,
        [n, c, h, wd]: [usize; 4],
        [o, cg, kh, kw]: [usize; 4],
    ) -> Result<ConvPlan> {
        let invalid = |msg: String| TensorError::InvalidArgument { op, msg };
        let g = options.groups;
        if g == 0 {
            return Err(invalid(format!(
                "groups must be positive (input {x}, weight {w})"
            )));
        }
        if c == 0 || o == 0 {
            return Err(invalid(format!(
                "needs at least one input and one output channel, got input {x} and weight {w}"
            )));
        }
        if cg.checked_mul(g) != Some(c) {
            return Err(invalid(format!(
                "input {x} has {c} channels but weight {w} with {g} groups expects {cg} × {g}"
            )));
        }
        if o % g != 0 {
            return Err(invalid(format!(
                "weight {w}: {o} output channels are not divisible by {g} groups"
            )));
        }
        let window = Window2d {
            kernel: (kh, kw),
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
        };
        let image = Shape::new(vec![n, c, h, wd]);
        let (geometry, columns) = Im2Col::new(op, &image, &window)?;
        let (oh, ow) = geometry.out;
        let [_, rows, positions] = columns.dims() else {
            return Err(invalid(format!(
                "columns {columns} are not [N, C·kh·kw, L]"
            )));
        };
        let per_group = rows / g;
        let output = Shape::for_op(op, vec![n, o, oh, ow])?;
        Ok(ConvPlan {
            window,
            image: image.dims().to_vec(),
            columns: vec![n, g, per_group, *positions],
            weight: vec![g, o / g, per_group],
            output: output.dims().to_vec(),
        })
    }
}

fn rank_error(
    op: &'static str,
    x_layout: &str,
    w_layout: &str,
    x: &Shape,
    w: &Shape,
) -> TensorError {
    TensorError::InvalidArgument {
        op,
        msg: format!("needs an input {x_layout} and a weight {w_layout}, got {x} and {w}"),
    }
}

impl Tensor {
    /// im2col, as `torch.nn.functional.unfold`: the image `[N, C, H, W]` as columns
    /// `[N, C·kh·kw, oh·ow]`, column `y·ow + x` holding the window at output position (y, x)
    /// (row `(c·kh + i)·kw + j` its tap (i, j) of channel c), zeros in the padding.
    pub fn unfold2d(&self, window: &Window2d) -> Result<Tensor> {
        self.unfold2d_filled(window, 0.0)
    }

    /// [`Tensor::unfold2d`] with `fill` in the padding (max pooling pads with −∞).
    pub fn unfold2d_filled(&self, window: &Window2d, fill: f64) -> Result<Tensor> {
        let (geometry, columns) = Im2Col::new("unfold2d", self.shape(), window)?;
        self.apply_prim_to(Prim::Unfold { geometry, fill }, &[], columns)
    }

    /// col2im, as `torch.nn.functional.fold` and the adjoint of [`Tensor::unfold2d`]: columns
    /// `[N, C·kh·kw, oh·ow]` summed back onto an image `[N, C, H, W]` of spatial `size`.
    pub fn fold2d(&self, size: (usize, usize), window: &Window2d) -> Result<Tensor> {
        let invalid = |msg: String| TensorError::InvalidArgument { op: "fold2d", msg };
        let &[n, rows, positions] = self.dims() else {
            return Err(invalid(format!(
                "needs columns [N, C·kh·kw, L], got {}",
                self.shape()
            )));
        };
        let (oh, ow) = window.output_size("fold2d", size)?;
        let taps = window.kernel.0.checked_mul(window.kernel.1);
        let Some(taps) = taps.filter(|&t| rows % t == 0) else {
            return Err(invalid(format!(
                "columns {} do not have a multiple of {} × {} rows",
                self.shape(),
                window.kernel.0,
                window.kernel.1
            )));
        };
        if oh.checked_mul(ow) != Some(positions) {
            return Err(invalid(format!(
                "columns {} need {oh} × {ow} window positions for an image of {} × {}",
                self.shape(),
                size.0,
                size.1
            )));
        }
        let image = Shape::for_op("fold2d", vec![n, rows / taps, size.0, size.1])?;
        let (geometry, _) = Im2Col::new("fold2d", &image, window)?;
        self.apply_prim_to(Prim::Fold { geometry }, &[], image)
    }

    /// 2-D convolution (cross-correlation, like PyTorch) of `[N, C, H, W]` by a weight
    /// `[O, C, kh, kw]`, with `stride` and zero `padding` per spatial axis: `[N, O, oh, ow]`.
    /// No bias (a layer adds it).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        let options = Conv2dOptions {
            stride,
            padding,
            ..Conv2dOptions::default()
        };
        self.conv2d_with(weight, &options)
    }

    /// 2-D convolution with every option of `torch.nn.functional.conv2d` (stride, padding,
    /// dilation, groups): `out[n, o, y, x] = Σ_{c, i, j} w[o, c, i, j] ·
    /// in[n, g·C/groups + c, y·sh − ph + i·dh, x·sw − pw + j·dw]` (zero outside the image),
    /// where g = o / (O/groups). Computed as `unfold2d` and one batched GEMM.
    pub fn conv2d_with(&self, weight: &Tensor, options: &Conv2dOptions) -> Result<Tensor> {
        self.check_same_kind("conv2d", weight)?;
        let plan = ConvPlan::conv2d(self.shape(), weight.shape(), options)?;
        self.convolve(weight, &plan)
    }

    /// 1-D convolution of `[N, C, L]` by a weight `[O, C, k]` with `stride` and zero `padding`:
    /// `[N, O, L_out]`. No bias.
    pub fn conv1d(&self, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
        let options = Conv1dOptions {
            stride,
            padding,
            ..Conv1dOptions::default()
        };
        self.conv1d_with(weight, &options)
    }

    /// 1-D convolution with every option of `torch.nn.functional.conv1d` (stride, padding,
    /// dilation, groups): the 2-D convolution of an image of height 1.
    pub fn conv1d_with(&self, weight: &Tensor, options: &Conv1dOptions) -> Result<Tensor> {
        self.check_same_kind("conv1d", weight)?;
        let plan = ConvPlan::conv1d(self.shape(), weight.shape(), options)?;
        self.convolve(weight, &plan)
    }

    /// Follows a checked [`ConvPlan`]: unfold, one batched GEMM, reshape.
    fn convolve(&self, weight: &Tensor, plan: &ConvPlan) -> Result<Tensor> {
        let columns = self
            .reshape(plan.image.as_slice())?
            .unfold2d(&plan.window)?
            .reshape(plan.columns.as_slice())?;
        weight
            .reshape(plan.weight.as_slice())?
            .matmul(&columns)?
            .reshape(plan.output.as_slice())
    }
}
