//! The shape and layout ops lowered onto the tape (floats) and the host (integers), on every
//! device: values against results written out by hand or built by loops here, derivatives
//! against f64 finite differences, a folded shape subgraph, and the errors of bad nodes.

mod common;

use common::graph::{
    assert_close, assert_derivatives, attr, error_text, float, floats, graph, int, ints, node,
    run_graph, run_op, run_op_at, OPSET,
};
use curvature_onnx::ir::{Attribute, ElemType, HostData, HostTensor};
use curvature_onnx::lower::{IntTensor, Val};
use curvature_tape::Tape;
use curvature_tensor::Device;

fn it(dims: &[usize], data: &[i64]) -> IntTensor {
    IntTensor {
        dims: dims.to_vec(),
        data: data.to_vec(),
    }
}

fn one(r: curvature_onnx::Result<Val>) -> curvature_onnx::Result<Vec<Val>> {
    r.map(|v| vec![v])
}

/// 0, 1, 2, … as f64.
fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

fn constants(device: Device) {
    let tape = Tape::new();
    let c = |name: &str, value: Attribute| {
        run_op(&tape, device, "Constant", vec![attr(name, value)], vec![])
    };
    let tensor = HostTensor {
        name: String::new(),
        elem_type: ElemType::F32,
        dims: vec![2],
        data: HostData::Float(vec![1.5, -2.0]),
    };
    assert_close(
        "value",
        &c("value", Attribute::Tensor(tensor)).unwrap(),
        &[1.5, -2.0],
        &[2],
        0.0,
    );
    assert_close(
        "value_float",
        &c("value_float", Attribute::Float(0.25)).unwrap(),
        &[0.25],
        &[],
        0.0,
    );
    assert_close(
        "value_floats",
        &c("value_floats", Attribute::Floats(vec![1.0, 2.0])).unwrap(),
        &[1.0, 2.0],
        &[2],
        0.0,
    );
    assert_eq!(
        ints(&c("value_int", Attribute::Int(-3)).unwrap()),
        it(&[], &[-3])
    );
    assert_eq!(
        ints(&c("value_ints", Attribute::Ints(vec![4, 5])).unwrap()),
        it(&[2], &[4, 5])
    );
    let int_tensor = HostTensor {
        name: String::new(),
        elem_type: ElemType::I64,
        dims: vec![1, 2],
        data: HostData::Int(vec![7, 8]),
    };
    assert_eq!(
        ints(&c("value", Attribute::Tensor(int_tensor)).unwrap()),
        it(&[1, 2], &[7, 8])
    );
    let text = error_text(one(c("sparse_value", Attribute::Other(11))), "n");
    assert!(text.contains("sparse_value"), "{text}");
    let text = error_text(one(run_op(&tape, device, "Constant", vec![], vec![])), "n");
    assert!(text.contains("exactly one"), "{text}");
    let bad_count = HostTensor {
        name: String::new(),
        elem_type: ElemType::F64,
        dims: vec![3],
        data: HostData::Float(vec![1.0]),
    };
    let text = error_text(one(c("value", Attribute::Tensor(bad_count))), "n");
    assert!(text.contains("holds 1 values"), "{text}");

    // ConstantOfShape: float 0 by default, else the value's type.
    let cos = |shape: &[i64], value: Option<HostTensor>| {
        let attrs = value
            .map(|v| vec![attr("value", Attribute::Tensor(v))])
            .unwrap_or_default();
        run_op(
            &tape,
            device,
            "ConstantOfShape",
            attrs,
            vec![Some(int(shape, &[shape.len()]))],
        )
    };
    assert_close(
        "zeros",
        &cos(&[2, 1], None).unwrap(),
        &[0.0, 0.0],
        &[2, 1],
        0.0,
    );
    let seven = HostTensor {
        name: String::new(),
        elem_type: ElemType::I64,
        dims: vec![1],
        data: HostData::Int(vec![7]),
    };
    assert_eq!(ints(&cos(&[3], Some(seven)).unwrap()), it(&[3], &[7, 7, 7]));
    let half = HostTensor {
        name: String::new(),
        elem_type: ElemType::F32,
        dims: vec![1],
        data: HostData::Float(vec![0.5]),
    };
    assert_close("halves", &cos(&[], Some(half)).unwrap(), &[0.5], &[], 0.0);
    let text = error_text(one(cos(&[1 << 20, 1 << 20], None)), "n");
    assert!(text.contains("more than"), "{text}");
    let text = error_text(one(cos(&[-1], None)), "n");
    assert!(text.contains("negative dimension"), "{text}");
}

