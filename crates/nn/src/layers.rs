//! Layers with PyTorch's conventions: `Linear` (weight `[out, in]`, bias `[out]`,
//! `y = x·Wᵀ + b`), activations, and `Sequential` with parameters named `0.weight`, `0.bias`,
//! `2.weight`, ….
//!
//! Models are plain parameter holders; `forward_with` runs one with given parameter
//! variables (like `torch.func.functional_call`), so derivatives with respect to the
//! parameters come from the ordinary tape.

use curvature_tensor::{DType, Device, Element, Shape, Tensor, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use curvature_tape::Var;

use crate::{NnError, Result};

/// Elementwise activations between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(x.unary(self.op())?)
    }

    /// The activation at a scalar `z` with its first and second derivatives, `(f(z), f'(z),
    /// f''(z))`, from the op's definition ([`UnaryOp::tanh_derivatives`],
    /// [`UnaryOp::sigmoid_derivatives`]).
    pub fn derivatives<T: Element>(self, z: T) -> (T, T, T) {
        match self {
            Activation::Tanh => UnaryOp::tanh_derivatives(z),
            Activation::Sigmoid => UnaryOp::sigmoid_derivatives(z),
        }
    }

    /// The elementwise op this activation applies.
    pub fn op(self) -> UnaryOp {
        match self {
            Activation::Tanh => UnaryOp::Tanh,
            Activation::Sigmoid => UnaryOp::Sigmoid,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
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

/// A fully connected layer: `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
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

    /// `x·Wᵀ + b` with the given weight and bias variables.
    pub fn forward_with(x: &Var, weight: &Var, bias: &Var) -> Result<Var> {
        Ok(x.matmul_transposed(weight, false, true)?.add(bias)?)
    }
}

/// One element of a [`Sequential`].
#[derive(Debug, Clone)]
pub enum Layer {
    Linear(Linear),
    Activation(Activation),
}

/// Layers applied in order, like `torch.nn.Sequential`.
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    layers: Vec<Layer>,
}

impl Sequential {
    pub fn new(layers: Vec<Layer>) -> Sequential {
        Sequential { layers }
    }

    /// An MLP with layer `widths`, one activation per hidden layer, and optionally one after
    /// the last layer, initialised from `seed`.
    pub fn mlp(
        widths: &[usize],
        activations: &[Activation],
        final_activation: Option<Activation>,
        dtype: DType,
        device: Device,
        seed: u64,
    ) -> Result<Sequential> {
        let hidden = widths.len().saturating_sub(2);
        if widths.len() < 2 || activations.len() != hidden {
            return Err(NnError::InvalidArgument {
                op: "Sequential::mlp",
                msg: format!(
                    "widths {widths:?} need at least 2 entries and {hidden} hidden activations, got {}",
                    activations.len()
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            layers.push(Layer::Linear(Linear::new(
                pair[0], pair[1], dtype, device, &mut rng,
            )?));
            if let Some(act) = activations
                .get(i)
                .copied()
                .or(final_activation.filter(|_| i == hidden))
            {
                layers.push(Layer::Activation(act));
            }
        }
        Ok(Sequential { layers })
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Parameters in PyTorch's order with PyTorch's names (`0.weight`, `0.bias`, `2.weight`…).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut named = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if let Layer::Linear(lin) = layer {
                named.push((format!("{i}.weight"), lin.weight.clone()));
                named.push((format!("{i}.bias"), lin.bias.clone()));
            }
        }
        named
    }

    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    pub fn parameter_shapes(&self) -> Vec<Shape> {
        self.parameters()
            .iter()
            .map(|t| t.shape().clone())
            .collect()
    }

    /// P, the number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.parameters().iter().map(|t| t.elem_count()).sum()
    }

    /// θ: every parameter flattened and concatenated in order.
    pub fn flat_params(&self) -> Result<Tensor> {
        let flat = self
            .parameters()
            .iter()
            .map(|t| t.reshape([t.elem_count()]))
            .collect::<curvature_tensor::Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = flat.iter().collect();
        Ok(Tensor::cat(&refs, 0)?)
    }

    /// Replaces the parameters (in order) with `params`, which must match their shapes.
    pub fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        let shapes = self.parameter_shapes();
        if params.len() != shapes.len() {
            return Err(NnError::LengthMismatch {
                what: "set_parameters",
                expected: shapes.len(),
                got: params.len(),
            });
        }
        for (p, shape) in params.iter().zip(&shapes) {
            if p.shape() != shape {
                return Err(curvature_tensor::TensorError::ShapeMismatch {
                    op: "set_parameters",
                    expected: shape.clone(),
                    got: p.shape().clone(),
                }
                .into());
            }
        }
        let mut next = params.iter();
        for layer in &mut self.layers {
            if let Layer::Linear(lin) = layer {
                if let (Some(w), Some(b)) = (next.next(), next.next()) {
                    lin.weight = w.clone();
                    lin.bias = b.clone();
                }
            }
        }
        Ok(())
    }

    /// Runs the model with the given parameter variables, in `named_parameters` order.
    pub fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        let expected = self.parameters().len();
        if params.len() != expected {
            return Err(NnError::LengthMismatch {
                what: "forward_with parameters",
                expected,
                got: params.len(),
            });
        }
        let mut next = params.iter();
        let mut h = x.clone();
        for layer in &self.layers {
            h = match layer {
                Layer::Linear(_) => match (next.next(), next.next()) {
                    (Some(w), Some(b)) => Linear::forward_with(&h, w, b)?,
                    _ => unreachable_params()?,
                },
                Layer::Activation(act) => act.apply(&h)?,
            };
        }
        Ok(h)
    }

    /// Splits a flat parameter vector θ `[P]` into variables shaped like the parameters.
    pub fn unflatten(&self, theta: &Var) -> Result<Vec<Var>> {
        let total = self.num_params();
        if theta.dims() != [total] {
            return Err(curvature_tensor::TensorError::ShapeMismatch {
                op: "unflatten",
                expected: Shape::new([total]),
                got: theta.shape().clone(),
            }
            .into());
        }
        let mut offset = 0;
        self.parameter_shapes()
            .into_iter()
            .map(|shape| {
                let len = shape.elem_count();
                let part = theta.narrow(0, offset, len)?.reshape(shape)?;
                offset += len;
                Ok(part)
            })
            .collect()
    }

    /// Runs the model with parameters taken from the flat vector θ.
    pub fn forward_flat(&self, theta: &Var, x: &Var) -> Result<Var> {
        self.forward_with(&self.unflatten(theta)?, x)
    }
}

fn unreachable_params() -> Result<Var> {
    Err(NnError::InvalidArgument {
        op: "forward_with",
        msg: "a Linear layer is missing its weight or bias".to_string(),
    })
}
