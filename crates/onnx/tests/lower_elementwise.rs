//! The elementwise ops lowered onto the tape and the host, on every device: values against
//! closed forms and loops written here, first and second derivatives against f64 finite
//! differences, integer semantics (truncating division, overflow) and the errors of bad nodes.

mod common;

use common::graph::{
    assert_close, assert_derivatives, attr, error_text, float, int, ints, run_op, run_op_at, OPSET,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::Val;
use curvature_tape::Tape;
use curvature_tensor::Device;

/// erf by its Maclaurin series (converges to f64 precision for |x| ≤ 2 in 40 terms).
fn erf(x: f64) -> f64 {
    let mut term = x; // (−1)ⁿ x²ⁿ⁺¹ / n!
    let mut sum = x;
    for n in 1..40 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// A unary op's name, attributes and scalar reference.
type UnaryCase = (&'static str, Vec<(String, Attribute)>, fn(f64) -> f64);

/// An op defined on positive inputs and its scalar reference.
type PositiveCase = (&'static str, fn(f64) -> f64);

const XS: [f64; 6] = [-1.7, -0.6, -0.1, 0.2, 0.9, 1.4];

fn unary_cases() -> Vec<UnaryCase> {
    vec![
        ("Exp", vec![], f64::exp),
        ("Tanh", vec![], f64::tanh),
        ("Sigmoid", vec![], |x| 1.0 / (1.0 + (-x).exp())),
        ("Relu", vec![], |x| if x > 0.0 { x } else { 0.0 }),
        ("Neg", vec![], |x| -x),
        ("Abs", vec![], f64::abs),
        ("Sign", vec![], f64::signum),
        ("Sin", vec![], f64::sin),
        ("Cos", vec![], f64::cos),
        (
            "LeakyRelu",
            vec![attr("alpha", Attribute::Float(0.25))],
            |x| {
                if x > 0.0 {
                    x
                } else {
                    0.25 * x
                }
            },
        ),
        ("LeakyRelu", vec![], |x| if x > 0.0 { x } else { 0.01 * x }),
        ("Elu", vec![attr("alpha", Attribute::Float(0.5))], |x| {
            if x > 0.0 {
                x
            } else {
                0.5 * (x.exp() - 1.0)
            }
        }),
        ("Erf", vec![], erf),
        ("Softplus", vec![], |x| (1.0 + x.exp()).ln()),
        ("Gelu", vec![], |x| 0.5 * x * (1.0 + erf(x / 2f64.sqrt()))),
        (
            "Gelu",
            vec![attr("approximate", Attribute::String("tanh".into()))],
            |x| {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            },
        ),
    ]
}

fn positive_cases() -> Vec<PositiveCase> {
    vec![
        ("Sqrt", f64::sqrt),
        ("Log", f64::ln),
        ("Reciprocal", |x| 1.0 / x),
    ]
}

fn unary_values(device: Device) {
    let tape = Tape::new();
    for (op, attrs, reference) in unary_cases() {
        let out = run_op(
            &tape,
            device,
            op,
            attrs,
            vec![Some(float(&tape, device, &XS, &[2, 3]))],
        )
        .unwrap_or_else(|e| panic!("{op}: {e}"));
        let expected: Vec<f64> = XS.iter().map(|&x| reference(x)).collect();
        assert_close(op, &out, &expected, &[2, 3], 1e-12);
    }
    let positive = [0.3, 0.8, 1.9];
    for (op, reference) in positive_cases() {
        let out = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![Some(float(&tape, device, &positive, &[3]))],
        )
        .unwrap_or_else(|e| panic!("{op}: {e}"));
        let expected: Vec<f64> = positive.iter().map(|&x| reference(x)).collect();
        assert_close(op, &out, &expected, &[3], 1e-12);
    }
}

fn unary_derivatives(device: Device) {
    // Away from the kinks of Relu, LeakyRelu and Elu.
    let xs = [-0.7, 0.4, 1.1];
    for (op, attrs, _) in unary_cases() {
        assert_derivatives(op, device, &[(&xs, &[3])], |tape, v| {
            run_op(tape, device, op, attrs.clone(), vec![Some(v[0].clone())])
        });
    }
    for (op, _) in positive_cases() {
        assert_derivatives(op, device, &[(&[0.6, 1.3], &[2])], |tape, v| {
            run_op(tape, device, op, vec![], vec![Some(v[0].clone())])
        });
    }
}

fn arithmetic_broadcasts(device: Device) {
    let tape = Tape::new();
    let a = [1.5, -2.0, 0.5, 4.0, -1.0, 3.0];
    let b = [2.0, -0.5, 4.0];
    for (op, f) in [
        ("Add", (|x, y| x + y) as fn(f64, f64) -> f64),
        ("Sub", |x, y| x - y),
        ("Mul", |x, y| x * y),
        ("Div", |x, y| x / y),
    ] {
        let out = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![
                Some(float(&tape, device, &a, &[2, 3])),
                Some(float(&tape, device, &b, &[3])),
            ],
        )
        .unwrap_or_else(|e| panic!("{op}: {e}"));
        let expected: Vec<f64> = (0..6).map(|i| f(a[i], b[i % 3])).collect();
        assert_close(op, &out, &expected, &[2, 3], 1e-15);
        // [2, 1] against [3]: both sides broadcast.
        assert_derivatives(
            op,
            device,
            &[(&[0.7, -1.2], &[2, 1]), (&[1.3, -0.8, 2.1], &[3])],
            |t, v| {
                run_op(
                    t,
                    device,
                    op,
                    vec![],
                    vec![Some(v[0].clone()), Some(v[1].clone())],
                )
            },
        );
    }
    // An integer operand next to a float one becomes a constant.
    let out = run_op(
        &tape,
        device,
        "Mul",
        vec![],
        vec![Some(float(&tape, device, &b, &[3])), Some(int(&[2], &[]))],
    )
    .expect("mixed Mul");
    assert_close("int × float", &out, &[4.0, -1.0, 8.0], &[3], 0.0);
}

fn integer_arithmetic(device: Device) {
    let tape = Tape::new();
    let a = int(&[7, -7, 9, -9], &[2, 2]);
    let b = int(&[2, -4], &[2]);
    let run = |op: &str, a: &Val, b: &Val| {
        run_op(
            &tape,
            device,
            op,
            vec![],
            vec![Some(a.clone()), Some(b.clone())],
        )
    };
    assert_eq!(
        ints(&run("Add", &a, &b).unwrap()).data,
        vec![9, -11, 11, -13]
    );
    assert_eq!(ints(&run("Sub", &a, &b).unwrap()).data, vec![5, -3, 7, -5]);
    assert_eq!(
        ints(&run("Mul", &a, &b).unwrap()).data,
        vec![14, 28, 18, 36]
    );
    // Truncation toward zero: 7/2 = 3, −7/−4 = 1, 9/2 = 4, −9/−4 = 2.
    assert_eq!(ints(&run("Div", &a, &b).unwrap()).data, vec![3, 1, 4, 2]);
    assert_eq!(
        ints(&run("Div", &int(&[-7], &[]), &int(&[2], &[])).unwrap()).data,
        vec![-3]
    );
    let text = error_text(run("Div", &a, &int(&[0], &[])).map(|v| vec![v]), "n");
    assert!(text.contains("/ 0"), "{text}");
    let text = error_text(
        run("Mul", &int(&[i64::MAX], &[]), &int(&[2], &[])).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("overflow"), "{text}");
    let text = error_text(run("Add", &a, &int(&[1, 2, 3], &[3])).map(|v| vec![v]), "n");
    assert!(text.contains("do not broadcast"), "{text}");
    let neg = run_op(
        &tape,
        device,
        "Neg",
        vec![],
        vec![Some(int(&[i64::MIN], &[]))],
    );
    assert!(error_text(neg.map(|v| vec![v]), "n").contains("overflow"));
    let relu = run_op(
        &tape,
        device,
        "Relu",
        vec![],
        vec![Some(int(&[-3, 4], &[2]))],
    )
    .unwrap();
    assert_eq!(ints(&relu).data, vec![0, 4]);
}

fn pow_lowering(device: Device) {
    let tape = Tape::new();
    let xs = [-2.0, -0.5, 1.5];
    let pow = |exponent: Val| {
        run_op(
            &tape,
            device,
            "Pow",
            vec![],
            vec![Some(float(&tape, device, &xs, &[3])), Some(exponent)],
        )
        .expect("Pow")
    };
    // Integer exponents are exact products, so negative bases work.
    assert_close(
        "x^3",
        &pow(float(&tape, device, &[3.0], &[])),
        &[-8.0, -0.125, 3.375],
        &[3],
        0.0,
    );
    assert_close(
        "x^2 (int)",
        &pow(int(&[2], &[1])),
        &[4.0, 0.25, 2.25],
        &[3],
        0.0,
    );
    assert_close(
        "x^-2",
        &pow(float(&tape, device, &[-2.0], &[])),
        &[0.25, 4.0, 1.0 / 2.25],
        &[3],
        1e-15,
    );
    assert_close("x^0", &pow(int(&[0], &[])), &[1.0, 1.0, 1.0], &[3], 0.0);
    // The exponent's shape broadcasts the result.
    assert_close(
        "x^[1,1]",
        &pow(int(&[1, 1], &[2, 1])),
        &[-2.0, -0.5, 1.5, -2.0, -0.5, 1.5],
        &[2, 3],
        0.0,
    );
    let positive = [0.5, 1.5, 2.0];
    let pos_pow = |e: f64| {
        run_op(
            &tape,
            device,
            "Pow",
            vec![],
            vec![
                Some(float(&tape, device, &positive, &[3])),
                Some(float(&tape, device, &[e], &[])),
            ],
        )
        .expect("Pow")
    };
    let expected: Vec<f64> = positive.iter().map(|x| x.sqrt()).collect();
    assert_close("x^0.5", &pos_pow(0.5), &expected, &[3], 1e-15);
    let expected: Vec<f64> = positive.iter().map(|x| x.powf(2.5)).collect();
    assert_close("x^2.5", &pos_pow(2.5), &expected, &[3], 1e-12);
    // Derivatives: a constant integer power on negative bases, a fractional one, a varying one.
    for (name, exponent) in [("cube", 3.0), ("inverse square", -2.0), ("x^2.5", 2.5)] {
        let at: &[f64] = if exponent == 2.5 {
            &[0.6, 1.4]
        } else {
            &[-1.3, 0.7]
        };
        assert_derivatives(name, device, &[(at, &[2])], |t, v| {
            run_op(
                t,
                device,
                "Pow",
                vec![],
                vec![Some(v[0].clone()), Some(float(t, device, &[exponent], &[]))],
            )
        });
    }
    assert_derivatives(
        "pow of both",
        device,
        &[(&[0.6, 1.4], &[2]), (&[1.5, -0.7], &[2])],
        |t, v| {
            run_op(
                t,
                device,
                "Pow",
                vec![],
                vec![Some(v[0].clone()), Some(v[1].clone())],
            )
        },
    );
    // Integer powers on the host.
    let p = run_op(
        &tape,
        device,
        "Pow",
        vec![],
        vec![Some(int(&[-3, 2], &[2])), Some(int(&[3], &[]))],
    )
    .unwrap();
    assert_eq!(ints(&p).data, vec![-27, 8]);
    let over = run_op(
        &tape,
        device,
        "Pow",
        vec![],
        vec![Some(int(&[10], &[])), Some(int(&[19], &[]))],
    );
    assert!(error_text(over.map(|v| vec![v]), "n").contains("overflow"));
}

fn where_and_comparisons(device: Device) {
    let tape = Tape::new();
    let cond = int(&[1, 0, 0, 1], &[2, 2]);
    let x = [1.0, 2.0, 3.0, 4.0];
    let out = run_op(
        &tape,
        device,
        "Where",
        vec![],
        vec![
            Some(cond.clone()),
            Some(float(&tape, device, &x, &[2, 2])),
            Some(float(&tape, device, &[-1.0], &[])),
        ],
    )
    .unwrap();
    assert_close("Where", &out, &[1.0, -1.0, -1.0, 4.0], &[2, 2], 0.0);
    let host = run_op(
        &tape,
        device,
        "Where",
        vec![],
        vec![
            Some(cond.clone()),
            Some(int(&[5, 6], &[2])),
            Some(int(&[0], &[])),
        ],
    )
    .unwrap();
    assert_eq!(ints(&host).data, vec![5, 0, 0, 6]);
    assert_derivatives(
        "Where",
        device,
        &[(&[0.3, -0.4], &[2]), (&[1.2, 0.8, -0.5, 0.1], &[2, 2])],
        |t, v| {
            run_op(
                t,
                device,
                "Where",
                vec![],
                vec![Some(cond.clone()), Some(v[0].clone()), Some(v[1].clone())],
            )
        },
    );
    let a = [1.0, 2.0, 3.0];
    let b = [2.0];
    for (op, expected) in [
        ("Equal", vec![0, 1, 0]),
        ("Less", vec![1, 0, 0]),
        ("Greater", vec![0, 0, 1]),
        ("LessOrEqual", vec![1, 1, 0]),
        ("GreaterOrEqual", vec![0, 1, 1]),
    ] {
        let on_floats = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![
                Some(float(&tape, device, &a, &[3])),
                Some(float(&tape, device, &b, &[1])),
            ],
        )
        .unwrap();
        assert_eq!(ints(&on_floats).data, expected, "{op} on floats");
        let on_ints = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![Some(int(&[1, 2, 3], &[3])), Some(int(&[2], &[]))],
        )
        .unwrap();
        assert_eq!(ints(&on_ints).data, expected, "{op} on ints");
    }
    let p = int(&[1, 1, 0, 0], &[4]);
    let q = int(&[1, 0, 1, 0], &[4]);
    for (op, expected) in [
        ("And", vec![1, 0, 0, 0]),
        ("Or", vec![1, 1, 1, 0]),
        ("Xor", vec![0, 1, 1, 0]),
    ] {
        let out = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![Some(p.clone()), Some(q.clone())],
        )
        .unwrap();
        assert_eq!(ints(&out).data, expected, "{op}");
    }
    assert_eq!(
        ints(&run_op(&tape, device, "Not", vec![], vec![Some(p.clone())]).unwrap()).data,
        vec![0, 0, 1, 1]
    );
    let text = error_text(
        run_op(
            &tape,
            device,
            "Where",
            vec![],
            vec![
                Some(float(&tape, device, &[1.0], &[1])),
                Some(int(&[1], &[1])),
                Some(int(&[1], &[1])),
            ],
        )
        .map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("condition"), "{text}");
}

