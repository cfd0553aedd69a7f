//! The module computing a layer, from its description and its tensors.

use curvature_tensor::{Conv1dOptions, Conv2dOptions, Tensor};

use super::LayerSpec;
use crate::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv1d, Conv2d, Dropout, Flatten,
    LayerNorm, Linear, MaxPool2d, Module, Result,
};

impl LayerSpec {
    /// The module computing the layer, from its tensors in [`LayerSpec::tensor_shapes`] order
    /// (already checked against those shapes).
    pub fn build(&self, tensors: Vec<Tensor>) -> Result<Box<dyn Module>> {
        let mut tensors = tensors.into_iter();
        let mut next = || {
            tensors
                .next()
                .ok_or_else(|| crate::NnError::InvalidArgument {
                    op: "LayerSpec::build",
                    msg: format!("{} needs more tensors", self.type_name()),
                })
        };
        Ok(match *self {
            LayerSpec::Linear { bias, .. } => {
                let weight = next()?;
                if !bias {
                    return Err(crate::NnError::InvalidArgument {
                        op: "LayerSpec::build",
                        msg: "Linear without a bias is not supported".to_string(),
                    });
                }
                Box::new(Linear {
                    weight,
                    bias: next()?,
                })
            }
            LayerSpec::Conv1d {
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let weight = next()?;
                let bias = if bias { Some(next()?) } else { None };
                let options = Conv1dOptions {
                    stride,
                    padding,
                    dilation,
                    groups,
                };
                Box::new(Conv1d::from_tensors(weight, bias, options))
            }
            LayerSpec::Conv2d {
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let weight = next()?;
                let bias = if bias { Some(next()?) } else { None };
                let options = Conv2dOptions {
                    stride,
                    padding,
                    dilation,
                    groups,
                };
                Box::new(Conv2d::from_tensors(weight, bias, options))
            }
            LayerSpec::BatchNorm { eps, affine, .. } => {
                let affine = if affine {
                    Some((next()?, next()?))
                } else {
                    None
                };
                Box::new(BatchNorm {
                    affine,
                    running_mean: next()?,
                    running_var: next()?,
                    eps,
                })
            }
            LayerSpec::LayerNorm {
                eps,
                elementwise_affine,
                ..
            } => {
                let affine = if elementwise_affine {
                    Some((next()?, next()?))
                } else {
                    None
                };
                Box::new(LayerNorm { affine, eps })
            }
            LayerSpec::Activation(op) => Box::new(Activation::new(op)),
            LayerSpec::Dropout { p } => Box::new(Dropout::new(p)?),
            LayerSpec::Flatten { start_dim, end_dim } => {
                Box::new(Flatten::range(start_dim, end_dim))
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            } => Box::new(MaxPool2d {
                kernel: kernel_size,
                stride,
                padding,
            }),
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => Box::new(AvgPool2d {
                kernel: kernel_size,
                stride,
                padding,
            }),
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                Box::new(AdaptiveAvgPool2d::new(output_size))
            }
        })
    }
}
