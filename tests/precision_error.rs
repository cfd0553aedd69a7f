//! The measured HVP error of each matmul precision against f64, on the seed and mid workloads
//! shrunk for the emulated GPU (README, "Matmul precision"): f32 HVPs on `cuda:0` (a real GPU
//! when present, else the emulated one) in `ieee`, `tf32` and `tf32x3` against the same HVPs
//! in f64 on the CPU. Prints the table; asserts the targets (ieee and tf32x3 ≤ 1e-5, tf32 ≤
//! 3e-3) and that tf32 is measurably coarser than tf32x3. Reproduce with
//! `cargo test --release --test precision_error -- --nocapture`.

use curvature::hessian::{probes, LinearOperator, ModelHvp, Probe};
use curvature::tensor::{DType, Device, Precision};
use curvature::workloads::Workload;

/// seed (1-10-10-1, the SimpleNet data) and mid (a narrower 4-layer tanh MLP), with fewer
/// samples and directions.
fn shrunk() -> [Workload; 2] {
    [
        Workload {
            name: "seed",
            widths: vec![1, 10, 10, 1],
            samples: 200,
            k: 6,
        },
        Workload {
            name: "mid",
            widths: vec![32, 64, 64, 64, 10],
            samples: 64,
            k: 3,
        },
    ]
}

/// The K HVPs `[K, P]` of the workload in `dtype` on `device`, in f64 on the host; the
/// directions are drawn once in f64 on the CPU.
fn hvps(workload: &Workload, dtype: DType, device: Device) -> Vec<f64> {
    let problem = workload.build(dtype, device).expect("workload builds");
    let op =
        ModelHvp::new(&problem.model, problem.loss, &problem.x, &problem.y).expect("HVP operator");
    let directions = probes(
        workload.k,
        op.dim(),
        Probe::Gaussian,
        7,
        DType::F64,
        Device::Cpu,
    )
    .expect("directions")
    .to_dtype(dtype)
    .and_then(|v| v.to_device(device))
    .expect("directions on the device");
    op.apply_batch(&directions)
        .expect("HVP batch")
        .to_f64s()
        .expect("to host")
}

/// ‖got − want‖ / ‖want‖.
fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    (diff / norm).sqrt()
}

#[test]
fn hvp_error_of_each_precision_against_f64_cuda() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    println!(
        "HVP relative error vs f64 (f32 on {device:?}, emulated: {})",
        device.is_emulated()
    );
    println!("| workload | ieee | tf32 | tf32x3 |\n|---|---|---|---|");
    for workload in shrunk() {
        let reference = hvps(&workload, DType::F64, Device::Cpu);
        let mut errors = Vec::new();
        for precision in Precision::ALL {
            device.set_matmul_precision(precision).expect("precision");
            errors.push(relative_error(
                &hvps(&workload, DType::F32, device),
                &reference,
            ));
        }
        device
            .set_matmul_precision(Precision::Ieee)
            .expect("precision");
        println!(
            "| {} {:?}, n = {}, K = {} | {:.1e} | {:.1e} | {:.1e} |",
            workload.name,
            workload.widths,
            workload.samples,
            workload.k,
            errors[0],
            errors[1],
            errors[2]
        );
        let [ieee, tf32, tf32x3] = [errors[0], errors[1], errors[2]];
        assert!(ieee <= 1e-5, "{}: ieee error {ieee:e}", workload.name);
        assert!(tf32x3 <= 1e-5, "{}: tf32x3 error {tf32x3:e}", workload.name);
        assert!(tf32 <= 3e-3, "{}: tf32 error {tf32:e}", workload.name);
        assert!(
            tf32 > 5.0 * tf32x3,
            "{}: tf32 {tf32:e} vs tf32x3 {tf32x3:e}",
            workload.name
        );
    }
}

#[test]
fn cpu_refuses_tensor_core_precisions() {
    assert!(Device::Cpu.set_matmul_precision(Precision::Ieee).is_ok());
    for precision in [Precision::Tf32, Precision::Tf32x3] {
        let err = Device::Cpu
            .set_matmul_precision(precision)
            .expect_err("the CPU computes in IEEE only")
            .to_string();
        assert!(
            err.contains(precision.name()) && err.contains("IEEE"),
            "{err}"
        );
    }
    assert_eq!(Device::Cpu.matmul_precision().ok(), Some(Precision::Ieee));
}
