//! Every golden file (independent float64 JAX references): Hessians, diagonals, traces, HVPs,
//! model Hessians and top eigenvalues, in f64 to 1e-10 (the README's measure).

mod common;

use common::{load, rel_err, GOLDEN};
use curvature_hessian::{
    hessian, hessian_diagonal, hessian_of, hvp, hvp_batch, loss_hessian, model_hessian,
    per_sample_hessian, top_eigenvalues, HessianOptions, LanczosOptions, PreparedHvp, Which,
};
use curvature_nn::Loss;
use curvature_tensor::{DType, Device, Tensor};

const TOL: f64 = 1e-10;

fn prepared(name: &str) -> (curvature_nn::ModelFile, PreparedHvp) {
    let file = load(name);
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    (file, op)
}

#[test]
fn golden_loss_and_gradient_of_prepared_operator_cpu() {
    for name in GOLDEN {
        let (file, op) = prepared(name);
        let loss = rel_err(op.value(), file.tensor("loss").unwrap());
        let grad = rel_err(op.gradient(), file.tensor("grad").unwrap());
        assert!(
            loss <= TOL && grad <= TOL,
            "{name}: loss {loss:e}, grad {grad:e}"
        );
    }
}

#[test]
fn golden_hessian_three_ways_cpu() {
    for name in GOLDEN {
        let (file, op) = prepared(name);
        let golden = file.tensor("hessian").unwrap();
        let from_op = hessian_of(&op, &HessianOptions::default()).unwrap();
        let from_loss = loss_hessian(&file.model, file.loss, &file.x, &file.y).unwrap();
        let theta = file.model.flat_params().unwrap();
        let functional = hessian(
            |v| file.loss_of(&v[0]),
            &[theta],
            &HessianOptions::default(),
        )
        .unwrap();
        for (how, h) in [("op", from_op), ("loss", from_loss), ("fn", functional)] {
            let err = rel_err(&h, golden);
            assert_eq!(h.dims(), golden.dims(), "{name} {how}");
            assert!(err <= TOL, "{name} via {how}: {err:e}");
        }
    }
}

#[test]
fn golden_hessian_diag_and_trace_cpu() {
    for name in GOLDEN {
        let (file, op) = prepared(name);
        let diag = hessian_diagonal(&op, &HessianOptions::default()).unwrap();
        let err = rel_err(&diag, file.tensor("hessian_diag").unwrap());
        assert!(err <= TOL, "{name} diag: {err:e}");
        let trace = diag.sum_all().unwrap();
        let err = rel_err(&trace, file.tensor("hessian_trace").unwrap());
        assert!(err <= TOL, "{name} trace: {err:e}");
    }
}

#[test]
fn golden_hvps_via_hvp_and_hvp_batch_cpu() {
    for name in GOLDEN {
        let file = load(name);
        let v = file.tensor("V").unwrap();
        let golden = file.tensor("hvps").unwrap();
        let theta = file.model.flat_params().unwrap();
        let f = |vars: &[curvature_tape::Var]| file.loss_of(&vars[0]);
        let batch = hvp_batch(f, std::slice::from_ref(&theta), std::slice::from_ref(v))
            .unwrap()
            .remove(0);
        let err = rel_err(&batch, golden);
        assert!(err <= TOL, "{name} hvp_batch: {err:e}");
        for i in 0..v.dims()[0] {
            let row = v.narrow(0, i, 1).unwrap().reshape([v.dims()[1]]).unwrap();
            let single = hvp(f, std::slice::from_ref(&theta), &[row])
                .unwrap()
                .remove(0);
            let golden_row = golden.narrow(0, i, 1).unwrap();
            let err = rel_err(&single, &golden_row);
            assert!(err <= TOL, "{name} hvp row {i}: {err:e}");
            let same = rel_err(&single, &batch.narrow(0, i, 1).unwrap());
            assert!(
                same <= 1e-12,
                "{name} hvp_batch(V)[{i}] vs hvp(V[{i}]): {same:e}"
            );
        }
    }
}

