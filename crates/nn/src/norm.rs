//! Normalisation layers with PyTorch's parameters: `LayerNorm` over the last axis and
//! `BatchNorm` in its inference form (running statistics are constants), each with an
//! optional elementwise affine map `x̂·weight + bias`.

use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

use crate::layers::check_shapes;
use crate::module::check_param_count;
use crate::{Module, Result};

/// `torch.nn.LayerNorm(d)`: each row of the last axis normalised to mean 0 and (biased)
/// variance 1, then scaled by `weight` and shifted by `bias` (both `[d]`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[d]` and `[d]`, or none (`elementwise_affine = False`).
    pub affine: Option<(Tensor, Tensor)>,
    pub eps: f64,
}

impl LayerNorm {
    /// Over a last axis of length `d`, with weight 1 and bias 0 (PyTorch's initialisation)
    /// and PyTorch's eps = 1e-5.
    pub fn new(d: usize, dtype: DType, device: Device) -> Result<LayerNorm> {
        Ok(LayerNorm {
            affine: Some((
                Tensor::ones([d], dtype, device)?,
                Tensor::zeros([d], dtype, device)?,
            )),
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        affine_params(&self.affine)
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("LayerNorm", params, 2 * usize::from(self.affine.is_some()))?;
        let normalised = x.layer_norm(self.eps)?;
        match params {
            [w, b] => Ok(normalised.mul(w)?.add(b)?),
            _ => Ok(normalised),
        }
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        set_affine("LayerNorm::set_parameters", &mut self.affine, params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// `torch.nn.BatchNorm1d/2d/3d` in evaluation mode: channel axis 1 of `[N, C, …]` normalised
/// with the running statistics (constants, not parameters), then `x̂·weight + bias` per
/// channel.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// `[C]` and `[C]`, or none (`affine = False`).
    pub affine: Option<(Tensor, Tensor)>,
    /// `[C]`.
    pub running_mean: Tensor,
    /// `[C]`.
    pub running_var: Tensor,
    pub eps: f64,
}

impl BatchNorm {
    /// `C` channels with PyTorch's initial state: weight 1, bias 0, running mean 0, running
    /// variance 1, eps = 1e-5.
    pub fn new(channels: usize, dtype: DType, device: Device) -> Result<BatchNorm> {
        Ok(BatchNorm {
            affine: Some((
                Tensor::ones([channels], dtype, device)?,
                Tensor::zeros([channels], dtype, device)?,
            )),
            running_mean: Tensor::zeros([channels], dtype, device)?,
            running_var: Tensor::ones([channels], dtype, device)?,
            eps: 1e-5,
        })
    }
}

impl Module for BatchNorm {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        affine_params(&self.affine)
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("BatchNorm", params, 2 * usize::from(self.affine.is_some()))?;
        let normalised = x.batch_norm(&self.running_mean, &self.running_var, self.eps)?;
        let [w, b] = params else {
            return Ok(normalised);
        };
        // [C] → [C, 1, …] so the per-channel factors broadcast over the trailing axes.
        let mut shape = vec![w.value().elem_count()];
        shape.extend(std::iter::repeat_n(1, x.rank().saturating_sub(2)));
        Ok(normalised
            .mul(&w.reshape(shape.clone())?)?
            .add(&b.reshape(shape)?)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        set_affine("BatchNorm::set_parameters", &mut self.affine, params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// Replaces an optional (weight, bias) pair after checking the count and shapes.
fn set_affine(
    op: &'static str,
    affine: &mut Option<(Tensor, Tensor)>,
    params: &[Tensor],
) -> Result<()> {
    match affine {
        Some((w, b)) => {
            check_shapes(op, &[w, b], params)?;
            (*w, *b) = (params[0].clone(), params[1].clone());
            Ok(())
        }
        None => check_shapes(op, &[], params),
    }
}

/// `[("weight", w), ("bias", b)]`, or nothing without an affine map.
fn affine_params(affine: &Option<(Tensor, Tensor)>) -> Vec<(String, Tensor)> {
    affine
        .iter()
        .flat_map(|(w, b)| {
            [
                ("weight".to_string(), w.clone()),
                ("bias".to_string(), b.clone()),
            ]
        })
        .collect()
}