fn max_min_size(device: Device) {
    let tape = Tape::new();
    let a = [1.0, -2.0, 3.0];
    let b = [0.5];
    let c = [2.0, -3.0, 0.0];
    let args = || {
        vec![
            Some(float(&tape, device, &a, &[3])),
            Some(float(&tape, device, &b, &[1])),
            Some(float(&tape, device, &c, &[3])),
        ]
    };
    let expected_max: Vec<f64> = (0..3).map(|i| a[i].max(b[0]).max(c[i])).collect();
    let expected_min: Vec<f64> = (0..3).map(|i| a[i].min(b[0]).min(c[i])).collect();
    assert_close(
        "Max",
        &run_op(&tape, device, "Max", vec![], args()).unwrap(),
        &expected_max,
        &[3],
        0.0,
    );
    assert_close(
        "Min",
        &run_op(&tape, device, "Min", vec![], args()).unwrap(),
        &expected_min,
        &[3],
        0.0,
    );
    let m = run_op(
        &tape,
        device,
        "Max",
        vec![],
        vec![Some(int(&[1, 7], &[2])), Some(int(&[4], &[]))],
    )
    .unwrap();
    assert_eq!(ints(&m).data, vec![4, 7]);
    assert_derivatives(
        "Max",
        device,
        &[(&[0.3, -1.0], &[2]), (&[0.9, -1.4], &[2])],
        |t, v| {
            run_op(
                t,
                device,
                "Max",
                vec![],
                vec![Some(v[0].clone()), Some(v[1].clone())],
            )
        },
    );
    let size = run_op(
        &tape,
        device,
        "Size",
        vec![],
        vec![Some(float(&tape, device, &[0.0; 6], &[2, 3]))],
    )
    .unwrap();
    assert_eq!(
        ints(&size),
        curvature_onnx::lower::IntTensor {
            dims: vec![],
            data: vec![6]
        }
    );
}