fn shape_reshape_flatten(device: Device) {
    let tape = Tape::new();
    let x = || Some(float(&tape, device, &iota(24), &[2, 3, 4]));
    let shape = |attrs| ints(&run_op(&tape, device, "Shape", attrs, vec![x()]).unwrap());
    assert_eq!(shape(vec![]), it(&[3], &[2, 3, 4]));
    assert_eq!(
        shape(vec![attr("start", Attribute::Int(-2))]),
        it(&[2], &[3, 4])
    );
    assert_eq!(
        shape(vec![
            attr("start", Attribute::Int(1)),
            attr("end", Attribute::Int(-1))
        ]),
        it(&[1], &[3])
    );
    assert_eq!(
        shape(vec![
            attr("start", Attribute::Int(-9)),
            attr("end", Attribute::Int(9))
        ]),
        it(&[3], &[2, 3, 4])
    );
    assert_eq!(
        shape(vec![
            attr("start", Attribute::Int(2)),
            attr("end", Attribute::Int(1))
        ]),
        it(&[0], &[])
    );

    let reshape = |target: &[i64], allowzero: i64| {
        run_op(
            &tape,
            device,
            "Reshape",
            vec![attr("allowzero", Attribute::Int(allowzero))],
            vec![x(), Some(int(target, &[target.len()]))],
        )
    };
    for (target, dims) in [
        (vec![0, -1], vec![2, 12]),
        (vec![-1, 4], vec![6, 4]),
        (vec![4, 0, 2], vec![4, 3, 2]),
        (vec![24], vec![24]),
    ] {
        let out = reshape(&target, 0).unwrap();
        assert_close("Reshape", &out, &iota(24), &dims, 0.0);
    }
    for (target, why) in [
        (vec![-1, -1], "more than one -1"),
        (vec![5, -1], "cannot be split"),
        (vec![2, 3], "24 elements, 6 asked for"),
        (vec![0, 0, 0, 0], "copies no input dimension"),
        (vec![-2, 12], "invalid dimension -2"),
    ] {
        let text = error_text(one(reshape(&target, 0)), "n");
        assert!(text.contains(why), "{target:?}: {text}");
    }
    // allowzero: 0 is a real zero-length axis, so [0, 4] of 24 elements is an error.
    assert!(error_text(one(reshape(&[0, 4], 1)), "n").contains("24 elements"));
    let empty = run_op(
        &tape,
        device,
        "Reshape",
        vec![attr("allowzero", Attribute::Int(1))],
        vec![
            Some(float(&tape, device, &[], &[0, 2])),
            Some(int(&[2, 0], &[2])),
        ],
    )
    .unwrap();
    assert_eq!(floats(&empty).1, vec![2, 0]);
    let on_ints = run_op(
        &tape,
        device,
        "Reshape",
        vec![],
        vec![Some(int(&[1, 2, 3, 4], &[4])), Some(int(&[2, -1], &[2]))],
    )
    .unwrap();
    assert_eq!(ints(&on_ints), it(&[2, 2], &[1, 2, 3, 4]));

    for (axis, dims) in [
        (0, [1, 24]),
        (1, [2, 12]),
        (2, [6, 4]),
        (3, [24, 1]),
        (-1, [6, 4]),
        (-3, [1, 24]),
    ] {
        let out = run_op(
            &tape,
            device,
            "Flatten",
            vec![attr("axis", Attribute::Int(axis))],
            vec![x()],
        )
        .unwrap();
        assert_eq!(floats(&out).1, dims.to_vec(), "Flatten axis {axis}");
    }
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Flatten",
            vec![attr("axis", Attribute::Int(4))],
            vec![x()],
        )),
        "n",
    );
    assert!(text.contains("out of range"), "{text}");
}

