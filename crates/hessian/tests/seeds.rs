//! The seeds' functions with closed-form Hessians derived by hand, plus the structural cases:
//! linear functions, ignored inputs, batched-vs-single products and the prepared operator.

mod common;

use common::{f64s, rel_err};
use curvature_hessian::{
    hessian, hvp, hvp_batch, output_hessian, probes, top_eigenvalues, HessianOptions,
    LanczosOptions, LinearOperator, PreparedHvp, Probe, Which,
};
use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

/// `pow_reducer(x) = Σ x³`.
fn pow_reducer(v: &[Var]) -> curvature_tape::Result<Var> {
    v[0].powf(3.0)?.sum_all()
}

/// `pow_adder_reducer(x, y) = Σ (2x⁴ + 3y³ + x³y⁵)`.
fn pow_adder_reducer(v: &[Var]) -> curvature_tape::Result<Var> {
    let (x, y) = (&v[0], &v[1]);
    let a = x.powf(4.0)?.mul_scalar(2.0)?;
    let b = y.powf(3.0)?.mul_scalar(3.0)?;
    let c = x.powf(3.0)?.mul(&y.powf(5.0)?)?;
    a.add(&b)?.add(&c)?.sum_all()
}

const X: [f64; 3] = [0.5, -1.2, 0.8];
const Y: [f64; 3] = [1.1, -0.7, 0.3];

#[test]
fn pow_reducer_vhp_with_ones_is_six_x_cpu() {
    let xs = [0.25, -1.5, 2.0, 0.0, 3.5];
    let x = f64s(&xs, &[5]);
    let out = hvp(
        pow_reducer,
        std::slice::from_ref(&x),
        &[x.ones_like().unwrap()],
    )
    .unwrap();
    let want: Vec<f64> = xs.iter().map(|v| 6.0 * v).collect();
    assert_eq!(out[0].to_vec::<f64>().unwrap(), want);
}

#[test]
fn pow_adder_reducer_hessian_matches_closed_form_cpu() {
    let inputs = [f64s(&X, &[3]), f64s(&Y, &[3])];
    let h = hessian(pow_adder_reducer, &inputs, &HessianOptions::default()).unwrap();
    assert_eq!(h.dims(), &[6, 6]);
    // Per index i: ∂²/∂x² = 24x² + 6xy⁵, ∂²/∂x∂y = 15x²y⁴, ∂²/∂y² = 18y + 20x³y³; other
    // indices do not interact. Layout [[Hxx, Hxy], [Hyx, Hyy]] with 3 × 3 diagonal blocks.
    let mut want = vec![0.0; 36];
    for i in 0..3 {
        let (x, y) = (X[i], Y[i]);
        want[i * 6 + i] = 24.0 * x * x + 6.0 * x * y.powi(5);
        want[i * 6 + 3 + i] = 15.0 * x * x * y.powi(4);
        want[(3 + i) * 6 + i] = 15.0 * x * x * y.powi(4);
        want[(3 + i) * 6 + 3 + i] = 18.0 * y + 20.0 * x.powi(3) * y.powi(3);
    }
    let err = rel_err(&h, &f64s(&want, &[6, 6]));
    assert!(err <= 1e-14, "{err:e}");
}

