//! `Einsum`, `Pad` (constant mode, cropping with negative pads) and `Tile` lowered onto the
//! tape (and `Tile` on the host), on every device: values against loops written here and
//! against ONNX Runtime, first and second derivatives against f64 finite differences, and the
//! errors of bad nodes.

mod common;

use std::collections::HashMap;

use common::{
    assert_close, assert_derivatives, assert_matches_onnxruntime, assert_node_error,
    assert_unsupported, evaluate, float, int, ints, one_node, run_error, run_vals, seeded, string,
    tensor,
};
use curvature_onnx::ir::{Attribute, Graph};
use curvature_onnx::lower::{IntTensor, Val};
use curvature_onnx::OnnxError;
use curvature_tape::Tape;
use curvature_tensor::{Device, Tensor};

/// Einsum by brute force: every assignment of every index, the products of the operands'
/// entries summed into the output entry. `equation` is explicit (`…->…`).
fn einsum_reference(equation: &str, operands: &[(&[f64], &[usize])]) -> (Vec<usize>, Vec<f64>) {
    let (lhs, out) = equation.split_once("->").expect("explicit");
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let mut size = HashMap::new();
    for (term, (_, dims)) in terms.iter().zip(operands) {
        for (c, d) in term.iter().zip(dims.iter()) {
            size.insert(*c, *d);
        }
    }
    let letters: Vec<char> = size.keys().copied().collect();
    let out: Vec<char> = out.chars().collect();
    let out_dims: Vec<usize> = out.iter().map(|c| size[c]).collect();
    let mut y = vec![0.0; out_dims.iter().product()];
    let total: usize = letters.iter().map(|c| size[c]).product();
    for mut flat in 0..total {
        let mut at = HashMap::new();
        for c in &letters {
            at.insert(*c, flat % size[c]);
            flat /= size[c];
        }
        let offset = |term: &[char], dims: &[usize]| {
            term.iter().zip(dims).fold(0, |o, (c, d)| o * d + at[c])
        };
        let product: f64 = terms
            .iter()
            .zip(operands)
            .map(|(term, (data, dims))| data[offset(term, dims)])
            .product();
        y[offset(&out, &out_dims)] += product;
    }
    (out_dims, y)
}

fn einsum_values(device: Device) {
    let cases: [(&str, &str, &[&[usize]]); 6] = [
        (
            "bhqd,bhkd->bhqk",
            "bhqd,bhkd->bhqk",
            &[&[2, 2, 3, 4], &[2, 2, 5, 4]],
        ),
        (
            "bhqk,bhkd->bhqd",
            "bhqk,bhkd->bhqd",
            &[&[1, 2, 3, 4], &[1, 2, 4, 2]],
        ),
        ("bn,anm->bam", "bn,anm->bam", &[&[3, 4], &[2, 4, 5]]),
        // Implicit output: the indices that appear once, alphabetically.
        ("kj,ji", "kj,ji->ik", &[&[2, 3], &[3, 4]]),
        // k only in the first operand, summed first; an outer product on l.
        ("ijk,jl->li", "ijk,jl->li", &[&[2, 3, 4], &[3, 5]]),
        ("abc->cb", "abc->cb", &[&[2, 3, 4]]),
    ];
    for (seed, (equation, explicit, shapes)) in cases.into_iter().enumerate() {
        let inputs: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, dims)| seeded(dims, (10 * seed + i) as u64, -1.0, 1.0, device))
            .collect();
        let names = ["A", "B"];
        let graph = one_node(
            "Einsum",
            &names[..inputs.len()],
            &["Y"],
            vec![("equation", string(equation))],
            12,
        );
        let out = evaluate(&graph, &inputs);
        let data: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_f64s().unwrap()).collect();
        let operands: Vec<(&[f64], &[usize])> = data
            .iter()
            .zip(shapes.iter())
            .map(|(d, s)| (d.as_slice(), *s))
            .collect();
        let (dims, expected) = einsum_reference(explicit, &operands);
        assert_eq!(out[0].0, dims, "{equation}");
        assert_close(equation, &out[0].1, &expected, 1e-12);
    }
}

