//! `ReduceSum` and `ReduceMean` lowered onto the tape and the host, on every device: values
//! against loops written here for the axes given as an input (opset 18) and as an attribute
//! (opset 13), `keepdims`, `noop_with_empty_axes`, derivatives against f64 finite differences,
//! and the errors of bad nodes.

mod common;

use common::graph::{
    assert_close, assert_derivatives, attr, error_text, float, int, ints, run_op, run_op_at,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::IntTensor;
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

device_tests!(reductions);
