//! Every class of misuse of the tape is an error value (never a panic) whose variant says what
//! went wrong and whose message names the op and the shapes or dtypes involved.

use curvature_tape::check::{gradcheck, CheckOptions};
use curvature_tape::{grad, vjp, GradOptions, Tape, TapeError, Var};
use curvature_tensor::TernaryOp;
use curvature_tensor::{DType, Device, Shape, Tensor, TensorError};

fn tensor(dims: &[usize], dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let data: Vec<f64> = (0..n).map(|i| 0.25 * i as f64 - 0.5).collect();
    Tensor::from_f64s(&data, dims, dtype, Device::Cpu).expect("a CPU tensor")
}

fn f64s(dims: &[usize]) -> Tensor {
    tensor(dims, DType::F64)
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "message {message:?} does not mention {part:?}"
        );
    }
}

fn error_of<T: std::fmt::Debug>(result: curvature_tape::Result<T>) -> TapeError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(e) => e,
    }
}

#[test]
fn binary_shape_mismatch_cpu() {
    let tape = Tape::new();
    let a = tape.leaf(f64s(&[2, 3]));
    let b = tape.leaf(f64s(&[4]));
    let err = error_of(a.add(&b));
    assert!(
        matches!(&err, TapeError::Tensor(TensorError::BroadcastMismatch { op: "add", lhs, rhs })
            if lhs == &Shape::new([2, 3]) && rhs == &Shape::new([4])),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["add", "[2, 3]", "[4]"]);
    // Nothing was recorded for the failed op.
    assert_eq!(tape.len(), 2);
}

#[test]
fn matmul_inner_dimension_mismatch_cpu() {
    let tape = Tape::new();
    let a = tape.leaf(f64s(&[2, 3]));
    let b = tape.leaf(f64s(&[4, 5]));
    let err = error_of(a.matmul(&b));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::MatmulShape {
                lhs_k: 3,
                rhs_k: 4,
                ..
            })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "[2, 3]", "[4, 5]"]);
    // The 1-D paths validate with the caller's shapes too.
    let v = tape.leaf(f64s(&[4]));
    let err = error_of(a.matmul(&v));
    assert!(
        matches!(err, TapeError::Tensor(TensorError::MatmulShape { .. })),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "[2, 3]", "[4]"]);
}

#[test]
fn dtype_mismatch_cpu() {
    let tape = Tape::new();
    let a = tape.leaf(tensor(&[3], DType::F32));
    let b = tape.leaf(tensor(&[3], DType::F64));
    let err = error_of(a.add(&b));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::DTypeMismatch {
                op: "add",
                lhs: DType::F32,
                rhs: DType::F64
            })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["add", "f32", "f64"]);
    // A cotangent of another dtype.
    let y = b.square().expect("square");
    let err = error_of(grad(
        &[y],
        std::slice::from_ref(&b),
        GradOptions {
            grad_outputs: Some(vec![tape.constant(tensor(&[3], DType::F32))]),
            ..GradOptions::default()
        },
    ));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::DTypeMismatch { op: "grad", .. })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["grad", "f64", "f32"]);
    // gradcheck needs f64.
    let err = error_of(gradcheck(
        |v: &[Var]| v[0].exp(),
        &[tensor(&[2], DType::F32)],
        CheckOptions::default(),
    ));
    assert!(
        matches!(
            err,
            TapeError::InvalidArgument {
                op: "gradcheck",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["gradcheck", "f64", "f32"]);
}

#[test]
fn grad_of_non_scalar_output_needs_grad_outputs_cpu() {
    let tape = Tape::new();
    let x = tape.leaf(f64s(&[3]));
    let y = x.exp().expect("exp");
    let err = error_of(grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&x),
        GradOptions::default(),
    ));
    assert!(
        matches!(&err, TapeError::NonScalarOutput { index: 0, shape } if shape == &Shape::new([3])),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["grad", "[3]", "grad_outputs"]);
    let err = error_of(y.backward());
    assert!(matches!(err, TapeError::NonScalarOutput { .. }), "{err:?}");
    // A one-element output of any rank is seeded implicitly.
    let one = x.sum(&[0], true).expect("sum");
    assert_eq!(one.dims(), &[1]);
    let g = grad(&[one], &[x], GradOptions::default()).expect("a [1] output is scalar enough");
    assert_eq!(g[0].value().to_vec::<f64>().expect("f64"), vec![1.0; 3]);
}

