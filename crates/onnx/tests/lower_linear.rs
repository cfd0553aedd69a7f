//! `Gemm` and `MatMul` lowered onto the tape, on every device: values against products written
//! out as loops here (transposes, alpha and beta, every broadcast of C; numpy's 1-D promotion
//! and batch broadcasting), first and second derivatives against f64 finite differences, and
//! every malformed node refused with an error naming it.

mod common;

use common::{
    assert_close, assert_derivatives, assert_node_error, assert_unsupported, evaluate, float, int,
    one_node, run_error, seeded, tensor,
};
use curvature_onnx::ir::Attribute;
use curvature_onnx::lower::IntTensor;
use curvature_tensor::Device;

/// `alpha·op(A)·op(B) + beta·C` with C broadcast, written out.
#[allow(clippy::too_many_arguments)]
fn gemm_reference(
    a: &[f64],
    a_dims: [usize; 2],
    b: &[f64],
    b_dims: [usize; 2],
    c: Option<(&[f64], &[usize])>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
) -> Vec<f64> {
    let (m, k) = if trans_a {
        (a_dims[1], a_dims[0])
    } else {
        (a_dims[0], a_dims[1])
    };
    let n = if trans_b { b_dims[0] } else { b_dims[1] };
    let at = |i: usize, p: usize| {
        if trans_a {
            a[p * a_dims[1] + i]
        } else {
            a[i * a_dims[1] + p]
        }
    };
    let bt = |p: usize, j: usize| {
        if trans_b {
            b[j * b_dims[1] + p]
        } else {
            b[p * b_dims[1] + j]
        }
    };
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            let c_ij = c.map_or(0.0, |(c, dims)| match dims {
                [] => c[0],
                [cn] => c[if *cn == 1 { 0 } else { j }],
                [cm, cn] => {
                    let r = if *cm == 1 { 0 } else { i };
                    let s = if *cn == 1 { 0 } else { j };
                    c[r * cn + s]
                }
                _ => unreachable!("C has rank at most 2"),
            });
            y[i * n + j] = alpha * dot + beta * c_ij;
        }
    }
    y
}

fn gemm_values(device: Device) {
    let a_dims = [4, 3]; // transA: op(A) is [3, 4]
    let b_dims = [2, 4]; // transB: op(B) is [4, 2]
    let a = seeded(&a_dims, 1, -1.0, 1.0, device);
    let b = seeded(&b_dims, 2, -1.0, 1.0, device);
    for c_dims in [vec![], vec![2], vec![1], vec![3, 1], vec![1, 2], vec![3, 2]] {
        let c = seeded(&c_dims, 3, -1.0, 1.0, device);
        let graph = one_node(
            "Gemm",
            &["A", "B", "C"],
            &["Y"],
            vec![
                ("alpha", float(0.5)),
                ("beta", float(-2.0)),
                ("transA", int(1)),
                ("transB", int(1)),
            ],
            13,
        );
        let out = evaluate(&graph, &[a.clone(), b.clone(), c.clone()]);
        let reference = gemm_reference(
            &a.to_f64s().unwrap(),
            a_dims,
            &b.to_f64s().unwrap(),
            b_dims,
            Some((&c.to_f64s().unwrap(), &c_dims)),
            0.5,
            -2.0,
            true,
            true,
        );
        assert_eq!(out[0].0, [3, 2], "C {c_dims:?}");
        assert_close(&format!("Gemm, C {c_dims:?}"), &out[0].1, &reference, 1e-12);
    }
    // No C, no transposes, default alpha.
    let a = seeded(&[2, 3], 4, -1.0, 1.0, device);
    let b = seeded(&[3, 4], 5, -1.0, 1.0, device);
    let graph = one_node("Gemm", &["A", "B"], &["Y"], vec![], 13);
    let out = evaluate(&graph, &[a.clone(), b.clone()]);
    let reference = gemm_reference(
        &a.to_f64s().unwrap(),
        [2, 3],
        &b.to_f64s().unwrap(),
        [3, 4],
        None,
        1.0,
        1.0,
        false,
        false,
    );
    assert_eq!(out[0].0, [2, 4]);
    assert_close("Gemm without C", &out[0].1, &reference, 1e-12);
}

