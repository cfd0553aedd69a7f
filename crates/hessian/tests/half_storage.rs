//! Hessian-vector products of models stored in f16 and bf16 against the same products in f64:
//! the relative error of the standard seed workload (the 1-10-10-1 tanh SimpleNet on 1000
//! samples) and of a shrunk mid workload (a 16-32-32-32-10 tanh MLP on 64 samples), on the CPU
//! and on CUDA. Each product stores every intermediate in the 16-bit dtype and computes in f32.

mod common;

use curvature_hessian::{probes, trace_hutchinson, LinearOperator, ModelHvp, Probe};
use curvature_nn::{Activation, Loss, Sequential};
use curvature_tensor::{DType, Device, Tensor};

/// A tanh MLP of `widths` with an MSE loss on `x`, `y` (f64 values), all stored in `dtype`.
fn operator(widths: &[usize], x: &[f64], y: &[f64], dtype: DType, device: Device) -> ModelHvp {
    let hidden = vec![Activation::Tanh; widths.len() - 2];
    let model = Sequential::mlp(widths, &hidden, None, dtype, device, 0).expect("the model");
    let n = x.len() / widths[0];
    let x = Tensor::from_f64s(x, [n, widths[0]], dtype, device).expect("inputs");
    let y = Tensor::from_f64s(y, [n, widths[widths.len() - 1]], dtype, device).expect("targets");
    ModelHvp::new(&model, Loss::Mse, &x, &y).expect("the operator")
}

/// The seed workload's data: x = linspace(−10, 10, 1000), y = 2x + 3 + 3·sin(x)·√|x| + cos(x + 3).
fn seed_data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..1000).map(|i| -10.0 + 20.0 * i as f64 / 999.0).collect();
    let y = x
        .iter()
        .map(|&x| 2.0 * x + 3.0 + 3.0 * x.sin() * x.abs().sqrt() + (x + 3.0).cos())
        .collect();
    (x, y)
}

/// Deterministic values in [−1, 1).
fn uniform(n: usize, mut state: u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// ‖H₁₆·V − H₆₄·V‖_F / ‖H₆₄·V‖_F for four Gaussian directions V.
fn relative_error(widths: &[usize], x: &[f64], y: &[f64], dtype: DType, device: Device) -> f64 {
    let exact = operator(widths, x, y, DType::F64, device);
    let stored = operator(widths, x, y, dtype, device);
    assert_eq!(stored.dtype(), dtype);
    let v = probes(4, exact.dim(), Probe::Gaussian, 3, DType::F64, device).expect("probes");
    let reference = exact
        .apply_batch(&v)
        .expect("f64 products")
        .to_f64s()
        .expect("values");
    let ours = stored
        .apply_batch(&v.to_dtype(dtype).expect("rounded probes"))
        .expect("16-bit products");
    assert_eq!(ours.dtype(), dtype);
    let ours = ours.to_f64s().expect("values");
    let diff: f64 = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

/// The bound of the relative HVP error in `dtype`: about four times the largest error measured
/// (f16 6.1e-4, bf16 4.9e-3; the README's table), so a product that lost a bit more than the
/// storage rounding fails.
fn bound(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2.5e-3,
        _ => 2e-2,
    }
}

fn seed_workload_error_is_bounded(device: Device) {
    let (x, y) = seed_data();
    for dtype in [DType::F16, DType::BF16] {
        let error = relative_error(&[1, 10, 10, 1], &x, &y, dtype, device);
        println!("hvp relative error vs f64: seed {dtype} {device} {error:.2e}");
        assert!(error < bound(dtype), "seed {dtype}: {error:e}");
        assert!(error > 0.0, "16-bit storage cannot be exact here");
    }
}

fn shrunk_mid_workload_error_is_bounded(device: Device) {
    let widths = [16, 32, 32, 32, 10];
    let (x, y) = (uniform(64 * 16, 1), uniform(64 * 10, 2));
    for dtype in [DType::F16, DType::BF16] {
        let error = relative_error(&widths, &x, &y, dtype, device);
        println!("hvp relative error vs f64: mid (shrunk) {dtype} {device} {error:.2e}");
        assert!(error < bound(dtype), "mid {dtype}: {error:e}");
        assert!(error > 0.0, "16-bit storage cannot be exact here");
    }
}

/// Hutchinson's trace of a 16-bit operator runs its sums in f32 (`InF32`) and agrees with the
/// f64 operator's on the same probes within the storage error.
fn trace_estimates_run_in_f32(device: Device) {
    let widths = [4, 8, 3];
    let (x, y) = (uniform(16 * 4, 3), uniform(16 * 3, 4));
    let exact = operator(&widths, &x, &y, DType::F64, device);
    let reference = trace_hutchinson(&exact, 4, Probe::Rademacher, 5).expect("f64 trace");
    for dtype in [DType::F16, DType::BF16] {
        let stored = operator(&widths, &x, &y, dtype, device);
        let trace = trace_hutchinson(&stored, 4, Probe::Rademacher, 5).expect("16-bit trace");
        let error = (trace - reference).abs() / reference.abs();
        assert!(
            error < bound(dtype),
            "trace {dtype}: {trace} vs {reference}"
        );
    }
}

device_tests!(
    seed_workload_error_is_bounded,
    shrunk_mid_workload_error_is_bounded,
    trace_estimates_run_in_f32,
);
