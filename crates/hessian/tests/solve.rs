//! Damped curvature solves (conjugate gradients over K right-hand sides, LiSSA) and influence
//! scores, against dense solves done on the host with nalgebra.

mod common;

use common::{Diagonal, Recorded};
use curvature_hessian::{
    influence, solve_cg, solve_lissa, symmetric_eigenvalues, CgOptions, Damped,
    DiagonalPreconditioner, HessianError, HessianOptions, LinearOperator, LissaOptions,
    PreparedHvp, Result, MAX_SOLVE_ITERATIONS,
};
use curvature_nn::{Activation, Loss, Module, Sequential};
use curvature_tape::{grad, GradOptions, Tape};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A dense symmetric matrix as an operator (`V·A`).
struct Dense(Tensor);

impl LinearOperator for Dense {
    fn dim(&self) -> usize {
        self.0.dims()[0]
    }
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
    fn device(&self) -> Device {
        self.0.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        Ok(v.matmul(&self.0)?)
    }
}

/// `Qᵀ·diag(eigenvalues)·Q` for a random orthogonal Q (QR of a seeded Gaussian matrix), row-major.
fn with_spectrum(eigenvalues: &[f64], seed: u64) -> Vec<f64> {
    let n = eigenvalues.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = DMatrix::from_fn(n, n, |_, _| rng.random_range(-1.0..1.0));
    let q = g.qr().q();
    let a = q.transpose() * DMatrix::from_diagonal(&DVector::from_row_slice(eigenvalues)) * q;
    let a = (&a + a.transpose()) * 0.5;
    (0..n * n).map(|i| a[(i / n, i % n)]).collect()
}

