//! [`MlpHvp`]: the loss Hessian of an MLP as a [`LinearOperator`] computed on the CPU by a fused
//! forward-over-reverse sweep written for dense layers, instead of replaying the tape.
//!
//! The primal pass (forward, loss, backward) runs once, when the operator is made; each batch
//! of directions then costs the tangent sweep alone, with the activation derivatives applied in
//! the same pass as the products they feed and no graph, no per-op tensors.

mod memory;
mod narrow;
mod network;
mod vector_units;
mod wide;

use curvature_nn::{Loss, Module, Sequential};
use curvature_tensor::{DType, Device, Element, Tensor};

use crate::error::{check_kind, invalid};
use crate::operator::{check_batch, common_kind, LinearOperator};
use crate::Result;
use network::{dense_layers, Network};

pub(crate) use network::dense_chain;

pub use memory::MlpMemory;

/// How [`MlpHvp`] lays out its sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpStrategy {
    /// A few samples at a time with all directions side by side, the `[P, K]` result kept in
    /// cache: for models with few parameters, where matrix products would be tiny.
    Narrow,
    /// One direction at a time through all samples, every step a large matrix product: for
    /// wide layers.
    Wide,
}

/// Bytes of the `[P, directions]` block the narrow sweep keeps in a core's cache.
const NARROW_BLOCK_BYTES: usize = 256 * 1024;

/// Below this many directions the narrow sweep's cost per sample is not shared by enough
/// directions, and the wide sweep is faster (seed workload: 0.58 against 1.05 ms at K = 8,
/// even at K = 16).
const NARROW_MIN_DIRECTIONS: usize = 16;

/// Whether one lane-width of directions over P parameters fits the narrow sweep's block.
fn narrow_fits(params: usize, dtype: DType) -> bool {
    params
        .saturating_mul(narrow::LANES * dtype.size_in_bytes())
        .le(&NARROW_BLOCK_BYTES)
}

/// The Hessian of `loss(model(x), y)` with respect to the flat parameters θ, for a model of
/// `Linear` layers each followed by at most one activation, on the CPU. It equals
/// [`PreparedHvp::for_model`](crate::PreparedHvp::for_model) (same θ order, same losses) and is exact: it evaluates the same
/// derivatives in a different order, so results agree to rounding.
///
/// ```
/// use curvature_hessian::{LinearOperator, MlpHvp, PreparedHvp};
/// use curvature_nn::{Activation, Loss, Sequential};
/// use curvature_tensor::{DType, Device, Tensor};
///
/// # fn main() -> curvature_hessian::Result<()> {
/// let model = Sequential::mlp(&[2, 3, 1], &[Activation::Tanh], None, DType::F64, Device::Cpu, 0)?;
/// let x = Tensor::from_f64s(&[0.5, -1.0, 2.0, 0.25], [2, 2], DType::F64, Device::Cpu)?;
/// let y = Tensor::from_f64s(&[1.0, -1.0], [2, 1], DType::F64, Device::Cpu)?;
/// let fused = MlpHvp::new(&model, Loss::Mse, &x, &y)?;
/// let tape = PreparedHvp::for_model(&model, Loss::Mse, &x, &y)?;
/// let v = Tensor::ones([3, fused.dim()], DType::F64, Device::Cpu)?;
/// let (a, b) = (fused.apply_batch(&v)?.to_vec::<f64>()?, tape.apply_batch(&v)?.to_vec::<f64>()?);
/// assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-12));
/// # Ok(())
/// # }
/// ```
pub struct MlpHvp {
    network: Box<dyn Sweep>,
    /// A layout fixed by [`MlpHvp::with_strategy`]; otherwise chosen per batch.
    forced: Option<MlpStrategy>,
    dtype: DType,
}

/// A [`Network`] of any element type: what the operator asks of its primal pass.
trait Sweep: Send + Sync {
    /// P, the number of parameters.
    fn params(&self) -> usize;
    /// The loss at the parameters.
    fn value(&self) -> f64;
    /// ∇θ L, `[P]`.
    fn gradient(&self) -> Result<Tensor>;
    /// The products of the `[k, P]` batch `v` (of the network's dtype, on the CPU), swept with
    /// `strategy`.
    fn apply(&self, v: &Tensor, k: usize, strategy: MlpStrategy) -> Result<Tensor>;
}