fn cast_dropout_identity(device: Device) {
    let tape = Tape::new();
    let to = |t: i64| vec![attr("to", Attribute::Int(t))];
    let xs = [-2.7, -0.2, 0.0, 3.9];
    let c = |t: i64, v: Val| run_op(&tape, device, "Cast", to(t), vec![Some(v)]);
    // Float to int64 truncates toward zero; to bool is ≠ 0.
    assert_eq!(
        ints(&c(7, float(&tape, device, &xs, &[4])).unwrap()).data,
        vec![-2, 0, 0, 3]
    );
    assert_eq!(
        ints(&c(9, float(&tape, device, &xs, &[4])).unwrap()).data,
        vec![1, 1, 0, 1]
    );
    assert_eq!(
        ints(&c(9, int(&[0, 5, -1], &[3])).unwrap()).data,
        vec![0, 1, 1]
    );
    assert_close(
        "int → float",
        &c(1, int(&[3, -4], &[2])).unwrap(),
        &[3.0, -4.0],
        &[2],
        0.0,
    );
    assert_close(
        "double → float",
        &c(1, float(&tape, device, &xs, &[4])).unwrap(),
        &xs,
        &[4],
        0.0,
    );
    assert_eq!(
        ints(&c(6, int(&[-5, 2_000_000_000], &[2])).unwrap()).data,
        vec![-5, 2_000_000_000]
    );
    let text = error_text(c(6, int(&[3_000_000_000], &[1])).map(|v| vec![v]), "n");
    assert!(text.contains("does not fit"), "{text}");
    let text = error_text(
        c(2, float(&tape, device, &[-1.0], &[1])).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("does not fit"), "{text}");
    let text = error_text(
        c(7, float(&tape, device, &[f64::NAN], &[1])).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("does not fit"), "{text}");
    let text = error_text(c(8, int(&[1], &[1])).map(|v| vec![v]), "n");
    assert!(text.contains("element type 8"), "{text}");
    let tracked = tape.leaf(
        curvature_tensor::Tensor::from_f64s(&[1.5], [1], curvature_tensor::DType::F64, device)
            .unwrap(),
    );
    let text = error_text(c(7, Val::Float(tracked.clone())).map(|v| vec![v]), "n");
    assert!(text.contains("depend on parameters"), "{text}");
    let text = error_text(
        run_op(&tape, device, "Cast", vec![], vec![Some(int(&[1], &[1]))]).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("'to'"), "{text}");
    // Identity and inference Dropout pass the tracked value through; the mask is all true.
    let id = run_op(
        &tape,
        device,
        "Identity",
        vec![],
        vec![Some(Val::Float(tracked.clone()))],
    )
    .unwrap();
    let Val::Float(id) = id else {
        panic!("Identity of a float")
    };
    assert_eq!(id.node_id(), tracked.node_id());
    let out = run_op_at(
        &tape,
        device,
        OPSET,
        "Dropout",
        vec![],
        vec![
            Some(float(&tape, device, &xs, &[2, 2])),
            Some(float(&tape, device, &[0.5], &[])),
            Some(int(&[0], &[])),
        ],
        2,
    )
    .unwrap();
    assert_close("Dropout", &out[0], &xs, &[2, 2], 0.0);
    assert_eq!(
        ints(&out[1]),
        curvature_onnx::lower::IntTensor {
            dims: vec![2, 2],
            data: vec![1; 4]
        }
    );
    let training = run_op(
        &tape,
        device,
        "Dropout",
        vec![],
        vec![
            Some(float(&tape, device, &xs, &[4])),
            None,
            Some(int(&[1], &[])),
        ],
    );
    let text = error_text(training.map(|v| vec![v]), "n");
    assert!(text.contains("training_mode"), "{text}");
}