/// numpy's `matmul` written out: 1-D operands promoted and the promoted axis removed, batch
/// axes broadcast.
fn matmul_reference(
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
) -> (Vec<usize>, Vec<f64>) {
    let a_mat: Vec<usize> = if a_dims.len() == 1 {
        vec![1, a_dims[0]]
    } else {
        a_dims.to_vec()
    };
    let b_mat: Vec<usize> = if b_dims.len() == 1 {
        vec![b_dims[0], 1]
    } else {
        b_dims.to_vec()
    };
    let (m, k) = (a_mat[a_mat.len() - 2], a_mat[a_mat.len() - 1]);
    let n = b_mat[b_mat.len() - 1];
    let a_batch = &a_mat[..a_mat.len() - 2];
    let b_batch = &b_mat[..b_mat.len() - 2];
    let rank = a_batch.len().max(b_batch.len());
    let pad = |d: &[usize]| {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (ab, bb) = (pad(a_batch), pad(b_batch));
    let batch: Vec<usize> = ab.iter().zip(&bb).map(|(&x, &y)| x.max(y)).collect();
    let count: usize = batch.iter().product();
    let offset = |dims: &[usize], index: &[usize]| {
        dims.iter()
            .zip(index)
            .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
    };
    let mut y = Vec::new();
    for flat in 0..count {
        let mut index = vec![0; rank];
        let mut rest = flat;
        for axis in (0..rank).rev() {
            index[axis] = rest % batch[axis];
            rest /= batch[axis];
        }
        let (ao, bo) = (offset(&ab, &index) * m * k, offset(&bb, &index) * k * n);
        for i in 0..m {
            for j in 0..n {
                y.push((0..k).map(|p| a[ao + i * k + p] * b[bo + p * n + j]).sum());
            }
        }
    }
    let mut dims = batch;
    if a_dims.len() > 1 {
        dims.push(m);
    }
    if b_dims.len() > 1 {
        dims.push(n);
    }
    (dims, y)
}

fn matmul_values(device: Device) {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3], &[3]),
        (&[3], &[3, 2]),
        (&[2, 3], &[3]),
        (&[2, 3], &[3, 4]),
        (&[2, 1, 2, 3], &[4, 3, 2]),
        (&[3], &[2, 3, 2]),
    ];
    let graph = one_node("MatMul", &["A", "B"], &["Y"], vec![], 13);
    for (i, (a_dims, b_dims)) in cases.into_iter().enumerate() {
        let a = seeded(a_dims, 10 + i as u64, -1.0, 1.0, device);
        let b = seeded(b_dims, 20 + i as u64, -1.0, 1.0, device);
        let out = evaluate(&graph, &[a.clone(), b.clone()]);
        let (dims, reference) =
            matmul_reference(&a.to_f64s().unwrap(), a_dims, &b.to_f64s().unwrap(), b_dims);
        assert_eq!(out[0].0, dims, "{a_dims:?} @ {b_dims:?}");
        assert_close(
            &format!("MatMul {a_dims:?} @ {b_dims:?}"),
            &out[0].1,
            &reference,
            1e-12,
        );
    }
}

fn gemm_derivatives(device: Device) {
    let graph = one_node(
        "Gemm",
        &["A", "B", "C"],
        &["Y"],
        vec![
            ("alpha", float(1.5)),
            ("beta", float(0.5)),
            ("transB", int(1)),
        ],
        13,
    );
    let inputs = [
        seeded(&[2, 3], 1, -1.0, 1.0, device),
        seeded(&[2, 3], 2, -1.0, 1.0, device),
        seeded(&[2], 3, -1.0, 1.0, device),
    ];
    assert_derivatives("Gemm", &graph, &inputs);
}

fn matmul_derivatives(device: Device) {
    let graph = one_node("MatMul", &["A", "B"], &["Y"], vec![], 13);
    let inputs = [
        seeded(&[2, 1, 3], 1, -1.0, 1.0, device),
        seeded(&[2, 3, 2], 2, -1.0, 1.0, device),
    ];
    assert_derivatives("MatMul batched", &graph, &inputs);
    let inputs = [
        seeded(&[3], 3, -1.0, 1.0, device),
        seeded(&[3, 2], 4, -1.0, 1.0, device),
    ];
    assert_derivatives("MatMul vector", &graph, &inputs);
}

device_tests!(
    gemm_values,
    matmul_values,
    gemm_derivatives,
    matmul_derivatives
);