impl<T: Element> Sweep for Network<T> {
    fn params(&self) -> usize {
        self.params
    }

    fn value(&self) -> f64 {
        self.value
    }

    fn gradient(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.gradient.clone(),
            [self.params],
            Device::Cpu,
        )?)
    }

    fn apply(&self, v: &Tensor, k: usize, strategy: MlpStrategy) -> Result<Tensor> {
        let v = v.host_slice::<T>()?;
        let mut out = network::zeros("the products", v.len())?;
        match strategy {
            MlpStrategy::Narrow => {
                let directions = narrow::block_directions(
                    self.params,
                    T::DTYPE.size_in_bytes(),
                    NARROW_BLOCK_BYTES,
                );
                narrow::apply(self, v, &mut out, directions)?
            }
            MlpStrategy::Wide => wide::apply(self, v, &mut out)?,
        }
        Ok(Tensor::from_vec(out, [k, self.params], Device::Cpu)?)
    }
}

/// The primal pass of the model in the element type of `dtype`.
fn sweep_for(model: &Sequential, loss: Loss, x: &Tensor, y: &Tensor) -> Result<Box<dyn Sweep>> {
    fn typed<T: Element>(
        model: &Sequential,
        loss: Loss,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<Box<dyn Sweep>> {
        Ok(Box::new(Network::<T>::new(
            dense_layers(model)?,
            loss,
            x,
            y,
        )?))
    }
    match x.dtype() {
        DType::F32 => typed::<f32>(model, loss, x, y),
        DType::F64 => typed::<f64>(model, loss, x, y),
        half @ (DType::F16 | DType::BF16) => Err(invalid(
            "MlpHvp",
            format!(
                "the fused MLP sweep runs in f32 or f64, not {half} (use the tape's ModelHvp, \
                 which stores {half} and computes in f32)"
            ),
        )),
    }
}

impl MlpHvp {
    /// Runs the primal pass. Errors (naming what is unsupported) for models that are not chains
    /// of `Linear` layers each followed by at most one activation, and for tensors off the CPU;
    /// [`ModelHvp::new`](crate::ModelHvp::new) falls back to the tape for those.
    pub fn new(model: &Sequential, loss: Loss, x: &Tensor, y: &Tensor) -> Result<MlpHvp> {
        const OP: &str = "MlpHvp::new";
        let params = model.parameters();
        let (dtype, device) = common_kind(OP, &params)?;
        check_kind(OP, x, dtype, device)?;
        check_kind(OP, y, dtype, device)?;
        if device != Device::Cpu {
            return Err(invalid(
                OP,
                format!("the fused sweep runs on the CPU; the model is on {device}"),
            ));
        }
        Ok(MlpHvp {
            network: sweep_for(model, loss, x, y)?,
            forced: None,
            dtype,
        })
    }

    /// The same operator with the sweep laid out by `strategy` (both are exact; the choice only
    /// changes speed).
    pub fn with_strategy(mut self, strategy: MlpStrategy) -> MlpHvp {
        self.forced = Some(strategy);
        self
    }

    /// The layout a batch of `directions` vectors is swept with: narrow for models with few
    /// parameters and batches of at least 16 directions, wide otherwise (unless fixed by
    /// [`MlpHvp::with_strategy`]).
    pub fn strategy_for(&self, directions: usize) -> MlpStrategy {
        let narrow_fits = narrow_fits(self.dim(), self.dtype);
        match self.forced {
            Some(strategy) => strategy,
            None if narrow_fits && directions >= NARROW_MIN_DIRECTIONS => MlpStrategy::Narrow,
            None => MlpStrategy::Wide,
        }
    }

    /// The loss at the parameters.
    pub fn value(&self) -> f64 {
        self.network.value()
    }

    /// ∇θ L, `[P]`.
    pub fn gradient(&self) -> Result<Tensor> {
        self.network.gradient()
    }
}

impl LinearOperator for MlpHvp {
    fn dim(&self) -> usize {
        self.network.params()
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        let k = check_batch("hvp_batch", self, v)?;
        self.network.apply(v, k, self.strategy_for(k))
    }
}
