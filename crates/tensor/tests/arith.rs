//! The arithmetic operators on tensors: every operand form gives the value of the formula
//! computed element by element here, a scalar may stand on either side, and an error anywhere
//! in a chain comes out of it as the `Err` of the op that failed.

mod common;

use curvature_tensor::{DType, Device, Tensor, TensorError};

const A: [f64; 6] = [0.5, -1.25, 2.0, 3.5, -0.75, 1.5];
const B: [f64; 3] = [2.0, -0.5, 4.0];

/// `a` as `[2, 3]` and `b` as `[3]` (broadcast along the rows) on `device`.
fn operands(device: Device) -> (Tensor, Tensor) {
    let a = Tensor::from_f64s(&A, [2, 3], DType::F64, device).expect("a");
    let b = Tensor::from_f64s(&B, [3], DType::F64, device).expect("b");
    (a, b)
}

/// `f(a[i, j], b[j])` for every element of the broadcast result.
fn expected(f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    (0..6).map(|i| f(A[i], B[i % 3])).collect()
}

fn values(t: curvature_tensor::Result<Tensor>) -> Vec<f64> {
    let t = t.expect("the expression evaluates");
    assert_eq!(t.dims(), &[2, 3]);
    t.to_vec::<f64>().expect("f64 values")
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-14 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

fn each_operator_and_operand_form(device: Device) {
    let (a, b) = operands(device);
    assert_close(&values(&a + &b), &expected(|x, y| x + y));
    assert_close(&values(&a - b.clone()), &expected(|x, y| x - y));
    assert_close(&values(a.clone() * &b), &expected(|x, y| x * y));
    assert_close(&values(a.clone() / b.clone()), &expected(|x, y| x / y));
    assert_close(&values(-&a), &expected(|x, _| -x));
    assert_close(&values(-a.clone()), &expected(|x, _| -x));
    // A Result on either side.
    assert_close(&values(a.mul(&b) + &a), &expected(|x, y| x * y + x));
    assert_close(&values(a.mul(&b) - a.clone()), &expected(|x, y| x * y - x));
    assert_close(&values(&a * a.add(&b)), &expected(|x, y| x * (x + y)));
    assert_close(
        &values(a.clone() / a.add(&b)),
        &expected(|x, y| x / (x + y)),
    );
}

fn scalars_on_either_side(device: Device) -> curvature_tensor::Result<()> {
    let (a, b) = operands(device);
    let ab = || &a * &b;
    assert_close(&values(2.5 + ab()?), &expected(|x, y| 2.5 + x * y));
    assert_close(&values(2.5 - ab()?), &expected(|x, y| 2.5 - x * y));
    assert_close(&values(2.5 * ab()?), &expected(|x, y| 2.5 * x * y));
    assert_close(&values(2.5 / ab()?), &expected(|x, y| 2.5 / (x * y)));
    assert_close(&values(ab()? + 2.5), &expected(|x, y| x * y + 2.5));
    assert_close(&values(&ab()? - 2.5), &expected(|x, y| x * y - 2.5));
    assert_close(&values(ab()? * 2.5), &expected(|x, y| x * y * 2.5));
    assert_close(&values(&ab()? / 2.5), &expected(|x, y| x * y / 2.5));
    Ok(())
}

fn a_chain_needs_one_question_mark(device: Device) -> curvature_tensor::Result<()> {
    let (a, b) = operands(device);
    let y = ((2.0 * &a + &b) * &a - &b) / &b;
    assert_close(&values(y), &expected(|x, y| ((2.0 * x + y) * x - y) / y));
    Ok(())
}

fn errors_come_out_of_the_chain(device: Device) {
    let (a, b) = operands(device);
    let c = Tensor::ones([4], DType::F64, device).expect("c");
    // The mismatch is in the middle; the ops after it pass its error through.
    let err = (((&a * &b) - &c) / &b * &a).unwrap_err();
    assert!(
        matches!(err, TensorError::BroadcastMismatch { op: "sub", .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("sub: shapes [2, 3] and [4]"),
        "{err}"
    );
    // An error on the right is the result too.
    let err = (&b * (&a + &c)).unwrap_err();
    assert!(
        err.to_string().starts_with("add: shapes [2, 3] and [4]"),
        "{err}"
    );
    // Dtypes and devices never mix silently.
    let f32s = Tensor::ones([3], DType::F32, device).expect("f32");
    let err = (&a / &f32s).unwrap_err();
    assert!(
        matches!(err, TensorError::DTypeMismatch { op: "div", .. }),
        "{err}"
    );
}

device_tests!(
    each_operator_and_operand_form,
    scalars_on_either_side,
    a_chain_needs_one_question_mark,
    errors_come_out_of_the_chain,
);