#[test]
fn pow_adder_reducer_hvp_batch_rows_equal_single_hvps_cpu() {
    let inputs = [f64s(&X, &[3]), f64s(&Y, &[3])];
    let k = 5;
    let v = probes(k, 6, Probe::Gaussian, 11, DType::F64, Device::Cpu).unwrap();
    let vx = v.narrow(1, 0, 3).unwrap();
    let vy = v.narrow(1, 3, 3).unwrap();
    let batch = hvp_batch(pow_adder_reducer, &inputs, &[vx.clone(), vy.clone()]).unwrap();
    assert_eq!(batch[0].dims(), &[k, 3]);
    assert_eq!(batch[1].dims(), &[k, 3]);
    let h = hessian(pow_adder_reducer, &inputs, &HessianOptions::default()).unwrap();
    let reference = v.matmul(&h).unwrap(); // rows of V·H (H symmetric)
    for i in 0..k {
        let row = |t: &Tensor| t.narrow(0, i, 1).unwrap().reshape([3]).unwrap();
        let single = hvp(pow_adder_reducer, &inputs, &[row(&vx), row(&vy)]).unwrap();
        for (b, s) in batch.iter().zip(&single) {
            let err = rel_err(&b.narrow(0, i, 1).unwrap(), s);
            assert!(err <= 1e-12, "row {i}: {err:e}");
        }
        let joined = Tensor::cat(&[&single[0], &single[1]], 0).unwrap();
        let err = rel_err(&joined, &reference.narrow(0, i, 1).unwrap());
        assert!(err <= 1e-12, "row {i} vs V·H: {err:e}");
    }
}

#[test]
fn mimo_model_hessian_is_block_scaled_identity_cpu() {
    // hesse's MimoModel: out = hstack(tr(AᵀA)·x, tr(BᵀB)·y), x = [[1,2],[3,4]], y = −x.
    let x = [[1.0, 2.0], [3.0, 4.0]];
    let a = f64s(&[0.3, -1.0, 2.0, 0.7], &[2, 2]);
    let b = f64s(&[-0.4, 1.5, 0.2, -2.2], &[2, 2]);
    let xt = f64s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let yt = xt.neg().unwrap();
    let mimo = |v: &[Var]| -> curvature_tape::Result<Var> {
        let ta = v[0].t()?.matmul(&v[0])?.trace()?;
        let tb = v[1].t()?.matmul(&v[1])?.trace()?;
        let left = v[0].constant(xt.clone()).mul(&ta)?;
        let right = v[1].constant(yt.clone()).mul(&tb)?;
        Var::cat(&[&left, &right], 1)
    };
    let h = output_hessian(mimo, &[a, b], &HessianOptions::default()).unwrap();
    assert_eq!(h.dims(), &[2, 4, 8, 8]);
    // tr(AᵀA) = Σ A², whose Hessian is 2·I₄: output [i, j] is x[i][j]·tr(AᵀA) for j < 2 (the
    // A-block, parameters 0..4) and y[i][j−2]·tr(BᵀB) for j ≥ 2 (the B-block, 4..8).
    let mut want = vec![0.0; 2 * 4 * 64];
    for i in 0..2 {
        for j in 0..4 {
            let (coefficient, block) = if j < 2 {
                (x[i][j], 0)
            } else {
                (-x[i][j - 2], 4)
            };
            for d in 0..4 {
                let p = block + d;
                want[(i * 4 + j) * 64 + p * 8 + p] = 2.0 * coefficient;
            }
        }
    }
    assert_eq!(h.to_vec::<f64>().unwrap(), want);
}

#[test]
fn linear_function_hessian_is_exact_zeros_cpu() {
    let x = f64s(&[1.0, -2.0, 0.5, 4.0], &[4]);
    let c = f64s(&[3.0, -1.0, 0.25, 2.0], &[4]);
    let linear = |v: &[Var]| {
        v[0].mul(&v[0].constant(c.clone()))?
            .sum_all()?
            .add_scalar(7.0)
    };
    let h = hessian(linear, std::slice::from_ref(&x), &HessianOptions::default()).unwrap();
    assert_eq!(h.to_vec::<f64>().unwrap(), vec![0.0; 16]);
    let hv = hvp(linear, std::slice::from_ref(&x), std::slice::from_ref(&c)).unwrap();
    assert_eq!(hv[0].to_vec::<f64>().unwrap(), vec![0.0; 4]);
    let op = PreparedHvp::new(linear, &[x]).unwrap();
    let top = top_eigenvalues(
        &op,
        &LanczosOptions {
            k: 2,
            which: Which::LargestMagnitude,
            ..LanczosOptions::default()
        },
    )
    .unwrap();
    assert_eq!(top.values, vec![0.0, 0.0]);
    assert!(top.converged);
}