#[test]
fn golden_hessian_equals_hvp_batch_of_identity_cpu() {
    for name in GOLDEN {
        let (file, op) = prepared(name);
        let p = file.model.num_params();
        let identity = Tensor::eye(p, p, DType::F64, Device::Cpu).unwrap();
        let from_identity = op.hvp_batch(&identity).unwrap();
        let chunked = hessian_of(
            &op,
            &HessianOptions {
                memory_budget_bytes: 2 * p * 8 * 7,
                max_rows: 256,
            },
        )
        .unwrap();
        let err = rel_err(&chunked, &from_identity);
        assert!(err <= 1e-12, "{name}: {err:e}");
    }
}

#[test]
fn golden_model_hessian_where_present_cpu() {
    let mut checked = 0;
    for name in GOLDEN {
        let file = load(name);
        let Ok(golden) = file.tensor("model_hessian") else {
            continue;
        };
        let h = model_hessian(&file.model, &file.x).unwrap();
        let (n, out, p) = (
            file.x.dims()[0],
            *file.widths.last().unwrap(),
            file.model.num_params(),
        );
        assert_eq!(h.dims(), &[n, out, p, p], "{name}");
        let err = rel_err(&h, golden);
        assert!(err <= TOL, "{name} model_hessian: {err:e}");
        checked += 1;
    }
    assert_eq!(checked, 2, "two golden files carry model_hessian");
}

#[test]
fn golden_per_sample_hessians_average_to_the_loss_hessian_cpu() {
    for name in GOLDEN {
        let file = load(name);
        let per = per_sample_hessian(&file.model, file.loss, &file.x, &file.y).unwrap();
        let n = file.x.dims()[0];
        let p = file.model.num_params();
        assert_eq!(per.dims(), &[n, p, p]);
        // MSE and cross-entropy are means over samples (MSE over all elements: each sample's
        // own MSE averages over its outputs); the sum of squares is a plain sum.
        let total = per.sum(&[0], false).unwrap();
        let combined = match file.loss {
            Loss::SumSq => total,
            Loss::Mse | Loss::CrossEntropy => total.div_scalar(n as f64).unwrap(),
        };
        let err = rel_err(&combined, file.tensor("hessian").unwrap());
        assert!(err <= TOL, "{name}: {err:e}");
    }
}

#[test]
fn golden_top_three_eigenvalues_by_lanczos_cpu() {
    // k = 3 against the largest golden eigenvalues (`hessian_eigvals` is ascending).
    for name in GOLDEN {
        let (file, op) = prepared(name);
        let golden = file.tensor("hessian_eigvals").unwrap().to_f64s().unwrap();
        let options = LanczosOptions {
            k: 3,
            tol: 1e-10,
            ..LanczosOptions::default()
        };
        let eig = top_eigenvalues(&op, &options).unwrap();
        assert!(eig.converged, "{name}: not converged in {}", eig.iterations);
        // Relative to the spectral scale max|λ|: a golden eigenvalue may be zero to rounding
        // (seed_linear_sigmoid_sumsq has rank 2), where a relative error has no meaning.
        let scale = golden.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let largest: Vec<f64> = golden.iter().rev().take(3).copied().collect();
        for (ours, want) in eig.values.iter().zip(&largest) {
            let rel = (ours - want).abs() / want.abs().max(scale);
            assert!(rel <= 1e-8, "{name}: {:?} vs {largest:?}", eig.values);
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

#[test]
fn golden_hessian_and_hvps_in_f32_within_1e_4_cpu() {
    // float32 bar from the golden README: max|ours − golden| / max|golden| ≤ 1e-4.
    for name in GOLDEN {
        let path = format!(
            "{}/../../tests/data/{name}.safetensors",
            env!("CARGO_MANIFEST_DIR")
        );
        let file = curvature_nn::ModelFile::load(&path, DType::F32, Device::Cpu).unwrap();
        let reference = load(name);
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let h = hessian_of(&op, &HessianOptions::default()).unwrap();
        assert_eq!(h.dtype(), DType::F32);
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
