//! Derivatives of order 1–4 by repeated `grad` with `create_graph`, against closed forms, on
//! the CPU and on `Device::Cuda`.

mod common;

use common::relative_error;
use curvature_tape::{grad, GradOptions, Result, Tape, Var};
use curvature_tensor::{DType, Device, Tensor};

const POINTS: [f64; 5] = [-2.0, -0.5, 0.0, 0.7, 3.0];

/// d/dx, d²/dx², …, dⁿ/dxⁿ of the elementwise function `f` at every element of `x`, each by
/// `grad` of the (summed) previous derivative with `create_graph`, on `device`.
fn derivatives(
    device: Device,
    x: &[f64],
    order: usize,
    f: impl Fn(&Var) -> Result<Var>,
) -> Result<Vec<Vec<f64>>> {
    let tape = Tape::new();
    let leaf = tape.leaf(Tensor::from_f64s(x, [x.len()], DType::F64, device)?);
    let mut current = f(&leaf)?;
    let mut out = Vec::with_capacity(order);
    for _ in 0..order {
        let d = grad(
            &[current.sum_all()?],
            std::slice::from_ref(&leaf),
            GradOptions::create_graph(),
        )?;
        assert_eq!(d[0].device(), device, "derivatives stay on the device");
        out.push(d[0].value().to_vec::<f64>()?);
        current = d[0].clone();
    }
    Ok(out)
}

/// tanh⁽ⁿ⁾ for n = 1..4 as polynomials of t = tanh x (each the derivative of the previous,
/// using t' = 1 − t²):
///   tanh'    = 1 − t²
///   tanh''   = −2t(1 − t²)
///   tanh'''  = (6t² − 2)(1 − t²)
///   tanh'''' = 8t(1 − t²)(2 − 3t²)          [d/dx(−6t⁴ + 8t² − 2) = (−24t³ + 16t)(1 − t²)]
fn tanh_closed_forms(x: f64) -> [f64; 4] {
    let t = x.tanh();
    let u = 1.0 - t * t;
    [
        u,
        -2.0 * t * u,
        (6.0 * t * t - 2.0) * u,
        8.0 * t * u * (2.0 - 3.0 * t * t),
    ]
}

/// σ⁽ⁿ⁾ for n = 1..4 as polynomials of s = σ(x) (using s' = s(1 − s)):
///   σ'    = s(1 − s)
///   σ''   = s(1 − s)(1 − 2s)
///   σ'''  = s(1 − s)(1 − 6s + 6s²)
///   σ'''' = s(1 − s)(1 − 14s + 36s² − 24s³)   [d/dx(s − 7s² + 12s³ − 6s⁴)]
fn sigmoid_closed_forms(x: f64) -> [f64; 4] {
    let s = 1.0 / (1.0 + (-x).exp());
    let u = s * (1.0 - s);
    [
        u,
        u * (1.0 - 2.0 * s),
        u * (1.0 - 6.0 * s + 6.0 * s * s),
        u * (1.0 - 14.0 * s + 36.0 * s * s - 24.0 * s * s * s),
    ]
}

#[test]
fn closed_forms_agree_with_finite_differences() {
    // Each closed form of order n + 1 is the central difference of the one of order n (so a
    // typo in a formula cannot pass the autodiff test below by accident).
    let h = 1e-5;
    for closed in [
        tanh_closed_forms as fn(f64) -> [f64; 4],
        sigmoid_closed_forms,
    ] {
        for x in POINTS {
            let (plus, minus, here) = (closed(x + h), closed(x - h), closed(x));
            for n in 0..3 {
                let fd = (plus[n] - minus[n]) / (2.0 * h);
                assert!(
                    (fd - here[n + 1]).abs() < 1e-8,
                    "order {} at {x}: finite difference {fd}, closed form {}",
                    n + 2,
                    here[n + 1]
                );
            }
        }
    }
}

/// Asserts `got` equals the exact `want`: bit for bit on the CPU, to 1e-14 relative (the
/// golden README's measure) on a GPU, whose `pow` may round differently.
fn assert_exact(what: &str, device: Device, got: &[f64], want: &[f64]) {
    if device == Device::Cpu {
        assert_eq!(got, want, "{what}");
    } else {
        let err = relative_error(got, want);
        assert!(err <= 1e-14, "{what}: {got:?} vs {want:?} ({err:e})");
    }
}

