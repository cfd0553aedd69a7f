//! The generic benchmark functions: SplitMix64 against its published outputs, every function's
//! value against a plain f64 loop written here from its documented formula, every function's
//! Hessian-vector products against central differences of its gradient (f64), Rosenbrock's
//! against its closed-form tridiagonal Hessian, and the errors of bad sizes and names.

use curvature::generic_functions::{
    splitmix64, uniform, GenericFunction, GenericProblem, Sizes, LAYER_NORM_EPS, MAX_ELEMENTS,
};
use curvature::hessian::{HessianError, LinearOperator};
use curvature::tape::Tape;
use curvature::tensor::{DType, Device, Tensor};

fn small(function: GenericFunction) -> Sizes {
    let (samples, inputs, width, outputs) = match function {
        GenericFunction::Rosenbrock => (1, 7, 1, 1),
        GenericFunction::SoftmaxRegression => (6, 5, 1, 3),
        GenericFunction::ResidualMlp => (5, 4, 3, 2),
        GenericFunction::LayernormMlp => (5, 3, 4, 2),
        GenericFunction::LogsumexpLoss => (5, 3, 4, 3),
        GenericFunction::Pinn => (6, 1, 5, 1),
    };
    Sizes {
        samples,
        inputs,
        width,
        outputs,
        k: 3,
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_f64s().expect("values as f64")
}

/// `a [rows, inner] · b [inner, cols]`, row-major.
fn matmul(a: &[f64], b: &[f64], rows: usize, inner: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = (0..inner).map(|i| a[r * inner + i] * b[i * cols + c]).sum();
        }
    }
    out
}

fn add_row(m: &mut [f64], row: &[f64]) {
    for chunk in m.chunks_mut(row.len()) {
        chunk.iter_mut().zip(row).for_each(|(v, b)| *v += b);
    }
}

fn mean_squared_error(out: &[f64], target: &[f64]) -> f64 {
    out.iter()
        .zip(target)
        .map(|(o, t)| (o - t).powi(2))
        .sum::<f64>()
        / out.len() as f64
}

/// erf by its Maclaurin series (|x| ≤ 3 here, where 80 terms reach f64 rounding).
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..80 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// The function's value at the problem's parameters, by loops over the documented formula.
fn reference_value(problem: &GenericProblem) -> f64 {
    let p: Vec<Vec<f64>> = problem.params.iter().map(values).collect();
    let d: Vec<Vec<f64>> = problem.data.iter().map(values).collect();
    let Sizes {
        samples: n,
        inputs,
        width,
        outputs,
        ..
    } = problem.sizes;
    match problem.function {
        GenericFunction::Rosenbrock => p[0]
            .windows(2)
            .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
            .sum(),
        GenericFunction::SoftmaxRegression => {
            let z = matmul(&d[0], &p[0], n, inputs, outputs);
            let total: f64 = z
                .chunks(outputs)
                .enumerate()
                .map(|(i, row)| {
                    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                    row[(7 * i) % outputs] - lse
                })
                .sum();
            -total / n as f64
        }
        GenericFunction::ResidualMlp => {
            let h1: Vec<f64> = matmul(&d[0], &p[0], n, inputs, width)
                .iter()
                .map(|v| v.tanh())
                .collect();
            let inner = matmul(&h1, &p[1], n, width, width);
            let h2: Vec<f64> = h1.iter().zip(&inner).map(|(a, b)| a + b.tanh()).collect();
            mean_squared_error(&matmul(&h2, &p[2], n, width, outputs), &d[1])
        }
        GenericFunction::LayernormMlp => {
            let mut pre = matmul(&d[0], &p[0], n, inputs, width);
            add_row(&mut pre, &p[1]);
            let mut h = Vec::with_capacity(pre.len());
            for row in pre.chunks(width) {
                let mean = row.iter().sum::<f64>() / width as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / width as f64;
                for v in row {
                    let x = (v - mean) / (var + LAYER_NORM_EPS).sqrt();
                    h.push(0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)));
                }
            }
            let mut out = matmul(&h, &p[2], n, width, outputs);
            add_row(&mut out, &p[3]);
            mean_squared_error(&out, &d[1])
        }
        GenericFunction::LogsumexpLoss => {
            let h: Vec<f64> = matmul(&d[0], &p[0], n, inputs, width)
                .iter()
                .map(|v| v.tanh())
                .collect();
            let z = matmul(&h, &p[1], n, width, outputs);
            let mut total = 0.0;
            for (row, target) in z.chunks(outputs).zip(d[1].chunks(outputs)) {
                let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                let fit: f64 = row.iter().zip(target).map(|(a, b)| a * b).sum();
                total += lse - fit;
            }
            total / n as f64
        }
        GenericFunction::Pinn => {
            // u(x) = W₂·tanh(W₁ᵀ tanh(x W₀ + b₀) + b₁) + b₂ and, by the chain rule,
            // u′(x) = Σⱼ W₂ⱼ (1 − h₂ⱼ²) Σᵢ W₁ᵢⱼ (1 − h₁ᵢ²) W₀ᵢ.
            let (w0, b0, w1, b1, w2, b2) = (&p[0], &p[1], &p[2], &p[3], &p[4], p[5][0]);
            let mut total = 0.0;
            for &x in &d[0] {
                let h1: Vec<f64> = (0..width).map(|i| (x * w0[i] + b0[i]).tanh()).collect();
                let dh1: Vec<f64> = (0..width).map(|i| (1.0 - h1[i] * h1[i]) * w0[i]).collect();
                let (mut u, mut du) = (b2, 0.0);
                for j in 0..width {
                    let pre: f64 =
                        b1[j] + (0..width).map(|i| h1[i] * w1[i * width + j]).sum::<f64>();
                    let dpre: f64 = (0..width).map(|i| dh1[i] * w1[i * width + j]).sum();
                    let h2 = pre.tanh();
                    u += w2[j] * h2;
                    du += w2[j] * (1.0 - h2 * h2) * dpre;
                }
                total += (du + u - x.cos()).powi(2);
            }
            total / n as f64
        }
    }
}

