//! [`ModelHvp`]: the loss Hessian of a model by the fastest exact route, the fused MLP sweep
//! ([`MlpHvp`]) where it applies and the tape's [`PreparedHvp`] otherwise.

use curvature_nn::{Loss, Module, Objective};
use curvature_tensor::{DType, Device, Tensor};

use crate::mlp::{dense_chain, MlpHvp, MlpStrategy};
use crate::model::ModelInputs;
use crate::operator::{LinearOperator, PreparedHvp};
use crate::Result;

/// The loss Hessian of a model by the fastest exact route: [`MlpHvp`] for plain MLPs on the
/// CPU (a [`Sequential`](curvature_nn::Sequential) of `Linear` layers each followed by at most
/// one tanh or sigmoid, one input, a built-in loss), the tape's [`PreparedHvp::for_model`] for
/// every other model (any [`Module`]), objective or device.
pub enum ModelHvp {
    /// The fused MLP sweep.
    Fused(MlpHvp),
    /// The tape's double-backward sweep.
    Tape(PreparedHvp),
}

impl ModelHvp {
    /// The Hessian of `loss(model(x), y)` with respect to θ; `x` is the model's input (or
    /// `&[x1, x2, …]` for a model with several).
    pub fn new<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        loss: Loss,
        x: &I,
        y: &Tensor,
    ) -> Result<ModelHvp> {
        ModelHvp::with_objective(model, x, loss.against(y))
    }

    /// The Hessian of `objective(model(inputs))` with respect to θ, for a built-in loss
    /// against targets or any closure of the output (which always takes the tape).
    pub fn with_objective<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        inputs: &I,
        objective: Objective<'_>,
    ) -> Result<ModelHvp> {
        if let (Some(seq), [x], Objective::Loss { loss, target }) =
            (model.as_sequential(), inputs.tensors(), objective)
        {
            let on_cpu = seq.parameters().iter().all(|p| p.device() == Device::Cpu)
                && x.device() == Device::Cpu
                && target.device() == Device::Cpu;
            // The fused sweep runs in f32 or f64; 16-bit storage takes the tape.
            let fusable = on_cpu && !x.dtype().is_half() && loss.is_fused();
            if fusable && dense_chain(seq).is_ok() {
                return MlpHvp::new(seq, loss, x, target).map(ModelHvp::Fused);
            }
        }
        PreparedHvp::for_model_with(model, inputs, objective).map(ModelHvp::Tape)
    }

    /// The loss at the parameters.
    pub fn value(&self) -> Result<f64> {
        match self {
            ModelHvp::Fused(op) => Ok(op.value()),
            ModelHvp::Tape(op) => Ok(op.value().to_scalar()?),
        }
    }

    /// ∇θ L, `[P]`.
    pub fn gradient(&self) -> Result<Tensor> {
        match self {
            ModelHvp::Fused(op) => op.gradient(),
            ModelHvp::Tape(op) => Ok(op.gradient().clone()),
        }
    }

    /// Which route a batch of `directions` vectors takes: `fused-narrow`, `fused-wide` or
    /// `tape`.
    pub fn engine(&self, directions: usize) -> &'static str {
        match self {
            ModelHvp::Fused(op) => match op.strategy_for(directions) {
                MlpStrategy::Narrow => "fused-narrow",
                MlpStrategy::Wide => "fused-wide",
            },
            ModelHvp::Tape(_) => "tape",
        }
    }

    fn operator(&self) -> &dyn LinearOperator {
        match self {
            ModelHvp::Fused(op) => op,
            ModelHvp::Tape(op) => op,
        }
    }
}

impl LinearOperator for ModelHvp {
    fn dim(&self) -> usize {
        self.operator().dim()
    }

    fn dtype(&self) -> DType {
        self.operator().dtype()
    }

    fn device(&self) -> Device {
        self.operator().device()
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        self.operator().apply_batch(v)
    }
}
