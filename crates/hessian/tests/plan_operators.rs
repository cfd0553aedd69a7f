//! Compiled plans inside the operators: a batch replayed by the plan equals the op-by-op sweep
//! (`with_plan(false)`) to 1e-12 relative in f64 and 1e-5 in f32, for every golden model, the
//! Rosenbrock function (with `narrow`, also against its Hessian written out), softmax regression
//! (with `log_softmax`), a residual tanh MLP and the Gauss–Newton operator, on the CPU and on
//! CUDA (the emulated GPU in CI); plans per batch size, the batch invariant through the plan,
//! and an operator used inside an outer capture.

mod common;

use common::{load_as, rel_err, GOLDEN};
use curvature_hessian::{Curvature, Ggn, LinearOperator, OutputLoss, PreparedHvp};
use curvature_tape::Var;
use curvature_tensor::plan::{capture, Plan};
use curvature_tensor::{DType, Device, Tensor};

/// A deterministic `[k, p]` batch, different for each `seed`.
fn batch(k: usize, p: usize, seed: usize, dtype: DType, device: Device) -> Tensor {
    Tensor::from_fn([k, p], dtype, device, |i| {
        ((i * 7 + seed * 13) % 17) as f64 / 8.0 - 1.0
    })
    .unwrap()
}

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        _ => 1e-5,
    }
}

/// Three batches of each of two sizes: every batch after a size's first replays its plan, and
/// each equals the op-by-op sweep of `reference`.
fn plans_match_op_by_op<O: LinearOperator>(
    what: &str,
    planned: &O,
    reference: &O,
    sizes: impl Fn() -> Vec<usize>,
) {
    let (dtype, device) = (planned.dtype(), planned.device());
    // The emulated GPU is slow: fewer rounds there (each size still replays its plan).
    let rounds: &[usize] = if device == Device::Cpu {
        &[3, 3, 2, 3, 2]
    } else {
        &[3, 3, 2, 2]
    };
    for (round, &k) in rounds.iter().enumerate() {
        let v = batch(k, planned.dim(), round, dtype, device);
        let ours = planned.apply_batch(&v).unwrap();
        let expected = reference.apply_batch(&v).unwrap();
        assert_eq!(ours.dims(), [k, planned.dim()], "{what}");
        assert_eq!(ours.device(), device, "{what}");
        let err = rel_err(&ours, &expected);
        assert!(err <= tol(dtype), "{what}, K = {k}, round {round}: {err:e}");
    }
    assert_eq!(sizes(), [3, 2], "{what}: one plan per batch size");
}

fn golden_models_through_plans(device: Device) {
    for dtype in [DType::F64, DType::F32] {
        // On the emulated GPU f32 runs on the first model only, to keep the test quick.
        let names = match (device, dtype) {
            (Device::Cpu, _) | (_, DType::F64) => &GOLDEN[..],
            _ => &GOLDEN[..1],
        };
        for &name in names {
            let file = load_as(name, dtype, device);
            let make = || PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
            let planned = make();
            let reference = make().with_plan(false);
            plans_match_op_by_op(name, &planned, &reference, || planned.plan_batch_sizes());
            assert!(reference.plan_batch_sizes().is_empty());
            let plan = planned.compiled_plan(3).unwrap();
            assert!(!plan.steps().is_empty());
        }
    }
}

/// Σ 100(x₍ᵢ₊₁₎ − xᵢ²)² + (1 − xᵢ)², with `narrow`.
fn rosenbrock(x: &Var) -> curvature_tape::Result<Var> {
    let n = x.dims()[0];
    let head = x.narrow(0, 0, n - 1)?;
    let tail = x.narrow(0, 1, n - 1)?;
    let a = tail.sub(&head.square()?)?.square()?.mul_scalar(100.0)?;
    let b = head.mul_scalar(-1.0)?.add_scalar(1.0)?.square()?;
    a.add(&b)?.sum_all()
}

