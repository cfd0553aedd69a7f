//! The standard benchmark workloads of the project: tanh MLPs with an MSE loss, and K
//! Hessian-vector products with respect to all parameters.

use curvature_nn::{Activation, Loss, Sequential};
use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The hidden layers' activation of every workload.
const ACTIVATION: Activation = Activation::Tanh;

/// The loss of every workload.
const LOSS: Loss = Loss::Mse;

/// A named MLP shape, sample count and number of HVP directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: &'static str,
    pub widths: Vec<usize>,
    pub samples: usize,
    pub k: usize,
}

/// A workload made concrete: model, data and loss.
#[derive(Debug, Clone)]
pub struct Problem {
    pub model: Sequential,
    pub x: Tensor,
    pub y: Tensor,
    pub loss: Loss,
}

/// seed (the full Hessian of the 1-10-10-1 SimpleNet), mid and large.
pub fn standard() -> Vec<Workload> {
    vec![
        Workload {
            name: "seed",
            widths: vec![1, 10, 10, 1],
            samples: 1000,
            k: 141,
        },
        Workload {
            name: "mid",
            widths: vec![64, 256, 256, 256, 10],
            samples: 1024,
            k: 64,
        },
        Workload {
            name: "large",
            widths: vec![1024, 4096, 4096, 4096, 1024],
            samples: 2048,
            k: 8,
        },
    ]
}

/// The workload called `name`, if it is one of [`standard`].
pub fn by_name(name: &str) -> Option<Workload> {
    standard().into_iter().find(|w| w.name == name)
}

impl Workload {
    /// P, the number of parameters.
    pub fn params(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The timed repetitions `curvature bench` makes by default: 10, or 3 for a workload whose
    /// batch costs more than 10 GFLOP (mid and large), so the default run stays short.
    pub fn default_runs(&self) -> usize {
        if self.hvp_batch_flops() > 1e10 {
            3
        } else {
            10
        }
    }

    /// What the workload is, in one line: `MLP 1-10-10-1 (tanh), 1000 samples, mse loss`.
    pub fn description(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(usize::to_string).collect();
        format!(
            "MLP {} ({}), {} samples, {} loss",
            widths.join("-"),
            ACTIVATION.name(),
            self.samples,
            LOSS.name()
        )
    }

    /// Forward-pass FLOPs of the layer products, Σ 2·n·in·out.
    pub fn forward_flops(&self) -> f64 {
        self.widths
            .windows(2)
            .map(|w| 2.0 * (self.samples * w[0] * w[1]) as f64)
            .sum()
    }

    /// FLOPs of a batch of K HVPs by the cost model: 6 forward products per direction.
    pub fn hvp_batch_flops(&self) -> f64 {
        6.0 * self.k as f64 * self.forward_flops()
    }

    /// Bytes of the batched tangents of the widest activations, a floor for the memory a
    /// batch of K HVPs needs.
    pub fn activation_bytes(&self, dtype: DType) -> usize {
        let widest = self.widths.iter().copied().max().unwrap_or(0);
        self.k * self.samples * widest * dtype.size_in_bytes() * self.widths.len()
    }

    /// Builds the model (seeded initialisation) and its data. The seed workload uses the
    /// SimpleNet data, x = linspace(−10, 10) and y = 2x + 3 + 3·sin(x)·√|x| + cos(x + 3);
    /// the others use seeded uniform data in [−1, 1).
    pub fn build(&self, dtype: DType, device: Device) -> curvature_nn::Result<Problem> {
        let hidden = vec![ACTIVATION; self.widths.len() - 2];
        let model = Sequential::mlp(&self.widths, &hidden, None, dtype, device, 0)?;
        let (input, output) = (self.widths[0], self.widths[self.widths.len() - 1]);
        let (x, y) = if self.name == "seed" {
            let x: Vec<f64> = (0..self.samples)
                .map(|i| -10.0 + 20.0 * i as f64 / (self.samples - 1) as f64)
                .collect();
            let y: Vec<f64> = x
                .iter()
                .map(|&x| 2.0 * x + 3.0 + 3.0 * x.sin() * x.abs().sqrt() + (x + 3.0).cos())
                .collect();
            (x, y)
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut uniform =
                |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
            (
                uniform(self.samples * input),
                uniform(self.samples * output),
            )
        };
        Ok(Problem {
            model,
            x: Tensor::from_f64s(&x, [self.samples, input], dtype, device)?,
            y: Tensor::from_f64s(&y, [self.samples, output], dtype, device)?,
            loss: LOSS,
        })
    }
}
