//! The [`Module`] trait: a model (or a part of one) with named parameters and a forward pass
//! over given parameter variables, like a PyTorch `nn.Module` called through
//! `torch.func.functional_call`.

use std::any::Any;
use std::fmt;

use curvature_tape::Var;
use curvature_tensor::{Shape, Tensor, TensorError};

use crate::{NnError, Result};

/// A model or a layer: parameters with PyTorch's `state_dict` names in a stable order, and a
/// forward pass that takes the parameters as variables, so derivatives with respect to them
/// come from the ordinary tape.
///
/// Implement [`named_parameters`](Module::named_parameters) and
/// [`forward_with`](Module::forward_with); everything else is provided: the flat parameter
/// vector θ (every parameter flattened row-major and concatenated in order) and its views,
/// several inputs, and the hooks the Hessian code reads. A module with several inputs
/// overrides [`num_inputs`](Module::num_inputs) and [`forward_inputs`](Module::forward_inputs).
/// The trait is object-safe: [`Sequential`](crate::Sequential) holds `Box<dyn Module>`.
/// Implementors derive `Clone` and `Debug` (parameters are tensors, which clone cheaply).
///
/// ```
/// use curvature_nn::{Linear, Module, Result};
/// use curvature_tape::{Tape, Var};
/// use curvature_tensor::{DType, Device, Tensor};
///
/// /// y = tanh(layer(x)) · scale, with a learnt scalar `scale`.
/// #[derive(Debug, Clone)]
/// struct ScaledTanh {
///     layer: Linear,
///     scale: Tensor,
/// }
///
/// impl Module for ScaledTanh {
///     fn named_parameters(&self) -> Vec<(String, Tensor)> {
///         let mut named = curvature_nn::prefixed("layer", &self.layer);
///         named.push(("scale".to_string(), self.scale.clone()));
///         named
///     }
///
///     fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
///         curvature_nn::check_param_count("ScaledTanh", params, 3)?;
///         let h = self.layer.forward_with(&params[..2], x)?.tanh()?;
///         Ok(h.mul(&params[2])?)
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let model = ScaledTanh {
///     layer: Linear::seeded(3, 2, DType::F64, Device::Cpu, 0)?,
///     scale: Tensor::from_f64s(&[2.0], [1], DType::F64, Device::Cpu)?,
/// };
/// let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["layer.weight", "layer.bias", "scale"]);
/// assert_eq!(model.num_params(), 9);
///
/// let tape = Tape::new();
/// let theta = tape.leaf(model.flat_params()?);
/// let x = tape.constant(Tensor::ones([4, 3], DType::F64, Device::Cpu)?);
/// assert_eq!(model.forward_flat(&theta, &x)?.dims(), &[4, 2]);
/// # Ok(())
/// # }
/// ```
pub trait Module: ModuleBase + fmt::Debug + Send + Sync {
    /// The parameters in order, with PyTorch's names (`weight`, `0.bias`, `attn.in_proj`, …).
    fn named_parameters(&self) -> Vec<(String, Tensor)>;

    /// Runs the module on one input with the given parameter variables, one per parameter in
    /// [`named_parameters`](Module::named_parameters) order and shaped like it.
    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var>;

    /// How many inputs [`forward_inputs`](Module::forward_inputs) takes (one by default).
    fn num_inputs(&self) -> usize {
        1
    }

    /// Runs the module on all its inputs (for a one-input module, `forward_with` of the one
    /// input; an error for any other count).
    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> Result<Var> {
        match inputs {
            [x] if self.num_inputs() == 1 => self.forward_with(params, x),
            _ => Err(NnError::InputCount {
                module: type_name(self),
                expected: self.num_inputs(),
                got: inputs.len(),
            }),
        }
    }

    /// Replaces the parameters (in order) with `params`, which must match their shapes. The
    /// built-in layers implement it; other modules return an error unless they override it.
    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        let _ = params;
        Err(NnError::InvalidArgument {
            op: "set_parameters",
            msg: format!("{} does not implement set_parameters", type_name(self)),
        })
    }

    /// True when row i of the output depends only on row i of every input (axis 0 is a batch
    /// of independent samples), so that per-sample quantities may be computed one row at a
    /// time. False unless a module declares it (the safe answer).
    fn rows_independent(&self) -> bool {
        false
    }

    /// This module as a [`Sequential`](crate::Sequential), when it is one (the Hessian code
    /// looks for plain MLPs through it).
    fn as_sequential(&self) -> Option<&crate::Sequential> {
        None
    }

    /// The parameter tensors in order.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The parameters' shapes in order.
    fn parameter_shapes(&self) -> Vec<Shape> {
        self.parameters()
            .iter()
            .map(|t| t.shape().clone())
            .collect()
    }

    /// P, the number of scalar parameters (the length of θ).
    fn num_params(&self) -> usize {
        self.parameters().iter().map(Tensor::elem_count).sum()
    }

    /// θ: every parameter flattened and concatenated in order (`[0]` without parameters).
    fn flat_params(&self) -> Result<Tensor> {
        let params = self.parameters();
        crate::flat::join(&self.named_parameters(), &params, false)
    }

    /// Splits a flat parameter vector θ `[P]` into variables shaped like the parameters.
    fn unflatten(&self, theta: &Var) -> Result<Vec<Var>> {
        let shapes = self.parameter_shapes();
        let total = crate::flat::total("unflatten", &shapes)?;
        if theta.dims() != [total] {
            return Err(TensorError::ShapeMismatch {
                op: "unflatten",
                expected: Shape::new([total]),
                got: theta.shape().clone(),
            }
            .into());
        }
        let mut offset = 0;
        shapes
            .into_iter()
            .map(|shape| {
                let len = shape.elem_count();
                let part = theta.narrow(0, offset, len)?.reshape(shape)?;
                offset += len;
                Ok(part)
            })
            .collect()
    }

    /// Runs the module on one input with parameters taken from the flat vector θ.
    fn forward_flat(&self, theta: &Var, x: &Var) -> Result<Var> {
        self.forward_with(&self.unflatten(theta)?, x)
    }

    /// Runs the module on all its inputs with parameters taken from the flat vector θ.
    fn forward_flat_inputs(&self, theta: &Var, inputs: &[Var]) -> Result<Var> {
        self.forward_inputs(&self.unflatten(theta)?, inputs)
    }

    /// Splits a flat `[P]` tensor (θ, a gradient) or a `[K, P]` batch (K vectors, a Hessian's
    /// rows) into named tensors shaped like the parameters (`[…]`, or `[K, …]`).
    fn split_flat(&self, flat: &Tensor) -> Result<Vec<(String, Tensor)>> {
        crate::flat::split(&self.named_parameters(), flat)
    }

    /// The inverse of [`split_flat`](Module::split_flat): tensors shaped like the parameters,
    /// in order, concatenated into `[P]`, or, with `batched`, tensors `[K, …]` into `[K, P]`.
    fn join_flat(&self, parts: &[Tensor], batched: bool) -> Result<Tensor> {
        crate::flat::join(&self.named_parameters(), parts, batched)
    }
}

