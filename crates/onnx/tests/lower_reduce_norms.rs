//! `ReduceSumSquare`, `ReduceL1`, `ReduceL2`, `ReduceLogSumExp`, `InstanceNormalization` and
//! `GroupNormalization` (per-group scale in opset 18, per-channel from 21) lowered onto the
//! tape, on every device: values against loops written here and against ONNX Runtime, first
//! and second derivatives against f64 finite differences, and the errors of bad nodes.

mod common;

use common::{
    assert_close, assert_derivatives, assert_matches_onnxruntime, assert_node_error,
    assert_unsupported, evaluate, float, int, ints, one_node, run_error, run_vals, seeded, tensor,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::{IntTensor, Val};
use curvature_tape::Tape;
use curvature_tensor::Device;

/// `f` folded over the axes `reduced` of `x` (shape `dims`), then `finish` applied: the
/// reduction with the reduced axes kept as length 1, row-major.
fn reduce_reference(
    x: &[f64],
    dims: &[usize],
    reduced: &[usize],
    f: impl Fn(f64, f64) -> f64,
    finish: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let kept: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(a, &d)| if reduced.contains(&a) { 1 } else { d })
        .collect();
    let count: usize = kept.iter().product();
    let mut acc = vec![None; count];
    for (e, &v) in x.iter().enumerate() {
        // The output offset of element e.
        let (mut rest, mut o, mut stride) = (e, 0, 1);
        for a in (0..dims.len()).rev() {
            let i = rest % dims[a];
            rest /= dims[a];
            if !reduced.contains(&a) {
                o += i * stride;
                stride *= kept[a];
            }
        }
        acc[o] = Some(match acc[o] {
            None => f(0.0, v),
            Some(s) => f(s, v),
        });
    }
    acc.into_iter().map(|s| finish(s.unwrap_or(0.0))).collect()
}

fn reduction_values(device: Device) {
    let dims = [2, 3, 4];
    let x = seeded(&dims, 3, -2.0, 2.0, device);
    let xs = x.to_f64s().unwrap();
    type Fold = fn(f64, f64) -> f64;
    type Case = (&'static str, Fold, fn(f64) -> f64);
    let square: Fold = |s, v| s + v * v;
    let abs: Fold = |s, v| s + v.abs();
    let exp: Fold = |s, v| s + v.exp();
    let cases: [Case; 4] = [
        ("ReduceSumSquare", square, |s| s),
        ("ReduceL1", abs, |s| s),
        ("ReduceL2", square, f64::sqrt),
        ("ReduceLogSumExp", exp, f64::ln),
    ];
    for (op, fold, finish) in cases {
        // Attribute axes (opset 13), kept.
        let graph = one_node(op, &["X"], &["Y"], vec![("axes", ints(&[0, -1]))], 13);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_eq!(out[0].0, [1, 3, 1], "{op}");
        let expected = reduce_reference(&xs, &dims, &[0, 2], fold, finish);
        assert_close(&format!("{op} axes 0, 2"), &out[0].1, &expected, 1e-12);
        // Axes input (opset 18), dropped.
        let graph = one_node(op, &["X", "axes"], &["Y"], vec![("keepdims", int(0))], 18);
        let tape = Tape::new();
        let axes = IntTensor {
            dims: vec![1],
            data: vec![1],
        };
        let out = run_vals(
            &graph,
            vec![Val::Float(tape.leaf(x.clone())), Val::Int(axes)],
            &tape,
            device,
        )
        .unwrap();
        let Val::Float(y) = &out[0] else {
            panic!("{op}: a float output")
        };
        assert_eq!(y.dims(), [2, 4], "{op}");
        let expected = reduce_reference(&xs, &dims, &[1], fold, finish);
        assert_close(
            &format!("{op} axis 1"),
            &y.value().to_f64s().unwrap(),
            &expected,
            1e-12,
        );
        // No axes: everything.
        let graph = one_node(op, &["X"], &["Y"], vec![("keepdims", int(0))], 18);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        assert_eq!(out[0].0, Vec::<usize>::new(), "{op}");
        let expected = reduce_reference(&xs, &dims, &[0, 1, 2], fold, finish);
        assert_close(&format!("{op} all"), &out[0].1, &expected, 1e-12);
    }
    // Log-sum-exp stays finite where exp overflows: log(e^1000 + e^999) = 1000 + log(1 + 1/e).
    let big = tensor(&[1000.0, 999.0, -1000.0, -1001.0], &[2, 2], device);
    let graph = one_node(
        "ReduceLogSumExp",
        &["X"],
        &["Y"],
        vec![("axes", ints(&[1]))],
        13,
    );
    let out = evaluate(&graph, &[big]);
    let tail = (1.0 + (-1.0f64).exp()).ln();
    assert_close("stable", &out[0].1, &[1000.0 + tail, -1000.0 + tail], 1e-14);
}

fn reduction_derivatives(device: Device) {
    // Away from 0, ReduceL1's kink.
    let x = tensor(&[0.7, -1.2, 0.4, -0.3, 1.6, -0.9], &[2, 3], device);
    for op in ["ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp"] {
        let graph = one_node(op, &["X"], &["Y"], vec![("axes", ints(&[1]))], 13);
        assert_derivatives(op, &graph, std::slice::from_ref(&x));
        let graph = one_node(op, &["X"], &["Y"], vec![("keepdims", int(0))], 13);
        assert_derivatives(op, &graph, std::slice::from_ref(&x));
    }
}

/// Group normalisation of `x` ([N, C, L]) with `groups` groups; `scale` and `bias` per
/// channel.
fn group_norm_reference(
    x: &[f64],
    (n, c, l): (usize, usize, usize),
    groups: usize,
    scale: &[f64],
    bias: &[f64],
    eps: f64,
) -> Vec<f64> {
    let per = c / groups * l;
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for g in 0..groups {
            let start = (b * c * l) + g * per;
            let part = &x[start..start + per];
            let mean = part.iter().sum::<f64>() / per as f64;
            let var = part.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per as f64;
            for (k, v) in part.iter().enumerate() {
                let channel = g * (c / groups) + k / l;
                y[start + k] = (v - mean) / (var + eps).sqrt() * scale[channel] + bias[channel];
            }
        }
    }
    y
}

