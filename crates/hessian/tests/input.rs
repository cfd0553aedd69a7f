//! Second derivatives with respect to a model's input: per-sample input Hessians, Laplacians
//! (exact and Hutchinson) against closed forms, finite differences and the same probes pushed
//! through the dense Hessians; and a physics-informed loss differentiated once more.

mod common;

use curvature_hessian::{
    input_hessian, input_hessian_of, input_laplacian, input_laplacian_hutchinson,
    input_laplacian_hutchinson_of, input_laplacian_of, probes, HessianError, Probe,
};
use curvature_nn::{check_param_count, Activation, Module, MultiheadAttention, Sequential};
use curvature_tape::check::{gradcheck, CheckOptions};
use curvature_tape::{Tape, Var};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

/// u(x) = a · Σₖ sin(xₖ) per row, a learnt scalar: ∂²u/∂xₖ∂xₗ = −a·sin(xₖ)·δₖₗ, Δu = −a·Σ sin xₖ.
#[derive(Debug, Clone)]
struct SinSum {
    a: Tensor,
}

impl Module for SinSum {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("a".to_string(), self.a.clone())]
    }
    fn forward_with(&self, params: &[Var], x: &Var) -> curvature_nn::Result<Var> {
        check_param_count("SinSum", params, 1)?;
        Ok(x.sin()?.sum(&[1], false)?.mul(&params[0])?)
    }
    fn rows_independent(&self) -> bool {
        true
    }
}

fn points(n: usize, d: usize, device: Device) -> Tensor {
    let values: Vec<f64> = (0..n * d)
        .map(|i| ((i as f64) * 0.7 + 0.3).sin() * 1.3)
        .collect();
    Tensor::from_f64s(&values, [n, d], DType::F64, device).unwrap()
}

fn mlp(widths: &[usize], device: Device, seed: u64) -> Sequential {
    let hidden = vec![Activation::new(UnaryOp::Tanh); widths.len() - 2];
    Sequential::mlp(widths, &hidden, None, DType::F64, device, seed).unwrap()
}

fn sin_sum_closed_forms(device: Device) {
    let (n, d, a) = (3, 4, 1.7);
    let model = SinSum {
        a: Tensor::from_f64s(&[a], [1], DType::F64, device).unwrap(),
    };
    let x = points(n, d, device);
    let xs = x.to_f64s().unwrap();
    let lap = input_laplacian(&model, &x).unwrap();
    assert_eq!(lap.dims(), &[n]);
    let h = input_hessian(&model, &x).unwrap();
    assert_eq!(h.dims(), &[n, d, d]);
    let (lap, h) = (lap.to_f64s().unwrap(), h.to_f64s().unwrap());
    for i in 0..n {
        let row = &xs[i * d..(i + 1) * d];
        let expected: f64 = -a * row.iter().map(|v| v.sin()).sum::<f64>();
        assert!(
            (lap[i] - expected).abs() <= 1e-12,
            "{} vs {expected}",
            lap[i]
        );
        for k in 0..d {
            for l in 0..d {
                let e = if k == l { -a * row[k].sin() } else { 0.0 };
                assert!((h[(i * d + k) * d + l] - e).abs() <= 1e-12);
            }
        }
    }
}

fn laplacian_is_the_trace_of_the_input_hessian(device: Device) {
    // Output [n, 2]: both components, Hessian [n, 2, d, d], Laplacian [n, 2].
    let (n, d) = (3, 4);
    let model = mlp(&[d, 5, 2], device, 3);
    let x = points(n, d, device);
    let h = input_hessian(&model, &x).unwrap();
    assert_eq!(h.dims(), &[n, 2, d, d]);
    let lap = input_laplacian(&model, &x).unwrap();
    assert_eq!(lap.dims(), &[n, 2]);
    let (h, lap) = (h.to_f64s().unwrap(), lap.to_f64s().unwrap());
    for s in 0..n * 2 {
        let block = &h[s * d * d..(s + 1) * d * d];
        let trace: f64 = (0..d).map(|k| block[k * d + k]).sum();
        assert!((lap[s] - trace).abs() <= 1e-12, "{} vs {trace}", lap[s]);
        for k in 0..d {
            for l in 0..d {
                assert!((block[k * d + l] - block[l * d + k]).abs() <= 1e-12);
            }
        }
        assert!(
            trace.abs() > 1e-3,
            "a trivial Laplacian proves nothing: {trace}"
        );
    }
}

