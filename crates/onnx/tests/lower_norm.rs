//! `Softmax`, `LogSoftmax`, `LayerNormalization` and `BatchNormalization` lowered onto the
//! tape, on every device: values against loops written here (softmax over one axis from opset
//! 13 and over the coerced matrix before it; layer normalisation over the trailing axes with
//! broadcast scale and bias and its Mean / InvStdDev outputs; batch normalisation per
//! channel), first and second derivatives against f64 finite differences, including with
//! respect to the running mean and variance, and every unsupported or malformed node refused
//! with an error naming it.

mod common;

use common::{
    assert_close, assert_derivatives, assert_node_error, assert_unsupported, evaluate, float, int,
    one_node, run_error, seeded,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::IntTensor;
use curvature_tensor::Device;

/// Softmax (or log-softmax) of `x` viewed as `[outer, len, inner]` over the middle axis.
fn softmax_reference(x: &[f64], outer: usize, len: usize, inner: usize, log: bool) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let max = (0..len).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = (0..len).map(|k| (x[at(k)] - max).exp()).sum();
            for k in 0..len {
                let shifted = x[at(k)] - max;
                y[at(k)] = if log {
                    shifted - total.ln()
                } else {
                    shifted.exp() / total
                };
            }
        }
    }
    y
}

fn softmax_values(device: Device) {
    let dims = [2, 3, 4];
    let x = seeded(&dims, 1, -3.0, 3.0, device);
    let values = x.to_f64s().unwrap();
    for (op, log) in [("Softmax", false), ("LogSoftmax", true)] {
        // Opset 13: one axis.
        let graph = one_node(op, &["X"], &["Y"], vec![("axis", int(1))], 13);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_eq!(out[0].0, dims);
        assert_close(
            &format!("{op} axis 1"),
            &out[0].1,
            &softmax_reference(&values, 2, 3, 4, log),
            1e-12,
        );
        // Opset 13 default: the last axis.
        let graph = one_node(op, &["X"], &["Y"], vec![], 13);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_close(
            &format!("{op} default"),
            &out[0].1,
            &softmax_reference(&values, 6, 4, 1, log),
            1e-12,
        );
        // Before opset 13: the input as a matrix [2, 12] (default axis 1).
        let graph = one_node(op, &["X"], &["Y"], vec![], 11);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_eq!(out[0].0, dims);
        assert_close(
            &format!("{op} opset 11"),
            &out[0].1,
            &softmax_reference(&values, 2, 12, 1, log),
            1e-12,
        );
        // Before opset 13 at axis −1: [6, 4].
        let graph = one_node(op, &["X"], &["Y"], vec![("axis", int(-1))], 11);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_close(
            &format!("{op} opset 11 axis -1"),
            &out[0].1,
            &softmax_reference(&values, 6, 4, 1, log),
            1e-12,
        );
    }
}

/// Layer normalisation of `x` as `[outer, len]` rows: y, the means and `(var + eps)^(−½)`.
fn layer_norm_reference(
    x: &[f64],
    len: usize,
    scale: &[f64],
    bias: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut means, mut inv) = (Vec::new(), Vec::new(), Vec::new());
    for row in x.chunks(len) {
        let mean = row.iter().sum::<f64>() / len as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / len as f64;
        let r = 1.0 / (var + eps).sqrt();
        for (k, v) in row.iter().enumerate() {
            y.push((v - mean) * r * scale[k] + bias[k]);
        }
        means.push(mean);
        inv.push(r);
    }
    (y, means, inv)
}

fn layer_norm_values(device: Device) {
    let x = seeded(&[2, 3, 4], 2, -2.0, 2.0, device);
    let scale = seeded(&[3, 4], 3, 0.5, 1.5, device);
    // B of shape [4] broadcasts over the normalised [3, 4].
    let bias = seeded(&[4], 4, -1.0, 1.0, device);
    let graph = one_node(
        "LayerNormalization",
        &["X", "Scale", "B"],
        &["Y", "Mean", "InvStdDev"],
        vec![("axis", int(1)), ("epsilon", float(0.25))],
        17,
    );
    let out = evaluate(&graph, &[x.clone(), scale.clone(), bias.clone()]);
    let bias_full: Vec<f64> = bias.to_f64s().unwrap().repeat(3);
    let (y, means, inv) = layer_norm_reference(
        &x.to_f64s().unwrap(),
        12,
        &scale.to_f64s().unwrap(),
        &bias_full,
        0.25,
    );
    assert_eq!(out[0].0, [2, 3, 4]);
    assert_close("LayerNormalization Y", &out[0].1, &y, 1e-12);
    assert_eq!(out[1].0, [2, 1, 1]);
    assert_close("LayerNormalization Mean", &out[1].1, &means, 1e-12);
    assert_eq!(out[2].0, [2, 1, 1]);
    assert_close("LayerNormalization InvStdDev", &out[2].1, &inv, 1e-12);
    // Default axis −1 and epsilon 1e-5, no bias.
    let scale = seeded(&[4], 5, 0.5, 1.5, device);
    let graph = one_node("LayerNormalization", &["X", "Scale"], &["Y"], vec![], 18);
    let out = evaluate(&graph, &[x.clone(), scale.clone()]);
    let (y, _, _) = layer_norm_reference(
        &x.to_f64s().unwrap(),
        4,
        &scale.to_f64s().unwrap(),
        &[0.0; 4],
        1e-5,
    );
    assert_close("LayerNormalization default", &out[0].1, &y, 1e-12);
}

