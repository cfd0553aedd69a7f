//! Every golden file (independent float64 JAX references), on the CPU and on `Device::Cuda`:
//! Hessians, diagonals, traces, HVPs, model Hessians, per-sample Hessians and top eigenvalues,
//! in f64 to 1e-10 (the README's measure; eigenvalues 1e-8 relative to the spectral scale) and
//! in f32 to 1e-4. Results stay on the device, and on CUDA they also equal the CPU's.

mod common;

use common::{load, load_as, rel_err, GOLDEN};
use curvature_hessian::{
    hessian, hessian_diagonal, hessian_of, hvp, hvp_batch, loss_hessian, model_hessian,
    per_sample_hessian, top_eigenvalues, HessianOptions, LanczosOptions, PreparedHvp, Which,
};
use curvature_nn::{Loss, ModelFile, Module};
use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

const TOL: f64 = 1e-10;

/// The golden model `name` in f64 on `device`, and its prepared Hessian operator.
fn prepared(name: &str, device: Device) -> (ModelFile, PreparedHvp) {
    let file = load_as(name, DType::F64, device);
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    (file, op)
}

/// A result to compare: what it is, our value, and the golden value it must match.
type Compared = (String, Tensor, Tensor);

/// For every golden model, each result of `results(name, device)` is on `device` and within
/// `TOL` of its golden value; on a CUDA device it also has the CPU result's shape and is within
/// `TOL` of it.
fn assert_golden(device: Device, results: impl Fn(&str, Device) -> Vec<Compared>) {
    for name in GOLDEN {
        let ours = results(name, device);
        let cpu = (device != Device::Cpu).then(|| results(name, Device::Cpu));
        for (i, (what, value, golden)) in ours.iter().enumerate() {
            assert_eq!(
                value.device(),
                device,
                "{name} {what}: result left the device"
            );
            let err = rel_err(value, golden);
            assert!(err <= TOL, "{name} {what}: {err:e} vs golden");
            if let Some(cpu) = &cpu {
                let (cpu_what, cpu_value, _) = &cpu[i];
                assert_eq!(what, cpu_what);
                assert_eq!(value.dims(), cpu_value.dims(), "{name} {what}: shape");
                let err = rel_err(value, cpu_value);
                assert!(err <= TOL, "{name} {what}: {err:e} vs CPU");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loss, gradient and Hessian

/// The prepared operator's loss and gradient equal the golden ones.
fn golden_loss_and_gradient_of_prepared_operator(device: Device) {
    assert_golden(device, |name, device| {
        let (_, op) = prepared(name, device);
        let reference = load(name);
        vec![
            (
                "loss".into(),
                op.value().clone(),
                reference.tensor("loss").unwrap().clone(),
            ),
            (
                "grad".into(),
                op.gradient().clone(),
                reference.tensor("grad").unwrap().clone(),
            ),
        ]
    });
}

/// The Hessian three ways (of the prepared operator, `loss_hessian`, and `hessian` of the loss
/// function) has the golden shape and values.
fn golden_hessian_three_ways(device: Device) {
    assert_golden(device, |name, device| {
        let (file, op) = prepared(name, device);
        let golden = load(name).tensor("hessian").unwrap().clone();
        let options = HessianOptions::default();
        let from_op = hessian_of(&op, &options).unwrap();
        let from_loss = loss_hessian(&file.model, file.loss, &file.x, &file.y).unwrap();
        let theta = file.model.flat_params().unwrap();
        let functional = hessian(|v| file.loss_of(&v[0]), &[theta], &options).unwrap();
        [("op", from_op), ("loss", from_loss), ("fn", functional)]
            .into_iter()
            .map(|(how, h)| {
                assert_eq!(h.dims(), golden.dims(), "{name} {how}");
                (format!("hessian via {how}"), h, golden.clone())
            })
            .collect()
    });
}

/// The exact diagonal and the trace (its sum) equal the golden ones.
fn golden_hessian_diag_and_trace(device: Device) {
    assert_golden(device, |name, device| {
        let (_, op) = prepared(name, device);
        let reference = load(name);
        let diag = hessian_diagonal(&op, &HessianOptions::default()).unwrap();
        let trace = diag.sum_all().unwrap();
        vec![
            (
                "diag".into(),
                diag,
                reference.tensor("hessian_diag").unwrap().clone(),
            ),
            (
                "trace".into(),
                trace,
                reference.tensor("hessian_trace").unwrap().clone(),
            ),
        ]
    });
}

/// The chunked Hessian (a memory budget of seven rows at a time) equals the HVPs of the whole
/// identity to 1e-12.
fn golden_hessian_equals_hvp_batch_of_identity(device: Device) {
    for name in GOLDEN {
        let (file, op) = prepared(name, device);
        let p = file.model.num_params();
        let identity = Tensor::eye(p, p, DType::F64, device).unwrap();
        let from_identity = op.hvp_batch(&identity).unwrap();
        let chunked = hessian_of(
            &op,
            &HessianOptions {
                memory_budget_bytes: 2 * p * 8 * 7,
                max_rows: 256,
            },
        )
        .unwrap();
        assert_eq!(chunked.device(), device, "{name}");
        let err = rel_err(&chunked, &from_identity);
        assert!(err <= 1e-12, "{name}: {err:e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hessian-vector products

/// `hvp_batch` with the golden V `[K, P]` and `hvp` with each row equal the golden HVPs, and
/// each batched row equals its own `hvp` to 1e-12 (ARCHITECTURE.md, "Batched cotangents").
fn golden_hvps_via_hvp_and_hvp_batch(device: Device) {
    assert_golden(device, |name, device| {
        let file = load_as(name, DType::F64, device);
        let golden = load(name).tensor("hvps").unwrap().clone();
        let v = file.tensor("V").unwrap();
        let theta = file.model.flat_params().unwrap();
        let f = |vars: &[Var]| file.loss_of(&vars[0]);
        let batch = hvp_batch(f, std::slice::from_ref(&theta), std::slice::from_ref(v))
            .unwrap()
            .remove(0);
        let mut results = vec![("hvp_batch".to_string(), batch.clone(), golden.clone())];
        let (k, p) = (v.dims()[0], v.dims()[1]);
        for i in 0..k {
            let row = v.narrow(0, i, 1).unwrap().reshape([p]).unwrap();
            let single = hvp(f, std::slice::from_ref(&theta), &[row])
                .unwrap()
                .remove(0);
            let same = rel_err(&single, &batch.narrow(0, i, 1).unwrap());
            assert!(
                same <= 1e-12,
                "{name} hvp_batch(V)[{i}] vs hvp(V[{i}]): {same:e}"
            );
            let golden_row = golden.narrow(0, i, 1).unwrap().reshape([p]).unwrap();
            results.push((format!("hvp row {i}"), single, golden_row));
        }
        results
    });
}

// ---------------------------------------------------------------------------------------------
// Model and per-sample Hessians

/// The model Hessian `[N, out, P, P]` equals the golden one where a file carries it (two do).
fn golden_model_hessian_where_present(device: Device) {
    let present: Vec<&str> = GOLDEN
        .into_iter()
        .filter(|name| load(name).tensor("model_hessian").is_ok())
        .collect();
    assert_eq!(present.len(), 2, "two golden files carry model_hessian");
    assert_golden(device, |name, device| {
        if !present.contains(&name) {
            return Vec::new();
        }
        let file = load_as(name, DType::F64, device);
        let golden = load(name).tensor("model_hessian").unwrap().clone();
        let h = model_hessian(&file.model, &file.x).unwrap();
        let (n, out, p) = (
            file.x.dims()[0],
            *file.widths.last().unwrap(),
            file.model.num_params(),
        );
        assert_eq!(h.dims(), &[n, out, p, p], "{name}");
        vec![("model_hessian".into(), h, golden)]
    });
}

/// The per-sample Hessians `[N, P, P]` combine (a mean for MSE and cross-entropy, whose
/// per-sample losses average over their outputs; a sum for the sum of squares) to the golden
/// loss Hessian. On the CPU only: one exact Hessian per sample is N·P sweeps, minutes of
/// kernel launches on the emulated GPU, and the sweeps it runs are those of the tests above.
#[test]
fn golden_per_sample_hessians_average_to_the_loss_hessian_cpu() {
    assert_golden(Device::Cpu, |name, device| {
        let file = load_as(name, DType::F64, device);
        let per = per_sample_hessian(&file.model, file.loss, &file.x, &file.y).unwrap();
        let n = file.x.dims()[0];
        let p = file.model.num_params();
        assert_eq!(per.dims(), &[n, p, p]);
        let total = per.sum(&[0], false).unwrap();
        let combined = match file.loss {
            Loss::SumSq => total,
            _ => total.div_scalar(n as f64).unwrap(),
        };
        let golden = load(name).tensor("hessian").unwrap().clone();
        vec![("combined per-sample".into(), combined, golden)]
    });
}

// ---------------------------------------------------------------------------------------------
// Eigenvalues

/// Lanczos with k = 3 finds the three largest golden eigenvalues (`hessian_eigvals` is
/// ascending) and the three largest in magnitude, to 1e-8 relative to the spectral scale
/// max|λ| (a golden eigenvalue may be zero to rounding: seed_linear_sigmoid_sumsq has rank 2);
/// on CUDA the largest also equal the CPU's to 1e-8 of the scale.
fn golden_top_three_eigenvalues_by_lanczos(device: Device) {
    let options = LanczosOptions {
        k: 3,
        tol: 1e-10,
        ..LanczosOptions::default()
    };
    for name in GOLDEN {
        let (_, op) = prepared(name, device);
        let golden = load(name)
            .tensor("hessian_eigvals")
            .unwrap()
            .to_f64s()
            .unwrap();
        let eig = top_eigenvalues(&op, &options).unwrap();
        assert!(eig.converged, "{name}: not converged in {}", eig.iterations);
        let scale = golden.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let largest: Vec<f64> = golden.iter().rev().take(3).copied().collect();
        for (ours, want) in eig.values.iter().zip(&largest) {
            let rel = (ours - want).abs() / want.abs().max(scale);
            assert!(
                rel <= 1e-8,
                "{name}: {:?} vs golden {largest:?}",
                eig.values
            );
        }
        if device != Device::Cpu {
            let (_, cpu_op) = prepared(name, Device::Cpu);
            let cpu_eig = top_eigenvalues(&cpu_op, &options).unwrap();
            for (ours, cpu) in eig.values.iter().zip(&cpu_eig.values) {
                let rel = (ours - cpu).abs() / scale;
                assert!(
                    rel <= 1e-8,
                    "{name}: {:?} vs CPU {:?}",
                    eig.values,
                    cpu_eig.values
                );
            }
        }
        let mut by_magnitude = golden.clone();
        by_magnitude.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
        let eig = top_eigenvalues(
            &op,
            &LanczosOptions {
                which: Which::LargestMagnitude,
                ..options
            },
        )
        .unwrap();
        for (ours, want) in eig.values.iter().zip(&by_magnitude) {
            let rel = (ours - want).abs() / want.abs().max(scale);
            assert!(
                rel <= 1e-8,
                "{name} magnitude: {:?} vs {:?}",
                eig.values,
                &by_magnitude[..3]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// float32

/// In f32 the Hessian, the HVPs and the two largest eigenvalues are within the golden README's
/// float32 bar: max|ours − golden| / max|golden| ≤ 1e-4 (eigenvalues 1e-4 of the spectral
/// scale), and the results are f32 on the device.
fn golden_hessian_and_hvps_in_f32_within_1e_4(device: Device) {
    for name in GOLDEN {
        let file = load_as(name, DType::F32, device);
        let reference = load(name);
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let h = hessian_of(&op, &HessianOptions::default()).unwrap();
        assert_eq!((h.dtype(), h.device()), (DType::F32, device));
        let err = rel_err(&h, reference.tensor("hessian").unwrap());
        assert!(err <= 1e-4, "{name} f32 hessian: {err:e}");
        let hv = op.hvp_batch(file.tensor("V").unwrap()).unwrap();
        let err = rel_err(&hv, reference.tensor("hvps").unwrap());
        assert!(err <= 1e-4, "{name} f32 hvps: {err:e}");
        let eigvals = reference
            .tensor("hessian_eigvals")
            .unwrap()
            .to_f64s()
            .unwrap();
        let scale = eigvals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let options = LanczosOptions {
            k: 2,
            tol: 1e-5,
            ..LanczosOptions::default()
        };
        let eig = top_eigenvalues(&op, &options).unwrap();
        for (ours, want) in eig.values.iter().zip(eigvals.iter().rev()) {
            assert!(
                (ours - want).abs() <= 1e-4 * scale,
                "{name} f32: {:?}",
                eig.values
            );
        }
    }
}

device_tests! {
    golden_loss_and_gradient_of_prepared_operator,
    golden_hessian_three_ways,
    golden_hessian_diag_and_trace,
    golden_hessian_equals_hvp_batch_of_identity,
    golden_hvps_via_hvp_and_hvp_batch,
    golden_model_hessian_where_present,
    golden_top_three_eigenvalues_by_lanczos,
    golden_hessian_and_hvps_in_f32_within_1e_4,
}
