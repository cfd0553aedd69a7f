//! Shared fixtures: a small model and data set, built identically on every rank, and the
//! comparison of a distributed result with the single-process one.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use curvature_nn::{Activation, Linear, Sequential};

#[path = "../../../tensor/tests/common/devices.rs"]
mod devices;
use curvature_tensor::{DType, Device, Tensor, UnaryOp};
#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};

/// The number of samples: 7 splits unevenly over 2, 3 and 4 ranks.
pub const SAMPLES: usize = 7;
pub const FEATURES: usize = 3;
pub const CLASSES: usize = 3;

pub fn tensor(values: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, Device::Cpu).unwrap()
}

/// Deterministic values in (−1, 1).
pub fn wave(len: usize, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| (0.7 * i as f64 + phase).sin() * 0.9)
        .collect()
}

/// A `FEATURES → hidden → CLASSES` MLP with `activation` between the layers.
pub fn mlp(hidden: usize, activation: UnaryOp, seed: u64) -> Sequential {
    mlp_on(hidden, activation, seed, Device::Cpu)
}

/// [`mlp`] on `device`.
pub fn mlp_on(hidden: usize, activation: UnaryOp, seed: u64, device: Device) -> Sequential {
    Sequential::default()
        .with(Linear::seeded(FEATURES, hidden, DType::F64, device, seed).unwrap())
        .with(Activation::new(activation))
        .with(Linear::seeded(hidden, CLASSES, DType::F64, device, seed + 1).unwrap())
}

/// `[SAMPLES, FEATURES]` inputs.
pub fn inputs() -> Tensor {
    tensor(&wave(SAMPLES * FEATURES, 0.3), &[SAMPLES, FEATURES])
}

/// `[SAMPLES]` class labels.
pub fn labels() -> Tensor {
    let y: Vec<f64> = (0..SAMPLES).map(|i| ((i * 2) % CLASSES) as f64).collect();
    tensor(&y, &[SAMPLES])
}

/// `[SAMPLES, CLASSES]` regression targets.
pub fn targets() -> Tensor {
    tensor(&wave(SAMPLES * CLASSES, 1.1), &[SAMPLES, CLASSES])
}

/// Asserts `|a − b| ≤ tol · max(1, max |b|)` elementwise.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (difference {:e}, scale {scale})",
            (x - y).abs()
        );
    }
}

/// Runs `f` on another thread and fails the test if it does not return within `seconds`: a
/// collective that hangs shows as a failure, not as a stuck test run.
pub fn within<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("did not finish within {seconds} s: a rank hangs"))
}
