//! The sequence ops (`SplitToSequence`, `SequenceConstruct`, `SequenceAt`, `SequenceLength`,
//! `ConcatFromSequence`) run through small graphs on every device: the pieces against slices
//! written here, PyTorch's `qkv.split(d, dim=-1)` pattern with first and second derivatives
//! against f64 finite differences, integer sequences, and the errors of bad graphs.

mod common;

use common::graph::{
    assert_close, assert_derivatives, attr, error_text, float, graph, int, ints, node, run_graph,
    OPSET,
};
use curvature_onnx::ir::{Attribute, Node};
use curvature_onnx::lower::Val;
use curvature_onnx::OnnxError;
use curvature_tape::Tape;
use curvature_tensor::Device;

/// The values 0, 1, …, 9 as a [2, 5] tensor.
const X: [f64; 10] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

fn axis(a: i64) -> (String, Attribute) {
    attr("axis", Attribute::Int(a))
}

/// `SequenceAt(seq, position)` named `name`, reading the position from the input `p{position}`.
fn at(name: &str, seq: &str, position: i64, out: &str) -> Node {
    let p = format!("p{position}");
    node(name, "SequenceAt", &[seq, p.as_str()], &[out], vec![])
}

/// The positions −3…3 as scalar inputs `p-3` … `p3`.
fn positions() -> Vec<(String, Val)> {
    (-3..=3)
        .map(|p| (format!("p{p}"), int(&[p], &[])))
        .collect()
}

/// Runs `nodes` with the inputs `x` (and the positions), returning the named outputs.
fn run_nodes(
    tape: &Tape,
    device: Device,
    nodes: Vec<Node>,
    outputs: &[&str],
    x: Val,
) -> curvature_onnx::Result<Vec<Val>> {
    let mut inputs = positions();
    inputs.push(("x".to_string(), x));
    let inputs = inputs
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    run_graph(tape, device, &graph(nodes, outputs, OPSET), inputs)
}

/// Row-major columns `cols` of the [2, 5] tensor `X`.
fn columns(cols: std::ops::Range<usize>) -> Vec<f64> {
    (0..2)
        .flat_map(|r| cols.clone().map(move |c| X[r * 5 + c]))
        .collect()
}

fn split_pieces(device: Device) {
    let tape = Tape::new();
    let x = || float(&tape, device, &X, &[2, 5]);
    // A list of lengths.
    let nodes = vec![
        node(
            "s",
            "SplitToSequence",
            &["x", "split"],
            &["seq"],
            vec![axis(1)],
        ),
        at("a", "seq", 0, "first"),
        at("b", "seq", -1, "last"),
        node("n", "SequenceLength", &["seq"], &["len"], vec![]),
    ];
    let mut inputs = positions();
    inputs.push(("x".to_string(), x()));
    inputs.push(("split".to_string(), int(&[2, 3], &[2])));
    let inputs = inputs
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let g = graph(nodes, &["first", "last", "len"], OPSET);
    let out = run_graph(&tape, device, &g, inputs).unwrap();
    assert_close("first", &out[0], &columns(0..2), &[2, 2], 0.0);
    assert_close("last", &out[1], &columns(2..5), &[2, 3], 0.0);
    assert_eq!((ints(&out[2]).data, ints(&out[2]).dims), (vec![2], vec![]));
    // A scalar length: pieces of 2, 2 and 1.
    let nodes = vec![
        node(
            "c",
            "Constant",
            &[],
            &["two"],
            vec![attr("value_int", Attribute::Int(2))],
        ),
        node(
            "s",
            "SplitToSequence",
            &["x", "two"],
            &["seq"],
            vec![axis(-1)],
        ),
        at("a", "seq", 1, "middle"),
        at("b", "seq", 2, "rest"),
        node("n", "SequenceLength", &["seq"], &["len"], vec![]),
    ];
    let out = run_nodes(&tape, device, nodes, &["middle", "rest", "len"], x()).unwrap();
    assert_close("middle", &out[0], &columns(2..4), &[2, 2], 0.0);
    assert_close("rest", &out[1], &columns(4..5), &[2, 1], 0.0);
    assert_eq!(ints(&out[2]).data, vec![3]);
    // No lengths: pieces of one, the axis dropped unless `keepdims`.
    for (keepdims, dims) in [(0, vec![5]), (1, vec![1, 5])] {
        let nodes = vec![
            node(
                "s",
                "SplitToSequence",
                &["x"],
                &["seq"],
                vec![axis(0), attr("keepdims", Attribute::Int(keepdims))],
            ),
            at("a", "seq", 1, "row"),
        ];
        let out = run_nodes(&tape, device, nodes, &["row"], x()).unwrap();
        assert_close("row", &out[0], &X[5..], &dims, 0.0);
    }
}

