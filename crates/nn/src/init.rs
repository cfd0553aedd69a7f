//! PyTorch's default initialisation of weights and biases, from a seed.

use curvature_tensor::{DType, Device, IntoShape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// U(−1/√fan_in, 1/√fan_in) tensors drawn from one seeded generator, in order: PyTorch's
/// default for the weights and biases of `Linear`, `Conv*d` and the attention projections.
pub(crate) struct FanInUniform {
    rng: ChaCha8Rng,
    bound: f64,
    dtype: DType,
    device: Device,
}

impl FanInUniform {
    pub(crate) fn new(fan_in: usize, dtype: DType, device: Device, seed: u64) -> FanInUniform {
        FanInUniform {
            rng: ChaCha8Rng::seed_from_u64(seed),
            bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
            dtype,
            device,
        }
    }

    /// The next tensor of `shape`.
    pub(crate) fn draw(&mut self, shape: impl IntoShape) -> Result<Tensor> {
        let bound = self.bound;
        let rng = &mut self.rng;
        Ok(Tensor::from_fn(shape, self.dtype, self.device, |_| {
            rng.random_range(-bound..=bound)
        })?)
    }
}
