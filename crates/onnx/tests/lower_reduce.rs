//! `ReduceSum`, `ReduceMean`, `ReduceMax` and `ReduceMin` lowered onto the tape and the host,
//! on every device: values against loops written here for the axes given as an input (opset
//! 18) and as an attribute (opset 13), `keepdims`, `noop_with_empty_axes`, derivatives against
//! f64 finite differences, the split of the gradient among tied extremes, and the errors of
//! bad nodes.

mod common;

use common::graph::{
    assert_close, assert_derivatives, attr, error_text, float, int, ints, run_op, run_op_at,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::{IntTensor, Val};
use curvature_tape::Tape;
use curvature_tensor::Device;

/// Σ or mean over axis 1 of a [2, 3, 2] tensor, by loops.
fn over_axis1(x: &[f64], mean: bool) -> Vec<f64> {
    let mut out = vec![0.0; 4];
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..2 {
                out[i * 2 + k] += x[i * 6 + j * 2 + k];
            }
        }
    }
    if mean {
        out.iter_mut().for_each(|v| *v /= 3.0);
    }
    out
}

fn reductions(device: Device) {
    let tape = Tape::new();
    let x: Vec<f64> = (0..12).map(|i| (i as f64) * 0.5 - 2.0).collect();
    let fx = || Some(float(&tape, device, &x, &[2, 3, 2]));
    let keep = |k: i64| attr("keepdims", Attribute::Int(k));
    for (op, mean) in [("ReduceSum", false), ("ReduceMean", true)] {
        let expected = over_axis1(&x, mean);
        // Axes as an input (opset 18), negative.
        let out = run_op(
            &tape,
            device,
            op,
            vec![keep(0)],
            vec![fx(), Some(int(&[-2], &[1]))],
        )
        .unwrap();
        assert_close(op, &out, &expected, &[2, 2], 1e-12);
        let out = run_op(&tape, device, op, vec![], vec![fx(), Some(int(&[1], &[1]))]).unwrap();
        assert_close(op, &out, &expected, &[2, 1, 2], 1e-12);
        // Axes as an attribute (opset 13 for ReduceMean, 11 for ReduceSum).
        let out = run_op_at(
            &tape,
            device,
            11,
            op,
            vec![keep(0), attr("axes", Attribute::Ints(vec![1]))],
            vec![fx()],
            1,
        )
        .unwrap();
        assert_close(op, &out[0], &expected, &[2, 2], 1e-12);
        // No axes: everything, unless noop_with_empty_axes.
        let total: f64 = x.iter().sum::<f64>() / if mean { 12.0 } else { 1.0 };
        let out = run_op(&tape, device, op, vec![keep(0)], vec![fx()]).unwrap();
        assert_close(op, &out, &[total], &[], 1e-12);
        let out = run_op(&tape, device, op, vec![], vec![fx(), Some(int(&[], &[0]))]).unwrap();
        assert_close(op, &out, &[total], &[1, 1, 1], 1e-12);
        let out = run_op(
            &tape,
            device,
            op,
            vec![attr("noop_with_empty_axes", Attribute::Int(1))],
            vec![fx(), Some(int(&[], &[0]))],
        )
        .unwrap();
        assert_close(op, &out, &x, &[2, 3, 2], 0.0);
        // Two axes.
        let out = run_op(
            &tape,
            device,
            op,
            vec![keep(0)],
            vec![fx(), Some(int(&[0, 2], &[2]))],
        )
        .unwrap();
        let mut expected = vec![0.0; 3];
        for (e, v) in x.iter().enumerate() {
            expected[(e / 2) % 3] += v / if mean { 4.0 } else { 1.0 };
        }
        assert_close(op, &out, &expected, &[3], 1e-12);
        for (axes, why) in [
            (vec![3], "axis 3 is out of range"),
            (vec![0, -3], "repeated"),
        ] {
            let r = run_op(
                &tape,
                device,
                op,
                vec![],
                vec![fx(), Some(int(&axes, &[axes.len()]))],
            );
            let text = error_text(r.map(|v| vec![v]), "n");
            assert!(text.contains(why), "{text}");
        }
        assert_derivatives(
            op,
            device,
            &[(&[0.3, -0.2, 0.5, 1.1, -0.7, 0.4], &[2, 3])],
            |t, v| {
                let sq = run_op(
                    t,
                    device,
                    "Mul",
                    vec![],
                    vec![Some(v[0].clone()), Some(v[0].clone())],
                )?;
                let r = run_op(
                    t,
                    device,
                    op,
                    vec![keep(0)],
                    vec![Some(sq), Some(int(&[1], &[1]))],
                )?;
                run_op(t, device, "Mul", vec![], vec![Some(r.clone()), Some(r)])
            },
        );
    }
    // Integer sums on the host (shape arithmetic).
    let s = run_op(
        &tape,
        device,
        "ReduceSum",
        vec![keep(0)],
        vec![
            Some(int(&[1, 2, 3, 4, 5, 6], &[2, 3])),
            Some(int(&[0], &[1])),
        ],
    )
    .unwrap();
    assert_eq!(
        ints(&s),
        IntTensor {
            dims: vec![3],
            data: vec![5, 7, 9]
        }
    );
    let s = run_op(
        &tape,
        device,
        "ReduceSum",
        vec![],
        vec![
            Some(int(&[1, 2, 3, 4, 5, 6], &[2, 3])),
            Some(int(&[1], &[1])),
        ],
    )
    .unwrap();
    assert_eq!(
        ints(&s),
        IntTensor {
            dims: vec![2, 1],
            data: vec![6, 15]
        }
    );
    let over = run_op(
        &tape,
        device,
        "ReduceSum",
        vec![],
        vec![Some(int(&[i64::MAX, 1], &[2]))],
    );
    assert!(error_text(over.map(|v| vec![v]), "n").contains("overflow"));
    let int_mean = run_op(
        &tape,
        device,
        "ReduceMean",
        vec![],
        vec![Some(int(&[1, 2], &[2]))],
    );
    assert!(error_text(int_mean.map(|v| vec![v]), "n").contains("integer"));
    let empty = run_op(
        &tape,
        device,
        "ReduceMean",
        vec![],
        vec![
            Some(float(&tape, device, &[], &[0, 2])),
            Some(int(&[0], &[1])),
        ],
    );
    assert!(error_text(empty.map(|v| vec![v]), "n").contains("no elements"));
    let floats_axes = run_op(
        &tape,
        device,
        "ReduceSum",
        vec![],
        vec![fx(), Some(float(&tape, device, &[1.0], &[1]))],
    );
    assert!(error_text(floats_axes.map(|v| vec![v]), "n").contains("must be an integer tensor"));
}