#[test]
fn ignored_input_gives_a_zero_block_cpu() {
    let x = f64s(&[1.0, -2.0, 0.5], &[3]);
    let y = f64s(&[4.0, 5.0], &[2]);
    let only_x = |v: &[Var]| v[0].powf(3.0)?.sum_all();
    let h = hessian(only_x, &[x, y], &HessianOptions::default()).unwrap();
    let mut want = vec![0.0; 25];
    for (i, xi) in [1.0, -2.0, 0.5].iter().enumerate() {
        want[i * 5 + i] = 6.0 * xi;
    }
    assert_eq!(h.to_vec::<f64>().unwrap(), want);
}

#[test]
fn prepared_operator_records_nothing_per_batch_cpu() {
    let inputs = [f64s(&X, &[3]), f64s(&Y, &[3])];
    let op = PreparedHvp::new(pow_adder_reducer, &inputs).unwrap();
    let before = op.recorded_nodes();
    let v = probes(4, 6, Probe::Rademacher, 3, DType::F64, Device::Cpu).unwrap();
    let first = op.apply_batch(&v).unwrap();
    for _ in 0..5 {
        let again = op.apply_batch(&v).unwrap();
        assert_eq!(
            again.to_vec::<f64>().unwrap(),
            first.to_vec::<f64>().unwrap()
        );
    }
    assert_eq!(op.recorded_nodes(), before);
    assert_eq!(op.dim(), 6);
    // The recorded value and gradient are those of the function.
    let value: f64 = (0..3)
        .map(|i| 2.0 * X[i].powi(4) + 3.0 * Y[i].powi(3) + X[i].powi(3) * Y[i].powi(5))
        .sum();
    assert!((op.value().to_scalar().unwrap() - value).abs() <= 1e-14);
    let gx = (0..3).map(|i| 8.0 * X[i].powi(3) + 3.0 * X[i].powi(2) * Y[i].powi(5));
    let gy = (0..3).map(|i| 9.0 * Y[i].powi(2) + 5.0 * X[i].powi(3) * Y[i].powi(4));
    let want: Vec<f64> = gx.chain(gy).collect();
    assert!(rel_err(op.gradient(), &f64s(&want, &[6])) <= 1e-14);
}

#[test]
fn probes_are_seeded_and_batch_independent_cpu() {
    let all = probes(6, 5, Probe::Rademacher, 42, DType::F64, Device::Cpu).unwrap();
    let again = probes(6, 5, Probe::Rademacher, 42, DType::F64, Device::Cpu).unwrap();
    let other = probes(6, 5, Probe::Rademacher, 43, DType::F64, Device::Cpu).unwrap();
    let values = all.to_vec::<f64>().unwrap();
    assert_eq!(values, again.to_vec::<f64>().unwrap());
    assert_ne!(values, other.to_vec::<f64>().unwrap());
    assert!(values.iter().all(|v| *v == 1.0 || *v == -1.0));
    let head = probes(2, 5, Probe::Rademacher, 42, DType::F64, Device::Cpu).unwrap();
    assert_eq!(head.to_vec::<f64>().unwrap(), values[..10].to_vec());
    let f32s = probes(6, 5, Probe::Gaussian, 42, DType::F32, Device::Cpu).unwrap();
    let f64s = probes(6, 5, Probe::Gaussian, 42, DType::F64, Device::Cpu).unwrap();
    let narrowed: Vec<f32> = f64s
        .to_vec::<f64>()
        .unwrap()
        .iter()
        .map(|v| *v as f32)
        .collect();
    assert_eq!(f32s.to_vec::<f32>().unwrap(), narrowed);
}
