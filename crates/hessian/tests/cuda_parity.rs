//! The estimators on `Device::Cuda(0)` — a real GPU, or the emulated GPU (ARCHITECTURE.md, "The
//! emulated GPU") when there is none — agree with the CPU in f64 given the same seeds, and their
//! results stay on the device. (golden.rs checks every device against the golden values.)

mod common;

use common::{cuda, rel_err};
use curvature_hessian::{
    hessian_diagonal, hessian_of, model_hessian, spectral_density, top_eigenvalues,
    trace_hutchinson, trace_hutchpp, HessianOptions, LanczosOptions, PreparedHvp, Probe,
    SlqOptions,
};
use curvature_nn::ModelFile;
use curvature_tensor::{DType, Device};

#[test]
fn estimators_on_cuda_match_the_cpu_cuda() {
    let device = cuda();
    let path = common::data_dir().join("mlp_4_6_5_3_tanh_sigmoid_mse.safetensors");
    let cpu_file = ModelFile::load(&path, DType::F64, Device::Cpu).unwrap();
    let gpu_file = ModelFile::load(&path, DType::F64, device).unwrap();
    let cpu =
        PreparedHvp::for_model(&cpu_file.model, cpu_file.loss, &cpu_file.x, &cpu_file.y).unwrap();
    let gpu =
        PreparedHvp::for_model(&gpu_file.model, gpu_file.loss, &gpu_file.x, &gpu_file.y).unwrap();

    let v = gpu_file.tensor("V").unwrap();
    let hv = gpu.hvp_batch(v).unwrap();
    assert_eq!(hv.device(), device);
    assert!(rel_err(&hv, cpu_file.tensor("hvps").unwrap()) <= 1e-10);

    let options = HessianOptions::default();
    let h = hessian_of(&gpu, &options).unwrap();
    assert_eq!(h.device(), device);
    assert!(rel_err(&h, &hessian_of(&cpu, &options).unwrap()) <= 1e-12);
    let d = hessian_diagonal(&gpu, &options).unwrap();
    assert_eq!(d.device(), device);
    assert!(rel_err(&d, cpu_file.tensor("hessian_diag").unwrap()) <= 1e-10);
    // The model Hessian on the smaller golden model (one recording per output element).
    let small = common::data_dir().join("seed_linear_sigmoid_sumsq.safetensors");
    let small_cpu = ModelFile::load(&small, DType::F64, Device::Cpu).unwrap();
    let small_gpu = ModelFile::load(&small, DType::F64, device).unwrap();
    let mh = model_hessian(&small_gpu.model, &small_gpu.x).unwrap();
    assert_eq!(mh.device(), device);
    assert!(rel_err(&mh, small_cpu.tensor("model_hessian").unwrap()) <= 1e-10);

    // Host-seeded probes: the same vectors on both devices, so the same estimates.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1.0);
    let (a, b) = (
        trace_hutchinson(&gpu, 50, Probe::Rademacher, 3).unwrap(),
        trace_hutchinson(&cpu, 50, Probe::Rademacher, 3).unwrap(),
    );
    assert!(close(a, b), "Hutchinson {a} vs {b}");
    let (a, b) = (
        trace_hutchpp(&gpu, 30, 3).unwrap(),
        trace_hutchpp(&cpu, 30, 3).unwrap(),
    );
    assert!(close(a, b), "Hutch++ {a} vs {b}");
    let lanczos = LanczosOptions {
        k: 3,
        tol: 1e-10,
        eigenvectors: true,
        ..LanczosOptions::default()
    };
    let (a, b) = (
        top_eigenvalues(&gpu, &lanczos).unwrap(),
        top_eigenvalues(&cpu, &lanczos).unwrap(),
    );
    assert_eq!(a.vectors.as_ref().unwrap().device(), device);
    for (x, y) in a.values.iter().zip(&b.values) {
        assert!(close(*x, *y), "Lanczos {:?} vs {:?}", a.values, b.values);
    }
    let slq = SlqOptions {
        probes: 3,
        steps: 20,
        ..SlqOptions::default()
    };
    let (a, b) = (
        spectral_density(&gpu, &slq).unwrap(),
        spectral_density(&cpu, &slq).unwrap(),
    );
    for (x, y) in a.nodes.iter().flatten().zip(b.nodes.iter().flatten()) {
        assert!(
            (x - y).abs() <= 1e-8 * y.abs().max(1.0),
            "SLQ node {x} vs {y}"
        );
    }
}