#[test]
fn splitmix64_matches_the_published_sequence() {
    // The first outputs of Vigna's splitmix64.c seeded with 0: output i mixes state i·γ + γ.
    let gamma = 0x9E37_79B9_7F4A_7C15u64;
    let expected = [
        0xE220_A839_7B1D_CDAFu64,
        0x6E78_9E6A_A1B9_65F4,
        0x06C4_5D18_8009_454F,
        0xF88B_B8A8_724C_81EC,
    ];
    for (i, want) in expected.into_iter().enumerate() {
        assert_eq!(splitmix64(gamma.wrapping_mul(i as u64)), want, "output {i}");
    }
}

#[test]
fn uniform_values_fill_their_interval_evenly() {
    let v = uniform(3, 20_000, -2.0, 1.0).expect("values");
    assert!(v.iter().all(|&x| (-2.0..1.0).contains(&x)));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    // The mean of U(−2, 1) is −½ with standard error 3/√12/√20000 ≈ 0.0018.
    assert!((mean + 0.5).abs() < 0.01, "mean {mean}");
    let first = (splitmix64(3 << 40) >> 11) as f64 / (1u64 << 53) as f64;
    assert_eq!(v[0], -2.0 + 3.0 * first);
    let other = uniform(4, 3, -2.0, 1.0).expect("values");
    assert_ne!(v[..3], other[..]);
}

#[test]
fn every_function_has_its_documented_value_cpu() {
    for function in GenericFunction::ALL {
        let problem = function
            .build(small(function), DType::F64, Device::Cpu)
            .expect("builds");
        let op = problem.prepare().expect("prepares");
        let got = values(op.value())[0];
        let want = reference_value(&problem);
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{}: {got} vs {want}",
            function.name()
        );
    }
}

/// The problem with its flattened parameters replaced by `theta`.
fn at(problem: &GenericProblem, theta: &[f64]) -> GenericProblem {
    let mut offset = 0;
    let params = problem
        .params
        .iter()
        .map(|p| {
            let n = p.elem_count();
            offset += n;
            Tensor::from_f64s(
                &theta[offset - n..offset],
                p.shape().clone(),
                DType::F64,
                Device::Cpu,
            )
            .expect("parameter")
        })
        .collect();
    GenericProblem {
        params,
        ..problem.clone()
    }
}