/// Rosenbrock's Hessian times `v`, written out.
fn rosenbrock_hvp(x: &[f64], v: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut h = vec![0.0; n * n];
    for i in 0..n - 1 {
        // 100(x₍ᵢ₊₁₎ − xᵢ²)²: ∂²/∂xᵢ² = 1200xᵢ² − 400x₍ᵢ₊₁₎, ∂²/∂xᵢ∂x₍ᵢ₊₁₎ = −400xᵢ, ∂²/∂x₍ᵢ₊₁₎² = 200.
        h[i * n + i] += 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0;
        h[i * n + i + 1] -= 400.0 * x[i];
        h[(i + 1) * n + i] -= 400.0 * x[i];
        h[(i + 1) * n + i + 1] += 200.0;
    }
    (0..n)
        .map(|r| (0..n).map(|c| h[r * n + c] * v[c]).sum())
        .collect()
}

fn rosenbrock_through_plans(device: Device) {
    for dtype in [DType::F64, DType::F32] {
        let host = [0.5, -0.3, 1.2, 0.8, -1.1, 0.4];
        let x = Tensor::from_f64s(&host, [6], dtype, device).unwrap();
        let make =
            || PreparedHvp::new(|v: &[Var]| rosenbrock(&v[0]), std::slice::from_ref(&x)).unwrap();
        let planned = make();
        let reference = make().with_plan(false);
        plans_match_op_by_op("rosenbrock", &planned, &reference, || {
            planned.plan_batch_sizes()
        });
        let v = batch(3, 6, 9, dtype, device);
        let ours = planned.apply_batch(&v).unwrap().to_f64s().unwrap();
        let rows = v.to_f64s().unwrap();
        for r in 0..3 {
            let expected = rosenbrock_hvp(&host, &rows[r * 6..r * 6 + 6]);
            let scale = expected.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            for c in 0..6 {
                let err = (ours[r * 6 + c] - expected[c]).abs() / scale;
                assert!(err <= 10.0 * tol(dtype), "row {r} col {c}: {err:e}");
            }
        }
    }
}

fn softmax_regression_through_plans(device: Device) {
    let (n, d, c) = (8, 5, 3);
    for dtype in [DType::F64, DType::F32] {
        let x =
            Tensor::from_fn([n, d], dtype, device, |i| ((i * 5) % 11) as f64 / 5.0 - 1.0).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| (i * 2) % c).collect();
        let y = Tensor::one_hot(&labels, c, dtype, device).unwrap();
        let w =
            Tensor::from_fn([d, c], dtype, device, |i| ((i * 3) % 7) as f64 / 10.0 - 0.3).unwrap();
        let loss = |v: &[Var]| -> curvature_tape::Result<Var> {
            let logp = v[0].constant(x.clone()).matmul(&v[0])?.log_softmax(1)?;
            logp.mul(&v[0].constant(y.clone()))?
                .sum_all()?
                .mul_scalar(-1.0 / n as f64)
        };
        let planned = PreparedHvp::new(loss, std::slice::from_ref(&w)).unwrap();
        let reference = PreparedHvp::new(loss, std::slice::from_ref(&w))
            .unwrap()
            .with_plan(false);
        plans_match_op_by_op("softmax regression", &planned, &reference, || {
            planned.plan_batch_sizes()
        });
    }
}