/// The physics-informed loss's parameter gradient (third order) on `device` equals the CPU's,
/// which `physics_informed_loss_gradient_matches_finite_differences` checks.
fn physics_informed_gradient_agrees_with_the_cpu(device: Device) {
    let (n, d) = (3, 2);
    let gradient = |device: Device| -> Vec<f64> {
        let model = mlp(&[d, 3, 1], device, 17);
        let x = points(n, d, device);
        let f = Tensor::from_f64s(&[0.5, -0.25, 1.0], [n], DType::F64, device).unwrap();
        let tape = Tape::new();
        let params: Vec<Var> = model
            .parameters()
            .into_iter()
            .map(|p| tape.leaf(p))
            .collect();
        let loss = pinn_loss(&model, &params, &x, &f, false);
        let options = curvature_tape::GradOptions {
            allow_unused: true,
            ..Default::default()
        };
        let g = curvature_tape::grad(&[loss], &params, options).unwrap();
        g.iter()
            .flat_map(|t| t.value().to_f64s().unwrap())
            .collect()
    };
    let (ours, cpu) = (gradient(device), gradient(Device::Cpu));
    let scale = cpu.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(scale > 1e-6);
    for (a, b) in ours.iter().zip(&cpu) {
        assert!((a - b).abs() <= 1e-12 * scale, "{a} vs {b}");
    }
}

device_tests! {
    sin_sum_closed_forms,
    laplacian_is_the_trace_of_the_input_hessian,
    physics_informed_gradient_agrees_with_the_cpu,
}

/// The output of `model` at `x` on the host, `[n · m]`.
fn forward_host(model: &Sequential, x: &[f64], dims: [usize; 2]) -> Vec<f64> {
    let tape = Tape::new();
    let params: Vec<Var> = model
        .parameters()
        .into_iter()
        .map(|p| tape.constant(p))
        .collect();
    let xv = tape.constant(Tensor::from_f64s(x, dims, DType::F64, Device::Cpu).unwrap());
    model
        .forward_with(&params, &xv)
        .unwrap()
        .value()
        .to_f64s()
        .unwrap()
}

#[test]
fn input_hessian_matches_second_finite_differences() {
    let (n, d, m) = (2, 3, 2);
    let model = mlp(&[d, 6, 4, m], Device::Cpu, 5);
    let x = points(n, d, Device::Cpu);
    let h = input_hessian(&model, &x).unwrap().to_f64s().unwrap();
    let base = x.to_f64s().unwrap();
    let eps = 1e-4;
    let mut worst: f64 = 0.0;
    // f(x + e_k ε + e_l ε) − f(x + e_k ε − e_l ε) − f(x − e_k ε + e_l ε) + f(x − e_k ε − e_l ε)
    // over 4ε², perturbing feature k and l of every row at once (rows are independent).
    for k in 0..d {
        for l in 0..d {
            let eval = |sk: f64, sl: f64| {
                let mut p = base.clone();
                for i in 0..n {
                    p[i * d + k] += sk * eps;
                    p[i * d + l] += sl * eps;
                }
                forward_host(&model, &p, [n, d])
            };
            let (pp, pm, mp, mm) = (eval(1., 1.), eval(1., -1.), eval(-1., 1.), eval(-1., -1.));
            for s in 0..n * m {
                let fd = (pp[s] - pm[s] - mp[s] + mm[s]) / (4.0 * eps * eps);
                worst = worst.max((h[(s * d + k) * d + l] - fd).abs());
            }
        }
    }
    assert!(worst <= 1e-6, "max |H − finite differences| = {worst}");
}