fn transpose_squeeze_unsqueeze(device: Device) {
    let tape = Tape::new();
    let x = iota(6);
    let t = run_op(
        &tape,
        device,
        "Transpose",
        vec![attr("perm", Attribute::Ints(vec![1, 0]))],
        vec![Some(float(&tape, device, &x, &[2, 3]))],
    )
    .unwrap();
    assert_close(
        "Transpose",
        &t,
        &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
        &[3, 2],
        0.0,
    );
    // The default reverses the axes; a loop over [2, 3, 4] → [4, 3, 2].
    let y = iota(24);
    let t = run_op(
        &tape,
        device,
        "Transpose",
        vec![],
        vec![Some(float(&tape, device, &y, &[2, 3, 4]))],
    )
    .unwrap();
    let mut expected = Vec::new();
    for k in 0..4 {
        for j in 0..3 {
            for i in 0..2 {
                expected.push(y[i * 12 + j * 4 + k]);
            }
        }
    }
    assert_close("reversed", &t, &expected, &[4, 3, 2], 0.0);
    let ti = run_op(
        &tape,
        device,
        "Transpose",
        vec![attr("perm", Attribute::Ints(vec![1, 0]))],
        vec![Some(int(&[0, 1, 2, 3, 4, 5], &[2, 3]))],
    )
    .unwrap();
    assert_eq!(ints(&ti), it(&[3, 2], &[0, 3, 1, 4, 2, 5]));
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Transpose",
            vec![attr("perm", Attribute::Ints(vec![0, 0]))],
            vec![Some(float(&tape, device, &x, &[2, 3]))],
        )),
        "n",
    );
    assert!(text.contains("repeated"), "{text}");
    assert_derivatives(
        "Transpose",
        device,
        &[(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], &[1, 2, 3])],
        |t, v| {
            let y = run_op(
                t,
                device,
                "Transpose",
                vec![attr("perm", Attribute::Ints(vec![2, 0, 1]))],
                vec![Some(v[0].clone())],
            )?;
            run_op(
                t,
                device,
                "Mul",
                vec![],
                vec![Some(y.clone()), Some(float(t, device, &[1.0, 2.0], &[2]))],
            )
            .and_then(|z| run_op(t, device, "Mul", vec![], vec![Some(z), Some(y)]))
        },
    );

    let v = || Some(float(&tape, device, &x, &[1, 2, 1, 3]));
    let dims = |val: Val| floats(&val).1;
    assert_eq!(
        dims(run_op(&tape, device, "Squeeze", vec![], vec![v()]).unwrap()),
        vec![2, 3]
    );
    assert_eq!(
        dims(
            run_op(
                &tape,
                device,
                "Squeeze",
                vec![],
                vec![v(), Some(int(&[-2], &[1]))]
            )
            .unwrap()
        ),
        vec![1, 2, 3]
    );
    // Opset 11: the axes are an attribute.
    let old = run_op_at(
        &tape,
        device,
        11,
        "Squeeze",
        vec![attr("axes", Attribute::Ints(vec![0]))],
        vec![v()],
        1,
    )
    .unwrap();
    assert_eq!(dims(old[0].clone()), vec![2, 1, 3]);
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Squeeze",
            vec![],
            vec![v(), Some(int(&[1], &[1]))],
        )),
        "n",
    );
    assert!(text.contains("not 1"), "{text}");
    let u = run_op(
        &tape,
        device,
        "Unsqueeze",
        vec![],
        vec![
            Some(float(&tape, device, &x, &[2, 3])),
            Some(int(&[0, -1], &[2])),
        ],
    )
    .unwrap();
    assert_close("Unsqueeze", &u, &x, &[1, 2, 3, 1], 0.0);
    let u = run_op_at(
        &tape,
        device,
        11,
        "Unsqueeze",
        vec![attr("axes", Attribute::Ints(vec![1]))],
        vec![Some(int(&[4, 5], &[2]))],
        1,
    )
    .unwrap();
    assert_eq!(ints(&u[0]), it(&[2, 1], &[4, 5]));
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Unsqueeze",
            vec![],
            vec![
                Some(float(&tape, device, &x, &[2, 3])),
                Some(int(&[3, 3], &[2])),
            ],
        )),
        "n",
    );
    assert!(text.contains("repeated"), "{text}");
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Unsqueeze",
            vec![],
            vec![Some(float(&tape, device, &x, &[2, 3]))],
        )),
        "n",
    );
    assert!(text.contains("needs axes"), "{text}");
}