fn random_rows(k: usize, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Solves `(A + λI)·x = b` for each row of `b` with nalgebra's LU, row-major `[K, n]`.
fn dense_solve(a: &[f64], n: usize, damping: f64, b: &[f64]) -> Vec<f64> {
    let m = DMatrix::from_row_slice(n, n, a) + DMatrix::identity(n, n) * damping;
    let lu = m.lu();
    b.chunks(n)
        .flat_map(|row| {
            let x = lu.solve(&DVector::from_row_slice(row)).unwrap();
            x.iter().copied().collect::<Vec<_>>()
        })
        .collect()
}

/// max over rows of ‖(A + λI)x − b‖ / ‖b‖, computed on the host.
fn max_relative_residual(a: &[f64], n: usize, damping: f64, x: &[f64], b: &[f64]) -> f64 {
    x.chunks(n)
        .zip(b.chunks(n))
        .map(|(x, b)| {
            let mut r2 = 0.0;
            for i in 0..n {
                let ax: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>() + damping * x[i];
                r2 += (ax - b[i]).powi(2);
            }
            r2.sqrt() / b.iter().map(|v| v * v).sum::<f64>().sqrt()
        })
        .fold(0.0, f64::max)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().map(|v| v.abs()).fold(0.0, f64::max)
}

const N: usize = 12;

fn spd_spectrum() -> Vec<f64> {
    (0..N).map(|i| 0.1 * 1.6f64.powi(i as i32)).collect() // 0.1 … 17.6, condition 176
}

fn cg_matches_a_dense_solve(device: Device) {
    let a = with_spectrum(&spd_spectrum(), 1);
    let op = Dense(Tensor::from_f64s(&a, [N, N], DType::F64, device).unwrap());
    let k = 3;
    let b = random_rows(k, N, 2);
    let bt = Tensor::from_f64s(&b, [k, N], DType::F64, device).unwrap();
    for damping in [0.0, 0.5] {
        let options = CgOptions {
            damping,
            tolerance: 1e-12,
            ..Default::default()
        };
        let solution = solve_cg(&op, &bt, &options).unwrap();
        assert!(solution.all_converged(), "{:?}", solution.residuals);
        assert_eq!(solution.x.dims(), &[k, N]);
        let x = solution.x.to_f64s().unwrap();
        let residual = max_relative_residual(&a, N, damping, &x, &b);
        assert!(residual <= 1e-8, "λ = {damping}: residual {residual}");
        let reference = dense_solve(&a, N, damping, &b);
        let err = max_abs_diff(&x, &reference) / max_abs(&reference);
        assert!(err <= 1e-8, "λ = {damping}: relative error {err}");
        for c in 0..k {
            // Exact arithmetic would finish in N steps; the history ends below the tolerance.
            assert!(solution.iterations[c] <= 3 * N, "{:?}", solution.iterations);
            assert_eq!(solution.residuals[c].len(), solution.iterations[c] + 1);
            assert_eq!(solution.residuals[c][0], 1.0);
            assert!(*solution.residuals[c].last().unwrap() <= 1e-12);
        }
    }
    // One vector in, one vector out.
    let single = solve_cg(
        &op,
        &bt.narrow(0, 1, 1).unwrap().reshape([N]).unwrap(),
        &CgOptions::default(),
    )
    .unwrap();
    assert_eq!(single.x.dims(), &[N]);
    let reference = dense_solve(&a, N, 0.0, &b[N..2 * N]);
    let x = single.x.to_f64s().unwrap();
    assert!(max_abs_diff(&x, &reference) <= 1e-8 * max_abs(&reference));
}

fn lissa_matches_a_dense_solve(device: Device) {
    // Eigenvalues of A + λI in [0.6, 2.1]: scale 1.5 puts them in (0, 2·scale).
    let spectrum: Vec<f64> = (0..N)
        .map(|i| 0.5 + 1.6 * i as f64 / (N - 1) as f64)
        .collect();
    let a = with_spectrum(&spectrum, 3);
    let op = Dense(Tensor::from_f64s(&a, [N, N], DType::F64, device).unwrap());
    let b = random_rows(2, N, 4);
    let bt = Tensor::from_f64s(&b, [2, N], DType::F64, device).unwrap();
    let options = LissaOptions {
        damping: 0.1,
        scale: 1.5,
        tolerance: 1e-11,
        max_iterations: 2000,
    };
    let solution = solve_lissa(&op, &bt, &options).unwrap();
    assert!(solution.all_converged());
    let x = solution.x.to_f64s().unwrap();
    let reference = dense_solve(&a, N, 0.1, &b);
    let err = max_abs_diff(&x, &reference) / max_abs(&reference);
    assert!(err <= 1e-8, "relative error {err}");
    assert!(max_relative_residual(&a, N, 0.1, &x, &b) <= 1e-8);
    // The residual of the series after t terms is ‖(I − A/s)ᵗ b‖ / ‖b‖ ≤ ρᵗ, ρ = 1 − 0.6/1.5.
    let rho: f64 = 1.0 - 0.6 / 1.5;
    for c in 0..2 {
        for (t, r) in solution.residuals[c].iter().enumerate() {
            assert!(*r <= rho.powi(t as i32) * (1.0 + 1e-9), "t = {t}: {r}");
        }
    }
    // And CG on the same system agrees.
    let cg = solve_cg(
        &op,
        &bt,
        &CgOptions {
            damping: 0.1,
            tolerance: 1e-12,
            ..Default::default()
        },
    )
    .unwrap();
    let err = max_abs_diff(&cg.x.to_f64s().unwrap(), &x) / max_abs(&x);
    assert!(err <= 1e-8, "CG vs LiSSA: {err}");
}

fn indefinite_curvature_is_an_error_until_damped(device: Device) {
    let mut spectrum = spd_spectrum();
    spectrum[0] = -0.7;
    spectrum[1] = -0.2;
    let a = with_spectrum(&spectrum, 5);
    let op = Dense(Tensor::from_f64s(&a, [N, N], DType::F64, device).unwrap());
    let b = random_rows(2, N, 6);
    let bt = Tensor::from_f64s(&b, [2, N], DType::F64, device).unwrap();
    let mut damping = 0.0;
    let mut attempts = 0;
    let solution = loop {
        let options = CgOptions {
            damping,
            tolerance: 1e-12,
            ..Default::default()
        };
        match solve_cg(&op, &bt, &options) {
            Ok(solution) => break solution,
            Err(HessianError::IndefiniteCurvature {
                column,
                iteration,
                curvature,
                rayleigh,
                damping: used,
                suggested_damping,
                ..
            }) => {
                assert!(column < 2 && iteration >= 1 && curvature <= 0.0);
                assert_eq!(used, damping);
                // A Rayleigh quotient of A is at least its smallest eigenvalue.
                assert!(
                    rayleigh >= -0.7 - 1e-12 && rayleigh <= -damping + 1e-12,
                    "{rayleigh}"
                );
                assert!(
                    suggested_damping > damping,
                    "{suggested_damping} ≤ {damping}"
                );
                damping = suggested_damping;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        attempts += 1;
        assert!(attempts < 20, "the suggested damping never sufficed");
    };
    assert!(attempts >= 1, "the undamped indefinite solve did not fail");
    assert!(damping > 0.7, "{damping}");
    let x = solution.x.to_f64s().unwrap();
    assert!(max_relative_residual(&a, N, damping, &x, &b) <= 1e-8);
    let reference = dense_solve(&a, N, damping, &b);
    assert!(max_abs_diff(&x, &reference) <= 1e-8 * max_abs(&reference));
}

fn error_message_names_column_iteration_and_damping(device: Device) {
    // diag(1, −1): the second column's first direction e₁ has pᵀAp = −1 at iteration 1.
    let op = Dense(Tensor::from_f64s(&[1.0, 0.0, 0.0, -1.0], [2, 2], DType::F64, device).unwrap());
    let b = Tensor::from_f64s(&[1.0, 0.0, 0.0, 1.0], [2, 2], DType::F64, device).unwrap();
    let err = solve_cg(&op, &b, &CgOptions::default()).unwrap_err();
    let HessianError::IndefiniteCurvature {
        column,
        iteration,
        curvature,
        rayleigh,
        suggested_damping,
        ..
    } = err
    else {
        panic!("expected IndefiniteCurvature, got {err}")
    };
    assert_eq!((column, iteration), (1, 1));
    assert_eq!((curvature, rayleigh, suggested_damping), (-1.0, -1.0, 2.0));
    let message = solve_cg(&op, &b, &CgOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("column 1 at iteration 1"), "{message}");
    assert!(message.contains("at least 2e0"), "{message}");
    // Column 0 alone solves (e₀ never meets the negative direction).
    let x = solve_cg(&op, &b.narrow(0, 0, 1).unwrap(), &CgOptions::default()).unwrap();
    assert_eq!(x.x.to_f64s().unwrap(), vec![1.0, 0.0]);
}

device_tests! {
    cg_matches_a_dense_solve,
    lissa_matches_a_dense_solve,
    indefinite_curvature_is_an_error_until_damped,
    error_message_names_column_iteration_and_damping,
}

#[test]
fn k_columns_together_equal_k_single_solves_with_one_batch_per_iteration() {
    let a = with_spectrum(&spd_spectrum(), 7);
    let op = Dense(Tensor::from_f64s(&a, [N, N], DType::F64, Device::Cpu).unwrap());
    let k = 4;
    let mut b = random_rows(k, N, 8);
    // Column 2 is 3 × column 0 (CG is scale invariant, so it stops at the same step); column 3
    // is zero and takes no product.
    for i in 0..N {
        b[2 * N + i] = 3.0 * b[i];
        b[3 * N + i] = 0.0;
    }
    let bt = Tensor::from_f64s(&b, [k, N], DType::F64, Device::Cpu).unwrap();
    let options = CgOptions {
        damping: 0.05,
        tolerance: 1e-10,
        ..Default::default()
    };
    let recorded = Recorded::new(&op);
    let block = solve_cg(&recorded, &bt, &options).unwrap();
    let sizes = recorded.sizes.borrow().clone();
    let rounds = *block.iterations.iter().max().unwrap();
    assert_eq!(sizes.len(), rounds, "one operator batch per iteration");
    for (t, &rows) in sizes.iter().enumerate() {
        let active = block.iterations.iter().filter(|&&it| it > t).count();
        assert_eq!(
            rows,
            active,
            "iteration {}: batch of the columns still iterating",
            t + 1
        );
    }
    assert_eq!(block.iterations[3], 0);
    assert_eq!(block.residuals[3], vec![0.0]);
    let xb = block.x.to_f64s().unwrap();
    assert!(xb[3 * N..].iter().all(|&v| v == 0.0));
    for c in 0..3 {
        let single = solve_cg(&op, &bt.narrow(0, c, 1).unwrap(), &options).unwrap();
        assert_eq!(single.iterations[0], block.iterations[c]);
        let xs = single.x.to_f64s().unwrap();
        let diff = max_abs_diff(&xs, &xb[c * N..(c + 1) * N]);
        assert!(diff <= 1e-12 * max_abs(&xs), "column {c}: {diff}");
        for (r1, r2) in single.residuals[0].iter().zip(&block.residuals[c]) {
            assert!((r1 - r2).abs() <= 1e-10 * r1.max(1e-300) + 1e-15);
        }
    }
}

#[test]
fn the_jacobi_preconditioner_cuts_iterations_on_a_badly_scaled_system() {
    // A = S·B·S with B well conditioned and S spanning four decades: Jacobi undoes S.
    let base = with_spectrum(&(0..N).map(|i| 1.0 + 0.2 * i as f64).collect::<Vec<_>>(), 9);
    let s: Vec<f64> = (0..N)
        .map(|i| 10f64.powf(-2.0 + 4.0 * i as f64 / (N - 1) as f64))
        .collect();
    let a: Vec<f64> = (0..N * N).map(|i| s[i / N] * base[i] * s[i % N]).collect();
    let op = Dense(Tensor::from_f64s(&a, [N, N], DType::F64, Device::Cpu).unwrap());
    let b = random_rows(2, N, 10);
    let bt = Tensor::from_f64s(&b, [2, N], DType::F64, Device::Cpu).unwrap();
    let diagonal: Vec<f64> = (0..N).map(|i| a[i * N + i]).collect();
    let d = Tensor::from_f64s(&diagonal, [N], DType::F64, Device::Cpu).unwrap();
    let jacobi = DiagonalPreconditioner::new(&d, 0.0).unwrap();
    let base_options = CgOptions {
        tolerance: 1e-10,
        max_iterations: 500,
        ..Default::default()
    };
    let plain = solve_cg(&op, &bt, &base_options).unwrap();
    let preconditioned = solve_cg(
        &op,
        &bt,
        &CgOptions {
            preconditioner: Some(&jacobi),
            ..base_options
        },
    )
    .unwrap();
    assert!(preconditioned.all_converged());
    let reference = dense_solve(&a, N, 0.0, &b);
    let x = preconditioned.x.to_f64s().unwrap();
    assert!(max_relative_residual(&a, N, 0.0, &x, &b) <= 1e-8);
    assert!(max_abs_diff(&x, &reference) <= 1e-6 * max_abs(&reference));
    let (p, q) = (
        preconditioned.iterations.iter().max().unwrap(),
        plain.iterations.iter().max().unwrap(),
    );
    println!("iterations: Jacobi {p}, plain {q}");
    assert!(2 * p <= *q, "Jacobi {p} vs plain {q}");
}

#[test]
fn damped_adds_lambda_times_the_identity() {
    let d = Diagonal::new(&[1.0, 2.0, 3.0]);
    let damped = Damped::new(&d, 0.5).unwrap();
    let v = Tensor::from_f64s(
        &[1.0, 1.0, 1.0, 2.0, 0.0, -1.0],
        [2, 3],
        DType::F64,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        curvature_hessian::apply(&damped, &v)
            .unwrap()
            .to_f64s()
            .unwrap(),
        vec![1.5, 2.5, 3.5, 3.0, 0.0, -3.5]
    );
    assert!(Damped::new(&d, f64::NAN).is_err());
}

#[test]
fn bad_arguments_are_errors() {
    let d = Diagonal::new(&[1.0, 2.0, 3.0]);
    let cpu =
        |v: &[f64], dims: &[usize]| Tensor::from_f64s(v, dims, DType::F64, Device::Cpu).unwrap();
    let b = cpu(&[1.0, 2.0, 3.0], &[3]);
    let ok = CgOptions::default();
    let invalid = |r: Result<curvature_hessian::Solution>| {
        let e = r.unwrap_err();
        assert!(
            !matches!(e, HessianError::IndefiniteCurvature { .. }),
            "{e}"
        );
        e.to_string()
    };
    // Shapes, dtypes.
    let e = invalid(solve_cg(&d, &cpu(&[1.0, 2.0], &[2]), &ok));
    assert!(e.contains("length 3"), "{e}");
    let e = invalid(solve_cg(&d, &cpu(&[1.0; 6], &[1, 2, 3]), &ok));
    assert!(e.contains("[dim] or [K, dim]"), "{e}");
    let f32b = Tensor::from_f64s(&[1.0; 3], [3], DType::F32, Device::Cpu).unwrap();
    let e = invalid(solve_cg(&d, &f32b, &ok));
    assert!(e.contains("dtype"), "{e}");
    let empty = Tensor::zeros([0, 3], DType::F64, Device::Cpu).unwrap();
    assert!(matches!(
        solve_cg(&d, &empty, &ok),
        Err(HessianError::EmptyBatch { .. })
    ));
    // Options.
    for (damping, tolerance, max_iterations, what) in [
        (-1.0, 1e-8, 10, "damping"),
        (f64::NAN, 1e-8, 10, "damping"),
        (0.0, 1.0, 10, "tolerance"),
        (0.0, -1e-3, 10, "tolerance"),
        (0.0, f64::NAN, 10, "tolerance"),
        (0.0, 1e-8, 0, "max_iterations"),
        (0.0, 1e-8, MAX_SOLVE_ITERATIONS + 1, "max_iterations"),
    ] {
        let options = CgOptions {
            damping,
            tolerance,
            max_iterations,
            preconditioner: None,
        };
        let e = invalid(solve_cg(&d, &b, &options));
        assert!(e.contains(what), "{what}: {e}");
        let lissa = LissaOptions {
            damping,
            tolerance,
            max_iterations,
            scale: 4.0,
        };
        let e = invalid(solve_lissa(&d, &b, &lissa));
        assert!(e.contains(what), "{what}: {e}");
    }
    for scale in [0.0, -1.0, f64::INFINITY] {
        let e = invalid(solve_lissa(
            &d,
            &b,
            &LissaOptions {
                scale,
                ..Default::default()
            },
        ));
        assert!(e.contains("scale"), "{e}");
    }
    // A right-hand side with a NaN.
    let e = invalid(solve_cg(&d, &cpu(&[1.0, f64::NAN, 0.0], &[3]), &ok));
    assert!(e.contains("non-finite"), "{e}");
    // An operator returning NaN: an error, not a NaN solution.
    let nan = Diagonal::new(&[1.0, f64::NAN, 3.0]);
    let e = invalid(solve_cg(&nan, &b, &ok));
    assert!(e.contains("non-finite"), "{e}");
    // Preconditioners: the wrong length, a non-positive entry.
    let short = DiagonalPreconditioner::new(&cpu(&[1.0, 1.0], &[2]), 0.0).unwrap();
    let e = invalid(solve_cg(
        &d,
        &b,
        &CgOptions {
            preconditioner: Some(&short),
            ..ok
        },
    ));
    assert!(e.contains("preconditioner"), "{e}");
    let e = DiagonalPreconditioner::new(&cpu(&[1.0, -2.0, 3.0], &[3]), 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("entry 1"), "{e}");
    assert!(DiagonalPreconditioner::new(&cpu(&[1.0, -2.0, 3.0], &[3]), 2.5).is_ok());
    assert!(DiagonalPreconditioner::new(&cpu(&[1.0; 4], &[2, 2]), 0.0).is_err());
    assert!(DiagonalPreconditioner::new(&cpu(&[1.0; 3], &[3]), f64::NAN).is_err());
    // An indefinite preconditioner is caught through rᵀM⁻¹r.
    let indefinite = Diagonal::new(&[-1.0, 1.0, -1.0]);
    let e = invalid(solve_cg(
        &d,
        &b,
        &CgOptions {
            preconditioner: Some(&indefinite),
            ..ok
        },
    ));
    assert!(e.contains("not positive definite"), "{e}");
    // LiSSA with a scale below half the largest eigenvalue diverges: an error naming it.
    let e = invalid(solve_lissa(
        &d,
        &b,
        &LissaOptions {
            scale: 1.0,
            ..Default::default()
        },
    ));
    assert!(e.contains("diverged") && e.contains("scale"), "{e}");
    // Not converging is reported, not an error.
    let few = solve_cg(
        &Diagonal::new(&[1.0, 10.0, 100.0]),
        &b,
        &CgOptions {
            max_iterations: 1,
            ..ok
        },
    )
    .unwrap();
    assert!(!few.all_converged() && few.iterations == vec![1]);
}

/// The training set: `n` points in 3 dimensions, labels in 0..3 from a seeded rule.
fn dataset(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * 3).map(|_| rng.random_range(-1.5..1.5)).collect();
    let y: Vec<f64> = x
        .chunks(3)
        .map(|p| {
            let s = p[0] + 0.5 * p[1] - p[2] + rng.random_range(-0.3..0.3);
            if s < -0.5 {
                0.0
            } else if s < 0.5 {
                1.0
            } else {
                2.0
            }
        })
        .collect();
    (
        Tensor::from_f64s(&x, [n, 3], DType::F64, Device::Cpu).unwrap(),
        Tensor::from_f64s(&y, [n], DType::F64, Device::Cpu).unwrap(),
    )
}

/// Gradients of the cross-entropy of each row on its own, `[n, P]`.
fn per_point_gradients(model: &Sequential, x: &Tensor, y: &Tensor) -> Tensor {
    let rows = (0..x.dims()[0])
        .map(|i| {
            let tape = Tape::new();
            let theta = tape.leaf(model.flat_params().unwrap());
            let xi = tape.constant(x.narrow(0, i, 1).unwrap());
            let out = model.forward_flat(&theta, &xi).unwrap();
            let loss = Loss::CrossEntropy
                .compute(&out, &y.narrow(0, i, 1).unwrap())
                .unwrap();
            grad(&[loss], &[theta], GradOptions::default()).unwrap()[0]
                .value()
                .clone()
        })
        .collect::<Vec<_>>();
    Tensor::stack(&rows.iter().collect::<Vec<_>>(), 0).unwrap()
}

#[test]
fn influence_scores_equal_the_exact_inverse_of_the_damped_hessian() {
    let model = Sequential::mlp(
        &[3, 5, 3],
        &[Activation::new(UnaryOp::Tanh)],
        None,
        DType::F64,
        Device::Cpu,
        11,
    )
    .unwrap();
    let (x, y) = dataset(32, 12);
    let (xt, yt) = dataset(4, 13);
    let p = model.num_params();
    assert_eq!(p, 38);
    let op = PreparedHvp::for_model(&model, Loss::CrossEntropy, &x, &y).unwrap();
    let h = curvature_hessian::hessian_of(&op, &HessianOptions::default())
        .unwrap()
        .to_f64s()
        .unwrap();
    // λ lifts the smallest eigenvalue to at least 0.05.
    let smallest = symmetric_eigenvalues(p, &h).unwrap()[0];
    let damping = (0.05 - smallest).max(0.05);
    let train = per_point_gradients(&model, &x, &y);
    let test = per_point_gradients(&model, &xt, &yt);
    let result = influence(
        &op,
        &test,
        &train,
        &CgOptions {
            damping,
            tolerance: 1e-12,
            max_iterations: 500,
            preconditioner: None,
        },
    )
    .unwrap();
    assert_eq!(result.scores.dims(), &[4, 32]);
    // The reference: the explicit inverse of H + λI (nalgebra), then −g_testᵀ M⁻¹ g_train.
    let m = DMatrix::from_row_slice(p, p, &h) + DMatrix::identity(p, p) * damping;
    let inverse = m.try_inverse().unwrap();
    let gt = DMatrix::from_row_slice(4, p, &test.to_f64s().unwrap());
    let gn = DMatrix::from_row_slice(32, p, &train.to_f64s().unwrap());
    let reference = -(gt * inverse * gn.transpose());
    let ours = result.scores.to_f64s().unwrap();
    let scale = reference.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for t in 0..4 {
        for i in 0..32 {
            worst = worst.max((ours[t * 32 + i] - reference[(t, i)]).abs());
        }
    }
    assert!(worst <= 1e-8 * scale, "max error {worst} (scale {scale})");
    assert_eq!(result.solve.iterations.len(), 4);
    // Too few iterations is an error naming the row.
    let e = influence(
        &op,
        &test,
        &train,
        &CgOptions {
            damping,
            max_iterations: 2,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("did not converge"), "{e}");
    // Gradients of the wrong width.
    assert!(influence(
        &op,
        &test.narrow(1, 0, 5).unwrap(),
        &train,
        &CgOptions::default()
    )
    .is_err());
}