/// What every [`Module`] gets from being `Clone + 'static`: cloning behind a `Box<dyn Module>`
/// and downcasting to the concrete layer type. Implemented for every such module.
pub trait ModuleBase {
    /// A boxed copy of the module.
    fn clone_box(&self) -> Box<dyn Module>;
    /// The module as `Any`, to recognise a concrete layer (`downcast_ref::<Linear>()`).
    fn as_any(&self) -> &dyn Any;
}

impl<M: Module + Clone + 'static> ModuleBase for M {
    fn clone_box(&self) -> Box<dyn Module> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Clone for Box<dyn Module> {
    fn clone(&self) -> Self {
        self.as_ref().clone_box()
    }
}

/// The short type name of a module, for errors.
fn type_name<M: Module + ?Sized>(_: &M) -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// `module`'s named parameters with `prefix.` in front of each name, as a field of a larger
/// module is named in PyTorch (`layer.weight`); an empty prefix leaves the names unchanged.
pub fn prefixed(prefix: &str, module: &dyn Module) -> Vec<(String, Tensor)> {
    module
        .named_parameters()
        .into_iter()
        .map(|(name, t)| match prefix {
            "" => (name, t),
            _ => (format!("{prefix}.{name}"), t),
        })
        .collect()
}

/// Errors unless `params` holds exactly `expected` variables: the first check of a
/// `forward_with`.
pub fn check_param_count(module: &'static str, params: &[Var], expected: usize) -> Result<()> {
    if params.len() != expected {
        return Err(NnError::ParamCount {
            module,
            expected,
            got: params.len(),
        });
    }
    Ok(())
}
