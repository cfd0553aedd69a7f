//! `PRelu`, `Selu`, `HardSigmoid`, `HardSwish`, `Mish`, `Softsign`, `ThresholdedRelu`, `Celu`,
//! `Sum` and `Mean` lowered onto the tape, on every device: values against closed forms
//! written here and against ONNX Runtime, first and second derivatives against f64 finite
//! differences away from the kinks, PyTorch's derivatives at the kinks, and the errors of bad
//! nodes.

mod common;

use common::{
    assert_close, assert_derivatives, assert_matches_onnxruntime, assert_node_error,
    assert_unsupported, evaluate, float, one_node, run_error, run_vars, tensor,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::IntTensor;
use curvature_tape::Tape;
use curvature_tensor::Device;

/// Inputs on both sides of every kink (0, ±3, the thresholds), none on one.
const XS: [f64; 10] = [-4.2, -3.3, -2.1, -0.8, -0.15, 0.2, 0.55, 1.3, 2.6, 3.7];

/// An attribute value as the lowering reads it: a float32 widened to f64.
fn f(v: f32) -> f64 {
    f64::from(v)
}

fn elu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        alpha * (x.exp() - 1.0)
    }
}

/// An activation's name, attributes and scalar reference.
type Case = (
    &'static str,
    Vec<(&'static str, Attribute)>,
    Box<dyn Fn(f64) -> f64>,
);

fn cases() -> Vec<Case> {
    // PyTorch's SELU constants (ONNX's defaults are their float32 roundings).
    let selu_alpha = 1.673_263_242_354_377_3;
    let selu_gamma = 1.050_700_987_355_480_5;
    vec![
        (
            "Selu",
            vec![],
            Box::new(move |x| selu_gamma * elu(x, selu_alpha)),
        ),
        (
            "Selu",
            vec![("alpha", float(1.5)), ("gamma", float(0.75))],
            Box::new(|x| f(0.75) * elu(x, 1.5)),
        ),
        (
            "HardSigmoid",
            vec![],
            Box::new(|x| (0.2 * x + 0.5).clamp(0.0, 1.0)),
        ),
        (
            "HardSigmoid",
            vec![("alpha", float(0.4)), ("beta", float(0.6))],
            Box::new(|x| (f(0.4) * x + f(0.6)).clamp(0.0, 1.0)),
        ),
        (
            "HardSwish",
            vec![],
            Box::new(|x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
        ),
        (
            "Mish",
            vec![],
            Box::new(|x| x * (1.0 + x.exp()).ln().tanh()),
        ),
        ("Softsign", vec![], Box::new(|x| x / (1.0 + x.abs()))),
        (
            "ThresholdedRelu",
            vec![],
            Box::new(|x| if x > 1.0 { x } else { 0.0 }),
        ),
        (
            "ThresholdedRelu",
            vec![("alpha", float(-0.5))],
            Box::new(|x| if x > -0.5 { x } else { 0.0 }),
        ),
        (
            "Celu",
            vec![],
            Box::new(|x| x.max(0.0) + (x.exp() - 1.0).min(0.0)),
        ),
        (
            "Celu",
            vec![("alpha", float(0.5))],
            Box::new(|x| x.max(0.0) + (0.5 * ((x / 0.5).exp() - 1.0)).min(0.0)),
        ),
    ]
}

fn activation_values(device: Device) {
    let x = tensor(&XS, &[2, 5], device);
    for (op, attributes, reference) in cases() {
        let graph = one_node(op, &["X"], &["Y"], attributes, 18);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_eq!(out[0].0, [2, 5], "{op}");
        let expected: Vec<f64> = XS.iter().map(|&v| reference(v)).collect();
        assert_close(op, &out[0].1, &expected, 1e-12);
    }
}

fn prelu_values(device: Device) {
    // A slope per channel [C, 1] broadcast over [N, C, L], and one shared slope [1].
    let x: Vec<f64> = XS.iter().chain(&XS[..2]).copied().collect();
    let slope = [0.25, -0.5, 2.0];
    let graph = one_node("PRelu", &["X", "slope"], &["Y"], vec![], 16);
    let out = evaluate(
        &graph,
        &[
            tensor(&x, &[2, 3, 2], device),
            tensor(&slope, &[3, 1], device),
        ],
    );
    let expected: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(e, &v)| if v > 0.0 { v } else { slope[(e / 2) % 3] * v })
        .collect();
    assert_eq!(out[0].0, [2, 3, 2]);
    assert_close("PRelu per channel", &out[0].1, &expected, 1e-12);
    let out = evaluate(
        &graph,
        &[tensor(&XS, &[10], device), tensor(&[0.1], &[1], device)],
    );
    let expected: Vec<f64> = XS
        .iter()
        .map(|&v| if v > 0.0 { v } else { 0.1 * v })
        .collect();
    assert_close("PRelu shared", &out[0].1, &expected, 1e-12);
}

fn sum_mean_values(device: Device) {
    let a = [1.0, -2.0, 3.5, 0.25, 4.0, -1.5];
    let b = [10.0, 20.0, 30.0];
    let c = [0.5];
    let inputs = [
        tensor(&a, &[2, 3], device),
        tensor(&b, &[3], device),
        tensor(&c, &[1, 1], device),
    ];
    let total: Vec<f64> = (0..6).map(|e| a[e] + b[e % 3] + c[0]).collect();
    for (op, divisor) in [("Sum", 1.0), ("Mean", 3.0)] {
        let graph = one_node(op, &["A", "B", "C"], &["Y"], vec![], 13);
        let out = evaluate(&graph, &inputs);
        assert_eq!(out[0].0, [2, 3], "{op}");
        let expected: Vec<f64> = total.iter().map(|v| v / divisor).collect();
        assert_close(op, &out[0].1, &expected, 1e-12);
        // One input: itself.
        let graph = one_node(op, &["A"], &["Y"], vec![], 13);
        let out = evaluate(&graph, &inputs[..1]);
        assert_close(&format!("{op} of one"), &out[0].1, &a, 0.0);
    }
}

fn activation_derivatives(device: Device) {
    // Away from every kink by more than the finite-difference step.
    let x = tensor(&XS, &[10], device);
    for (op, attributes, _) in cases() {
        let graph = one_node(op, &["X"], &["Y"], attributes, 18);
        assert_derivatives(op, &graph, std::slice::from_ref(&x));
    }
    let graph = one_node("PRelu", &["X", "slope"], &["Y"], vec![], 16);
    assert_derivatives(
        "PRelu",
        &graph,
        &[
            tensor(&XS, &[2, 5], device),
            tensor(&[0.3, -0.7, 1.2, 0.05, 2.0], &[5], device),
        ],
    );
    for op in ["Sum", "Mean"] {
        let graph = one_node(op, &["A", "B"], &["Y"], vec![], 13);
        assert_derivatives(
            op,
            &graph,
            &[
                tensor(&XS[..6], &[2, 3], device),
                tensor(&XS[6..9], &[3], device),
            ],
        );
    }
}

/// The derivative of the one-node graph `op` at `xs`, by backpropagation.
fn derivative_at(
    op: &str,
    attributes: Vec<(&str, Attribute)>,
    xs: &[f64],
    device: Device,
) -> Vec<f64> {
    let tape = Tape::new();
    let x = tape.leaf(tensor(xs, &[xs.len()], device));
    let graph = one_node(op, &["X"], &["Y"], attributes, 18);
    let y = run_vars(&graph, std::slice::from_ref(&x)).expect("runs");
    y[0].sum_all().unwrap().backward().unwrap();
    x.grad().expect("a gradient").to_f64s().unwrap()
}

/// At the kinks the derivatives are PyTorch's (`hardswish_backward`, `hardsigmoid_backward`,
/// `prelu`'s `x > 0`, `threshold`'s `x > α`).
fn kink_derivatives(device: Device) {
    let d = derivative_at("HardSwish", vec![], &[-3.0, 3.0, -5.0, 5.0], device);
    assert_close("HardSwish at the kinks", &d, &[-0.5, 1.5, 0.0, 1.0], 1e-15);
    let d = derivative_at(
        "HardSigmoid",
        vec![("alpha", float(0.5)), ("beta", float(0.5))],
        &[-1.0, 1.0, 0.0],
        device,
    );
    assert_close("HardSigmoid at the kinks", &d, &[0.0, 0.0, 0.5], 1e-15);
    let d = derivative_at(
        "ThresholdedRelu",
        vec![("alpha", float(0.5))],
        &[0.5, 0.75],
        device,
    );
    assert_close("ThresholdedRelu at α", &d, &[0.0, 1.0], 1e-15);
    let d = derivative_at("Celu", vec![], &[0.0], device);
    assert_close("Celu at 0", &d, &[1.0], 1e-15);
    let tape = Tape::new();
    let x = tape.leaf(tensor(&[0.0, -1.0], &[2], device));
    let slope = tape.leaf(tensor(&[0.25], &[1], device));
    let graph = one_node("PRelu", &["X", "slope"], &["Y"], vec![], 16);
    let y = run_vars(&graph, &[x.clone(), slope.clone()]).expect("runs");
    y[0].sum_all().unwrap().backward().unwrap();
    let dx = x.grad().unwrap().to_f64s().unwrap();
    assert_close("PRelu at 0", &dx, &[0.25, 0.25], 1e-15);
    let ds = slope.grad().unwrap().to_f64s().unwrap();
    assert_close("PRelu slope", &ds, &[-1.0], 1e-15);
}

/// The same nodes run by ONNX Runtime (`scripts/make_onnx_op_fixtures.py`).
fn activation_match_onnxruntime(device: Device) {
    let check = |case: &str, op: &str, opset: i64, attributes: Vec<(&str, Attribute)>| {
        assert_matches_onnxruntime(case, op, opset, attributes, device)
    };
    check("prelu_channel", "PRelu", 16, vec![]);
    check("selu_default", "Selu", 13, vec![]);
    check(
        "selu_attributes",
        "Selu",
        13,
        vec![("alpha", float(1.5)), ("gamma", float(0.75))],
    );
    check(
        "hard_sigmoid",
        "HardSigmoid",
        13,
        vec![("alpha", float(0.4)), ("beta", float(0.6))],
    );
    check("hard_swish", "HardSwish", 14, vec![]);
    check("mish", "Mish", 18, vec![]);
    check("softsign", "Softsign", 13, vec![]);
    check(
        "thresholded_relu",
        "ThresholdedRelu",
        13,
        vec![("alpha", float(0.5))],
    );
    check("celu", "Celu", 13, vec![("alpha", float(0.7))]);
    check("sum_broadcast", "Sum", 13, vec![]);
    check("mean_broadcast", "Mean", 13, vec![]);
}

device_tests!(
    activation_values,
    prelu_values,
    sum_mean_values,
    activation_derivatives,
    kink_derivatives,
    activation_match_onnxruntime
);

#[test]
fn activation_errors() {
    let t = |dims: &[usize]| common::seeded(dims, 1, -1.0, 1.0, Device::Cpu);
    let prelu = one_node("PRelu", &["X", "slope"], &["Y"], vec![], 16);
    let e = run_error(&prelu, &[t(&[3]), t(&[2, 3])], &[]);
    assert_node_error(&e, "slope of shape [2, 3] does not broadcast to X [3]");
    let e = run_error(&prelu, &[t(&[2, 3]), t(&[2])], &[]);
    assert_node_error(&e, "do not broadcast");
    let e = run_error(
        &one_node("PRelu", &["X"], &["Y"], vec![], 16),
        &[t(&[3])],
        &[],
    );
    assert_node_error(&e, "expects 2 inputs, got 1");
    let e = run_error(
        &one_node("Celu", &["X"], &["Y"], vec![("alpha", float(0.0))], 13),
        &[t(&[3])],
        &[],
    );
    assert_node_error(&e, "'alpha' must be finite and nonzero");
    let e = run_error(
        &one_node("Mish", &["X"], &["Y"], vec![("alpha", float(1.0))], 18),
        &[t(&[3])],
        &[],
    );
    assert_unsupported(&e, "attribute", "'alpha'");
    let e = run_error(
        &one_node("Softsign", &["X", "Z"], &["Y"], vec![], 13),
        &[t(&[3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "expects 1 input, got 2");
    let ints = IntTensor {
        dims: vec![2],
        data: vec![1, -2],
    };
    let e = run_error(
        &one_node("Selu", &["X"], &["Y"], vec![], 13),
        &[],
        std::slice::from_ref(&ints),
    );
    assert_unsupported(&e, "dtype", "input 0");
    let e = run_error(
        &one_node("HardSwish", &["X"], &["Y", "Z"], vec![], 14),
        &[t(&[3])],
        &[],
    );
    assert_unsupported(&e, "output", "output 1");
    let sum = one_node("Sum", &["A", "B"], &["Y"], vec![], 13);
    let e = run_error(&sum, &[t(&[2, 3]), t(&[2])], &[]);
    assert_node_error(&e, "do not broadcast");
    let e = run_error(&sum, &[t(&[2])], &[ints]);
    assert_unsupported(&e, "dtype", "input 1");
    let e = run_error(&one_node("Mean", &[], &["Y"], vec![], 13), &[], &[]);
    assert_node_error(&e, "at least one input");
}