fn norm_values(device: Device) {
    let (n, c, l) = (2, 4, 3);
    let x = seeded(&[n, c, l], 5, -2.0, 2.0, device);
    let xs = x.to_f64s().unwrap();
    let scale = [0.5, 1.5, -1.0, 2.0];
    let bias = [0.1, -0.2, 0.3, 0.0];
    let eps = f64::from(0.125f32);
    let graph = one_node(
        "InstanceNormalization",
        &["X", "scale", "B"],
        &["Y"],
        vec![("epsilon", float(0.125))],
        13,
    );
    let out = evaluate(
        &graph,
        &[
            x.clone(),
            tensor(&scale, &[4], device),
            tensor(&bias, &[4], device),
        ],
    );
    assert_eq!(out[0].0, [n, c, l]);
    let expected = group_norm_reference(&xs, (n, c, l), c, &scale, &bias, eps);
    assert_close("InstanceNormalization", &out[0].1, &expected, 1e-12);
    // Opset 21: scale and bias per channel.
    let graph = one_node(
        "GroupNormalization",
        &["X", "scale", "B"],
        &["Y"],
        vec![("num_groups", int(2)), ("epsilon", float(0.125))],
        21,
    );
    let out = evaluate(
        &graph,
        &[
            x.clone(),
            tensor(&scale, &[4], device),
            tensor(&bias, &[4], device),
        ],
    );
    let expected = group_norm_reference(&xs, (n, c, l), 2, &scale, &bias, eps);
    assert_close("GroupNormalization 21", &out[0].1, &expected, 1e-12);
    // Opset 18: scale and bias per group, shared by the group's channels.
    let graph = one_node(
        "GroupNormalization",
        &["X", "scale", "B"],
        &["Y"],
        vec![("num_groups", int(2)), ("epsilon", float(0.125))],
        18,
    );
    let out = evaluate(
        &graph,
        &[
            x.clone(),
            tensor(&[0.5, -1.0], &[2], device),
            tensor(&[0.1, 0.3], &[2], device),
        ],
    );
    let expected = group_norm_reference(
        &xs,
        (n, c, l),
        2,
        &[0.5, 0.5, -1.0, -1.0],
        &[0.1, 0.1, 0.3, 0.3],
        eps,
    );
    assert_close("GroupNormalization 18", &out[0].1, &expected, 1e-12);
    // One group over [N, C, H, W]: every channel and pixel of a sample together.
    let x4 = seeded(&[1, 2, 2, 2], 6, -1.0, 1.0, device);
    let graph = one_node(
        "GroupNormalization",
        &["X", "scale", "B"],
        &["Y"],
        vec![("num_groups", int(1))],
        21,
    );
    let out = evaluate(
        &graph,
        &[
            x4.clone(),
            tensor(&[1.0, 2.0], &[2], device),
            tensor(&[0.0, 1.0], &[2], device),
        ],
    );
    let expected = group_norm_reference(
        &x4.to_f64s().unwrap(),
        (1, 2, 4),
        1,
        &[1.0, 2.0],
        &[0.0, 1.0],
        1e-5,
    );
    assert_close("GroupNormalization 4-D", &out[0].1, &expected, 1e-12);
}

