//! Helpers shared by the tape's integration tests: the devices every property runs on, seeded
//! inputs, the gradient checks, and the golden models.
#![allow(dead_code)]

use std::path::PathBuf;

use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{grad, vjp, GradOptions, Result, Tape, Var};
use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "../../../tensor/tests/common/devices.rs"]
mod devices;
#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};

/// Where an op's inputs are drawn: where it is smooth, away from kinks and poles.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    /// Uniform in [−1, 1).
    Any,
    /// Uniform in [lo, hi).
    Range(f64, f64),
    /// |x| uniform in [0.5, 1.5) with a random sign.
    AwayFromZero,
}

/// Seeded random f64 tensors on one device.
pub struct Inputs {
    rng: ChaCha8Rng,
    device: Device,
}

impl Inputs {
    pub fn new(seed: u64, device: Device) -> Inputs {
        Inputs {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
        }
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, dims: &[usize], lo: f64, hi: f64) -> Tensor {
        let n = dims.iter().product();
        let data: Vec<f64> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        self.tensor(&data, dims)
    }

    /// Each element uniform in a random one of `intervals` (a point interval `(v, v)` gives
    /// `v`): an op's domain for one operand.
    pub fn intervals(&mut self, dims: &[usize], intervals: &[(f64, f64)]) -> Tensor {
        let n = dims.iter().product();
        let data: Vec<f64> = (0..n)
            .map(|_| {
                let (lo, hi) = intervals[self.rng.random_range(0..intervals.len())];
                if lo == hi {
                    lo
                } else {
                    self.rng.random_range(lo..hi)
                }
            })
            .collect();
        self.tensor(&data, dims)
    }

    /// Uniform in [−1, 1).
    pub fn any(&mut self, dims: &[usize]) -> Tensor {
        self.uniform(dims, -1.0, 1.0)
    }

    /// |x| uniform in [0.5, 1.5) with a random sign: away from 0.
    pub fn away_from_zero(&mut self, dims: &[usize]) -> Tensor {
        let n = dims.iter().product();
        let data: Vec<f64> = (0..n)
            .map(|_| {
                let magnitude = self.rng.random_range(0.5..1.5);
                if self.rng.random_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                }
            })
            .collect();
        self.tensor(&data, dims)
    }

    /// Uniform over `domain`.
    pub fn draw(&mut self, domain: Domain, dims: &[usize]) -> Tensor {
        match domain {
            Domain::Any => self.any(dims),
            Domain::Range(lo, hi) => self.uniform(dims, lo, hi),
            Domain::AwayFromZero => self.away_from_zero(dims),
        }
    }

    fn tensor(&self, data: &[f64], dims: &[usize]) -> Tensor {
        Tensor::from_f64s(data, dims, DType::F64, self.device)
            .unwrap_or_else(|e| panic!("a tensor on {}: {e}", self.device))
    }
}

/// Runs `gradcheck` and `gradgradcheck` on `f` at `inputs`, printing the report on failure.
pub fn assert_gradchecks(name: &str, inputs: &[Tensor], f: impl Fn(&[Var]) -> Result<Var>) {
    let options = CheckOptions::default();
    let first = gradcheck(&f, inputs, options)
        .unwrap_or_else(|e| panic!("{name}: gradcheck could not run: {e}"));
    assert!(first.passed, "{name}: gradcheck failed: {first:#?}");
    let second = gradgradcheck(&f, inputs, options, 0x5eed)
        .unwrap_or_else(|e| panic!("{name}: gradgradcheck could not run: {e}"));
    assert!(second.passed, "{name}: gradgradcheck failed: {second:#?}");
}

/// The golden models' directory: `$CURVATURE_TEST_DATA` when set (test binaries copied to
/// another machine), else the repository's `tests/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("CURVATURE_TEST_DATA").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data")),
        PathBuf::from,
    )
}

/// Every golden model file, sorted.
pub fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", data_dir().display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "safetensors"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no golden models in {}",
        data_dir().display()
    );
    files
}

/// The golden README's measure: max |ours − reference| / max |reference|.
pub fn relative_error(ours: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "lengths differ");
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// The batched-cotangent invariant for `f` at `inputs` (f64): one `vjp` with `[K, …]`
/// cotangents equals K separate `vjp`s (to 1e-12 relative), for `f`'s output and for the
/// gradient of `Σ w·f(x)` (a batch of Hessian-vector products), with seeded random `w` and
/// cotangents.
pub fn assert_batched_cotangents(name: &str, inputs: &[Tensor], f: impl Fn(&[Var]) -> Result<Var>) {
    const K: usize = 3;
    let device = inputs[0].device();
    let mut draws = Inputs::new(0xba7c, device);
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let mut run = || -> Result<()> {
        let out = f(&vars)?;
        let weights = draws.any(out.dims());
        let loss = out.mul(&tape.constant(weights))?.sum_all()?;
        let grads = grad(&[loss], &vars, GradOptions::create_graph())?;
        for (what, outputs) in [("vjp", vec![out]), ("hvp", grads)] {
            let cotangents: Vec<Tensor> = outputs
                .iter()
                .map(|o| {
                    let mut dims = vec![K];
                    dims.extend_from_slice(o.dims());
                    draws.any(&dims)
                })
                .collect();
            let stacked: Vec<Var> = cotangents
                .iter()
                .map(|c| tape.constant(c.clone()))
                .collect();
            let batched = vjp(&outputs, &stacked, &vars, false)?;
            for k in 0..K {
                let single: Vec<Var> = cotangents
                    .iter()
                    .zip(&outputs)
                    .map(|(c, o)| Ok(tape.constant(c.narrow(0, k, 1)?.reshape(o.dims())?)))
                    .collect::<Result<_>>()?;
                let separate = vjp(&outputs, &single, &vars, false)?;
                for (i, (b, s)) in batched.iter().zip(&separate).enumerate() {
                    let row = b.value().narrow(0, k, 1)?.to_f64s()?;
                    let error = relative_error(&row, &s.value().to_f64s()?);
                    assert!(
                        error <= 1e-12,
                        "{name} {what}: input {i}, direction {k}: relative error {error:.1e}"
                    );
                }
            }
        }
        Ok(())
    };
    run().unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
}
