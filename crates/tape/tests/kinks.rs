//! The elementwise ops where finite differences cannot check them: at their kinks and ties,
//! where the derivative takes PyTorch's value exactly (relu'(0) = 0, leaky_relu'(0) = slope,
//! elu'(0) = α, clamp passes the gradient on lo ≤ x ≤ hi, |x|'(0) = 0, maximum and minimum
//! split ties ½ each, where_cond routes by its mask), second derivatives there, and NaN.

mod common;

use curvature_tape::{grad, vjp, GradOptions, Result, Tape, Var};
use curvature_tensor::{DType, Device, Tensor};

/// Per input, its derivative values.
type PerInput = Vec<Vec<f64>>;

/// An op of two variables.
type Binary = fn(&[Var]) -> Result<Var>;

fn tensor(values: &[f64], device: Device) -> Tensor {
    Tensor::from_f64s(values, [values.len()], DType::F64, device)
        .unwrap_or_else(|e| panic!("a tensor on {device}: {e}"))
}

/// The gradients of Σ f(x₀, x₁, …) with respect to each input, and the gradients of the sum of
/// the first one's elements, Σ ∂f/∂x₀, with respect to each input (for an elementwise unary op:
/// its second derivative at each element).
fn derivatives(
    inputs: &[&[f64]],
    device: Device,
    f: impl Fn(&[Var]) -> Result<Var>,
) -> Result<(PerInput, PerInput)> {
    let tape = Tape::new();
    let x: Vec<Var> = inputs
        .iter()
        .map(|v| tape.leaf(tensor(v, device)))
        .collect();
    let loss = f(&x)?.sum_all()?;
    let first = grad(&[loss], &x, GradOptions::create_graph())?;
    let total = first[0].sum_all()?;
    let one = tape.constant(Tensor::from_f64s(&[1.0], [], DType::F64, device)?);
    let second = vjp(&[total], &[one], &x, false)?;
    let values = |vars: &[Var]| -> Result<PerInput> {
        vars.iter().map(|v| Ok(v.value().to_f64s()?)).collect()
    };
    Ok((values(&first)?, values(&second)?))
}

fn assert_close(what: &str, got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= 1e-12,
            "{what}[{i}]: {got:?} vs {expected:?}"
        );
    }
}

/// Unary ops at their kinks: the first derivative PyTorch takes there, and second derivatives
/// (zero for the piecewise-linear ones, α·eˣ on elu's negative side).
fn unary_kinks(device: Device) {
    type Unary = fn(&Var) -> Result<Var>;
    let (slope, alpha, lo, hi) = (0.1, 1.5, -0.5, 0.75);
    let x = [-1.0, lo, 0.0, hi, 1.0];
    let e = |v: f64| alpha * v.exp();
    let cases: [(&str, Unary, [f64; 5], [f64; 5]); 5] = [
        ("relu", |x| x.relu(), [0.0, 0.0, 0.0, 1.0, 1.0], [0.0; 5]),
        (
            "leaky_relu",
            |x| x.leaky_relu(0.1),
            [slope, slope, slope, 1.0, 1.0],
            [0.0; 5],
        ),
        (
            "elu",
            |x| x.elu(1.5),
            [e(-1.0), e(lo), alpha, 1.0, 1.0],
            [e(-1.0), e(lo), alpha, 0.0, 0.0],
        ),
        (
            "clamp",
            |x| x.clamp(-0.5, 0.75),
            [0.0, 1.0, 1.0, 1.0, 0.0],
            [0.0; 5],
        ),
        ("abs", |x| x.abs(), [-1.0, -1.0, 0.0, 1.0, 1.0], [0.0; 5]),
    ];
    for (name, op, d1, d2) in cases {
        let (first, second) = derivatives(&[&x], device, |v| op(&v[0]))
            .unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
        assert_close(&format!("{name}' on {device}"), &first[0], &d1);
        assert_close(&format!("{name}'' on {device}"), &second[0], &d2);
    }
}

