//! The hessian crate on `Device::Cuda`, unchanged: Hessian, exact diagonal, trace, HVPs (one
//! at a time and batched) and the top eigenvalues of every golden model match the independent
//! float64 JAX values (1e-10; eigenvalues 1e-8 relative to the spectral scale), equal the CPU
//! results, and stay on the device. f32 on the device within the golden README's 1e-4.
//!
//! Runs on a real GPU when present, else on the emulated GPU (ARCHITECTURE.md, "The emulated GPU"); with
//! `CURVATURE_REQUIRE_GPU=1` a missing GPU fails instead.

mod common;

use common::{rel_err, GOLDEN};
use curvature_hessian::{
    hessian, hessian_diagonal, hessian_of, hvp, hvp_batch, top_eigenvalues, HessianOptions,
    LanczosOptions, PreparedHvp,
};
use curvature_nn::ModelFile;
use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

const TOL: f64 = 1e-10;

fn gpu() -> Device {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    eprintln!("running on {}", device.description());
    device
}

fn load(name: &str, dtype: DType, device: Device) -> ModelFile {
    let path = format!(
        "{}/../../tests/data/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    ModelFile::load(&path, dtype, device).expect("golden file loads")
}

/// `ours` is on `device` and within `tol` of both the golden value and the CPU result.
fn check(what: &str, device: Device, ours: &Tensor, golden: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(ours.device(), device, "{what}: result left the device");
    assert_eq!(ours.dims(), cpu.dims(), "{what}: shape");
    let err = rel_err(ours, golden);
    assert!(err <= tol, "{what}: {err:e} vs golden");
    let err = rel_err(ours, cpu);
    assert!(err <= tol, "{what}: {err:e} vs CPU");
}

#[test]
fn golden_hessian_diagonal_and_trace_cuda() {
    let device = gpu();
    for name in GOLDEN {
        let (file, cpu_file) = (
            load(name, DType::F64, device),
            load(name, DType::F64, Device::Cpu),
        );
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let cpu_op =
            PreparedHvp::for_model(&cpu_file.model, cpu_file.loss, &cpu_file.x, &cpu_file.y)
                .unwrap();
        let golden = |key| cpu_file.tensor(key).unwrap();
        let options = HessianOptions::default();

        let h = hessian_of(&op, &options).unwrap();
        let h_cpu = hessian_of(&cpu_op, &options).unwrap();
        check(
            &format!("{name} hessian"),
            device,
            &h,
            golden("hessian"),
            &h_cpu,
            TOL,
        );

        let theta = file.model.flat_params().unwrap();
        let functional = hessian(|v| file.loss_of(&v[0]), &[theta], &options).unwrap();
        check(
            &format!("{name} hessian(fn)"),
            device,
            &functional,
            golden("hessian"),
            &h_cpu,
            TOL,
        );

        let diag = hessian_diagonal(&op, &options).unwrap();
        let diag_cpu = hessian_diagonal(&cpu_op, &options).unwrap();
        check(
            &format!("{name} diag"),
            device,
            &diag,
            golden("hessian_diag"),
            &diag_cpu,
            TOL,
        );

        let trace = diag.sum_all().unwrap();
        let trace_cpu = diag_cpu.sum_all().unwrap();
        check(
            &format!("{name} trace"),
            device,
            &trace,
            golden("hessian_trace"),
            &trace_cpu,
            TOL,
        );
    }
}

#[test]
fn golden_hvps_via_hvp_and_hvp_batch_cuda() {
    let device = gpu();
    for name in GOLDEN {
        let (file, cpu_file) = (
            load(name, DType::F64, device),
            load(name, DType::F64, Device::Cpu),
        );
        let golden = cpu_file.tensor("hvps").unwrap();
        let v = file.tensor("V").unwrap();
        let theta = file.model.flat_params().unwrap();
        let f = |vars: &[Var]| file.loss_of(&vars[0]);
        let batch = hvp_batch(f, std::slice::from_ref(&theta), std::slice::from_ref(v))
            .unwrap()
            .remove(0);
        let cpu_theta = cpu_file.model.flat_params().unwrap();
        let cpu_batch = hvp_batch(
            |vars: &[Var]| cpu_file.loss_of(&vars[0]),
            std::slice::from_ref(&cpu_theta),
            std::slice::from_ref(cpu_file.tensor("V").unwrap()),
        )
        .unwrap()
        .remove(0);
        check(
            &format!("{name} hvp_batch"),
            device,
            &batch,
            golden,
            &cpu_batch,
            TOL,
        );
        for i in 0..v.dims()[0] {
            let row = v.narrow(0, i, 1).unwrap().reshape([v.dims()[1]]).unwrap();
            let single = hvp(f, std::slice::from_ref(&theta), &[row])
                .unwrap()
                .remove(0);
            let p = v.dims()[1];
            let golden_row = golden.narrow(0, i, 1).unwrap().reshape([p]).unwrap();
            let cpu_row = cpu_batch.narrow(0, i, 1).unwrap().reshape([p]).unwrap();
            check(
                &format!("{name} hvp row {i}"),
                device,
                &single,
                &golden_row,
                &cpu_row,
                TOL,
            );
            // The batching invariant (ARCHITECTURE.md, "Batched cotangents") holds on the device too.
            let same = rel_err(&single, &batch.narrow(0, i, 1).unwrap());
            assert!(
                same <= 1e-12,
                "{name} hvp_batch(V)[{i}] vs hvp(V[{i}]): {same:e}"
            );
        }
    }
}

#[test]
fn golden_top_eigenvalues_cuda() {
    let device = gpu();
    let options = LanczosOptions {
        k: 3,
        tol: 1e-10,
        ..LanczosOptions::default()
    };
    for name in GOLDEN {
        let (file, cpu_file) = (
            load(name, DType::F64, device),
            load(name, DType::F64, Device::Cpu),
        );
        let golden = cpu_file
            .tensor("hessian_eigvals")
            .unwrap()
            .to_f64s()
            .unwrap();
        let scale = golden.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let largest: Vec<f64> = golden.iter().rev().take(3).copied().collect();
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let eig = top_eigenvalues(&op, &options).unwrap();
        assert!(eig.converged, "{name}: not converged in {}", eig.iterations);
        let cpu_op =
            PreparedHvp::for_model(&cpu_file.model, cpu_file.loss, &cpu_file.x, &cpu_file.y)
                .unwrap();
        let cpu_eig = top_eigenvalues(&cpu_op, &options).unwrap();
        for ((ours, want), cpu) in eig.values.iter().zip(&largest).zip(&cpu_eig.values) {
            let rel = (ours - want).abs() / want.abs().max(scale);
            assert!(
                rel <= 1e-8,
                "{name}: {:?} vs golden {largest:?}",
                eig.values
            );
            let rel = (ours - cpu).abs() / scale;
            assert!(
                rel <= 1e-8,
                "{name}: {:?} vs CPU {:?}",
                eig.values,
                cpu_eig.values
            );
        }
    }
}

#[test]
fn golden_hessian_and_hvps_in_f32_cuda() {
    let device = gpu();
    for name in GOLDEN {
        let file = load(name, DType::F32, device);
        let reference = load(name, DType::F64, Device::Cpu);
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let h = hessian_of(&op, &HessianOptions::default()).unwrap();
        assert_eq!((h.dtype(), h.device()), (DType::F32, device));
        let err = rel_err(&h, reference.tensor("hessian").unwrap());
        assert!(err <= 1e-4, "{name} f32 hessian: {err:e}");
        let hv = op.hvp_batch(file.tensor("V").unwrap()).unwrap();
        let err = rel_err(&hv, reference.tensor("hvps").unwrap());
        assert!(err <= 1e-4, "{name} f32 hvps: {err:e}");
    }
}