fn einsum_derivatives(device: Device) {
    for (equation, shapes) in [
        ("bqd,bkd->bqk", [&[1, 2, 3][..], &[1, 2, 3]]),
        ("ijk,jl->li", [&[2, 2, 2], &[2, 3]]),
    ] {
        let inputs: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, dims)| seeded(dims, i as u64 + 40, -1.0, 1.0, device))
            .collect();
        let graph = one_node(
            "Einsum",
            &["A", "B"],
            &["Y"],
            vec![("equation", string(equation))],
            12,
        );
        assert_derivatives(equation, &graph, &inputs);
    }
}

/// A graph input: a float tensor (a tape leaf) or a host integer tensor.
enum Arg {
    F(Tensor),
    I(IntTensor),
}

/// Runs `graph` with its inputs bound, in order, to `args`; its first output's dims and values.
fn run_args(
    graph: &Graph,
    args: Vec<Arg>,
    device: Device,
) -> Result<(Vec<usize>, Vec<f64>), OnnxError> {
    let tape = Tape::new();
    let values = args
        .into_iter()
        .map(|a| match a {
            Arg::F(t) => Val::Float(tape.leaf(t)),
            Arg::I(t) => Val::Int(t),
        })
        .collect();
    match run_vals(graph, values, &tape, device)?.swap_remove(0) {
        Val::Float(v) => Ok((v.dims().to_vec(), v.value().to_f64s()?)),
        Val::Int(t) => Ok((t.dims, t.data.iter().map(|&v| v as f64).collect())),
    }
}

fn list(values: &[i64]) -> IntTensor {
    IntTensor {
        dims: vec![values.len()],
        data: values.to_vec(),
    }
}

/// Constant padding of a matrix `[rows, cols]`: `pads` = [top, left, bottom, right] (negative
/// crops), `value` outside.
fn pad_reference(x: &[f64], (rows, cols): (usize, usize), pads: [i64; 4], value: f64) -> Vec<f64> {
    let out_rows = (rows as i64 + pads[0] + pads[2]) as usize;
    let out_cols = (cols as i64 + pads[1] + pads[3]) as usize;
    let mut y = Vec::new();
    for r in 0..out_rows as i64 {
        for c in 0..out_cols as i64 {
            let (sr, sc) = (r - pads[0], c - pads[1]);
            let inside = (0..rows as i64).contains(&sr) && (0..cols as i64).contains(&sc);
            y.push(if inside {
                x[(sr as usize) * cols + sc as usize]
            } else {
                value
            });
        }
    }
    y
}

fn pad_values(device: Device) {
    let x = seeded(&[3, 4], 1, -1.0, 1.0, device);
    let xs = x.to_f64s().unwrap();
    // Opset 13: pads and the constant as inputs; the second axis cropped on the left.
    let graph = one_node("Pad", &["X", "pads", "c"], &["Y"], vec![], 13);
    let pads = [1, -1, 0, 2];
    let args = vec![
        Arg::F(x.clone()),
        Arg::I(list(&pads)),
        Arg::F(tensor(&[0.5], &[], device)),
    ];
    let (dims, y) = run_args(&graph, args, device).unwrap();
    assert_eq!(dims, [4, 5]);
    assert_close(
        "Pad constant",
        &y,
        &pad_reference(&xs, (3, 4), pads, 0.5),
        0.0,
    );
    // Opset 18: only the last axis (axes input), zeros; cropping on both sides of it.
    let graph = one_node("Pad", &["X", "pads", "", "axes"], &["Y"], vec![], 18);
    let args = vec![
        Arg::F(x.clone()),
        Arg::I(list(&[-1, -2])),
        Arg::I(list(&[-1])),
    ];
    let (dims, y) = run_args(&graph, args, device).unwrap();
    assert_eq!(dims, [3, 1]);
    assert_close(
        "Pad axes",
        &y,
        &pad_reference(&xs, (3, 4), [0, -1, 0, -2], 0.0),
        0.0,
    );
    // Opset 2: pads and value as attributes.
    let graph = one_node(
        "Pad",
        &["X"],
        &["Y"],
        vec![("pads", ints(&[0, 2, 1, 0])), ("value", float(-3.0))],
        2,
    );
    let out = evaluate(&graph, std::slice::from_ref(&x));
    assert_eq!(out[0].0, [4, 6]);
    assert_close(
        "Pad opset 2",
        &out[0].1,
        &pad_reference(&xs, (3, 4), [0, 2, 1, 0], -3.0),
        0.0,
    );
}