/// maximum and minimum give the gradient to the larger (smaller) operand and split ties ½
/// each; the derivatives of that gradient are 0.
fn maximum_and_minimum_ties(device: Device) {
    let a = [1.0, 0.5, -2.0];
    let b = [0.0, 0.5, 3.0];
    let cases: [(&str, Binary, [f64; 3]); 2] = [
        ("maximum", |v| v[0].maximum(&v[1]), [1.0, 0.5, 0.0]),
        ("minimum", |v| v[0].minimum(&v[1]), [0.0, 0.5, 1.0]),
    ];
    for (name, op, to_a) in cases {
        let (first, second) = derivatives(&[&a, &b], device, op)
            .unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
        let to_b: Vec<f64> = to_a.iter().map(|g| 1.0 - g).collect();
        assert_close(&format!("{name} ∂a on {device}"), &first[0], &to_a);
        assert_close(&format!("{name} ∂b on {device}"), &first[1], &to_b);
        assert_close(&format!("{name} ∂²a on {device}"), &second[0], &[0.0; 3]);
        assert_close(&format!("{name} ∂²b on {device}"), &second[1], &[0.0; 3]);
    }
}

/// where_cond picks by a broadcast mask (NaN counts as true), routes the cotangent to the
/// picked operand and gives the mask a zero gradient.
fn where_cond_routes_by_mask(device: Device) {
    let tape = Tape::new();
    let mask = tape.leaf(
        tensor(&[0.0, f64::NAN, -2.0], device)
            .reshape([3, 1])
            .unwrap(),
    );
    let on_true = tape.leaf(tensor(&[1.0, 2.0], device));
    let on_false = tape.leaf(tensor(&[-1.0, -2.0], device));
    let run = || -> Result<()> {
        let out = mask.where_cond(&on_true, &on_false)?;
        assert_eq!(out.dims(), &[3, 2]);
        assert_close(
            "where_cond value",
            &out.value().to_f64s()?,
            &[-1.0, -2.0, 1.0, 2.0, 1.0, 2.0],
        );
        let weights = tape.constant(Tensor::from_f64s(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            [3, 2],
            DType::F64,
            device,
        )?);
        let loss = out.mul(&weights)?.sum_all()?;
        let g = grad(
            &[loss],
            &[mask.clone(), on_true.clone(), on_false.clone()],
            GradOptions::default(),
        )?;
        assert_close("∂mask", &g[0].value().to_f64s()?, &[0.0; 3]);
        assert_close(
            "∂on_true",
            &g[1].value().to_f64s()?,
            &[3.0 + 5.0, 4.0 + 6.0],
        );
        assert_close("∂on_false", &g[2].value().to_f64s()?, &[1.0, 2.0]);
        Ok(())
    };
    run().unwrap_or_else(|e| panic!("where_cond on {device}: {e}"));
}

/// NaN stays NaN through relu, leaky_relu, elu, clamp, maximum and minimum (either side).
fn nan_propagates(device: Device) {
    let nan = tensor(&[f64::NAN], device);
    let one = tensor(&[1.0], device);
    let results = [
        ("relu", nan.relu()),
        ("leaky_relu", nan.leaky_relu(0.1)),
        ("elu", nan.elu(1.0)),
        ("clamp", nan.clamp(-1.0, 1.0)),
        ("maximum(NaN, 1)", nan.maximum(&one)),
        ("maximum(1, NaN)", one.maximum(&nan)),
        ("minimum(NaN, 1)", nan.minimum(&one)),
        ("minimum(1, NaN)", one.minimum(&nan)),
    ];
    for (name, result) in results {
        let value = result
            .and_then(|t| t.to_f64s())
            .unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
        assert!(value[0].is_nan(), "{name} on {device}: {value:?}");
    }
}

device_tests!(
    unary_kinks,
    maximum_and_minimum_ties,
    where_cond_routes_by_mask,
    nan_propagates,
);