fn cast_like(device: Device) {
    let tape = Tape::new();
    let cast_like = |x: Val, target: Val| {
        run_op(
            &tape,
            device,
            "CastLike",
            vec![],
            vec![Some(x), Some(target)],
        )
        .map(|v| vec![v])
    };
    let float_target = || float(&tape, device, &[0.0], &[1]);
    // To a float target: floats unchanged, integers as floats.
    let xs = [-2.5, 0.25, 3.0];
    let out = cast_like(float(&tape, device, &xs, &[3]), float_target()).unwrap();
    assert_close("float like float", &out[0], &xs, &[3], 0.0);
    let out = cast_like(int(&[4, -7], &[2]), float_target()).unwrap();
    assert_close("int like float", &out[0], &[4.0, -7.0], &[2], 0.0);
    // To an integer target (it holds a value other than 0 and 1): int64, truncated.
    let shape_like = || int(&[8, 3], &[2]);
    let out = cast_like(float(&tape, device, &[1.7, -2.3, 0.5], &[3]), shape_like()).unwrap();
    assert_eq!(ints(&out[0]).data, vec![1, -2, 0]);
    assert_eq!(ints(&out[0]).dims, vec![3]);
    let out = cast_like(int(&[5, -6], &[2]), shape_like()).unwrap();
    assert_eq!(ints(&out[0]).data, vec![5, -6]);
    // A target of 0s and 1s may be boolean: the cast is made when both readings agree.
    let mask_like = || int(&[0, 1], &[2]);
    let out = cast_like(int(&[1, 0, 1], &[3]), mask_like()).unwrap();
    assert_eq!(ints(&out[0]).data, vec![1, 0, 1]);
    let out = cast_like(float(&tape, device, &[0.0, 1.0], &[2]), mask_like()).unwrap();
    assert_eq!(ints(&out[0]).data, vec![0, 1]);
    let text = error_text(cast_like(int(&[3], &[1]), mask_like()), "n");
    assert!(text.contains("bool or") && text.contains("[2]"), "{text}");
    let text = error_text(
        cast_like(float(&tape, device, &[0.5], &[1]), mask_like()),
        "n",
    );
    assert!(text.contains("not recorded"), "{text}");
    // Floats depending on parameters cannot become integers; to floats they keep derivatives.
    let tracked = tape.leaf(
        curvature_tensor::Tensor::from_f64s(&[1.5], [1], curvature_tensor::DType::F64, device)
            .unwrap(),
    );
    let text = error_text(cast_like(Val::Float(tracked), shape_like()), "n");
    assert!(text.contains("depend on parameters"), "{text}");
    assert_derivatives("CastLike", device, &[(&[0.3, -1.2], &[2])], |t, v| {
        let target = float(t, device, &[0.0], &[]);
        let y = run_op(
            t,
            device,
            "CastLike",
            vec![],
            vec![Some(v[0].clone()), Some(target)],
        )?;
        run_op(t, device, "Mul", vec![], vec![Some(y.clone()), Some(y)])
    });
    let text = error_text(
        run_op(
            &tape,
            device,
            "CastLike",
            vec![],
            vec![Some(int(&[1], &[1]))],
        )
        .map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("expects 2 inputs"), "{text}");
}