fn concat_expand(device: Device) {
    let tape = Tape::new();
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [5.0, 6.0];
    let out = run_op(
        &tape,
        device,
        "Concat",
        vec![attr("axis", Attribute::Int(-1))],
        vec![
            Some(float(&tape, device, &a, &[2, 2])),
            Some(float(&tape, device, &b, &[2, 1])),
        ],
    )
    .unwrap();
    assert_close(
        "Concat",
        &out,
        &[1.0, 2.0, 5.0, 3.0, 4.0, 6.0],
        &[2, 3],
        0.0,
    );
    let out = run_op(
        &tape,
        device,
        "Concat",
        vec![attr("axis", Attribute::Int(0))],
        vec![
            Some(int(&[1, 2], &[2])),
            Some(int(&[], &[0])),
            Some(int(&[3], &[1])),
        ],
    )
    .unwrap();
    assert_eq!(ints(&out), it(&[3], &[1, 2, 3]));
    let out = run_op(
        &tape,
        device,
        "Concat",
        vec![attr("axis", Attribute::Int(1))],
        vec![
            Some(int(&[1, 2], &[2, 1])),
            Some(int(&[3, 4, 5, 6], &[2, 2])),
        ],
    )
    .unwrap();
    assert_eq!(ints(&out), it(&[2, 3], &[1, 3, 4, 2, 5, 6]));
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Concat",
            vec![attr("axis", Attribute::Int(0))],
            vec![
                Some(int(&[1, 2], &[2, 1])),
                Some(int(&[3, 4, 5, 6], &[2, 2])),
            ],
        )),
        "n",
    );
    assert!(text.contains("cannot concatenate"), "{text}");
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Concat",
            vec![],
            vec![Some(int(&[1], &[1]))],
        )),
        "n",
    );
    assert!(text.contains("'axis' is required"), "{text}");
    assert_derivatives(
        "Concat",
        device,
        &[(&[0.5, -1.0], &[1, 2]), (&[2.0, 0.3, -0.7, 1.1], &[2, 2])],
        |t, v| {
            let c = run_op(
                t,
                device,
                "Concat",
                vec![attr("axis", Attribute::Int(0))],
                vec![Some(v[0].clone()), Some(v[1].clone())],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(c.clone()), Some(c)])
        },
    );

    // Expand is bidirectional: [3, 1] with [2, 1, 4] gives [2, 3, 4].
    let x = [1.0, 2.0, 3.0];
    let out = run_op(
        &tape,
        device,
        "Expand",
        vec![],
        vec![
            Some(float(&tape, device, &x, &[3, 1])),
            Some(int(&[2, 1, 4], &[3])),
        ],
    )
    .unwrap();
    let expected: Vec<f64> = (0..24).map(|e| x[(e / 4) % 3]).collect();
    assert_close("Expand", &out, &expected, &[2, 3, 4], 0.0);
    let out = run_op(
        &tape,
        device,
        "Expand",
        vec![],
        vec![Some(int(&[7, 8], &[2, 1])), Some(int(&[1, 3], &[2]))],
    )
    .unwrap();
    assert_eq!(ints(&out), it(&[2, 3], &[7, 7, 7, 8, 8, 8]));
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Expand",
            vec![],
            vec![Some(float(&tape, device, &x, &[3])), Some(int(&[2], &[1]))],
        )),
        "n",
    );
    assert!(text.contains("do not broadcast"), "{text}");
    assert_derivatives("Expand", device, &[(&[0.5, -1.0, 2.0], &[3, 1])], |t, v| {
        let e = run_op(
            t,
            device,
            "Expand",
            vec![],
            vec![Some(v[0].clone()), Some(int(&[2, 1, 2], &[3]))],
        )?;
        run_op(t, device, "Mul", vec![], vec![Some(e.clone()), Some(e)])
    });
}

