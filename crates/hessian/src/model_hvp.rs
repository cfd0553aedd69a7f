//! [`ModelHvp`]: the loss Hessian of a model by the fastest exact route, the fused MLP sweep
//! ([`MlpHvp`]) where it applies and the tape's [`PreparedHvp`] otherwise.

use curvature_nn::{Loss, Sequential};
use curvature_tensor::{DType, Device, Tensor};

use crate::mlp::{dense_chain, MlpHvp, MlpStrategy};
use crate::operator::{LinearOperator, PreparedHvp};
use crate::Result;

/// The loss Hessian of a model by the fastest exact route: [`MlpHvp`] for MLPs on the CPU, the
/// tape's [`PreparedHvp::for_model`] for everything else (other layer patterns, GPUs).
pub enum ModelHvp {
    Fused(MlpHvp),
    Tape(PreparedHvp),
}

impl ModelHvp {
    pub fn new(model: &Sequential, loss: Loss, x: &Tensor, y: &Tensor) -> Result<ModelHvp> {
        let on_cpu = model.parameters().iter().all(|p| p.device() == Device::Cpu)
            && x.device() == Device::Cpu
            && y.device() == Device::Cpu;
        if on_cpu && dense_chain(model).is_ok() {
            return MlpHvp::new(model, loss, x, y).map(ModelHvp::Fused);
        }
        PreparedHvp::for_model(model, loss, x, y).map(ModelHvp::Tape)
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
