//! Softmax and the normalisations (layer, batch in inference form, group), as compositions of
//! reductions and elementwise ops; their argument checks are shared with the tape's `Var`.

use crate::{Result, Tensor};

/// The argument checks of the normalisation ops, shared by `Tensor` and the tape's `Var` so
/// both reject the same inputs with the same errors.
pub mod checks {
    use crate::{DType, Device, Result, Shape, Tensor, TensorError};

    /// Errors unless `eps` is finite and non-negative.
    pub fn eps(op: &'static str, eps: f64) -> Result<()> {
        if eps.is_finite() && eps >= 0.0 {
            Ok(())
        } else {
            Err(TensorError::InvalidArgument {
                op,
                msg: format!("eps must be finite and non-negative, got {eps}"),
            })
        }
    }

    /// `layer_norm` over the last axis of `shape`: errors for a scalar, an empty last axis or
    /// a bad `eps`.
    pub fn layer_norm(shape: &Shape, eps: f64) -> Result<()> {
        self::eps("layer_norm", eps)?;
        match shape.dims().last() {
            None => Err(TensorError::InvalidArgument {
                op: "layer_norm",
                msg: "needs at least one axis, got a scalar".to_string(),
            }),
            Some(0) => Err(TensorError::Empty { op: "layer_norm" }),
            Some(_) => Ok(()),
        }
    }

    /// `batch_norm` of an input of `shape` `[N, C, …]` (of `dtype`, on `device`) with
    /// statistics of shape `[C]`; returns the shape `[1, C, 1, …]` the statistics broadcast as.
    pub fn batch_norm(
        shape: &Shape,
        dtype: DType,
        device: Device,
        running_mean: &Tensor,
        running_var: &Tensor,
        eps: f64,
    ) -> Result<Vec<usize>> {
        const OP: &str = "batch_norm";
        self::eps(OP, eps)?;
        if shape.rank() < 2 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("needs an input [N, C, …] of rank at least 2, got {shape}"),
            });
        }
        let channels = shape.dims()[1];
        for stat in [running_mean, running_var] {
            if stat.dims() != [channels] {
                return Err(TensorError::ShapeMismatch {
                    op: OP,
                    expected: Shape::new([channels]),
                    got: stat.shape().clone(),
                });
            }
            if stat.dtype() != dtype {
                return Err(TensorError::DTypeMismatch {
                    op: OP,
                    lhs: dtype,
                    rhs: stat.dtype(),
                });
            }
            if stat.device() != device {
                return Err(TensorError::DeviceMismatch {
                    op: OP,
                    lhs: device,
                    rhs: stat.device(),
                });
            }
        }
        let mut dims = vec![1; shape.rank()];
        dims[1] = channels;
        Ok(dims)
    }

    /// `group_norm` of an input of `shape` `[N, C, …]` in `groups` groups: errors unless
    /// `groups` divides `C` (and is not 0) and `eps` is valid; returns the shape
    /// `[N, groups, C / groups · Π …]` whose last axis is normalised.
    pub fn group_norm(shape: &Shape, groups: usize, eps: f64) -> Result<[usize; 3]> {
        const OP: &str = "group_norm";
        self::eps(OP, eps)?;
        if shape.rank() < 2 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("needs an input [N, C, …] of rank at least 2, got {shape}"),
            });
        }
        let (n, channels) = (shape.dims()[0], shape.dims()[1]);
        if groups == 0 || channels % groups != 0 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("{groups} groups do not divide the {channels} channels of {shape}"),
            });
        }
        let spatial: usize = shape.dims()[2..].iter().product();
        let per_group = channels / groups * spatial;
        if per_group == 0 {
            return Err(TensorError::Empty { op: OP });
        }
        Ok([n, groups, per_group])
    }
}

impl Tensor {
    /// Softmax over `axis` (negative axes count from the end): `exp(log_softmax(x))`, stable
    /// for any magnitudes.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.log_softmax(axis)?.exp()
    }

    /// Layer normalisation over the last axis, without affine parameters (PyTorch's
    /// `F.layer_norm(x, x.shape[-1:], eps=eps)`): `(x − mean) / √(var + eps)` with the biased
    /// variance. Errors for a scalar, an empty last axis, or an `eps` that is negative or not
    /// finite.
    pub fn layer_norm(&self, eps: f64) -> Result<Tensor> {
        checks::layer_norm(self.shape(), eps)?;
        let centred = self.sub(&self.mean(&[-1], true)?)?;
        let var = centred.square()?.mean(&[-1], true)?;
        centred.mul(&var.add_scalar(eps)?.powf(-0.5)?)
    }

    /// Batch normalisation in inference form over the channel axis 1 of `[N, C, …]`, without
    /// affine parameters (PyTorch's `F.batch_norm(x, mean, var, training=False, eps=eps)`):
    /// `(x − running_mean[c]) / √(running_var[c] + eps)`. The statistics are `[C]` tensors of
    /// this tensor's dtype and device.
    pub fn batch_norm(
        &self,
        running_mean: &Tensor,
        running_var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let stats = checks::batch_norm(
            self.shape(),
            self.dtype(),
            self.device(),
            running_mean,
            running_var,
            eps,
        )?;
        let scale = running_var
            .add_scalar(eps)?
            .powf(-0.5)?
            .reshape(stats.clone())?;
        self.sub(&running_mean.reshape(stats)?)?.mul(&scale)
    }

    /// Group normalisation of `[N, C, …]` without affine parameters (PyTorch's
    /// `F.group_norm(x, groups, eps=eps)`): the channels are split into `groups` groups of
    /// `C / groups`, and each sample's group is normalised over its channels and positions
    /// with the biased variance. Errors unless `groups` divides `C`.
    pub fn group_norm(&self, groups: usize, eps: f64) -> Result<Tensor> {
        let grouped = checks::group_norm(self.shape(), groups, eps)?;
        self.reshape(grouped)?
            .layer_norm(eps)?
            .reshape(self.shape().clone())
    }
}