fn tile_values(device: Device) {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let graph = one_node("Tile", &["X", "repeats"], &["Y"], vec![], 13);
    let args = vec![Arg::F(tensor(&x, &[2, 3], device)), Arg::I(list(&[2, 2]))];
    let (dims, y) = run_args(&graph, args, device).unwrap();
    assert_eq!(dims, [4, 6]);
    let expected: Vec<f64> = (0..24)
        .map(|e| x[((e / 6) % 2) * 3 + (e % 6) % 3])
        .collect();
    assert_close("Tile", &y, &expected, 0.0);
    let args = vec![Arg::F(tensor(&x, &[2, 3], device)), Arg::I(list(&[0, 1]))];
    let (dims, y) = run_args(&graph, args, device).unwrap();
    assert_eq!(dims, [0, 3]);
    assert!(y.is_empty());
    // Integers (a shape being tiled) on the host.
    let ints_x = IntTensor {
        dims: vec![1, 2],
        data: vec![7, -8],
    };
    let tape = Tape::new();
    let out = run_vals(
        &graph,
        vec![Val::Int(ints_x), Val::Int(list(&[3, 2]))],
        &tape,
        device,
    )
    .unwrap();
    let Val::Int(t) = &out[0] else {
        panic!("an integer output")
    };
    assert_eq!(t.dims, [3, 4]);
    assert_eq!(t.data, [7, -8, 7, -8].repeat(3));
}

fn pad_tile_derivatives(device: Device) {
    let x = seeded(&[2, 3], 2, -1.0, 1.0, device);
    // Differentiable in the padded tensor and in the constant.
    let pad = one_node("Pad", &["X", "pads", "c"], &["Y"], vec![], 13);
    let tape_fn = |vars: &[curvature_tape::Var]| -> curvature_tape::Result<curvature_tape::Var> {
        let values = vec![
            Val::Float(vars[0].clone()),
            Val::Int(list(&[1, -1, 0, 1])),
            Val::Float(vars[1].clone()),
        ];
        run_vals(&pad, values, vars[0].tape(), vars[0].device())
            .map(|mut v| match v.swap_remove(0) {
                Val::Float(v) => v,
                Val::Int(_) => unreachable!("a float output"),
            })
            .map_err(|e| curvature_tape::TapeError::InvalidArgument {
                op: "Pad",
                msg: e.to_string(),
            })
    };
    let inputs = [x.clone(), tensor(&[0.25], &[1], device)];
    let options = curvature_tape::check::CheckOptions::default();
    let first = curvature_tape::check::gradcheck(tape_fn, &inputs, options).unwrap();
    assert!(first.passed, "Pad gradcheck: {first:#?}");
    let second = curvature_tape::check::gradgradcheck(tape_fn, &inputs, options, 3).unwrap();
    assert!(second.passed, "Pad gradgradcheck: {second:#?}");
    // Tile's repeats through the legacy-free form: reuse the float path with fixed repeats.
    let tile = one_node("Tile", &["X", "r"], &["Y"], vec![], 13);
    let tile_fn = |vars: &[curvature_tape::Var]| -> curvature_tape::Result<curvature_tape::Var> {
        let values = vec![Val::Float(vars[0].clone()), Val::Int(list(&[2, 1]))];
        run_vals(&tile, values, vars[0].tape(), vars[0].device())
            .map(|mut v| match v.swap_remove(0) {
                Val::Float(v) => v.mul(&v).unwrap(),
                Val::Int(_) => unreachable!("a float output"),
            })
            .map_err(|e| curvature_tape::TapeError::InvalidArgument {
                op: "Tile",
                msg: e.to_string(),
            })
    };
    let first =
        curvature_tape::check::gradcheck(tile_fn, std::slice::from_ref(&x), options).unwrap();
    assert!(first.passed, "Tile gradcheck: {first:#?}");
    let second =
        curvature_tape::check::gradgradcheck(tile_fn, std::slice::from_ref(&x), options, 4)
            .unwrap();
    assert!(second.passed, "Tile gradgradcheck: {second:#?}");
}