/// The max (or min) of a [2, 3, 2] tensor over axes 0 and 2, by loops: one value per j.
fn extreme_over_axes_0_2(x: &[f64], max: bool) -> Vec<f64> {
    (0..3)
        .map(|j| {
            let values = (0..2).flat_map(|i| (0..2).map(move |k| x[i * 6 + j * 2 + k]));
            if max {
                values.fold(f64::NEG_INFINITY, f64::max)
            } else {
                values.fold(f64::INFINITY, f64::min)
            }
        })
        .collect()
}

fn max_and_min(device: Device) {
    let tape = Tape::new();
    // Distinct values, 0.5 apart, in a scrambled order.
    let x: Vec<f64> = (0..12).map(|i| ((i * 7) % 12) as f64 * 0.5 - 2.0).collect();
    let fx = || Some(float(&tape, device, &x, &[2, 3, 2]));
    let keep = |k: i64| attr("keepdims", Attribute::Int(k));
    for (op, max) in [("ReduceMax", true), ("ReduceMin", false)] {
        let expected = extreme_over_axes_0_2(&x, max);
        let axes = || Some(int(&[0, -1], &[2]));
        let out = run_op(&tape, device, op, vec![keep(0)], vec![fx(), axes()]).unwrap();
        assert_close(op, &out, &expected, &[3], 0.0);
        let out = run_op(&tape, device, op, vec![], vec![fx(), axes()]).unwrap();
        assert_close(op, &out, &expected, &[1, 3, 1], 0.0);
        // Everything (no axes), and the axes as an attribute (opset 13).
        let all = if max { 3.5 } else { -2.0 };
        let out = run_op(&tape, device, op, vec![keep(0)], vec![fx()]).unwrap();
        assert_close(op, &out, &[all], &[], 0.0);
        let out = run_op_at(
            &tape,
            device,
            13,
            op,
            vec![keep(0), attr("axes", Attribute::Ints(vec![0, 2]))],
            vec![fx()],
            1,
        )
        .unwrap();
        assert_close(op, &out[0], &expected, &[3], 0.0);
        // Integers on the host.
        let ix: Vec<i64> = x.iter().map(|&v| (v * 2.0) as i64).collect();
        let out = run_op(
            &tape,
            device,
            op,
            vec![keep(0)],
            vec![Some(int(&ix, &[2, 3, 2])), axes()],
        )
        .unwrap();
        let expected_ints: Vec<i64> = expected.iter().map(|&v| (v * 2.0) as i64).collect();
        assert_eq!(ints(&out).data, expected_ints, "{op} on integers");
        assert_eq!(ints(&out).dims, vec![3], "{op} on integers");
        assert_derivatives(op, device, &[(&x, &[2, 3, 2])], |t, v| {
            let y = run_op(
                t,
                device,
                op,
                vec![keep(0)],
                vec![Some(v[0].clone()), axes()],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(y.clone()), Some(y)])
        });
        let empty = run_op(
            &tape,
            device,
            op,
            vec![],
            vec![
                Some(float(&tape, device, &[], &[2, 0])),
                Some(int(&[1], &[1])),
            ],
        );
        let text = error_text(empty.map(|v| vec![v]), "n");
        assert!(text.contains("empty axis 1"), "{text}");
    }
    // Tied extremes share the derivative equally, as the tape's `max` does.
    let tied = tape.leaf(
        curvature_tensor::Tensor::from_f64s(
            &[1.0, 3.0, -2.0, 3.0],
            [2, 2],
            curvature_tensor::DType::F64,
            device,
        )
        .unwrap(),
    );
    let out = run_op(
        &tape,
        device,
        "ReduceMax",
        vec![keep(0)],
        vec![Some(Val::Float(tied.clone()))],
    )
    .unwrap();
    let Val::Float(out) = out else {
        panic!("ReduceMax of floats")
    };
    out.backward().unwrap();
    let grad = tied.grad().unwrap().to_f64s().unwrap();
    assert_eq!(grad, vec![0.0, 0.5, 0.0, 0.5]);
}

device_tests!(reductions, max_and_min);