fn norm_derivatives(device: Device) {
    let inputs = [
        seeded(&[1, 2, 3], 7, -2.0, 2.0, device),
        seeded(&[2], 8, 0.5, 1.5, device),
        seeded(&[2], 9, -1.0, 1.0, device),
    ];
    let graph = one_node(
        "InstanceNormalization",
        &["X", "s", "B"],
        &["Y"],
        vec![],
        13,
    );
    assert_derivatives("InstanceNormalization", &graph, &inputs);
    for (opset, groups) in [(21, 1), (18, 2)] {
        let graph = one_node(
            "GroupNormalization",
            &["X", "s", "B"],
            &["Y"],
            vec![("num_groups", int(groups)), ("epsilon", float(0.01))],
            opset,
        );
        let mut inputs = inputs.clone();
        if opset == 18 {
            let len = groups as usize;
            inputs[1] = seeded(&[len], 10, 0.5, 1.5, device);
            inputs[2] = seeded(&[len], 11, -1.0, 1.0, device);
        }
        assert_derivatives("GroupNormalization", &graph, &inputs);
    }
}

/// The same nodes run by ONNX Runtime (`scripts/make_onnx_op_fixtures.py`).
fn match_onnxruntime(device: Device) {
    let check = |case: &str, op: &str, opset: i64, attributes: Vec<(&str, Attribute)>| {
        assert_matches_onnxruntime(case, op, opset, attributes, device)
    };
    check(
        "reduce_sum_square",
        "ReduceSumSquare",
        13,
        vec![("axes", ints(&[0, 2])), ("keepdims", int(0))],
    );
    check("reduce_l1", "ReduceL1", 13, vec![("axes", ints(&[1]))]);
    check(
        "reduce_l2",
        "ReduceL2",
        13,
        vec![("axes", ints(&[-1])), ("keepdims", int(0))],
    );
    check(
        "reduce_log_sum_exp",
        "ReduceLogSumExp",
        13,
        vec![("axes", ints(&[0, 2]))],
    );
    check(
        "instance_norm",
        "InstanceNormalization",
        13,
        vec![("epsilon", float(0.1))],
    );
    for opset in [18, 21] {
        check(
            &format!("group_norm_opset{opset}"),
            "GroupNormalization",
            opset,
            vec![("num_groups", int(2)), ("epsilon", float(0.05))],
        );
    }
}

device_tests!(
    reduction_values,
    reduction_derivatives,
    norm_values,
    norm_derivatives,
    match_onnxruntime
);