fn batch_norm_values(device: Device) {
    let dims = [2, 3, 2, 2];
    let x = seeded(&dims, 6, -2.0, 2.0, device);
    let stats: Vec<_> = [
        (7, -1.0, 1.0),
        (8, -1.0, 1.0),
        (9, -0.5, 0.5),
        (10, 0.5, 2.0),
    ]
    .into_iter()
    .map(|(seed, lo, hi)| seeded(&[3], seed, lo, hi, device))
    .collect();
    let graph = one_node(
        "BatchNormalization",
        &["X", "scale", "B", "mean", "var"],
        &["Y"],
        vec![("epsilon", float(0.125)), ("momentum", float(0.9))],
        15,
    );
    let mut inputs = vec![x.clone()];
    inputs.extend(stats.iter().cloned());
    let out = evaluate(&graph, &inputs);
    let [scale, bias, mean, var] = [0, 1, 2, 3].map(|i| stats[i].to_f64s().unwrap());
    let reference: Vec<f64> = x
        .to_f64s()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(e, v)| {
            let c = (e / 4) % 3;
            (v - mean[c]) / (var[c] + 0.125).sqrt() * scale[c] + bias[c]
        })
        .collect();
    assert_eq!(out[0].0, dims);
    assert_close("BatchNormalization", &out[0].1, &reference, 1e-12);
    // [N, C] input (after a Linear layer).
    let x2 = seeded(&[4, 3], 11, -2.0, 2.0, device);
    let mut inputs = vec![x2.clone()];
    inputs.extend(stats.iter().cloned());
    let out = evaluate(&graph, &inputs);
    let reference: Vec<f64> = x2
        .to_f64s()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(e, v)| {
            let c = e % 3;
            (v - mean[c]) / (var[c] + 0.125).sqrt() * scale[c] + bias[c]
        })
        .collect();
    assert_close("BatchNormalization [N, C]", &out[0].1, &reference, 1e-12);
}

fn norm_derivatives(device: Device) {
    let x = seeded(&[2, 3], 1, -2.0, 2.0, device);
    for op in ["Softmax", "LogSoftmax"] {
        let graph = one_node(op, &["X"], &["Y"], vec![("axis", int(0))], 13);
        assert_derivatives(op, &graph, std::slice::from_ref(&x));
    }
    let graph = one_node(
        "LayerNormalization",
        &["X", "Scale", "B"],
        &["Y"],
        vec![("axis", int(-1))],
        17,
    );
    let inputs = [
        x.clone(),
        seeded(&[3], 2, 0.5, 1.5, device),
        seeded(&[3], 3, -1.0, 1.0, device),
    ];
    assert_derivatives("LayerNormalization", &graph, &inputs);
    // Differentiable in every operand, the running statistics included.
    let graph = one_node(
        "BatchNormalization",
        &["X", "scale", "B", "mean", "var"],
        &["Y"],
        vec![("epsilon", float(0.01))],
        15,
    );
    let inputs = [
        seeded(&[2, 2, 2], 4, -2.0, 2.0, device),
        seeded(&[2], 5, 0.5, 1.5, device),
        seeded(&[2], 6, -1.0, 1.0, device),
        seeded(&[2], 7, -0.5, 0.5, device),
        seeded(&[2], 8, 0.5, 1.5, device),
    ];
    assert_derivatives("BatchNormalization", &graph, &inputs);
}

device_tests!(
    softmax_values,
    layer_norm_values,
    batch_norm_values,
    norm_derivatives
);

#[test]
fn softmax_errors() {
    let x = || seeded(&[2, 3], 1, -1.0, 1.0, Device::Cpu);
    for op in ["Softmax", "LogSoftmax"] {
        let e = run_error(
            &one_node(op, &["X"], &["Y"], vec![("axis", int(2))], 13),
            &[x()],
            &[],
        );
        assert_node_error(&e, "'axis' = 2 is out of range for an input of rank 2");
        let e = run_error(
            &one_node(op, &["X"], &["Y"], vec![("axis", int(-3))], 11),
            &[x()],
            &[],
        );
        assert_node_error(&e, "out of range");
        let e = run_error(
            &one_node(op, &["X"], &["Y"], vec![("axes", int(0))], 13),
            &[x()],
            &[],
        );
        assert_unsupported(&e, "attribute", "'axes'");
        let ints = IntTensor {
            dims: vec![2],
            data: vec![1, 2],
        };
        let e = run_error(&one_node(op, &["X"], &["Y"], vec![], 13), &[], &[ints]);
        assert_unsupported(&e, "dtype", "input 0");
    }
}