fn construct_and_concat(device: Device) {
    let tape = Tape::new();
    let x = || float(&tape, device, &X, &[2, 5]);
    // Split into columns 0..2 and 2..5, then put them back in the other order.
    let nodes = |new_axis: i64, cat_axis: i64| {
        vec![
            node(
                "s",
                "SplitToSequence",
                &["x", "split"],
                &["seq"],
                vec![axis(1)],
            ),
            at("a", "seq", 0, "left"),
            at("b", "seq", 1, "right"),
            node(
                "k",
                "SequenceConstruct",
                &["right", "left"],
                &["pair"],
                vec![],
            ),
            node(
                "c",
                "ConcatFromSequence",
                &["pair"],
                &["y"],
                vec![axis(cat_axis), attr("new_axis", Attribute::Int(new_axis))],
            ),
        ]
    };
    let run = |nodes: Vec<Node>, split: &[i64]| {
        let mut inputs = positions();
        inputs.push(("x".to_string(), x()));
        inputs.push(("split".to_string(), int(split, &[split.len()])));
        let inputs = inputs
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        run_graph(&tape, device, &graph(nodes, &["y"], OPSET), inputs)
    };
    let out = run(nodes(0, 1), &[2, 3]).unwrap();
    let swapped = [2.0, 3.0, 4.0, 0.0, 1.0, 7.0, 8.0, 9.0, 5.0, 6.0];
    assert_close("concat", &out[0], &swapped, &[2, 5], 0.0);
    // Stacking needs pieces of one shape; along a new last axis y[r, c, k] = piece k[r, c].
    let out = run(nodes(1, -1), &[2, 3]);
    let text = error_text(out, "c");
    assert!(text.contains("stack shapes [2, 3] and [2, 2]"), "{text}");
    let out = run(nodes(1, -1), &[2, 2, 1]);
    // Only positions 0 and 1 are read: columns 0..2 and 2..4.
    let stacked = [2.0, 0.0, 3.0, 1.0, 7.0, 5.0, 8.0, 6.0];
    assert_close("stack", &out.unwrap()[0], &stacked, &[2, 2, 2], 0.0);
}

fn split_derivatives(device: Device) {
    // PyTorch's `q, k, v = qkv.split(2, dim=-1)`, then q·k + v and a concatenation.
    let nodes = || {
        vec![
            node(
                "c",
                "Constant",
                &[],
                &["two"],
                vec![attr("value_int", Attribute::Int(2))],
            ),
            node(
                "s",
                "SplitToSequence",
                &["x", "two"],
                &["seq"],
                vec![axis(-1)],
            ),
            at("q", "seq", 0, "q"),
            at("k", "seq", 1, "k"),
            at("v", "seq", 2, "v"),
            node("m", "Mul", &["q", "k"], &["qk"], vec![]),
            node("a", "Add", &["qk", "v"], &["h"], vec![]),
            node("t", "Tanh", &["h"], &["th"], vec![]),
            node("k2", "SequenceConstruct", &["th", "q"], &["pair"], vec![]),
            node(
                "cat",
                "ConcatFromSequence",
                &["pair"],
                &["y"],
                vec![axis(0)],
            ),
        ]
    };
    let x = [
        0.3, -0.7, 1.1, 0.4, -0.2, 0.9, -1.3, 0.5, 0.8, -0.6, 0.1, 0.2,
    ];
    assert_derivatives("split q, k, v", device, &[(&x, &[2, 6])], |tape, v| {
        let out = run_nodes(tape, device, nodes(), &["y"], v[0].clone())?;
        let y = out.into_iter().next().expect("one output");
        let g = graph(
            vec![node("sq", "Mul", &["y", "y"], &["z"], vec![])],
            &["z"],
            OPSET,
        );
        let z = run_graph(tape, device, &g, vec![("y", y)])?;
        Ok(z.into_iter().next().expect("one output"))
    });
    // The values: y = [tanh(q·k + v); q] with q, k, v the column pairs of x.
    let tape = Tape::new();
    let out = run_nodes(
        &tape,
        device,
        nodes(),
        &["y"],
        float(&tape, device, &x, &[2, 6]),
    )
    .unwrap();
    let mut expected = Vec::new();
    for r in 0..2 {
        for c in 0..2 {
            let (q, k, v) = (x[r * 6 + c], x[r * 6 + 2 + c], x[r * 6 + 4 + c]);
            expected.push((q * k + v).tanh());
        }
    }
    for r in 0..2 {
        expected.extend_from_slice(&x[r * 6..r * 6 + 2]);
    }
    assert_close("q·k + v", &out[0], &expected, &[4, 2], 1e-15);
}

