//! Every class of bad input to a tensor op is an error value (never a panic) whose variant says
//! what went wrong and whose message names the op and the shapes or dtypes involved.

use curvature_tensor::{DType, Device, Shape, Tensor, TensorError};

const CPU: Device = Device::Cpu;

fn zeros(dims: &[usize]) -> Tensor {
    Tensor::zeros(dims, DType::F64, CPU).expect("zeros on the CPU")
}

/// Asserts that `message` contains every one of `parts`.
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "message {message:?} does not mention {part:?}"
        );
    }
}

/// The error of a result that must have failed.
fn error_of<T: std::fmt::Debug>(result: curvature_tensor::Result<T>) -> TensorError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(e) => e,
    }
}

#[test]
fn binary_shape_mismatch_is_broadcast_error_cpu() {
    let err = error_of(zeros(&[2, 3]).add(&zeros(&[4])));
    assert!(
        matches!(&err, TensorError::BroadcastMismatch { op: "add", lhs, rhs }
            if lhs == &Shape::new([2, 3]) && rhs == &Shape::new([4])),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["add", "[2, 3]", "[4]"]);
    let err = error_of(zeros(&[3, 1]).mul(&zeros(&[2, 4])));
    assert!(
        matches!(err, TensorError::BroadcastMismatch { op: "mul", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["mul", "[3, 1]", "[2, 4]"]);
    let err = error_of(zeros(&[2]).tanh_backward(&zeros(&[3])));
    assert_mentions(&err.to_string(), &["tanh_backward", "[2]", "[3]"]);
}

/// maximum, minimum, pow and where_cond: operands that do not broadcast, or of two dtypes, are
/// errors naming the op and the operands.
#[test]
fn mismatched_operands_of_selection_ops_cpu() {
    let f32 = Tensor::zeros([3], DType::F32, CPU).expect("f32 zeros");
    for (name, result) in [
        ("maximum", zeros(&[2, 3]).maximum(&zeros(&[2]))),
        ("minimum", zeros(&[2, 3]).minimum(&zeros(&[2]))),
        ("pow", zeros(&[2, 3]).pow(&zeros(&[2]))),
    ] {
        let err = error_of(result);
        assert!(
            matches!(&err, TensorError::BroadcastMismatch { op, .. } if *op == name),
            "{err:?}"
        );
        assert_mentions(&err.to_string(), &[name, "[2, 3]", "[2]"]);
    }
    for (name, result) in [
        ("maximum", zeros(&[3]).maximum(&f32)),
        ("minimum", zeros(&[3]).minimum(&f32)),
        ("pow", zeros(&[3]).pow(&f32)),
        ("where_cond", zeros(&[3]).where_cond(&zeros(&[3]), &f32)),
        ("where_cond", f32.where_cond(&zeros(&[3]), &zeros(&[3]))),
    ] {
        let err = error_of(result);
        assert!(
            matches!(&err, TensorError::DTypeMismatch { op, .. } if *op == name),
            "{err:?}"
        );
        assert_mentions(&err.to_string(), &[name, "f64", "f32"]);
    }
    // The mask against the branches, and the branches against each other.
    let err = error_of(zeros(&[2, 3]).where_cond(&zeros(&[4]), &zeros(&[4])));
    assert!(
        matches!(
            err,
            TensorError::BroadcastMismatch {
                op: "where_cond",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["where_cond", "[2, 3]", "[4]"]);
    let err = error_of(zeros(&[1]).where_cond(&zeros(&[2]), &zeros(&[4])));
    assert_mentions(&err.to_string(), &["where_cond", "[2]", "[4]"]);
}

#[test]
fn matmul_inner_dimension_mismatch_cpu() {
    let err = error_of(zeros(&[2, 3]).matmul(&zeros(&[4, 5])));
    assert!(
        matches!(&err, TensorError::MatmulShape { lhs, rhs, lhs_k: 3, rhs_k: 4 }
            if lhs == &Shape::new([2, 3]) && rhs == &Shape::new([4, 5])),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "[2, 3]", "[4, 5]", "3", "4"]);
    // 1-D operands report the shapes the caller passed.
    let err = error_of(zeros(&[3]).matmul(&zeros(&[4])));
    assert!(matches!(err, TensorError::MatmulShape { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["matmul", "[3]", "[4]"]);
    // Batch dimensions that do not broadcast.
    let err = error_of(zeros(&[2, 3, 4]).matmul(&zeros(&[3, 4, 5])));
    assert!(
        matches!(err, TensorError::BroadcastMismatch { op: "matmul", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "[2, 3, 4]", "[3, 4, 5]"]);
}

#[test]
fn dtype_mismatch_cpu() {
    let a = Tensor::zeros([3], DType::F32, CPU).expect("f32 zeros");
    let b = zeros(&[3]);
    let err = error_of(a.add(&b));
    assert!(
        matches!(
            err,
            TensorError::DTypeMismatch {
                op: "add",
                lhs: DType::F32,
                rhs: DType::F64
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["add", "f32", "f64"]);
    let err = error_of(b.matmul(&a));
    assert!(
        matches!(err, TensorError::DTypeMismatch { op: "matmul", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["matmul", "f64", "f32"]);
    let err = error_of(Tensor::cat(&[&b, &a], 0));
    assert!(
        matches!(err, TensorError::DTypeMismatch { op: "cat", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["cat", "f64", "f32"]);
    let err = error_of(b.ternary(curvature_tensor::TernaryOp::TanhBackwardGradY, &b, &a));
    assert!(matches!(err, TensorError::DTypeMismatch { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["tanh_backward_grad_y", "f64", "f32"]);
    let err = error_of(a.to_vec::<f64>());
    assert!(
        matches!(
            err,
            TensorError::WrongElementType {
                op: "to_vec",
                actual: DType::F32,
                requested: DType::F64
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["to_vec", "f32", "f64"]);
}

#[test]
fn reshape_size_mismatch_cpu() {
    let err = error_of(zeros(&[2, 3]).reshape([4, 2]));
    assert!(
        matches!(
            err,
            TensorError::ReshapeSize {
                from_len: 6,
                to_len: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["reshape", "[2, 3]", "[4, 2]", "6", "8"]);
}

#[test]
fn axis_out_of_range_cpu() {
    let x = zeros(&[2, 3]);
    let cases: Vec<(&str, TensorError)> = vec![
        ("sum", error_of(x.sum(&[2], false))),
        ("mean", error_of(x.mean(&[-3], false))),
        ("max", error_of(x.max(5, true))),
        ("logsumexp", error_of(x.logsumexp(2, false))),
        ("log_softmax", error_of(x.log_softmax(-3))),
        ("transpose", error_of(x.transpose(0, 2))),
        ("narrow", error_of(x.narrow(2, 0, 1))),
        ("pad_zeros", error_of(x.pad_zeros(3, 1, 1))),
        ("cat", error_of(Tensor::cat(&[&x, &x], 2))),
        ("index_select", error_of(x.index_select(2, &[0]))),
        ("unsqueeze", error_of(x.unsqueeze(3))),
        ("max", error_of(zeros(&[]).max(0, false))),
    ];
    for (op, err) in cases {
        assert!(
            matches!(&err, TensorError::AxisOutOfRange { op: o, .. } if *o == op),
            "{op}: {err:?}"
        );
        assert_mentions(&err.to_string(), &[op, "axis", "rank"]);
    }
    let err = error_of(x.sum(&[2], false));
    assert!(matches!(
        err,
        TensorError::AxisOutOfRange {
            axis: 2,
            rank: 2,
            ..
        }
    ));
}

#[test]
fn from_vec_length_mismatch_cpu() {
    let err = error_of(Tensor::from_vec(vec![1.0f64; 5], [2, 3], CPU));
    assert!(
        matches!(&err, TensorError::DataLength { op: "from_vec", len: 5, expected: 6, shape }
            if shape == &Shape::new([2, 3])),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["from_vec", "5", "[2, 3]", "6"]);
    let err = error_of(Tensor::from_f64s(&[1.0; 7], [2, 3], DType::F32, CPU));
    assert!(
        matches!(
            err,
            TensorError::DataLength {
                op: "from_f64s",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn shape_errors_of_layout_ops_cpu() {
    let x = zeros(&[2, 3]);
    let err = error_of(x.broadcast_to([3, 3]));
    assert!(
        matches!(
            err,
            TensorError::BroadcastMismatch {
                op: "broadcast_to",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["broadcast_to", "[2, 3]", "[3, 3]"]);
    // Broadcasting must give exactly the asked-for shape, not a larger one.
    let err = error_of(zeros(&[2, 3]).broadcast_to([1, 3]));
    assert!(
        matches!(err, TensorError::BroadcastMismatch { .. }),
        "{err:?}"
    );
    let err = error_of(x.sum_to([4]));
    assert!(
        matches!(err, TensorError::ShapeMismatch { op: "sum_to", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["sum_to", "[4]", "[2, 3]"]);
    let err = error_of(x.sum_to([1, 2, 3]));
    assert!(
        matches!(err, TensorError::ShapeMismatch { op: "sum_to", .. }),
        "{err:?}"
    );
    let err = error_of(Tensor::cat(&[&x, &zeros(&[3, 3])], 1));
    assert!(
        matches!(err, TensorError::ShapeMismatch { op: "cat", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["cat", "[2, 3]", "[3, 3]"]);
    let err = error_of(Tensor::stack(&[&x, &zeros(&[3, 2])], 0));
    assert!(
        matches!(err, TensorError::ShapeMismatch { op: "cat", .. }),
        "{err:?}"
    );
    let err = error_of(x.permute(&[0, 0]));
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "permute", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["permute", "[0, 0]", "[2, 3]"]);
    let err = error_of(x.permute(&[1, 0, 2]));
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "permute", .. }),
        "{err:?}"
    );
    let err = error_of(x.to_scalar());
    assert!(
        matches!(
            err,
            TensorError::ShapeMismatch {
                op: "to_scalar",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["to_scalar", "[2, 3]"]);
}

#[test]
fn matmul_of_a_scalar_is_an_error_cpu() {
    for (a, b) in [
        (&[][..], &[3][..]),
        (&[3, 2][..], &[][..]),
        (&[][..], &[][..]),
    ] {
        let err = error_of(zeros(a).matmul(&zeros(b)));
        assert!(
            matches!(err, TensorError::InvalidArgument { op: "matmul", .. }),
            "{err:?}"
        );
        assert_mentions(&err.to_string(), &["matmul", "dimension"]);
    }
    let err = error_of(zeros(&[3]).t());
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "t", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["t:", "[3]"]);
}

#[test]
fn empty_inputs_are_errors_cpu() {
    let err = error_of(Tensor::cat(&[], 0));
    assert!(matches!(err, TensorError::Empty { op: "cat" }), "{err:?}");
    assert_mentions(&err.to_string(), &["cat", "empty"]);
    let err = error_of(Tensor::stack(&[], 0));
    assert!(matches!(err, TensorError::Empty { op: "cat" }), "{err:?}");
    let err = error_of(zeros(&[2, 0]).max(1, false));
    assert!(matches!(err, TensorError::Empty { op: "max" }), "{err:?}");
    let err = error_of(zeros(&[0]).max_all());
    assert!(
        matches!(err, TensorError::Empty { op: "max_all" }),
        "{err:?}"
    );
    let err = error_of(zeros(&[0, 3]).mean_all());
    assert!(
        matches!(err, TensorError::Empty { op: "mean_all" }),
        "{err:?}"
    );
    let err = error_of(zeros(&[3, 0]).logsumexp(1, false));
    assert!(
        matches!(err, TensorError::Empty { op: "logsumexp" }),
        "{err:?}"
    );
    let err = error_of(zeros(&[3, 0]).log_softmax(-1));
    assert!(
        matches!(err, TensorError::Empty { op: "log_softmax" }),
        "{err:?}"
    );
}

#[test]
fn index_out_of_range_is_an_error_cpu() {
    let x = zeros(&[2, 3]);
    let err = error_of(x.narrow(1, 2, 2));
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "narrow",
                index: 4,
                len: 3
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["narrow", "4", "3"]);
    // start + len overflowing usize is out of range too, not a wrap-around or a panic.
    let err = error_of(x.narrow(1, 2, usize::MAX));
    assert!(
        matches!(err, TensorError::IndexOutOfRange { op: "narrow", .. }),
        "{err:?}"
    );
    let err = error_of(x.narrow(0, usize::MAX, 2));
    assert!(
        matches!(err, TensorError::IndexOutOfRange { op: "narrow", .. }),
        "{err:?}"
    );
    let err = error_of(x.index_select(0, &[1, 2]));
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "index_select",
                index: 2,
                len: 2
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["index_select", "2"]);
    let err = error_of(Tensor::one_hot(&[0, 4], 4, DType::F64, CPU));
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "one_hot",
                index: 4,
                len: 4
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["one_hot", "4"]);
}

#[test]
fn trace_and_diagonal_need_matrices_cpu() {
    let err = error_of(zeros(&[3]).trace());
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "trace", .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["trace", "[3]"]);
    let err = error_of(zeros(&[2, 2, 2]).trace());
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "trace", .. }),
        "{err:?}"
    );
    let err = error_of(zeros(&[]).diagonal());
    assert!(
        matches!(err, TensorError::InvalidArgument { op: "diagonal", .. }),
        "{err:?}"
    );
}