#[test]
fn reduction_errors() {
    let x = || seeded(&[2, 3], 1, -1.0, 1.0, Device::Cpu);
    for op in ["ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp"] {
        let e = run_error(
            &one_node(op, &["X"], &["Y"], vec![("axes", ints(&[2]))], 13),
            &[x()],
            &[],
        );
        assert_node_error(&e, "axis 2 is out of range for rank 2");
        let e = run_error(
            &one_node(
                op,
                &["X"],
                &["Y"],
                vec![("noop_with_empty_axes", int(1))],
                18,
            ),
            &[x()],
            &[],
        );
        assert_unsupported(&e, "attribute", "noop_with_empty_axes");
        let ints_in = IntTensor {
            dims: vec![2],
            data: vec![1, 2],
        };
        let e = run_error(&one_node(op, &["X"], &["Y"], vec![], 13), &[], &[ints_in]);
        assert_unsupported(&e, "dtype", &format!("{op} of an integer tensor"));
    }
    let empty = seeded(&[2, 0], 1, -1.0, 1.0, Device::Cpu);
    let e = run_error(
        &one_node(
            "ReduceLogSumExp",
            &["X"],
            &["Y"],
            vec![("axes", ints(&[1]))],
            13,
        ),
        &[empty],
        &[],
    );
    assert_node_error(&e, "log-sum-exp over no elements");
}

#[test]
fn norm_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, 0.5, 1.5, Device::Cpu);
    let gn = |attributes: Vec<(&str, Attribute)>, opset: i64| {
        one_node(
            "GroupNormalization",
            &["X", "s", "B"],
            &["Y"],
            attributes,
            opset,
        )
    };
    let groups = |g: i64| vec![("num_groups", int(g))];
    let e = run_error(&gn(groups(3), 21), &[t(&[1, 4, 2]), t(&[4]), t(&[4])], &[]);
    assert_node_error(
        &e,
        "'num_groups' = 3 must be positive and divide the 4 channels",
    );
    let e = run_error(&gn(vec![], 21), &[t(&[1, 4, 2]), t(&[4]), t(&[4])], &[]);
    assert_node_error(&e, "'num_groups' = 0");
    let e = run_error(&gn(groups(2), 21), &[t(&[1, 4, 2]), t(&[2]), t(&[4])], &[]);
    assert_node_error(&e, "scale must be [C] = [4]");
    let e = run_error(&gn(groups(2), 18), &[t(&[1, 4, 2]), t(&[2]), t(&[4])], &[]);
    assert_node_error(&e, "B must be [num_groups] = [2]");
    let e = run_error(&gn(groups(2), 17), &[t(&[1, 4, 2]), t(&[2]), t(&[2])], &[]);
    assert_unsupported(&e, "op", "opset 18");
    let mut stash = groups(2);
    stash.push(("stash_type", int(1)));
    let e = run_error(&gn(stash, 18), &[t(&[1, 4, 2]), t(&[2]), t(&[2])], &[]);
    assert_unsupported(&e, "attribute", "'stash_type'");
    let mut stash = groups(2);
    stash.push(("stash_type", int(7)));
    let e = run_error(&gn(stash, 21), &[t(&[1, 4, 2]), t(&[4]), t(&[4])], &[]);
    assert_node_error(&e, "'stash_type' = 7");
    let inorm = |attributes| {
        one_node(
            "InstanceNormalization",
            &["X", "s", "B"],
            &["Y"],
            attributes,
            13,
        )
    };
    let e = run_error(&inorm(vec![]), &[t(&[2, 3]), t(&[3]), t(&[3])], &[]);
    assert_node_error(&e, "rank at least 3");
    let e = run_error(&inorm(vec![]), &[t(&[2, 3, 0]), t(&[3]), t(&[3])], &[]);
    assert_node_error(&e, "non-empty");
    let e = run_error(
        &inorm(vec![("epsilon", float(-1.0))]),
        &[t(&[2, 3, 2]), t(&[3]), t(&[3])],
        &[],
    );
    assert_node_error(&e, "'epsilon' must be finite and non-negative");
    let e = run_error(
        &inorm(vec![("num_groups", int(1))]),
        &[t(&[2, 3, 2]), t(&[3]), t(&[3])],
        &[],
    );
    assert_unsupported(&e, "attribute", "'num_groups'");
    let two = one_node("InstanceNormalization", &["X", "s"], &["Y"], vec![], 13);
    let e = run_error(&two, &[t(&[2, 3, 2]), t(&[3])], &[]);
    assert_node_error(&e, "expects 3 inputs, got 2");
}