fn gradient_at(problem: &GenericProblem, theta: &[f64]) -> Vec<f64> {
    values(at(problem, theta).prepare().expect("prepares").gradient())
}

#[test]
fn hessian_vector_products_match_differences_of_the_gradient_cpu() {
    let h = 1e-5;
    for function in GenericFunction::ALL {
        let problem = function
            .build(small(function), DType::F64, Device::Cpu)
            .expect("builds");
        let op = problem.prepare().expect("prepares");
        let probes = problem.probes(problem.sizes.k).expect("probes");
        let hv = values(&op.apply_batch(&probes).expect("products"));
        let theta: Vec<f64> = problem.params.iter().flat_map(values).collect();
        let dim = problem.dim();
        let v = values(&probes);
        for (row, direction) in v.chunks(dim).enumerate() {
            let shifted = |sign: f64| -> Vec<f64> {
                let moved: Vec<f64> = theta
                    .iter()
                    .zip(direction)
                    .map(|(t, d)| t + sign * h * d)
                    .collect();
                gradient_at(&problem, &moved)
            };
            let (plus, minus) = (shifted(1.0), shifted(-1.0));
            let got = &hv[row * dim..(row + 1) * dim];
            let scale = got.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
            for i in 0..dim {
                let want = (plus[i] - minus[i]) / (2.0 * h);
                assert!(
                    (got[i] - want).abs() <= 1e-6 * scale,
                    "{} row {row} entry {i}: {} vs {want}",
                    function.name(),
                    got[i]
                );
            }
        }
    }
}

#[test]
fn rosenbrock_products_match_the_tridiagonal_hessian_cpu() {
    let problem = GenericFunction::Rosenbrock
        .build(small(GenericFunction::Rosenbrock), DType::F64, Device::Cpu)
        .expect("builds");
    let x = values(&problem.params[0]);
    let n = x.len();
    // ∂²/∂xᵢ² = 1200xᵢ² − 400xᵢ₊₁ + 2 (i < n−1) + 200 (i > 0); ∂²/∂xᵢ∂xᵢ₊₁ = −400xᵢ.
    let diag: Vec<f64> = (0..n)
        .map(|i| {
            let mut d = 0.0;
            if i + 1 < n {
                d += 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0;
            }
            if i > 0 {
                d += 200.0;
            }
            d
        })
        .collect();
    let op = problem.prepare().expect("prepares");
    let probes = problem.probes(2).expect("probes");
    let hv = values(&op.apply_batch(&probes).expect("products"));
    for (row, v) in values(&probes).chunks(n).enumerate() {
        for i in 0..n {
            let mut want = diag[i] * v[i];
            if i + 1 < n {
                want += -400.0 * x[i] * v[i + 1];
            }
            if i > 0 {
                want += -400.0 * x[i - 1] * v[i - 1];
            }
            let got = hv[row * n + i];
            assert!(
                (got - want).abs() <= 1e-10 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }
}

#[test]
fn f32_products_follow_the_f64_ones_cpu() {
    for function in GenericFunction::ALL {
        let sizes = small(function);
        let run = |dtype| {
            let problem = function.build(sizes, dtype, Device::Cpu).expect("builds");
            let op = problem.prepare().expect("prepares");
            values(
                &op.apply_batch(&problem.probes(2).expect("probes"))
                    .expect("products"),
            )
        };
        let (single, double) = (run(DType::F32), run(DType::F64));
        let scale = double.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (a, b) in single.iter().zip(&double) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{}: {a} vs {b}",
                function.name()
            );
        }
    }
}

#[test]
fn names_round_trip_and_unknown_names_are_refused() {
    for function in GenericFunction::ALL {
        assert_eq!(
            GenericFunction::by_name(function.name()).expect("known"),
            function
        );
    }
    let e = GenericFunction::by_name("rosenbrok").expect_err("unknown");
    assert!(
        e.to_string().contains("rosenbrok") && e.to_string().contains("pinn"),
        "{e}"
    );
}