fn slices(device: Device) {
    let tape = Tape::new();
    let x = iota(20); // [4, 5], x[i][j] = 5i + j
    let slice =
        |starts: &[i64], ends: &[i64], axes: Option<&[i64]>, steps: Option<&[i64]>, data: Val| {
            let list = |v: &[i64]| Some(int(v, &[v.len()]));
            run_op(
                &tape,
                device,
                "Slice",
                vec![],
                vec![
                    Some(data),
                    list(starts),
                    list(ends),
                    axes.and_then(list),
                    steps.and_then(list),
                ],
            )
        };
    let fx = || float(&tape, device, &x, &[4, 5]);
    let pick = |rows: &[usize], cols: &[usize]| -> Vec<f64> {
        rows.iter()
            .flat_map(|&i| cols.iter().map(move |&j| (5 * i + j) as f64))
            .collect()
    };
    // x[1:3, 2:]
    let out = slice(&[1, 2], &[3, i64::MAX], None, None, fx()).unwrap();
    assert_close("[1:3, 2:]", &out, &pick(&[1, 2], &[2, 3, 4]), &[2, 3], 0.0);
    // x[:, -2:] via axes [-1]
    let out = slice(&[-2], &[100], Some(&[-1]), None, fx()).unwrap();
    assert_close(
        "[:, -2:]",
        &out,
        &pick(&[0, 1, 2, 3], &[3, 4]),
        &[4, 2],
        0.0,
    );
    // x[::2, ::-2] (steps; the reversed start is clamped to the last entry)
    let out = slice(
        &[0, i64::MAX],
        &[i64::MAX, i64::MIN],
        Some(&[0, 1]),
        Some(&[2, -2]),
        fx(),
    )
    .unwrap();
    assert_close(
        "[::2, ::-2]",
        &out,
        &pick(&[0, 2], &[4, 2, 0]),
        &[2, 3],
        0.0,
    );
    // x[3:0:-1, 1:4:2]
    let out = slice(&[3, 1], &[0, 4], None, Some(&[-1, 2]), fx()).unwrap();
    assert_close(
        "[3:0:-1, 1:4:2]",
        &out,
        &pick(&[3, 2, 1], &[1, 3]),
        &[3, 2],
        0.0,
    );
    // An empty slice and out-of-range starts.
    let out = slice(&[7], &[9], None, None, fx()).unwrap();
    assert_eq!(floats(&out).1, vec![0, 5]);
    // On the host (a shape's tail, the usual exporter pattern).
    let out = slice(&[-1], &[i64::MAX], None, None, int(&[2, 3, 4], &[3])).unwrap();
    assert_eq!(ints(&out), it(&[1], &[4]));
    let xi: Vec<i64> = (0..20).collect();
    let out = slice(&[3, 1], &[0, 4], None, Some(&[-1, 2]), int(&xi, &[4, 5])).unwrap();
    assert_eq!(
        ints(&out).data,
        pick(&[3, 2, 1], &[1, 3])
            .iter()
            .map(|&v| v as i64)
            .collect::<Vec<_>>()
    );
    for (starts, ends, axes, steps, why) in [
        (vec![0], vec![1], Some(vec![2]), None, "out of range"),
        (vec![0], vec![1], None, Some(vec![0]), "step is 0"),
        (vec![0, 0], vec![1], None, None, "equal lengths"),
        (
            vec![0, 0],
            vec![1, 1],
            Some(vec![1, -1]),
            None,
            "sliced twice",
        ),
    ] {
        let text = error_text(
            one(slice(
                &starts,
                &ends,
                axes.as_deref(),
                steps.as_deref(),
                fx(),
            )),
            "n",
        );
        assert!(text.contains(why), "{text}");
    }
    assert_derivatives(
        "Slice",
        device,
        &[(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], &[2, 3])],
        |t, v| {
            let list = |v: &[i64]| Some(int(v, &[v.len()]));
            let s = run_op(
                t,
                device,
                "Slice",
                vec![],
                vec![
                    Some(v[0].clone()),
                    list(&[2]),
                    list(&[-9]),
                    list(&[1]),
                    list(&[-2]),
                ],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(s.clone()), Some(s)])
        },
    );
}

