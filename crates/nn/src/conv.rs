//! Convolution and pooling layers with PyTorch's layouts: inputs `[N, C, L]` (1-D) and
//! `[N, C, H, W]` (2-D), weights `[O, C/groups, k…]`, biases `[O]`.

use curvature_tape::Var;
use curvature_tensor::{Conv1dOptions, Conv2dOptions, DType, Device, Tensor};

use crate::init::FanInUniform;
use crate::layers::check_shapes;
use crate::module::check_param_count;
use crate::{Module, NnError, Result};

/// A 2-D convolution `y = conv2d(x, W) + b` (`torch.nn.Conv2d`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[O, C/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[O]`, or none.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// A layer with PyTorch's default initialisation, U(−1/√fan_in, 1/√fan_in) with
    /// fan_in = C/groups · kh · kw, drawn from `seed`.
    pub fn seeded(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        bias: bool,
        (dtype, device): (DType, Device),
        seed: u64,
    ) -> Result<Conv2d> {
        let per_group = channels_per_group("Conv2d", in_channels, out_channels, options.groups)?;
        let fan_in = per_group
            .checked_mul(kernel.0)
            .and_then(|f| f.checked_mul(kernel.1))
            .ok_or_else(|| too_large("Conv2d", "the kernel"))?;
        let mut init = FanInUniform::new(fan_in, dtype, device, seed);
        Ok(Conv2d {
            weight: init.draw([out_channels, per_group, kernel.0, kernel.1])?,
            bias: bias.then(|| init.draw([out_channels])).transpose()?,
            options,
        })
    }

    /// A layer from its weight `[O, C/groups, kh, kw]` and optional bias `[O]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, options: Conv2dOptions) -> Conv2d {
        Conv2d {
            weight,
            bias,
            options,
        }
    }
}

impl Module for Conv2d {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Conv2d", params, 1 + usize::from(self.bias.is_some()))?;
        let y = x.conv2d_with(&params[0], &self.options)?;
        add_channel_bias(y, params.get(1), 2)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        set_weight_and_bias("Conv2d", &mut self.weight, &mut self.bias, params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// A 1-D convolution `y = conv1d(x, W) + b` (`torch.nn.Conv1d`).
#[derive(Debug, Clone)]
pub struct Conv1d {
    /// `[O, C/groups, k]`.
    pub weight: Tensor,
    /// `[O]`, or none.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub options: Conv1dOptions,
}

impl Conv1d {
    /// A layer with PyTorch's default initialisation (fan_in = C/groups · k), from `seed`.
    pub fn seeded(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv1dOptions,
        bias: bool,
        (dtype, device): (DType, Device),
        seed: u64,
    ) -> Result<Conv1d> {
        let per_group = channels_per_group("Conv1d", in_channels, out_channels, options.groups)?;
        let fan_in = per_group
            .checked_mul(kernel)
            .ok_or_else(|| too_large("Conv1d", "the kernel"))?;
        let mut init = FanInUniform::new(fan_in, dtype, device, seed);
        Ok(Conv1d {
            weight: init.draw([out_channels, per_group, kernel])?,
            bias: bias.then(|| init.draw([out_channels])).transpose()?,
            options,
        })
    }

    /// A layer from its weight `[O, C/groups, k]` and optional bias `[O]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, options: Conv1dOptions) -> Conv1d {
        Conv1d {
            weight,
            bias,
            options,
        }
    }
}

impl Module for Conv1d {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Conv1d", params, 1 + usize::from(self.bias.is_some()))?;
        let y = x.conv1d_with(&params[0], &self.options)?;
        add_channel_bias(y, params.get(1), 1)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        set_weight_and_bias("Conv1d", &mut self.weight, &mut self.bias, params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// 2-D max pooling (`torch.nn.MaxPool2d`); its second derivative is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Windows of `kernel`, stride = kernel, no padding (PyTorch's defaults).
    pub fn new(kernel: (usize, usize)) -> MaxPool2d {
        MaxPool2d {
            kernel,
            stride: kernel,
            padding: (0, 0),
        }
    }
}

impl Module for MaxPool2d {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("MaxPool2d", params, 0)?;
        Ok(x.max_pool2d(self.kernel, self.stride, self.padding)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("MaxPool2d::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// 2-D average pooling with padded zeros counted (`torch.nn.AvgPool2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// Windows of `kernel`, stride = kernel, no padding (PyTorch's defaults).
    pub fn new(kernel: (usize, usize)) -> AvgPool2d {
        AvgPool2d {
            kernel,
            stride: kernel,
            padding: (0, 0),
        }
    }
}

impl Module for AvgPool2d {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("AvgPool2d", params, 0)?;
        Ok(x.avg_pool2d(self.kernel, self.stride, self.padding)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("AvgPool2d::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// Adaptive average pooling to a fixed output size (`torch.nn.AdaptiveAvgPool2d`); `(1, 1)`
/// is global average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    pub size: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pooling to `size` = (oh, ow).
    pub fn new(size: (usize, usize)) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { size }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("AdaptiveAvgPool2d", params, 0)?;
        Ok(x.adaptive_avg_pool2d(self.size)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("AdaptiveAvgPool2d::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// `[("weight", W), ("bias", b)]`, without the bias when there is none.
pub(crate) fn weight_and_bias(weight: &Tensor, bias: &Option<Tensor>) -> Vec<(String, Tensor)> {
    let mut named = vec![("weight".to_string(), weight.clone())];
    named.extend(bias.iter().map(|b| ("bias".to_string(), b.clone())));
    named
}

/// Replaces a weight and optional bias after checking the count and shapes.
pub(crate) fn set_weight_and_bias(
    layer: &'static str,
    weight: &mut Tensor,
    bias: &mut Option<Tensor>,
    params: &[Tensor],
) -> Result<()> {
    let mut current = vec![&*weight];
    current.extend(bias.iter());
    check_shapes(layer, &current, params)?;
    *weight = params[0].clone();
    if let Some(b) = bias {
        *b = params[1].clone();
    }
    Ok(())
}

/// `y + b` with `b` `[O]` broadcast over axis 1 of `y` `[N, O, …spatial]`.
fn add_channel_bias(y: Var, bias: Option<&Var>, spatial: usize) -> Result<Var> {
    let Some(bias) = bias else {
        return Ok(y);
    };
    let mut shape = vec![bias.value().elem_count()];
    shape.extend(std::iter::repeat_n(1, spatial));
    Ok(y.add(&bias.reshape(shape)?)?)
}

/// C/groups, after checking that groups divides both channel counts.
fn channels_per_group(
    layer: &'static str,
    inputs: usize,
    outputs: usize,
    groups: usize,
) -> Result<usize> {
    if groups == 0 || inputs % groups != 0 || outputs % groups != 0 {
        return Err(NnError::InvalidArgument {
            op: layer,
            msg: format!(
                "groups = {groups} must divide both the input channels ({inputs}) and the \
                 output channels ({outputs})"
            ),
        });
    }
    Ok(inputs / groups)
}

fn too_large(layer: &'static str, what: &str) -> NnError {
    NnError::InvalidArgument {
        op: layer,
        msg: format!("{what} has more elements than a tensor can hold"),
    }
}