fn integer_sequences(device: Device) {
    let tape = Tape::new();
    // The shape [2, 5] split into [2] and [5], reassembled as [5, 2].
    let nodes = vec![
        node("sh", "Shape", &["x"], &["shape"], vec![]),
        node("s", "SplitToSequence", &["shape"], &["seq"], vec![axis(0)]),
        at("a", "seq", 0, "rows"),
        at("b", "seq", 1, "cols"),
        node(
            "k",
            "SequenceConstruct",
            &["cols", "rows"],
            &["pair"],
            vec![],
        ),
        node("c", "ConcatFromSequence", &["pair"], &["y"], vec![axis(0)]),
        node(
            "st",
            "ConcatFromSequence",
            &["pair"],
            &["z"],
            vec![axis(0), attr("new_axis", Attribute::Int(1))],
        ),
    ];
    let x = float(&tape, device, &X, &[2, 5]);
    let out = run_nodes(&tape, device, nodes, &["y", "z"], x).unwrap();
    assert_eq!(
        (ints(&out[0]).data, ints(&out[0]).dims),
        (vec![5, 2], vec![2])
    );
    assert_eq!(
        (ints(&out[1]).data, ints(&out[1]).dims),
        (vec![5, 2], vec![2, 1])
    );
}

fn bad_graphs(device: Device) {
    let tape = Tape::new();
    let x = || float(&tape, device, &X, &[2, 5]);
    let split = |attrs| node("s", "SplitToSequence", &["x"], &["seq"], attrs);
    let fails = |nodes: Vec<Node>, outputs: &[&str], name: &str| {
        error_text(run_nodes(&tape, device, nodes, outputs, x()), name)
    };
    let text = fails(
        vec![split(vec![axis(0)]), at("a", "seq", 3, "y")],
        &["y"],
        "a",
    );
    assert!(
        text.contains("position 3") && text.contains("2 tensors"),
        "{text}"
    );
    let text = fails(vec![split(vec![axis(2)])], &["seq"], "s");
    assert!(text.contains("axis 2"), "{text}");
    let text = fails(
        vec![split(vec![axis(1), attr("keepdims", Attribute::Int(2))])],
        &["seq"],
        "s",
    );
    assert!(text.contains("keepdims"), "{text}");
    let text = fails(
        vec![split(vec![]), node("n", "Neg", &["seq"], &["y"], vec![])],
        &["y"],
        "n",
    );
    assert!(
        text.contains("input 0 is a sequence of 2 tensors"),
        "{text}"
    );
    let text = fails(vec![at("a", "x", 0, "y")], &["y"], "a");
    assert!(
        text.contains("must be a sequence") && text.contains("[2, 5]"),
        "{text}"
    );
    let text = fails(
        vec![node(
            "k",
            "SequenceConstruct",
            &["x", "p0"],
            &["seq"],
            vec![],
        )],
        &["seq"],
        "k",
    );
    assert!(text.contains("one element type"), "{text}");
    let text = fails(
        vec![
            split(vec![]),
            node("c", "ConcatFromSequence", &["seq"], &["y"], vec![]),
        ],
        &["y"],
        "c",
    );
    assert!(text.contains("'axis' is required"), "{text}");
    let text = fails(
        vec![
            node("e", "Slice", &["x", "p0", "p0", "p0"], &["empty"], vec![]),
            node("s", "SplitToSequence", &["empty"], &["seq"], vec![]),
            node("c", "ConcatFromSequence", &["seq"], &["y"], vec![axis(0)]),
        ],
        &["y"],
        "c",
    );
    assert!(text.contains("empty sequence"), "{text}");
    for split in [int(&[2, 2], &[2]), int(&[0], &[]), int(&[6, -1], &[2])] {
        let nodes = vec![node(
            "s",
            "SplitToSequence",
            &["x", "split"],
            &["seq"],
            vec![axis(1)],
        )];
        let g = graph(nodes, &["seq"], OPSET);
        let result = run_graph(&tape, device, &g, vec![("x", x()), ("split", split)]);
        let text = error_text(result, "s");
        assert!(text.contains("split"), "{text}");
    }
    let text = fails(
        vec![node("l", "SequenceLength", &["x", "x"], &["y"], vec![])],
        &["y"],
        "l",
    );
    assert!(text.contains("expects 1 inputs, got 2"), "{text}");
    // A sequence cannot be the graph's output.
    let g = graph(vec![split(vec![])], &["seq"], OPSET);
    match run_graph(&tape, device, &g, vec![("x", x())]) {
        Err(OnnxError::InvalidGraph(text)) => {
            assert!(text.contains("'seq' is a sequence"), "{text}")
        }
        other => panic!("expected an invalid-graph error, got {other:?}"),
    }
}

device_tests!(
    split_pieces,
    construct_and_concat,
    split_derivatives,
    integer_sequences,
    bad_graphs,
);