#[test]
fn hutchinson_laplacian_is_the_probe_mean_through_the_dense_hessians() {
    let (n, d, s) = (3, 5, 7);
    let model = mlp(&[d, 6, 1], Device::Cpu, 7);
    let x = points(n, d, Device::Cpu);
    let h = input_hessian(&model, &x).unwrap().to_f64s().unwrap(); // [n, 1, d, d]
    let estimate = input_laplacian_hutchinson(&model, &x, s, 42).unwrap();
    assert_eq!(estimate.dims(), &[n, 1]);
    let estimate = estimate.to_f64s().unwrap();
    let v = probes(s, n * d, Probe::Rademacher, 42, DType::F64, Device::Cpu)
        .unwrap()
        .to_f64s()
        .unwrap();
    for i in 0..n {
        let block = &h[i * d * d..(i + 1) * d * d];
        let mut sum = 0.0;
        for p in 0..s {
            let vi = &v[p * n * d + i * d..p * n * d + (i + 1) * d];
            for k in 0..d {
                for l in 0..d {
                    sum += vi[k] * block[k * d + l] * vi[l];
                }
            }
        }
        let reference = sum / s as f64;
        assert!(
            (estimate[i] - reference).abs() <= 1e-12,
            "{} vs {reference}",
            estimate[i]
        );
    }
    // On Σ sin(x) the Hessian is diagonal and Rademacher probes have v² = 1: exact for any seed.
    let sin = SinSum {
        a: Tensor::from_f64s(&[1.0], [1], DType::F64, Device::Cpu).unwrap(),
    };
    let exact = input_laplacian(&sin, &x).unwrap().to_f64s().unwrap();
    let est = input_laplacian_hutchinson(&sin, &x, 1, 9)
        .unwrap()
        .to_f64s()
        .unwrap();
    for (a, b) in exact.iter().zip(&est) {
        assert!((a - b).abs() <= 1e-12);
    }
    // A different seed draws different probes: on the MLP the estimate changes.
    let other = input_laplacian_hutchinson(&model, &x, s, 43)
        .unwrap()
        .to_f64s()
        .unwrap();
    assert!(other
        .iter()
        .zip(&estimate)
        .any(|(a, b)| (a - b).abs() > 1e-9));
}

/// mean over points of (Δu − f)² for the model with parameters `params`, recorded.
fn pinn_loss(model: &Sequential, params: &[Var], x: &Tensor, f: &Tensor, hutchinson: bool) -> Var {
    let xv = params[0].tape().leaf(x.clone());
    let u = model.forward_with(params, &xv).unwrap();
    let lap = if hutchinson {
        input_laplacian_hutchinson_of(&u, &xv, 3, 1).unwrap()
    } else {
        input_laplacian_of(&u, &xv).unwrap()
    };
    let target = u.constant(f.clone());
    lap.reshape([x.dims()[0]])
        .unwrap()
        .sub(&target)
        .unwrap()
        .square()
        .unwrap()
        .mean_all()
        .unwrap()
}