#[test]
fn the_benchmark_sizes_are_the_documented_ones() {
    let params = |f: GenericFunction| -> usize {
        f.param_shapes(&f.benchmark_sizes())
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    };
    assert_eq!(params(GenericFunction::Rosenbrock), 100_000);
    assert_eq!(params(GenericFunction::SoftmaxRegression), 784 * 10);
    assert_eq!(params(GenericFunction::ResidualMlp), 34_048);
    assert_eq!(GenericFunction::Rosenbrock.benchmark_sizes().k, 16);
    assert_eq!(GenericFunction::ResidualMlp.benchmark_sizes().k, 32);
}

fn build_error(function: GenericFunction, sizes: Sizes) -> HessianError {
    function
        .build(sizes, DType::F64, Device::Cpu)
        .expect_err("bad sizes are refused")
}

#[test]
fn bad_sizes_are_refused() {
    for function in GenericFunction::ALL {
        let zero = Sizes {
            samples: 0,
            ..small(function)
        };
        let e = build_error(function, zero);
        assert!(e.to_string().contains("positive"), "{e}");
    }
    let one = Sizes {
        inputs: 1,
        ..small(GenericFunction::Rosenbrock)
    };
    let e = build_error(GenericFunction::Rosenbrock, one);
    assert!(e.to_string().contains("at least 2"), "{e}");
    let two_inputs = Sizes {
        inputs: 2,
        ..small(GenericFunction::Pinn)
    };
    let e = build_error(GenericFunction::Pinn, two_inputs);
    assert!(e.to_string().contains("one input"), "{e}");
    let huge = Sizes {
        inputs: MAX_ELEMENTS + 1,
        ..small(GenericFunction::Rosenbrock)
    };
    let e = build_error(GenericFunction::Rosenbrock, huge);
    assert!(matches!(e, HessianError::TooLarge { .. }), "{e}");
    let overflow = Sizes {
        samples: usize::MAX,
        ..small(GenericFunction::SoftmaxRegression)
    };
    let e = build_error(GenericFunction::SoftmaxRegression, overflow);
    assert!(matches!(e, HessianError::SizeOverflow { .. }), "{e}");
    let problem = GenericFunction::Rosenbrock
        .build(small(GenericFunction::Rosenbrock), DType::F64, Device::Cpu)
        .expect("builds");
    let e = problem.probes(MAX_ELEMENTS).expect_err("too many probes");
    assert!(matches!(e, HessianError::TooLarge { .. }), "{e}");
}

#[test]
fn bad_generator_arguments_and_parameter_counts_are_refused() {
    assert!(matches!(
        uniform(0, MAX_ELEMENTS + 1, 0.0, 1.0),
        Err(HessianError::TooLarge { .. })
    ));
    let e = uniform(1 << 24, 1, 0.0, 1.0).expect_err("seed too large");
    assert!(e.to_string().contains("seed"), "{e}");
    let problem = GenericFunction::ResidualMlp
        .build(small(GenericFunction::ResidualMlp), DType::F64, Device::Cpu)
        .expect("builds");
    let tape = Tape::new();
    let only = tape.leaf(problem.params[0].clone());
    let e = problem
        .evaluate(&[only])
        .expect_err("one of three parameters");
    assert!(e.to_string().contains("parameters"), "{e}");
}

#[test]
fn compiled_plans_match_the_op_by_op_sweep_cpu() {
    for function in GenericFunction::ALL {
        for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let problem = function
                .build(small(function), dtype, Device::Cpu)
                .expect("builds");
            let probes = problem.probes(problem.sizes.k).expect("probes");
            let reference = problem.prepare().expect("prepares").with_plan(false);
            let want = values(&reference.apply_batch(&probes).expect("op by op"));
            let planned = problem.prepare().expect("prepares").with_plan(true);
            // The first batch is traced (and computed op by op); the next ones replay the plan.
            for round in 0..3 {
                let got = values(&planned.apply_batch(&probes).expect("planned"));
                let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= tolerance * scale,
                        "{} {dtype} round {round}: {a} vs {b}",
                        function.name()
                    );
                }
            }
            assert!(
                planned.compiled_plan(problem.sizes.k).is_some(),
                "{} {dtype}: the sweep was not compiled",
                function.name()
            );
        }
    }
}