#[test]
fn input_not_in_graph_without_allow_unused_cpu() {
    let tape = Tape::new();
    let x = tape.leaf(f64s(&[2]));
    let z = tape.leaf(f64s(&[4, 1]));
    let y = x.square().and_then(|s| s.sum_all()).expect("y");
    let err = error_of(grad(
        std::slice::from_ref(&y),
        &[x.clone(), z.clone()],
        GradOptions::default(),
    ));
    assert!(
        matches!(&err, TapeError::NotInGraph { index: 1, shape } if shape == &Shape::new([4, 1])),
        "{err:?}"
    );
    assert_mentions(
        &err.to_string(),
        &["grad", "input 1", "[4, 1]", "allow_unused"],
    );
    // Constants are never in the graph either.
    let c = tape.constant(f64s(&[2]));
    let y = x.square().and_then(|s| s.sum_all()).expect("y");
    let err = error_of(grad(&[y], &[c], GradOptions::default()));
    assert!(
        matches!(err, TapeError::NotInGraph { index: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn backward_twice_without_retain_graph_cpu() {
    let tape = Tape::new();
    let inp = tape.leaf(f64s(&[2, 3]));
    let out = inp
        .add_scalar(1.0)
        .and_then(|v| v.square())
        .and_then(|v| v.t())
        .expect("((inp + 1)²)ᵀ");
    let ones = Tensor::ones([3, 2], DType::F64, Device::Cpu).expect("ones");
    out.backward_with(Some(ones.clone()), false)
        .expect("first backward");
    let expected: Vec<f64> = inp
        .value()
        .to_vec::<f64>()
        .expect("f64")
        .iter()
        .map(|v| 2.0 * (v + 1.0))
        .collect();
    assert_eq!(
        inp.grad()
            .expect("a gradient")
            .to_vec::<f64>()
            .expect("f64"),
        expected
    );
    let err = error_of(out.backward_with(Some(ones.clone()), false));
    assert!(matches!(err, TapeError::BackwardTwice { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["second time", "retain_graph"]);
    // The same through `grad`.
    let y = inp.exp().and_then(|v| v.sum_all()).expect("y");
    grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&inp),
        GradOptions::default(),
    )
    .expect("first grad");
    let err = error_of(grad(
        &[y],
        std::slice::from_ref(&inp),
        GradOptions::default(),
    ));
    assert!(
        matches!(err, TapeError::BackwardTwice { op: "sum" }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["sum"]);

    // With retain_graph the second pass works and gradients accumulate.
    let fresh = Tape::new();
    let inp = fresh.leaf(f64s(&[2, 3]));
    let out = inp
        .add_scalar(1.0)
        .and_then(|v| v.square())
        .and_then(|v| v.t())
        .expect("out");
    out.backward_with(Some(ones.clone()), true).expect("first");
    out.backward_with(Some(ones), true).expect("second");
    let doubled: Vec<f64> = expected.iter().map(|g| 2.0 * g).collect();
    assert_eq!(
        inp.grad().expect("grad").to_vec::<f64>().expect("f64"),
        doubled
    );
    inp.zero_grad();
    assert!(inp.grad().is_none());
}

#[test]
fn reshape_and_axis_errors_cpu() {
    let tape = Tape::new();
    let x = tape.leaf(f64s(&[2, 3]));
    let err = error_of(x.reshape([5]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::ReshapeSize {
                from_len: 6,
                to_len: 5,
                ..
            })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["reshape", "[2, 3]", "[5]"]);
    let cases: Vec<(&str, TapeError)> = vec![
        ("sum", error_of(x.sum(&[2], false))),
        ("max", error_of(x.max(-3, false))),
        ("logsumexp", error_of(x.logsumexp(2, true))),
        ("log_softmax", error_of(x.log_softmax(2))),
        ("transpose", error_of(x.transpose(0, 2))),
        ("narrow", error_of(x.narrow(3, 0, 1))),
        ("pad_zeros", error_of(x.pad_zeros(2, 1, 0))),
        ("unsqueeze", error_of(x.unsqueeze(3))),
        ("cat", error_of(Var::cat(&[&x, &x], 2))),
    ];
    for (op, err) in cases {
        assert!(
            matches!(&err, TapeError::Tensor(TensorError::AxisOutOfRange { op: o, .. }) if *o == op),
            "{op}: {err:?}"
        );
        assert_mentions(&err.to_string(), &[op, "rank 2"]);
    }
}

#[test]
fn from_vec_length_mismatch_cpu() {
    let err = Tensor::from_vec(vec![1.0f64; 5], [2, 3], Device::Cpu).expect_err("5 values for 6");
    let err = TapeError::from(err);
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::DataLength {
                op: "from_vec",
                len: 5,
                expected: 6,
                ..
            })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["from_vec", "[2, 3]"]);
}

#[test]
fn cotangent_shape_mismatch_cpu() {
    let tape = Tape::new();
    let x = tape.leaf(f64s(&[2, 3]));
    let y = x.tanh().expect("tanh");
    let with = |cot: Tensor| GradOptions {
        grad_outputs: Some(vec![tape.constant(cot)]),
        ..GradOptions::default()
    };
    for bad in [&[3, 2][..], &[3][..], &[4, 2, 2][..]] {
        let err = error_of(grad(
            std::slice::from_ref(&y),
            std::slice::from_ref(&x),
            with(f64s(bad)),
        ));
        assert!(
            matches!(&err, TapeError::CotangentShape { index: 0, expected, got }
                if expected == &Shape::new([2, 3]) && got == &Shape::new(bad)),
            "{bad:?}: {err:?}"
        );
        assert_mentions(
            &err.to_string(),
            &["cotangent 0", "[2, 3]", &Shape::new(bad).to_string()],
        );
    }
    // Batch axes must agree between cotangents of several outputs.
    let z = x.sum_all().expect("sum");
    let err = error_of(vjp(
        &[y.clone(), z],
        &[tape.constant(f64s(&[4, 2, 3])), tape.constant(f64s(&[5]))],
        std::slice::from_ref(&x),
        false,
    ));
    assert!(
        matches!(err, TapeError::CotangentShape { index: 1, .. }),
        "{err:?}"
    );
    // The number of cotangents must match the number of outputs.
    let err = error_of(vjp(
        std::slice::from_ref(&y),
        &[],
        std::slice::from_ref(&x),
        false,
    ));
    assert!(
        matches!(
            err,
            TapeError::LengthMismatch {
                expected: 1,
                got: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["grad_outputs", "1", "0"]);
    let err = error_of(grad(&[], &[x], GradOptions::default()));
    assert!(matches!(err, TapeError::LengthMismatch { .. }), "{err:?}");
}

#[test]
fn ops_mixing_two_tapes_cpu() {
    let (one, two) = (Tape::new(), Tape::new());
    let a = one.leaf(f64s(&[2, 2]));
    let b = two.leaf(f64s(&[2, 2]));
    let mixed: Vec<(&str, TapeError)> = vec![
        ("add", error_of(a.add(&b))),
        ("mul", error_of(a.mul(&b))),
        ("matmul", error_of(a.matmul(&b))),
        ("tanh_backward", error_of(a.tanh_backward(&b))),
        (
            "tanh_backward_grad_y",
            error_of(a.ternary(TernaryOp::TanhBackwardGradY, &a, &b)),
        ),
        ("cat", error_of(Var::cat(&[&a, &b], 0))),
        ("cat", error_of(Var::stack(&[&a, &b], 0))),
    ];
    for (op, err) in mixed {
        assert!(
            matches!(&err, TapeError::TapeMismatch { op: o } if *o == op),
            "{op}: {err:?}"
        );
        assert_mentions(&err.to_string(), &[op, "different tapes"]);
    }
    // A constant of one tape in an op on another is a mismatch too.
    let c = two.constant(f64s(&[2, 2]));
    assert!(matches!(
        error_of(a.sub(&c)),
        TapeError::TapeMismatch { op: "sub" }
    ));

    // grad: inputs, cotangents and other outputs from another tape.
    let y = a.square().and_then(|v| v.sum_all()).expect("y on tape one");
    let err = error_of(grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&b),
        GradOptions::default(),
    ));
    assert!(
        matches!(err, TapeError::TapeMismatch { op: "grad" }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["grad", "different tapes"]);
    let err = error_of(grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&b),
        GradOptions {
            allow_unused: true,
            ..GradOptions::default()
        },
    ));
    assert!(
        matches!(err, TapeError::TapeMismatch { op: "grad" }),
        "{err:?}"
    );
    let err = error_of(vjp(
        std::slice::from_ref(&y),
        &[two.constant(Tensor::scalar(1.0, DType::F64, Device::Cpu).expect("scalar"))],
        std::slice::from_ref(&a),
        false,
    ));
    assert!(
        matches!(err, TapeError::TapeMismatch { op: "grad" }),
        "{err:?}"
    );
    let w = b.exp().and_then(|v| v.sum_all()).expect("w on tape two");
    let err = error_of(grad(&[y, w], &[a], GradOptions::default()));
    assert!(
        matches!(err, TapeError::TapeMismatch { op: "grad" }),
        "{err:?}"
    );
}

#[test]
fn invalid_arguments_are_errors_not_panics_cpu() {
    let tape = Tape::new();
    let s = tape.leaf(f64s(&[]));
    let v = tape.leaf(f64s(&[3]));
    let m = tape.leaf(f64s(&[3, 4]));

    let err = error_of(s.matmul(&v));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::InvalidArgument { op: "matmul", .. })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "[]", "[3]"]);
    let err = error_of(m.matmul(&s));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::InvalidArgument { op: "matmul", .. })
        ),
        "{err:?}"
    );

    let err = error_of(Var::cat(&[], 0));
    assert!(
        matches!(err, TapeError::Tensor(TensorError::Empty { op: "cat" })),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["cat", "empty"]);
    let err = error_of(Var::stack(&[], 0));
    assert!(
        matches!(err, TapeError::Tensor(TensorError::Empty { op: "cat" })),
        "{err:?}"
    );

    let err = error_of(m.narrow(1, 3, 2));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::IndexOutOfRange {
                op: "narrow",
                index: 5,
                len: 4
            })
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["narrow", "5", "4"]);
    let err = error_of(m.narrow(1, 1, usize::MAX));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::IndexOutOfRange { op: "narrow", .. })
        ),
        "{err:?}"
    );

    let err = m.value().index_select(0, &[0, 3]).expect_err("row 3 of 3");
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "index_select",
                index: 3,
                len: 3
            }
        ),
        "{err:?}"
    );

    let err = error_of(v.t());
    assert!(
        matches!(err, TapeError::InvalidArgument { op: "t", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["t:", "[3]"]);
    let err = error_of(v.trace());
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::InvalidArgument { op: "trace", .. })
        ),
        "{err:?}"
    );
    let err = error_of(m.gather_labels(&[0, 1]));
    assert!(
        matches!(
            err,
            TapeError::InvalidArgument {
                op: "gather_labels",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["gather_labels", "[3, 4]", "2 labels"]);
    let err = error_of(m.gather_labels(&[0, 1, 4]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::IndexOutOfRange { op: "one_hot", .. })
        ),
        "{err:?}"
    );
    let err = error_of(m.broadcast_to([2, 4]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::BroadcastMismatch {
                op: "broadcast_to",
                ..
            })
        ),
        "{err:?}"
    );
    let err = error_of(m.sum_to([4, 4]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::ShapeMismatch { op: "sum_to", .. })
        ),
        "{err:?}"
    );
    let err = error_of(m.permute(&[1]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::InvalidArgument { op: "permute", .. })
        ),
        "{err:?}"
    );
    let err = error_of(gradcheck(
        |v: &[Var]| v[0].exp(),
        &[],
        CheckOptions::default(),
    ));
    assert!(
        matches!(
            err,
            TapeError::InvalidArgument {
                op: "gradcheck",
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing above was recorded.
    assert_eq!(tape.len(), 3);
}