fn splits(device: Device) {
    let tape = Tape::new();
    let x = iota(10); // [2, 5]
    let split = |attrs: Vec<(String, Attribute)>, sizes: Option<&[i64]>, outputs: usize| {
        run_op_at(
            &tape,
            device,
            OPSET,
            "Split",
            attrs,
            vec![
                Some(float(&tape, device, &x, &[2, 5])),
                sizes.map(|s| int(s, &[s.len()])),
            ],
            outputs,
        )
    };
    let axis1 = || vec![attr("axis", Attribute::Int(1))];
    let parts = split(axis1(), Some(&[1, 4]), 2).unwrap();
    assert_close("split 1", &parts[0], &[0.0, 5.0], &[2, 1], 0.0);
    assert_close(
        "split 4",
        &parts[1],
        &[1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0],
        &[2, 4],
        0.0,
    );
    // num_outputs = 3 on 5 entries: 2, 2, 1.
    let mut attrs = axis1();
    attrs.push(attr("num_outputs", Attribute::Int(3)));
    let parts = split(attrs, None, 3).unwrap();
    let lens: Vec<usize> = parts.iter().map(|p| floats(p).1[1]).collect();
    assert_eq!(lens, vec![2, 2, 1]);
    assert_close("last part", &parts[2], &[4.0, 9.0], &[2, 1], 0.0);
    // Equal parts, one per output, along axis 0.
    let parts = split(vec![], None, 2).unwrap();
    assert_close("row 1", &parts[1], &[5.0, 6.0, 7.0, 8.0, 9.0], &[1, 5], 0.0);
    // Opset 11: the sizes are an attribute.
    let parts = run_op_at(
        &tape,
        device,
        11,
        "Split",
        vec![
            attr("split", Attribute::Ints(vec![2, 1])),
            attr("axis", Attribute::Int(0)),
        ],
        vec![Some(int(&[1, 2, 3], &[3]))],
        2,
    )
    .unwrap();
    assert_eq!(ints(&parts[0]), it(&[2], &[1, 2]));
    assert_eq!(ints(&parts[1]), it(&[1], &[3]));
    for (attrs, sizes, outputs, why) in [
        (axis1(), Some(vec![2, 2]), 2, "does not divide"),
        (axis1(), Some(vec![6, -1]), 2, "does not divide"),
        (axis1(), None, 2, "cannot be split"),
        (
            vec![attr("num_outputs", Attribute::Int(4))],
            None,
            2,
            "num_outputs = 4",
        ),
    ] {
        let text = error_text(split(attrs, sizes.as_deref(), outputs), "n");
        assert!(text.contains(why), "{text}");
    }
    assert_derivatives(
        "Split",
        device,
        &[(&[0.1, -0.2, 0.3, 0.4, -0.5], &[5])],
        |t, v| {
            let parts = run_op_at(
                t,
                device,
                OPSET,
                "Split",
                vec![],
                vec![Some(v[0].clone()), Some(int(&[3, 2], &[2]))],
                2,
            )?;
            let a = run_op(t, device, "ReduceSum", vec![], vec![Some(parts[0].clone())])?;
            let b = run_op(
                t,
                device,
                "Mul",
                vec![],
                vec![Some(parts[1].clone()), Some(parts[1].clone())],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(a), Some(b)])
        },
    );
}