/// The same nodes run by ONNX Runtime (`scripts/make_onnx_op_fixtures.py`).
fn einsum_match_onnxruntime(device: Device) {
    for (case, equation) in [
        ("einsum_attention", "bhqd,bhkd->bhqk"),
        ("einsum_bilinear", "bn,anm->bam"),
        ("einsum_implicit", "ij,jk"),
        ("einsum_summed", "ijk,jl->li"),
        ("einsum_transpose", "abc->cb"),
    ] {
        assert_matches_onnxruntime(
            case,
            "Einsum",
            12,
            vec![("equation", string(equation))],
            device,
        );
    }
}

device_tests!(
    einsum_values,
    einsum_derivatives,
    pad_values,
    tile_values,
    pad_tile_derivatives,
    einsum_match_onnxruntime
);

#[test]
fn einsum_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, Device::Cpu);
    let einsum = |equation: &str, n: usize| {
        one_node(
            "Einsum",
            &["A", "B", "C"][..n],
            &["Y"],
            vec![("equation", string(equation))],
            12,
        )
    };
    let e = run_error(
        &einsum("...ij,...jk->...ik", 2),
        &[t(&[2, 3]), t(&[3, 2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "ellipsis");
    let e = run_error(&einsum("ii->i", 1), &[t(&[2, 2])], &[]);
    assert_unsupported(&e, "attribute", "repeats index 'i'");
    let e = run_error(
        &einsum("ab,bc,cd->ad", 3),
        &[t(&[2, 2]), t(&[2, 2]), t(&[2, 2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "3 operands");
    let e = run_error(&einsum("ij,jk->ik", 2), &[t(&[2, 3]), t(&[4, 2])], &[]);
    assert_node_error(&e, "index 'j' has sizes 3 and 4");
    let e = run_error(&einsum("ij,jk->ik", 2), &[t(&[2, 3, 1]), t(&[3, 2])], &[]);
    assert_node_error(&e, "operand 0 'ij' has 2 indices but rank 3");
    let e = run_error(&einsum("ij,jk->iz", 2), &[t(&[2, 3]), t(&[3, 2])], &[]);
    assert_node_error(&e, "output index 'z'");
    let e = run_error(&einsum("ij,jk->ii", 2), &[t(&[2, 3]), t(&[3, 2])], &[]);
    assert_node_error(&e, "repeated output index 'i'");
    let e = run_error(&einsum("i1,jk->ik", 2), &[t(&[2, 3]), t(&[3, 2])], &[]);
    assert_node_error(&e, "the character '1'");
    let e = run_error(&einsum("ij->ji", 2), &[t(&[2, 3]), t(&[3, 2])], &[]);
    assert_node_error(&e, "names 1 operands, the node has 2 inputs");
    let ints = IntTensor {
        dims: vec![2],
        data: vec![1, 2],
    };
    let e = run_error(&einsum("i->i", 1), &[], &[ints]);
    assert_unsupported(&e, "dtype", "input 0");
    let e = run_error(
        &one_node("Einsum", &["A"], &["Y"], vec![("equation", int(1))], 12),
        &[t(&[2])],
        &[],
    );
    assert_node_error(&e, "'equation' must be a string");
}

#[test]
fn pad_tile_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, Device::Cpu);
    let pad = |attributes: Vec<(&str, Attribute)>| {
        one_node("Pad", &["X", "pads"], &["Y"], attributes, 13)
    };
    let run = |graph: &Graph, x: Tensor, ints: Vec<IntTensor>| {
        let mut args = vec![Arg::F(x)];
        args.extend(ints.into_iter().map(Arg::I));
        run_args(graph, args, Device::Cpu).expect_err("refused")
    };
    let e = run(
        &pad(vec![("mode", string("reflect"))]),
        t(&[2, 3]),
        vec![list(&[0, 1, 0, 1])],
    );
    assert_unsupported(&e, "attribute", "mode = 'reflect'");
    let e = run(&pad(vec![]), t(&[2, 3]), vec![list(&[0, 1, 0])]);
    assert_node_error(&e, "must hold 2 entries per padded axis (2)");
    let e = run(&pad(vec![]), t(&[2, 3]), vec![list(&[0, -2, 0, -2])]);
    assert_node_error(&e, "do not fit X");
    let e = run(&pad(vec![]), t(&[2, 3]), vec![list(&[0, -4, 0, 2])]);
    assert_node_error(&e, "crop more than the 3 entries of axis 1");
    let e = run(&pad(vec![]), t(&[2, 3]), vec![list(&[0, i64::MAX, 0, 1])]);
    assert_node_error(&e, "do not fit X");
    let e = run(
        &pad(vec![]),
        t(&[2, 3]),
        vec![list(&[0, 1 << 30, 0, 1 << 30])],
    );
    assert_node_error(&e, "more than");
    let e = run(
        &pad(vec![]),
        t(&[2, 3]),
        vec![list(&[0, i64::MIN, 0, i64::MAX])],
    );
    assert_node_error(&e, "crop more than");
    let int_x = vec![Arg::I(list(&[1, 2])), Arg::I(list(&[0, 1]))];
    let e = run_args(&pad(vec![]), int_x, Device::Cpu).expect_err("refused");
    assert_unsupported(&e, "dtype", "padding an integer tensor");
    let with_value = one_node("Pad", &["X", "pads", "c"], &["Y"], vec![], 13);
    let args = vec![
        Arg::F(t(&[2, 3])),
        Arg::I(list(&[0, 1, 0, 1])),
        Arg::F(t(&[2])),
    ];
    let e = run_args(&with_value, args, Device::Cpu).expect_err("refused");
    assert_node_error(&e, "constant_value must be one float");
    let axes = one_node("Pad", &["X", "pads", "", "axes"], &["Y"], vec![], 13);
    let e = run(&axes, t(&[2, 3]), vec![list(&[0, 1]), list(&[1])]);
    assert_node_error(&e, "expects 2 to 3 inputs, got 4");
    let legacy = one_node("Pad", &["X"], &["Y"], vec![], 2);
    let e = run(&legacy, t(&[2, 3]), vec![]);
    assert_node_error(&e, "attribute 'pads' is required");
    let tile = one_node("Tile", &["X", "r"], &["Y"], vec![], 13);
    let e = run(&tile, t(&[2, 3]), vec![list(&[2])]);
    assert_node_error(&e, "one entry per axis");
    let e = run(&tile, t(&[2, 3]), vec![list(&[2, -1])]);
    assert_node_error(&e, "negative repeat");
    let e = run(&tile, t(&[2, 3]), vec![list(&[1 << 40, 1 << 40])]);
    assert_node_error(&e, "more than");
}