fn integer_abs_sign(device: Device) {
    let tape = Tape::new();
    let run = |op: &str, v: Val| run_op(&tape, device, op, vec![], vec![Some(v)]);
    let values = int(&[-3, 0, 5, i64::MAX], &[2, 2]);
    assert_eq!(
        ints(&run("Abs", values.clone()).unwrap()).data,
        vec![3, 0, 5, i64::MAX]
    );
    let sign = ints(&run("Sign", values).unwrap());
    assert_eq!((sign.data, sign.dims), (vec![-1, 0, 1, 1], vec![2, 2]));
    let text = error_text(run("Abs", int(&[i64::MIN], &[1])).map(|v| vec![v]), "n");
    assert!(text.contains("overflow"), "{text}");
    // Sign at 0 is 0 on floats as well.
    let out = run("Sign", float(&tape, device, &[-0.5, 0.0, 2.0], &[3])).unwrap();
    assert_close("Sign", &out, &[-1.0, 0.0, 1.0], &[3], 0.0);
}

fn clip(device: Device) {
    let tape = Tape::new();
    let clamp = |x: f64, lo: f64, hi: f64| x.max(lo).min(hi);
    let scalar = |v: f64| Some(float(&tape, device, &[v], &[]));
    let xs = || Some(float(&tape, device, &XS, &[2, 3]));
    let cases: [(Option<f64>, Option<f64>); 4] = [
        (Some(-0.5), Some(0.75)),
        (Some(-0.5), None),
        (None, Some(0.75)),
        (Some(1.0), Some(-1.0)),
    ];
    for (lo, hi) in cases {
        let out = run_op(
            &tape,
            device,
            "Clip",
            vec![],
            vec![xs(), lo.and_then(scalar), hi.and_then(scalar)],
        )
        .unwrap();
        let expected: Vec<f64> = XS
            .iter()
            .map(|&x| {
                clamp(
                    x,
                    lo.unwrap_or(f64::NEG_INFINITY),
                    hi.unwrap_or(f64::INFINITY),
                )
            })
            .collect();
        assert_close(
            &format!("Clip {lo:?} {hi:?}"),
            &out,
            &expected,
            &[2, 3],
            0.0,
        );
    }
    // No bounds: the identity. Before opset 11 the bounds are attributes.
    let out = run_op(&tape, device, "Clip", vec![], vec![xs()]).unwrap();
    assert_close("Clip", &out, &XS, &[2, 3], 0.0);
    let out = run_op_at(
        &tape,
        device,
        6,
        "Clip",
        vec![
            attr("min", Attribute::Float(-0.5)),
            attr("max", Attribute::Float(0.75)),
        ],
        vec![xs()],
        1,
    )
    .unwrap();
    let expected: Vec<f64> = XS.iter().map(|&x| clamp(x, -0.5, 0.75)).collect();
    assert_close("Clip-6", &out[0], &expected, &[2, 3], 0.0);
    // Integers on the host.
    let out = run_op(
        &tape,
        device,
        "Clip",
        vec![],
        vec![
            Some(int(&[-5, 2, 9], &[3])),
            Some(int(&[0], &[])),
            Some(int(&[4], &[])),
        ],
    )
    .unwrap();
    assert_eq!(ints(&out).data, vec![0, 2, 4]);
    // Derivatives in x with fixed bounds, and in x and both bounds when they are tracked
    // (away from the bounds, where the derivative jumps).
    assert_derivatives("Clip", device, &[(&[-0.7, 0.4, 1.1], &[3])], |t, v| {
        let lo = float(t, device, &[-0.5], &[]);
        let hi = float(t, device, &[0.8], &[]);
        run_op(
            t,
            device,
            "Clip",
            vec![],
            vec![Some(v[0].clone()), Some(lo), Some(hi)],
        )
    });
    assert_derivatives(
        "Clip with tracked bounds",
        device,
        &[(&[-0.7, 0.4, 1.1], &[3]), (&[-0.5], &[]), (&[0.8], &[])],
        |t, v| {
            let y = run_op(
                t,
                device,
                "Clip",
                vec![],
                vec![Some(v[0].clone()), Some(v[1].clone()), Some(v[2].clone())],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(y.clone()), Some(y)])
        },
    );
    let bad = |inputs: Vec<Option<Val>>| {
        error_text(
            run_op(&tape, device, "Clip", vec![], inputs).map(|v| vec![v]),
            "n",
        )
    };
    let text = bad(vec![xs(), Some(float(&tape, device, &[0.0, 1.0], &[2]))]);
    assert!(
        text.contains("must be a scalar") && text.contains("[2]"),
        "{text}"
    );
    let text = bad(vec![xs(), Some(int(&[0], &[]))]);
    assert!(text.contains("integer tensor"), "{text}");
    let text = bad(vec![Some(int(&[1], &[1])), scalar(0.0)]);
    assert!(text.contains("integer scalar"), "{text}");
}