#[test]
fn layer_norm_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, 0.5, 1.5, Device::Cpu);
    let ln = |attributes: Vec<(&str, Attribute)>, opset: i64| {
        one_node(
            "LayerNormalization",
            &["X", "Scale", "B"],
            &["Y"],
            attributes,
            opset,
        )
    };
    let e = run_error(&ln(vec![], 16), &[t(&[2, 3]), t(&[3]), t(&[3])], &[]);
    assert_unsupported(&e, "op", "opset 17");
    let e = run_error(&ln(vec![], 17), &[t(&[2, 3]), t(&[2]), t(&[3])], &[]);
    assert_node_error(&e, "Scale of shape [2] does not broadcast");
    let e = run_error(
        &ln(vec![("axis", int(-1))], 17),
        &[t(&[2, 3]), t(&[2, 3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "Scale of shape [2, 3] does not broadcast");
    let e = run_error(&ln(vec![], 17), &[t(&[2, 3]), t(&[3]), t(&[4])], &[]);
    assert_node_error(&e, "B of shape [4]");
    let e = run_error(
        &ln(vec![("epsilon", float(-1.0))], 17),
        &[t(&[2, 3]), t(&[3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "'epsilon' must be finite and non-negative");
    let e = run_error(
        &ln(vec![("stash_type", int(7))], 17),
        &[t(&[2, 3]), t(&[3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "'stash_type' = 7");
    let e = run_error(
        &ln(vec![("axis", int(2))], 17),
        &[t(&[2, 3]), t(&[3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "out of range");
    let missing = one_node("LayerNormalization", &["X", ""], &["Y"], vec![], 17);
    let e = run_error(&missing, &[t(&[2, 3])], &[]);
    assert_node_error(&e, "input 1 (Scale) is missing");
    let extra = one_node(
        "LayerNormalization",
        &["X", "Scale"],
        &["Y", "M", "S", "T"],
        vec![],
        17,
    );
    let e = run_error(&extra, &[t(&[2, 3]), t(&[3])], &[]);
    assert_unsupported(&e, "output", "output 3");
}

#[test]
fn batch_norm_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, 0.5, 1.5, Device::Cpu);
    let names = ["X", "scale", "B", "mean", "var"];
    let bn = |attributes: Vec<(&str, Attribute)>, opset: i64| {
        one_node("BatchNormalization", &names, &["Y"], attributes, opset)
    };
    let good = || vec![t(&[2, 3, 2]), t(&[3]), t(&[3]), t(&[3]), t(&[3])];
    let e = run_error(&bn(vec![("training_mode", int(1))], 15), &good(), &[]);
    assert_unsupported(&e, "attribute", "training_mode = 1");
    let e = run_error(&bn(vec![("spatial", int(0))], 7), &good(), &[]);
    assert_unsupported(&e, "attribute", "spatial = 0");
    let e = run_error(&bn(vec![("is_test", int(0))], 6), &good(), &[]);
    assert_unsupported(&e, "attribute", "is_test = 0");
    // Attributes of other opsets are refused, not ignored.
    let e = run_error(&bn(vec![("spatial", int(1))], 15), &good(), &[]);
    assert_unsupported(&e, "attribute", "'spatial'");
    let e = run_error(&bn(vec![("training_mode", int(0))], 9), &good(), &[]);
    assert_unsupported(&e, "attribute", "'training_mode'");
    let training_outputs = one_node(
        "BatchNormalization",
        &names,
        &["Y", "running_mean"],
        vec![],
        15,
    );
    let e = run_error(&training_outputs, &good(), &[]);
    assert_unsupported(&e, "output", "output 1");
    let mut wrong = good();
    wrong[4] = t(&[2]);
    let e = run_error(&bn(vec![], 15), &wrong, &[]);
    assert_node_error(&e, "input_var must be [C] = [3]");
    let mut scalar_input = good();
    scalar_input[0] = t(&[3]);
    let e = run_error(&bn(vec![], 15), &scalar_input, &[]);
    assert_node_error(&e, "rank at least 2");
    let e = run_error(&bn(vec![("epsilon", float(f32::NAN))], 15), &good(), &[]);
    assert_node_error(&e, "'epsilon' must be finite");
    let four = one_node("BatchNormalization", &names[..4], &["Y"], vec![], 15);
    let e = run_error(&four, &good()[..4], &[]);
    assert_node_error(&e, "takes 5 inputs, got 4");
}