fn gathers(device: Device) {
    let tape = Tape::new();
    // An embedding: weight [4, 3], ids [2, 2] with a negative id → [2, 2, 3].
    let w = iota(12);
    let out = run_op(
        &tape,
        device,
        "Gather",
        vec![],
        vec![
            Some(float(&tape, device, &w, &[4, 3])),
            Some(int(&[1, -1, 0, 1], &[2, 2])),
        ],
    )
    .unwrap();
    let rows = [1, 3, 0, 1];
    let expected: Vec<f64> = rows
        .iter()
        .flat_map(|&r| (0..3).map(move |c| (3 * r + c) as f64))
        .collect();
    assert_close("embedding", &out, &expected, &[2, 2, 3], 0.0);
    // axis 1 with a scalar index drops the axis.
    let out = run_op(
        &tape,
        device,
        "Gather",
        vec![attr("axis", Attribute::Int(1))],
        vec![
            Some(float(&tape, device, &w, &[4, 3])),
            Some(int(&[2], &[])),
        ],
    )
    .unwrap();
    assert_close("column 2", &out, &[2.0, 5.0, 8.0, 11.0], &[4], 0.0);
    // On the host: a shape's entry.
    let out = run_op(
        &tape,
        device,
        "Gather",
        vec![],
        vec![Some(int(&[2, 3, 4], &[3])), Some(int(&[-2], &[]))],
    )
    .unwrap();
    assert_eq!(ints(&out), it(&[], &[3]));
    let out = run_op(
        &tape,
        device,
        "Gather",
        vec![attr("axis", Attribute::Int(-1))],
        vec![
            Some(int(&[1, 2, 3, 4], &[2, 2])),
            Some(int(&[1, 1, 0], &[3])),
        ],
    )
    .unwrap();
    assert_eq!(ints(&out), it(&[2, 3], &[2, 2, 1, 4, 4, 3]));
    for (indices, attrs, why) in [
        (int(&[4], &[1]), vec![], "index 4 is out of range"),
        (int(&[-5], &[1]), vec![], "index -5 is out of range"),
        (
            int(&[0], &[1]),
            vec![attr("axis", Attribute::Int(2))],
            "axis 2 is out of range",
        ),
    ] {
        let text = error_text(
            one(run_op(
                &tape,
                device,
                "Gather",
                attrs,
                vec![Some(float(&tape, device, &w, &[4, 3])), Some(indices)],
            )),
            "n",
        );
        assert!(text.contains(why), "{text}");
    }
    let text = error_text(
        one(run_op(
            &tape,
            device,
            "Gather",
            vec![],
            vec![
                Some(float(&tape, device, &w, &[4, 3])),
                Some(float(&tape, device, &[0.0], &[1])),
            ],
        )),
        "n",
    );
    assert!(text.contains("must be an integer tensor"), "{text}");
    // A repeated id: its row's derivatives add up.
    assert_derivatives(
        "Gather",
        device,
        &[(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], &[3, 2])],
        |t, v| {
            let g = run_op(
                t,
                device,
                "Gather",
                vec![],
                vec![Some(v[0].clone()), Some(int(&[2, 0, 2], &[3]))],
            )?;
            run_op(t, device, "Mul", vec![], vec![Some(g.clone()), Some(g)])
        },
    );
}

/// `Shape → Gather → Unsqueeze → Concat → Reshape`, as PyTorch exports `x.view(x.size(0), -1)`:
/// folded on the host at the actual input shape.
fn folded_shape_subgraph(device: Device) {
    let tape = Tape::new();
    let g = graph(
        vec![
            node("shape", "Shape", &["x"], &["s"], vec![]),
            node(
                "zero",
                "Constant",
                &[],
                &["i0"],
                vec![attr("value_int", Attribute::Int(0))],
            ),
            node("batch", "Gather", &["s", "i0"], &["b"], vec![]),
            node(
                "axes",
                "Constant",
                &[],
                &["a0"],
                vec![attr("value_ints", Attribute::Ints(vec![0]))],
            ),
            node("unsq", "Unsqueeze", &["b", "a0"], &["b1"], vec![]),
            node(
                "minus",
                "Constant",
                &[],
                &["m1"],
                vec![attr("value_ints", Attribute::Ints(vec![-1]))],
            ),
            node(
                "cat",
                "Concat",
                &["b1", "m1"],
                &["target"],
                vec![attr("axis", Attribute::Int(0))],
            ),
            node("view", "Reshape", &["x", "target"], &["y"], vec![]),
        ],
        &["y", "target"],
        OPSET,
    );
    for batch in [1usize, 3] {
        let x = iota(batch * 6);
        let out = run_graph(
            &tape,
            device,
            &g,
            vec![("x", float(&tape, device, &x, &[batch, 2, 3]))],
        )
        .unwrap();
        assert_close("view", &out[0], &x, &[batch, 6], 0.0);
        assert_eq!(ints(&out[1]), it(&[2], &[batch as i64, -1]));
    }
    let text = error_text(
        run_graph(&tape, device, &g, vec![("x", int(&[1], &[]))]).map(|v| v[..1].to_vec()),
        "batch",
    );
    assert!(text.contains("out of range"), "{text}");
}

device_tests!(
    constants,
    shape_reshape_flatten,
    transpose_squeeze_unsqueeze,
    concat_expand,
    slices,
    splits,
    gathers,
    folded_shape_subgraph,
);