/// x⁴ at x = 1: the derivatives of orders 1–4 are 4, 12, 24 and 24, scalars like x.
fn powf_x4_derivatives_are_exact(device: Device) -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::scalar(1.0, DType::F64, device)?);
    let y = x.powf(4.0)?;
    let d1 = grad(&[y], std::slice::from_ref(&x), GradOptions::create_graph())?;
    let d2 = grad(
        &[d1[0].clone()],
        std::slice::from_ref(&x),
        GradOptions::create_graph(),
    )?;
    let d3 = grad(
        &[d2[0].clone()],
        std::slice::from_ref(&x),
        GradOptions::create_graph(),
    )?;
    let d4 = grad(
        &[d3[0].clone()],
        std::slice::from_ref(&x),
        GradOptions::default(),
    )?;
    for (order, d, want) in [
        (1, &d1, 4.0),
        (2, &d2, 12.0),
        (3, &d3, 24.0),
        (4, &d4, 24.0),
    ] {
        assert_eq!(d[0].device(), device);
        let got = d[0].value().to_scalar()?;
        assert_exact(&format!("order {order}"), device, &[got], &[want]);
    }
    // Every derivative is a scalar like x.
    assert_eq!(d3[0].dims(), &[] as &[usize]);
    Ok(())
}

/// (x⁴)' = 4x³, '' = 12x², ''' = 24x, '''' = 24 elementwise: exact for these dyadic points.
fn powf_x4_derivatives_elementwise(device: Device) -> Result<()> {
    let xs = [1.0, 2.0, -0.5, 1.5];
    let d = derivatives(device, &xs, 4, |x| x.powf(4.0))?;
    let closed: [fn(f64) -> f64; 4] = [
        |x| 4.0 * x * x * x,
        |x| 12.0 * x * x,
        |x| 24.0 * x,
        |_| 24.0,
    ];
    for (n, f) in closed.iter().enumerate() {
        let want: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
        assert_exact(&format!("order {} at {xs:?}", n + 1), device, &d[n], &want);
    }
    Ok(())
}

fn assert_orders(name: &str, got: &[Vec<f64>], closed: fn(f64) -> [f64; 4]) {
    for (i, &x) in POINTS.iter().enumerate() {
        let want = closed(x);
        for n in 0..4 {
            let g = got[n][i];
            assert!(
                (g - want[n]).abs() <= 1e-12,
                "{name} order {} at x = {x}: autodiff {g}, closed form {} (diff {:e})",
                n + 1,
                want[n],
                (g - want[n]).abs()
            );
        }
    }
}

/// tanh⁽ⁿ⁾ for n = 1..4 equal their closed forms to 1e-12.
fn tanh_derivatives_orders_1_to_4(device: Device) -> Result<()> {
    let d = derivatives(device, &POINTS, 4, |x| x.tanh())?;
    assert_orders("tanh", &d, tanh_closed_forms);
    Ok(())
}

/// σ⁽ⁿ⁾ for n = 1..4 equal their closed forms to 1e-12.
fn sigmoid_derivatives_orders_1_to_4(device: Device) -> Result<()> {
    let d = derivatives(device, &POINTS, 4, |x| x.sigmoid())?;
    assert_orders("sigmoid", &d, sigmoid_closed_forms);
    Ok(())
}

/// f(x) = exp(sin x): f' = cos·f, f'' = (cos² − sin)·f, f''' = (cos³ − 3 sin cos − cos)·f, to
/// 1e-12.
fn composed_derivatives_orders_1_to_3(device: Device) -> Result<()> {
    let d = derivatives(device, &POINTS, 3, |x| x.sin()?.exp())?;
    for (i, &x) in POINTS.iter().enumerate() {
        let (s, c, f) = (x.sin(), x.cos(), x.sin().exp());
        let want = [c * f, (c * c - s) * f, (c * c * c - 3.0 * s * c - c) * f];
        for n in 0..3 {
            assert!(
                (d[n][i] - want[n]).abs() <= 1e-12,
                "exp(sin x) order {} at {x}: {} vs {}",
                n + 1,
                d[n][i],
                want[n]
            );
        }
    }
    Ok(())
}

device_tests! {
    powf_x4_derivatives_are_exact,
    powf_x4_derivatives_elementwise,
    tanh_derivatives_orders_1_to_4,
    sigmoid_derivatives_orders_1_to_4,
    composed_derivatives_orders_1_to_3,
}