fn residual_mlp_through_plans(device: Device) {
    let (n, d, h, o) = (6, 4, 5, 2);
    for dtype in [DType::F64, DType::F32] {
        let make = |shape: [usize; 2], seed: usize| {
            Tensor::from_fn(shape, dtype, device, |i| {
                ((i * 7 + seed) % 13) as f64 / 13.0 - 0.5
            })
            .unwrap()
        };
        let (x, y) = (make([n, d], 1), make([n, o], 2));
        let params = [make([d, h], 3), make([h, h], 4), make([h, o], 5)];
        let loss = |v: &[Var]| -> curvature_tape::Result<Var> {
            let h1 = v[0].constant(x.clone()).matmul(&v[0])?.tanh()?;
            let h2 = h1.add(&h1.matmul(&v[1])?.tanh()?)?;
            let out = h2.matmul(&v[2])?;
            out.sub(&v[0].constant(y.clone()))?.square()?.mean_all()
        };
        let planned = PreparedHvp::new(loss, &params).unwrap();
        let reference = PreparedHvp::new(loss, &params).unwrap().with_plan(false);
        plans_match_op_by_op("residual tanh MLP", &planned, &reference, || {
            planned.plan_batch_sizes()
        });
    }
}

/// `hvp_batch(V)[i] == hvp(V[i])` with both sizes (K = 3 and K = 1) through their plans.
fn batch_invariant_through_plans(device: Device) {
    let file = load_as(GOLDEN[2], DType::F64, device);
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    let v = batch(3, op.dim(), 4, DType::F64, device);
    for _ in 0..2 {
        let rows = op.hvp_batch(&v).unwrap();
        for i in 0..3 {
            let single = op
                .hvp(&v.narrow(0, i, 1).unwrap().reshape([op.dim()]).unwrap())
                .unwrap();
            let row = rows.narrow(0, i, 1).unwrap();
            assert!(rel_err(&single, &row) <= 1e-12);
        }
    }
    assert_eq!(op.plan_batch_sizes(), [3, 1]);
}

/// The last four batch sizes keep their plans; a fifth evicts the oldest.
fn plans_are_kept_for_four_sizes(device: Device) {
    let x = Tensor::from_f64s(&[0.5, -0.3, 1.2], [3], DType::F64, device).unwrap();
    let op = PreparedHvp::new(|v: &[Var]| rosenbrock(&v[0]), &[x]).unwrap();
    for k in 1..=5 {
        op.apply_batch(&batch(k, 3, k, DType::F64, device)).unwrap();
    }
    assert_eq!(op.plan_batch_sizes(), [2, 3, 4, 5]);
    assert!(op.compiled_plan(1).is_none());
}

fn ggn_through_plans(device: Device) {
    let file = load_as(GOLDEN[2], DType::F64, device);
    let make = || {
        Ggn::new(
            &file.model,
            OutputLoss::Mse,
            &file.x,
            &file.y,
            Curvature::Ggn,
        )
        .unwrap()
    };
    let planned = make();
    let reference = make().with_plan(false);
    plans_match_op_by_op("ggn", &planned, &reference, || planned.plan_batch_sizes());
}

/// An operator applied inside an outer capture runs op by op (its own capture is refused as
/// nested), so the outer trace records its sweep and replays it.
fn operator_inside_a_capture(device: Device) {
    let file = load_as(GOLDEN[0], DType::F64, device);
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    let v = batch(2, op.dim(), 1, DType::F64, device);
    let (outs, trace) = capture(&[&v], || {
        Ok(vec![op.apply_batch(&v).map_err(|e| {
            curvature_tensor::TensorError::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            }
        })?])
    })
    .unwrap();
    assert!(op.plan_batch_sizes().is_empty());
    let plan = Plan::compile(trace).unwrap();
    let w = batch(2, op.dim(), 5, DType::F64, device);
    let replayed = plan.run(&[&w]).unwrap();
    let reference = op.apply_batch(&w).unwrap();
    assert!(rel_err(&replayed[0], &reference) <= 1e-12);
    assert!(rel_err(&outs[0], &op.apply_batch(&v).unwrap()) <= 1e-12);
}

device_tests!(
    golden_models_through_plans,
    rosenbrock_through_plans,
    softmax_regression_through_plans,
    residual_mlp_through_plans,
    batch_invariant_through_plans,
    plans_are_kept_for_four_sizes,
    ggn_through_plans,
    operator_inside_a_capture,
);