fn range_and_trilu(device: Device) {
    let tape = Tape::new();
    let range = |s: Val, l: Val, d: Val| {
        run_op(
            &tape,
            device,
            "Range",
            vec![],
            vec![Some(s), Some(l), Some(d)],
        )
    };
    assert_eq!(
        ints(&range(int(&[1], &[]), int(&[10], &[]), int(&[3], &[])).unwrap()).data,
        vec![1, 4, 7]
    );
    assert_eq!(
        ints(&range(int(&[5], &[]), int(&[-2], &[]), int(&[-3], &[])).unwrap()).data,
        vec![5, 2, -1]
    );
    assert_eq!(
        ints(&range(int(&[5], &[]), int(&[1], &[]), int(&[2], &[])).unwrap()).dims,
        vec![0]
    );
    let f = |v: f64| float(&tape, device, &[v], &[]);
    assert_close(
        "float Range",
        &range(f(0.5), f(2.0), f(0.5)).unwrap(),
        &[0.5, 1.0, 1.5],
        &[3],
        1e-15,
    );
    assert!(error_text(
        range(int(&[0], &[]), int(&[3], &[]), int(&[0], &[])).map(|v| vec![v]),
        "n"
    )
    .contains("delta is 0"));
    let huge = range(int(&[0], &[]), int(&[i64::MAX], &[]), int(&[1], &[]));
    assert!(error_text(huge.map(|v| vec![v]), "n").contains("more than"));
    // Trilu on a 3×4 matrix: upper with k = 1, lower with k = −1 (loops as the reference).
    let x: Vec<f64> = (1..=12).map(f64::from).collect();
    for (upper, k) in [(1, 1), (0, -1), (1, 0)] {
        let out = run_op(
            &tape,
            device,
            "Trilu",
            vec![attr("upper", Attribute::Int(upper))],
            vec![
                Some(float(&tape, device, &x, &[3, 4])),
                Some(int(&[k], &[])),
            ],
        )
        .unwrap();
        let mut expected = x.clone();
        for i in 0..3i64 {
            for j in 0..4i64 {
                let keep = if upper == 1 { j - i >= k } else { j - i <= k };
                if !keep {
                    expected[(i * 4 + j) as usize] = 0.0;
                }
            }
        }
        assert_close("Trilu", &out, &expected, &[3, 4], 0.0);
        let xi: Vec<i64> = (1..=12).collect();
        let host = run_op(
            &tape,
            device,
            "Trilu",
            vec![attr("upper", Attribute::Int(upper))],
            vec![Some(int(&xi, &[3, 4])), Some(int(&[k], &[]))],
        )
        .unwrap();
        let host_expected: Vec<i64> = expected.iter().map(|&v| v as i64).collect();
        assert_eq!(ints(&host).data, host_expected);
    }
    assert_derivatives(
        "Trilu",
        device,
        &[(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[1, 2, 3])],
        |t, v| {
            let y = run_op(t, device, "Trilu", vec![], vec![Some(v[0].clone())])?;
            run_op(t, device, "Mul", vec![], vec![Some(y.clone()), Some(y)])
        },
    );
}

