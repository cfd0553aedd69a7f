//! Layers with PyTorch's conventions: `Linear` (weight `[out, in]`, bias `[out]`,
//! `y = x·Wᵀ + b`), activations (any elementwise op), `Dropout` (the identity: curvature is
//! computed at evaluation) and `Flatten`.

use curvature_tensor::{DType, Device, Element, Tensor, TensorError, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use curvature_tape::Var;

use crate::module::check_param_count;
use crate::{Module, NnError, Result};

/// An elementwise activation: any unary op of the op table (`Activation::Tanh`,
/// `Activation::new(UnaryOp::Softplus)`, …), applied as a parameterless module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activation {
    op: UnaryOp,
}

#[allow(non_upper_case_globals)] // named like the variants they stand for
impl Activation {
    /// tanh, with closed-form derivatives for the fused MLP sweep.
    pub const Tanh: Activation = Activation { op: UnaryOp::Tanh };
    /// The logistic sigmoid, with closed-form derivatives for the fused MLP sweep.
    pub const Sigmoid: Activation = Activation {
        op: UnaryOp::Sigmoid,
    };
}

impl Activation {
    /// The activation applying `op` elementwise.
    pub fn new(op: UnaryOp) -> Activation {
        Activation { op }
    }

    /// Applies the activation.
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(x.unary(self.op)?)
    }

    /// The activation at a scalar `z` with its first and second derivatives, `(f(z), f'(z),
    /// f''(z))`, for the activations with closed forms ([`UnaryOp::tanh_derivatives`],
    /// [`UnaryOp::sigmoid_derivatives`]); `None` for the others.
    pub fn derivatives<T: Element>(self, z: T) -> Option<(T, T, T)> {
        match self.op {
            UnaryOp::Tanh => Some(UnaryOp::tanh_derivatives(z)),
            UnaryOp::Sigmoid => Some(UnaryOp::sigmoid_derivatives(z)),
            _ => None,
        }
    }

    /// The elementwise op this activation applies.
    pub fn op(self) -> UnaryOp {
        self.op
    }

    /// The op's name (`tanh`, `sigmoid`, `softplus`, …).
    pub fn name(self) -> &'static str {
        self.op.name()
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            other => Err(format!(
                "unknown activation '{other}' (expected tanh or sigmoid)"
            )),
        }
    }
}

impl Module for Activation {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count(self.name(), params, 0)?;
        self.apply(x)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("Activation::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// A fully connected layer: `y = x·Wᵀ + b`, for inputs `[…, in]` or `[in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

impl Linear {
    /// PyTorch's default initialisation, U(−1/√in, 1/√in), from a seeded generator.
    pub fn new(
        inputs: usize,
        outputs: usize,
        dtype: DType,
        device: Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<Linear> {
        let bound = 1.0 / (inputs.max(1) as f64).sqrt();
        let mut uniform = |_| rng.random_range(-bound..bound);
        Ok(Linear {
            weight: Tensor::from_fn([outputs, inputs], dtype, device, &mut uniform)?,
            bias: Tensor::from_fn([outputs], dtype, device, &mut uniform)?,
        })
    }

    /// PyTorch's default initialisation, U(−1/√in, 1/√in), drawn from `seed`.
    pub fn seeded(
        inputs: usize,
        outputs: usize,
        dtype: DType,
        device: Device,
        seed: u64,
    ) -> Result<Linear> {
        Linear::new(
            inputs,
            outputs,
            dtype,
            device,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
    }

    /// `x·Wᵀ + b` with the given weight and bias variables; `x` is `[…, in]` or `[in]`.
    pub fn apply(x: &Var, weight: &Var, bias: &Var) -> Result<Var> {
        if x.rank() == 1 {
            let row = x.reshape([1, x.dims()[0]])?;
            let y = Linear::apply(&row, weight, bias)?;
            return Ok(y.reshape([y.dims()[1]])?);
        }
        Ok(x.matmul_transposed(weight, false, true)?.add(bias)?)
    }
}

impl Module for Linear {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Linear", params, 2)?;
        Linear::apply(x, &params[0], &params[1])
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes(
            "Linear::set_parameters",
            &[&self.weight, &self.bias],
            params,
        )?;
        self.weight = params[0].clone();
        self.bias = params[1].clone();
        Ok(())
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// Dropout with probability `p`, the identity at evaluation (where curvature is computed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
}

impl Dropout {
    /// Dropout with probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(NnError::InvalidArgument {
                op: "Dropout::new",
                msg: format!("the probability must be in [0, 1], got {p}"),
            });
        }
        Ok(Dropout { p })
    }

    /// The dropout probability (unused at evaluation).
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl Module for Dropout {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Dropout", params, 0)?;
        Ok(x.clone())
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("Dropout::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        true
    }
}

/// Merges the axes `start_dim..=end_dim` into one, like `torch.nn.Flatten` (by default every
/// axis after the batch axis: `start_dim = 1`, `end_dim = -1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten {
    start_dim: isize,
    end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Flatten {
        Flatten {
            start_dim: 1,
            end_dim: -1,
        }
    }
}

impl Flatten {
    /// Flattens every axis after the first.
    pub fn new() -> Flatten {
        Flatten::default()
    }

    /// Flattens the axes `start_dim..=end_dim` (negative axes count from the end); checked
    /// against each input's rank when the layer runs.
    pub fn range(start_dim: isize, end_dim: isize) -> Flatten {
        Flatten { start_dim, end_dim }
    }

    pub(crate) fn axes(&self, rank: usize) -> Option<(usize, usize)> {
        let resolve = |axis: isize| {
            let axis = if axis < 0 {
                axis.checked_add(rank.max(1) as isize)?
            } else {
                axis
            };
            usize::try_from(axis).ok().filter(|&a| a < rank.max(1))
        };
        let (start, end) = (resolve(self.start_dim)?, resolve(self.end_dim)?);
        (start <= end).then_some((start, end))
    }
}

impl Module for Flatten {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Flatten", params, 0)?;
        let dims = x.dims();
        let Some((start, end)) = self.axes(dims.len()) else {
            return Err(NnError::InvalidArgument {
                op: "Flatten",
                msg: format!(
                    "axes {}..={} are not an axis range of an input of shape {}",
                    self.start_dim,
                    self.end_dim,
                    x.shape()
                ),
            });
        };
        if dims.is_empty() {
            return Ok(x.reshape([1])?);
        }
        // The product of existing dimensions is bounded by the tensor's checked size.
        let merged: usize = dims[start..=end].iter().product();
        let mut shape = dims[..start].to_vec();
        shape.push(merged);
        shape.extend_from_slice(&dims[end + 1..]);
        Ok(x.reshape(shape)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("Flatten::set_parameters", &[], params)
    }

    fn rows_independent(&self) -> bool {
        self.start_dim >= 1
    }
}

/// Errors unless `params` matches `current` in count and shapes.
pub(crate) fn check_shapes(op: &'static str, current: &[&Tensor], params: &[Tensor]) -> Result<()> {
    if params.len() != current.len() {
        return Err(NnError::LengthMismatch {
            what: op,
            expected: current.len(),
            got: params.len(),
        });
    }
    for (p, now) in params.iter().zip(current) {
        if p.shape() != now.shape() {
            return Err(TensorError::ShapeMismatch {
                op,
                expected: now.shape().clone(),
                got: p.shape().clone(),
            }
            .into());
        }
    }
    Ok(())
}
