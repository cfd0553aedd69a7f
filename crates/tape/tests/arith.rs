//! The arithmetic operators on variables: each expression has the value, gradient and
//! gradient of gradient of the same expression written with method calls, passes gradcheck and
//! gradgradcheck, takes scalars on either side and tensors as constants, and passes an error
//! from anywhere in a chain through as the `Err` of the op that failed.

mod common;

use common::{assert_gradchecks, Inputs};
use curvature_tape::{grad, GradOptions, Result, Tape, TapeError, Var};
use curvature_tensor::{DType, Device, Tensor, TensorError};

/// A function of two variables `x: [2, 3]` and `y: [3]`.
type Function = fn(&Var, &Var) -> Result<Var>;

/// Each operator expression with the same function written with method calls.
const CASES: &[(&str, Function, Function)] = &[
    ("x + y", |x, y| x + y, |x, y| x.add(y)),
    ("x - y", |x, y| x - y, |x, y| x.sub(y)),
    ("x * y", |x, y| x * y, |x, y| x.mul(y)),
    ("x / y", |x, y| x / y, |x, y| x.div(y)),
    ("-x * y", |x, y| -x * y, |x, y| x.neg()?.mul(y)),
    (
        "2.5 + x*y",
        |x, y| 2.5 + (x * y)?,
        |x, y| x.mul(y)?.add_scalar(2.5),
    ),
    (
        "2.5 - x*y",
        |x, y| 2.5 - (x * y)?,
        |x, y| x.mul(y)?.neg()?.add_scalar(2.5),
    ),
    (
        "2.5 * x*y",
        |x, y| 2.5 * (x * y)?,
        |x, y| x.mul(y)?.mul_scalar(2.5),
    ),
    (
        "2.5 / (x*y)",
        |x, y| 2.5 / (x * y)?,
        |x, y| x.mul(y)?.powf(-1.0)?.mul_scalar(2.5),
    ),
    (
        "x*y - 0.5",
        |x, y| (x * y)? - 0.5,
        |x, y| x.mul(y)?.sub_scalar(0.5),
    ),
    (
        "x*y / 4",
        |x, y| (x * y)? / 4.0,
        |x, y| x.mul(y)?.div_scalar(4.0),
    ),
    (
        "((2x + y)·x − y) / y",
        |x, y| ((2.0 * x + y) * x - y) / y,
        |x, y| x.mul_scalar(2.0)?.add(y)?.mul(x)?.sub(y)?.div(y),
    ),
    (
        "x·y − x·x (two results)",
        |x, y| (x * y)? - x * x,
        |x, y| x.mul(y)?.sub(&x.mul(x)?),
    ),
];

/// The value, the gradient in (x, y) and the gradient of the summed gradient in (x, y) of
/// `Σ f(x, y)`, each flattened.
fn derivatives(f: Function, x: &Tensor, y: &Tensor) -> Result<[Vec<f64>; 5]> {
    let tape = Tape::new();
    let (x, y) = (tape.leaf(x.clone()), tape.leaf(y.clone()));
    let value = f(&x, &y)?;
    let g = grad(
        &[value.sum_all()?],
        &[x.clone(), y.clone()],
        GradOptions::create_graph(),
    )?;
    let total = g[0].sum_all()?.add(&g[1].sum_all()?)?;
    let gg = grad(
        &[total],
        &[x, y],
        GradOptions {
            allow_unused: true,
            ..GradOptions::default()
        },
    )?;
    let flat = |v: &Var| v.value().to_vec::<f64>();
    Ok([
        flat(&value)?,
        flat(&g[0])?,
        flat(&g[1])?,
        flat(&gg[0])?,
        flat(&gg[1])?,
    ])
}

fn operators_equal_the_method_calls(device: Device) -> Result<()> {
    let mut inputs = Inputs::new(15, device);
    let (x, y) = (inputs.away_from_zero(&[2, 3]), inputs.away_from_zero(&[3]));
    for (name, operators, methods) in CASES {
        let ours = derivatives(*operators, &x, &y)?;
        let reference = derivatives(*methods, &x, &y)?;
        for (what, (a, b)) in ["value", "dx", "dy", "d²x", "d²y"]
            .iter()
            .zip(ours.iter().zip(&reference))
        {
            assert_eq!(a.len(), b.len(), "{name}: {what}");
            for (p, q) in a.iter().zip(b) {
                assert!(
                    (p - q).abs() <= 1e-13 * q.abs().max(1.0),
                    "{name}: {what} {a:?} vs {b:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn operators_pass_gradcheck_and_gradgradcheck() {
    let mut inputs = Inputs::new(16, Device::Cpu);
    let (x, y) = (inputs.away_from_zero(&[2, 3]), inputs.away_from_zero(&[3]));
    for (name, operators, _) in CASES {
        assert_gradchecks(name, &[x.clone(), y.clone()], |v| operators(&v[0], &v[1]));
    }
}

fn tensors_are_constants(device: Device) -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::from_f64s(&[1.0, 2.0], [2], DType::F64, device)?);
    let w = Tensor::from_f64s(&[3.0, -4.0], [2], DType::F64, device)?;
    // f = Σ (w·x + x/w + (w − x)·(x − w)) = Σ (w·x + x/w − (x − w)²): f' = w + 1/w − 2(x − w).
    let f = ((&x * &w)? + &x / &w)? + (&w - &x)? * (&x - w.clone());
    let g = grad(&[f?.sum_all()?], &[x], GradOptions::default())?;
    let want: Vec<f64> = [(1.0, 3.0), (2.0, -4.0)]
        .iter()
        .map(|(x, w)| w + 1.0 / w - 2.0 * (x - w))
        .collect();
    let got = g[0].value().to_vec::<f64>()?;
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-14, "{got:?} vs {want:?}");
    }
    Ok(())
}

fn errors_come_out_of_the_chain(device: Device) -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::ones([2, 3], DType::F64, device)?);
    let y = tape.leaf(Tensor::ones([4], DType::F64, device)?);
    let err = (((&x * &x) - &y) / &x * &x).unwrap_err();
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::BroadcastMismatch { op: "sub", .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("sub: shapes [2, 3] and [4]"),
        "{err}"
    );
    let err = (&x * (&x + &y)).unwrap_err();
    assert!(
        err.to_string().starts_with("add: shapes [2, 3] and [4]"),
        "{err}"
    );
    // A constant of the wrong dtype, and a variable of another tape.
    let f32s = Tensor::ones([3], DType::F32, device)?;
    let err = (&x / &f32s).unwrap_err();
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::DTypeMismatch { op: "div", .. })
        ),
        "{err}"
    );
    let other = Tape::new().leaf(Tensor::ones([3], DType::F64, device)?);
    let err = (&x - &other).unwrap_err();
    assert!(
        matches!(err, TapeError::TapeMismatch { op: "sub" }),
        "{err}"
    );
    Ok(())
}

device_tests!(
    operators_equal_the_method_calls,
    tensors_are_constants,
    errors_come_out_of_the_chain,
);