fn bad_nodes(device: Device) {
    let tape = Tape::new();
    let x = || Some(float(&tape, device, &[1.0, 2.0], &[2]));
    let text = error_text(
        run_op(&tape, device, "Add", vec![], vec![x()]).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("expects 2 inputs"), "{text}");
    let text = error_text(
        run_op(&tape, device, "Add", vec![], vec![None, x()]).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("input 0 is required"), "{text}");
    let mismatched = run_op(
        &tape,
        device,
        "Mul",
        vec![],
        vec![x(), Some(float(&tape, device, &[1.0; 3], &[3]))],
    );
    let text = error_text(mismatched.map(|v| vec![v]), "n");
    assert!(text.contains("[2]") && text.contains("[3]"), "{text}");
    let text = error_text(
        run_op(&tape, device, "Exp", vec![], vec![Some(int(&[1], &[1]))]).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("integer"), "{text}");
    let bad_gelu = run_op(
        &tape,
        device,
        "Gelu",
        vec![attr("approximate", Attribute::String("fast".into()))],
        vec![x()],
    );
    assert!(error_text(bad_gelu.map(|v| vec![v]), "n").contains("'fast'"));
    let wrong_type = run_op(
        &tape,
        device,
        "LeakyRelu",
        vec![attr("alpha", Attribute::Int(1))],
        vec![x()],
    );
    assert!(error_text(wrong_type.map(|v| vec![v]), "n").contains("must be a float"));
    let text = error_text(
        run_op(&tape, device, "Frobnicate", vec![], vec![x()]).map(|v| vec![v]),
        "n",
    );
    assert!(text.contains("Frobnicate"), "{text}");
}

device_tests!(
    unary_values,
    unary_derivatives,
    arithmetic_broadcasts,
    integer_arithmetic,
    pow_lowering,
    where_and_comparisons,
    max_min_size,
    cast_dropout_identity,
    range_and_trilu,
    cast_like,
    integer_abs_sign,
    clip,
    bad_nodes,
);
