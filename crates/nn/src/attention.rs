//! `MultiheadAttention`: self-attention with PyTorch's parameters and `batch_first` layout.

use curvature_tape::{scaled_dot_product_attention, Var};
use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::init::FanInUniform;
use crate::layers::check_shapes;
use crate::module::check_param_count;
use crate::{Linear, Module, NnError, Result};

/// `torch.nn.MultiheadAttention(d, heads, batch_first=True)` used as self-attention
/// (`attn(x, x, x)`), optionally causal (position i attends to positions j ≤ i only). Input
/// `[B, T, d]` or `[T, d]`, output of the same shape. Parameters, in PyTorch's order and names:
/// `in_proj_weight` `[3d, d]` (the query, key and value projections stacked),
/// `in_proj_bias` `[3d]`, `out_proj.weight` `[d, d]`, `out_proj.bias` `[d]`.
#[derive(Debug, Clone)]
pub struct MultiheadAttention {
    pub in_proj_weight: Tensor,
    pub in_proj_bias: Tensor,
    pub out_proj: Linear,
    pub heads: usize,
    pub causal: bool,
}

impl MultiheadAttention {
    /// PyTorch's initialisation from `seed`: Xavier-uniform input projections, the output
    /// projection like a `Linear`, zero biases.
    pub fn seeded(
        d: usize,
        heads: usize,
        causal: bool,
        dtype: DType,
        device: Device,
        seed: u64,
    ) -> Result<MultiheadAttention> {
        check_heads(d, heads)?;
        let three_d = d
            .checked_mul(3)
            .ok_or_else(|| invalid(format!("width {d} is too large")))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = (6.0 / (4 * d.max(1)) as f64).sqrt();
        let in_proj_weight = Tensor::from_fn([three_d, d], dtype, device, |_| {
            rng.random_range(-bound..=bound)
        })?;
        let mut out = FanInUniform::new(d, dtype, device, seed.wrapping_add(1));
        Ok(MultiheadAttention {
            in_proj_weight,
            in_proj_bias: Tensor::zeros([three_d], dtype, device)?,
            out_proj: Linear {
                weight: out.draw([d, d])?,
                bias: Tensor::zeros([d], dtype, device)?,
            },
            heads,
            causal,
        })
    }

    /// Splits `[B, T, d]` into heads `[B, heads, T, d/heads]`.
    fn split_heads(&self, x: &Var) -> Result<Var> {
        let (b, t, d) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        Ok(x.reshape([b, t, self.heads, d / self.heads])?
            .permute(&[0, 2, 1, 3])?)
    }
}

impl Module for MultiheadAttention {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("in_proj_weight".to_string(), self.in_proj_weight.clone()),
            ("in_proj_bias".to_string(), self.in_proj_bias.clone()),
            ("out_proj.weight".to_string(), self.out_proj.weight.clone()),
            ("out_proj.bias".to_string(), self.out_proj.bias.clone()),
        ]
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("MultiheadAttention", params, 4)?;
        let d = self.out_proj.weight.dims()[0];
        let batched = match x.dims() {
            [_, _, width] if *width == d => x.clone(),
            [_, width] if *width == d => x.unsqueeze(0)?,
            _ => {
                return Err(invalid(format!(
                    "the input must be [B, T, {d}] or [T, {d}], got {}",
                    x.shape()
                )))
            }
        };
        let qkv = Linear::apply(&batched, &params[0], &params[1])?;
        let q = self.split_heads(&qkv.narrow(-1, 0, d)?)?;
        let k = self.split_heads(&qkv.narrow(-1, d, d)?)?;
        let v = self.split_heads(&qkv.narrow(-1, 2 * d, d)?)?;
        let heads = scaled_dot_product_attention(&q, &k, &v, self.causal)?;
        let merged = heads
            .permute(&[0, 2, 1, 3])?
            .reshape(batched.dims().to_vec())?;
        let y = Linear::apply(&merged, &params[2], &params[3])?;
        Ok(if x.rank() == 2 {
            y.reshape(x.dims().to_vec())?
        } else {
            y
        })
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes(
            "MultiheadAttention::set_parameters",
            &[
                &self.in_proj_weight,
                &self.in_proj_bias,
                &self.out_proj.weight,
                &self.out_proj.bias,
            ],
            params,
        )?;
        self.in_proj_weight = params[0].clone();
        self.in_proj_bias = params[1].clone();
        self.out_proj.weight = params[2].clone();
        self.out_proj.bias = params[3].clone();
        Ok(())
    }

    fn rows_independent(&self) -> bool {
        // Rows of a [T, d] input are tokens, which attention mixes.
        false
    }
}

fn check_heads(d: usize, heads: usize) -> Result<()> {
    if heads == 0 || d % heads != 0 {
        return Err(invalid(format!("{heads} heads must divide the width {d}")));
    }
    Ok(())
}

fn invalid(msg: String) -> NnError {
    NnError::InvalidArgument {
        op: "MultiheadAttention",
        msg,
    }
}
