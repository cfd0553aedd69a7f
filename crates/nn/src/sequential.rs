//! Containers: `Sequential` (modules applied in order, parameters named `0.weight`, `0.bias`,
//! `2.weight`, … like `torch.nn.Sequential`) and `Residual` (`x + f(x)`).

use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::module::{check_param_count, prefixed};
use crate::{Activation, Linear, Module, NnError, Result};

/// Modules applied in order, like `torch.nn.Sequential`. The first module receives all the
/// inputs (so a `Sequential` takes as many as its first module); each later one the previous
/// output.
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// The modules `layers`, applied in order.
    pub fn new(layers: Vec<Box<dyn Module>>) -> Sequential {
        Sequential { layers }
    }

    /// This sequence with `module` appended.
    pub fn with(mut self, module: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(module));
        self
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
        let mut layers: Vec<Box<dyn Module>> = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            layers.push(Box::new(Linear::new(
                pair[0], pair[1], dtype, device, &mut rng,
            )?));
            if let Some(act) = activations
                .get(i)
                .copied()
                .or(final_activation.filter(|_| i == hidden))
            {
                layers.push(Box::new(act));
            }
        }
        Ok(Sequential { layers })
    }

    /// The modules in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
}

impl Module for Sequential {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| prefixed(&i.to_string(), layer.as_ref()))
            .collect()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        self.forward_inputs(params, std::slice::from_ref(x))
    }

    fn num_inputs(&self) -> usize {
        self.layers.first().map_or(1, |first| first.num_inputs())
    }

    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> Result<Var> {
        let counts: Vec<usize> = self
            .layers
            .iter()
            .map(|layer| layer.named_parameters().len())
            .collect();
        check_param_count("Sequential", params, counts.iter().sum())?;
        let mut rest = params;
        let mut h: Option<Var> = None;
        for (layer, &count) in self.layers.iter().zip(&counts) {
            let (own, later) = rest.split_at(count);
            rest = later;
            h = Some(match &h {
                None => layer.forward_inputs(own, inputs)?,
                Some(h) => layer.forward_with(own, h)?,
            });
        }
        match (h, inputs) {
            (Some(h), _) => Ok(h),
            (None, [x]) => Ok(x.clone()),
            (None, _) => Err(NnError::InputCount {
                module: "Sequential",
                expected: 1,
                got: inputs.len(),
            }),
        }
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        let expected: usize = self
            .layers
            .iter()
            .map(|layer| layer.named_parameters().len())
            .sum();
        if params.len() != expected {
            return Err(NnError::LengthMismatch {
                what: "set_parameters",
                expected,
                got: params.len(),
            });
        }
        // Check every layer before changing any, so an error leaves the model as it was.
        let mut updated = self.layers.clone();
        let mut rest = params;
        for layer in &mut updated {
            let (own, later) = rest.split_at(layer.named_parameters().len());
            rest = later;
            layer.set_parameters(own)?;
        }
        self.layers = updated;
        Ok(())
    }

    fn rows_independent(&self) -> bool {
        self.layers.iter().all(|layer| layer.rows_independent())
    }

    fn as_sequential(&self) -> Option<&Sequential> {
        Some(self)
    }
}

/// `x + f(x)` for a module `f` whose output has its input's shape. Its parameters are `f`'s,
/// with `f`'s names.
#[derive(Debug, Clone)]
pub struct Residual {
    inner: Box<dyn Module>,
}

impl Residual {
    /// `x + inner(x)`.
    pub fn new(inner: impl Module + 'static) -> Residual {
        Residual {
            inner: Box::new(inner),
        }
    }

    /// The module whose output is added to the input.
    pub fn inner(&self) -> &dyn Module {
        self.inner.as_ref()
    }
}

impl Module for Residual {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.inner.named_parameters()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        let fx = self.inner.forward_with(params, x)?;
        if fx.shape() != x.shape() {
            return Err(NnError::InvalidArgument {
                op: "Residual",
                msg: format!(
                    "the inner module maps an input of shape {} to {}; x + f(x) needs equal shapes",
                    x.shape(),
                    fx.shape()
                ),
            });
        }
        Ok(x.add(&fx)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        self.inner.set_parameters(params)
    }

    fn rows_independent(&self) -> bool {
        self.inner.rows_independent()
    }
}