#[test]
fn physics_informed_loss_gradient_matches_finite_differences() {
    let (n, d) = (4, 2);
    let model = mlp(&[d, 4, 1], Device::Cpu, 13);
    let x = points(n, d, Device::Cpu);
    // f = −Σ sin(x) per point: the Laplacian of Σ sin(x).
    let f: Vec<f64> = x
        .to_f64s()
        .unwrap()
        .chunks(d)
        .map(|r| -r.iter().map(|v| v.sin()).sum::<f64>())
        .collect();
    let f = Tensor::from_f64s(&f, [n], DType::F64, Device::Cpu).unwrap();
    let options = CheckOptions {
        eps: 1e-6,
        atol: 1e-7,
        rtol: 1e-5,
    };
    for hutchinson in [false, true] {
        let report = gradcheck(
            |p: &[Var]| Ok(pinn_loss(&model, p, &x, &f, hutchinson)),
            &model.parameters(),
            options,
        )
        .unwrap();
        assert!(
            report.passed,
            "hutchinson = {hutchinson}: analytic {} vs numeric {} at {:?}",
            report.analytic, report.numeric, report.worst
        );
        assert!(report.numeric.abs() > 1e-6 || report.analytic.abs() > 1e-6);
    }
}

#[test]
fn the_input_hessian_is_differentiable_with_respect_to_the_input() {
    // u = Σ x³ per row: H = diag(6x), and ∂(Σ H)/∂x = 6: a third derivative in x.
    let tape = Tape::new();
    let x = tape.leaf(points(2, 3, Device::Cpu));
    let u = x.powf(3.0).unwrap().sum(&[1], false).unwrap();
    let h = input_hessian_of(&u, &x).unwrap();
    let g = curvature_tape::grad(
        &[h.sum_all().unwrap()],
        std::slice::from_ref(&x),
        Default::default(),
    )
    .unwrap();
    assert_eq!(g[0].value().to_f64s().unwrap(), vec![6.0; 6]);
}

#[test]
fn bad_inputs_are_errors() {
    let cpu = Device::Cpu;
    let tape = Tape::new();
    let x = tape.leaf(points(3, 2, cpu));
    let u = x.sin().unwrap().sum(&[1], false).unwrap();
    let message = |r: curvature_hessian::Result<Var>| r.expect_err("an error").to_string();
    // x without a batch axis.
    let x1 = tape.leaf(Tensor::from_f64s(&[1.0, 2.0], [2], DType::F64, cpu).unwrap());
    let u1 = x1.sin().unwrap();
    assert!(message(input_laplacian_of(&u1, &x1)).contains("batch"));
    // An output whose batch axis differs from the input's.
    let e = message(input_hessian_of(&u.narrow(0, 0, 2).unwrap(), &x));
    assert!(e.contains("n = 3"), "{e}");
    // A scalar output.
    assert!(message(input_laplacian_of(&u.sum_all().unwrap(), &x)).contains("batch axis"));
    // A constant input.
    let c = tape.constant(points(3, 2, cpu));
    let uc = c.sin().unwrap().sum(&[1], false).unwrap();
    assert!(message(input_laplacian_of(&uc, &c)).contains("constant"));
    // No samples.
    let empty = tape.leaf(Tensor::zeros([0, 2], DType::F64, cpu).unwrap());
    let ue = empty.sum(&[1], false).unwrap();
    assert!(message(input_laplacian_of(&ue, &empty)).contains("no samples"));
    // Zero probes.
    assert!(matches!(
        input_laplacian_hutchinson_of(&u, &x, 0, 0),
        Err(HessianError::EmptyBatch { .. })
    ));
    // Variables of two tapes.
    let other = Tape::new();
    let x2 = other.leaf(points(3, 2, cpu));
    assert!(input_laplacian_of(&u, &x2).is_err());
    // Model-level: wrong dtype, wrong width, a model whose rows are not independent.
    let model = mlp(&[2, 3, 1], cpu, 0);
    let x32 = Tensor::from_f64s(&[0.0; 6], [3, 2], DType::F32, cpu).unwrap();
    assert!(input_laplacian(&model, &x32)
        .unwrap_err()
        .to_string()
        .contains("dtype"));
    assert!(input_hessian(&model, &points(3, 4, cpu)).is_err());
    let attention = MultiheadAttention::seeded(4, 2, false, DType::F64, cpu, 0).unwrap();
    let e = input_laplacian(&attention, &points(3, 4, cpu))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rows independent"), "{e}");
}
