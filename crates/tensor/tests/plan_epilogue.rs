//! Products with their epilogues in compiled plans: on a GPU a product followed by a scale, a
//! row or column bias, another product (or any value that dies there) and tanh or sigmoid is one
//! `gemm` step; the plan equals the op-by-op path and an f64 reference written here (f64 to
//! 1e-12, f32 to 1e-5), with batched products and split-K reductions; the CPU keeps its fused
//! steps.

mod common;

use curvature_tensor::plan::{capture, Plan, PlanStep, Prim};
use curvature_tensor::{Activation, Bias, DType, Device, Tensor};

/// Deterministic values in [-1, 1), different for each `seed`.
fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 37 + seed * 101) % 97) as f64 / 48.5 - 1.0)
        .collect()
}

fn tensor(values: &[f64], dims: &[usize], dtype: DType, device: Device) -> Tensor {
    Tensor::from_f64s(values, dims, dtype, device).unwrap()
}

/// `[batch, m, k] · [k, n]` in f64.
fn matmul(x: &[f64], w: &[f64], m_total: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m_total * n];
    for r in 0..m_total {
        for j in 0..n {
            out[r * n + j] = (0..k).map(|l| x[r * k + l] * w[l * n + j]).sum();
        }
    }
    out
}

fn sigmoid(y: f64) -> f64 {
    1.0 / (1.0 + (-y).exp())
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1e-12
    } else {
        1e-5
    }
}

fn check(what: &str, got: &Tensor, want: &[f64], dtype: DType) {
    let got = got.to_f64s().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol(dtype) * w.abs().max(1.0),
            "{what}, element {i}: {g} vs {w}"
        );
    }
}

/// The plan's products and their epilogues: (bias, activation, α, β) per `gemm` step, and how
/// many steps are not products.
fn products(plan: &Plan) -> (Vec<(Bias, Activation, f64, f64)>, usize) {
    let mut gemms = Vec::new();
    let mut others = 0;
    for step in plan.steps() {
        match step {
            PlanStep::Call(s) => match &s.prim {
                Prim::Gemm(call) => gemms.push((
                    call.epilogue.bias,
                    call.epilogue.activation,
                    call.epilogue.alpha,
                    call.epilogue.beta,
                )),
                Prim::Matmul(_) => gemms.push((Bias::None, Activation::Identity, 1.0, 0.0)),
                _ => others += 1,
            },
            PlanStep::Fused(_) => others += 1,
        }
    }
    (gemms, others)
}