#[test]
fn gemm_errors() {
    let cpu = Device::Cpu;
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, cpu);
    let gemm = |attributes: Vec<(&str, Attribute)>| {
        one_node("Gemm", &["A", "B", "C"], &["Y"], attributes, 13)
    };
    let e = run_error(&gemm(vec![]), &[t(&[2, 3, 1]), t(&[3, 2]), t(&[2])], &[]);
    assert_node_error(&e, "must be matrices");
    let e = run_error(&gemm(vec![]), &[t(&[2, 3]), t(&[2, 2]), t(&[2])], &[]);
    assert_node_error(&e, "inner dimensions differ");
    let e = run_error(&gemm(vec![]), &[t(&[2, 3]), t(&[3, 4]), t(&[3])], &[]);
    assert_node_error(&e, "does not broadcast");
    let e = run_error(&gemm(vec![]), &[t(&[2, 3]), t(&[3, 4]), t(&[1, 2, 4])], &[]);
    assert_node_error(&e, "does not broadcast");
    let e = run_error(
        &gemm(vec![("transA", int(2))]),
        &[t(&[2, 3]), t(&[3, 2]), t(&[2])],
        &[],
    );
    assert_node_error(&e, "must be 0 or 1");
    let e = run_error(
        &gemm(vec![("alpha", int(2))]),
        &[t(&[2, 3]), t(&[3, 2]), t(&[2])],
        &[],
    );
    assert_node_error(&e, "must be a float");
    let e = run_error(
        &gemm(vec![("gamma", float(1.0))]),
        &[t(&[2, 3]), t(&[3, 2]), t(&[2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "gamma");
    // Legacy broadcast = 0: C must already be [M, N].
    let legacy = one_node(
        "Gemm",
        &["A", "B", "C"],
        &["Y"],
        vec![("broadcast", int(0))],
        6,
    );
    let e = run_error(&legacy, &[t(&[2, 3]), t(&[3, 2]), t(&[2])], &[]);
    assert_node_error(&e, "does not broadcast");
    // An integer operand.
    let ints = IntTensor {
        dims: vec![2],
        data: vec![1, 2],
    };
    let e = run_error(&gemm(vec![]), &[t(&[2, 3]), t(&[3, 2])], &[ints]);
    assert_unsupported(&e, "dtype", "input 2 (C)");
    // Too few and too many inputs.
    let e = run_error(
        &one_node("Gemm", &["A"], &["Y"], vec![], 13),
        &[t(&[2, 3])],
        &[],
    );
    assert_node_error(&e, "takes 2 to 3 inputs, got 1");
    let four = one_node("Gemm", &["A", "B", "C", "D"], &["Y"], vec![], 13);
    let e = run_error(&four, &[t(&[2, 3]), t(&[3, 2]), t(&[2]), t(&[2])], &[]);
    assert_node_error(&e, "takes 2 to 3 inputs, got 4");
    // An omitted A.
    let e = run_error(
        &one_node("Gemm", &["", "B"], &["Y"], vec![], 13),
        &[t(&[3, 2])],
        &[],
    );
    assert_node_error(&e, "input 0 (A) is missing");
}

#[test]
fn matmul_errors() {
    let cpu = Device::Cpu;
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, cpu);
    let graph = one_node("MatMul", &["A", "B"], &["Y"], vec![], 13);
    let e = run_error(&graph, &[t(&[2, 3]), t(&[2, 3])], &[]);
    assert_node_error(&e, "cannot multiply [2, 3] by [2, 3]");
    let e = run_error(&graph, &[t(&[2, 2, 3]), t(&[3, 3, 2])], &[]);
    assert_node_error(&e, "cannot multiply");
    let scalar = tensor(&[2.0], &[], cpu);
    let e = run_error(&graph, &[scalar, t(&[3])], &[]);
    assert_node_error(&e, "cannot multiply");
    let e = run_error(
        &one_node("MatMul", &["A", "B"], &["Y"], vec![("transA", int(1))], 13),
        &[t(&[2, 3]), t(&[3, 2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "transA");
    let e = run_error(
        &one_node("MatMul", &["A", "B"], &["Y", "Z"], vec![], 13),
        &[t(&[2, 3]), t(&[3, 2])],
        &[],
    );
    assert_unsupported(&e, "output", "output 1");
}