/// One function of `x` traced, compiled and replayed on a second input: the replay equals the
/// closure run op by op and `reference`; returns the plan.
fn replayed(
    what: &str,
    x_dims: &[usize],
    dtype: DType,
    device: Device,
    f: impl Fn(&Tensor) -> curvature_tensor::Result<Tensor>,
    reference: impl Fn(&[f64]) -> Vec<f64>,
) -> Plan {
    let len: usize = x_dims.iter().product();
    let traced = tensor(&values(len, 1), x_dims, dtype, device);
    let (_, trace) = capture(&[&traced], || Ok(vec![f(&traced)?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    for round in 0..2 {
        let xv = values(len, 2 + round);
        let x = tensor(&xv, x_dims, dtype, device);
        let ours = plan.run(&[&x]).unwrap();
        let op_by_op = f(&x).unwrap();
        check(
            &format!("{what} against op by op"),
            &ours[0],
            &op_by_op.to_f64s().unwrap(),
            dtype,
        );
        check(
            &format!("{what} against f64"),
            &ours[0],
            &reference(&xv),
            dtype,
        );
    }
    plan
}

/// `tanh(α·x·W + b)` with a row bias, over a batch of matrices.
fn scaled_product_row_bias_tanh(device: Device) {
    let (batch, m, k, n) = (2, 3, 5, 4);
    for dtype in [DType::F64, DType::F32] {
        let (wv, bv) = (values(k * n, 7), values(n, 8));
        let w = tensor(&wv, &[k, n], dtype, device);
        let b = tensor(&bv, &[n], dtype, device);
        let plan = replayed(
            "tanh(2.5·x·W + b)",
            &[batch, m, k],
            dtype,
            device,
            |x| x.matmul(&w)?.affine(2.5, 0.0)?.add(&b)?.tanh(),
            |x| {
                let p = matmul(x, &wv, batch * m, k, n);
                (0..p.len())
                    .map(|i| (2.5 * p[i] + bv[i % n]).tanh())
                    .collect()
            },
        );
        let (gemms, others) = products(&plan);
        if device.is_cuda() {
            assert_eq!(gemms, [(Bias::Row, Activation::Tanh, 2.5, 0.0)], "{dtype}");
            assert_eq!(others, 0, "{dtype}");
        } else {
            assert_eq!(
                gemms,
                [(Bias::None, Activation::Identity, 1.0, 0.0)],
                "the CPU keeps its fused steps ({dtype})"
            );
            assert!(others >= 1, "{dtype}");
        }
    }
}

/// `σ(x_z·W_z + c)` with a column bias `c` (one value per row of every matrix), each batch
/// entry with its own W (so the product stays batched: a shared W makes one taller product,
/// whose rows a column vector no longer indexes).
fn product_column_bias_sigmoid(device: Device) {
    let (batch, m, k, n) = (3, 4, 6, 5);
    for dtype in [DType::F64, DType::F32] {
        let (wv, cv) = (values(batch * k * n, 9), values(m, 10));
        let w = tensor(&wv, &[batch, k, n], dtype, device);
        let c = tensor(&cv, &[m, 1], dtype, device);
        let plan = replayed(
            "σ(x·W + c)",
            &[batch, m, k],
            dtype,
            device,
            |x| x.matmul(&w)?.add(&c)?.sigmoid(),
            |x| {
                let mut out = Vec::new();
                for z in 0..batch {
                    let xz = &x[z * m * k..(z + 1) * m * k];
                    let p = matmul(xz, &wv[z * k * n..(z + 1) * k * n], m, k, n);
                    out.extend((0..p.len()).map(|i| sigmoid(p[i] + cv[i / n])));
                }
                out
            },
        );
        if device.is_cuda() {
            let (gemms, others) = products(&plan);
            assert_eq!(
                gemms,
                [(Bias::Column, Activation::Sigmoid, 1.0, 0.0)],
                "{dtype}"
            );
            assert_eq!(others, 0, "{dtype}");
        }
    }
}

/// `x·W₁ + (−0.5)·(x·W₂) + b`: the second product is scaled in its epilogue, accumulates the
/// first product's result (β = 1) and adds the bias; then the same with a long k and a small
/// output, which the GPU splits over k (the epilogue then runs in the split-K reduction).
fn products_accumulate(device: Device) {
    for (batch, m, k, n) in [(2, 3, 4, 5), (1, 4, 200, 3)] {
        for dtype in [DType::F64, DType::F32] {
            let (w1v, w2v, bv) = (values(k * n, 11), values(k * n, 12), values(n, 13));
            let w1 = tensor(&w1v, &[k, n], dtype, device);
            let w2 = tensor(&w2v, &[k, n], dtype, device);
            let b = tensor(&bv, &[n], dtype, device);
            let plan = replayed(
                &format!("x·W₁ − 0.5·x·W₂ + b, k = {k}"),
                &[batch, m, k],
                dtype,
                device,
                |x| {
                    let first = x.matmul(&w1)?;
                    let second = x.matmul(&w2)?.affine(-0.5, 0.0)?;
                    second.add(&first)?.add(&b)
                },
                |x| {
                    let p1 = matmul(x, &w1v, batch * m, k, n);
                    let p2 = matmul(x, &w2v, batch * m, k, n);
                    (0..p1.len())
                        .map(|i| p1[i] - 0.5 * p2[i] + bv[i % n])
                        .collect()
                },
            );
            if device.is_cuda() {
                let (gemms, others) = products(&plan);
                assert_eq!(
                    gemms,
                    [
                        (Bias::None, Activation::Identity, 1.0, 0.0),
                        (Bias::Row, Activation::Identity, -0.5, 1.0)
                    ],
                    "{dtype}, k = {k}"
                );
                assert_eq!(others, 0, "{dtype}, k = {k}");
            }
        }
    }
}

/// Steps the epilogue cannot express stay: a bias that differs per matrix, a value read again
/// after the product's reader, a scale after the bias.
fn other_chains_are_left_alone(device: Device) {
    let (batch, m, k, n) = (2, 3, 4, 5);
    let dtype = DType::F64;
    let (wv, bv) = (values(k * n, 14), values(batch * n, 15));
    let w = tensor(&wv, &[k, n], dtype, device);
    let b = tensor(&bv, &[batch, 1, n], dtype, device);
    let plan = replayed(
        "(x·W + b_z)·3, and x·W read twice",
        &[batch, m, k],
        dtype,
        device,
        |x| {
            let p = x.matmul(&w)?;
            let q = p.add(&b)?.affine(3.0, 0.0)?;
            q.mul(&p)
        },
        |x| {
            let p = matmul(x, &wv, batch * m, k, n);
            (0..p.len())
                .map(|i| (p[i] + bv[(i / (m * n)) * n + i % n]) * 3.0 * p[i])
                .collect()
        },
    );
    let (gemms, others) = products(&plan);
    assert_eq!(gemms, [(Bias::None, Activation::Identity, 1.0, 0.0)]);
    assert_eq!(others, 1);
}

device_tests!(
    scaled_product_row_bias_tanh,
    product_column_bias_sigmoid,
    products_accumulate,
    other_chains_are_left_alone,
);
