//! `gemm_into` against plain f64 loops written here: every transpose combination, leading
//! dimensions and offsets (blocks of larger matrices read and written in place), batch
//! broadcast, split-K shapes (tiny outputs with long k), each epilogue (bias orientation,
//! activation and derivative factor, α, β), degenerate sizes, and every bad layout an error.

mod common;

use curvature_tensor::{
    gemm_into, Activation, Bias, DType, Device, Epilogue, Factor, GemmCall, MatrixLayout, Tensor,
    TensorError,
};

/// A small deterministic generator of values in [−1, 1].
struct Rng(u64);

impl Rng {
    fn vec(&mut self, len: usize) -> Vec<f64> {
        (0..len)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }
}

/// The epilogue's function, written out: f(y) for each activation and factor.
fn activation_factor(activation: Activation, factor: Factor, y: f64) -> f64 {
    let (value, first, second) = match activation {
        Activation::Identity => (y, 1.0, 0.0),
        Activation::Tanh => {
            let t = y.tanh();
            (t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-y).exp());
            (s, s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s))
        }
    };
    match factor {
        Factor::Value => value,
        Factor::FirstDerivative => first,
        Factor::SecondDerivative => second,
    }
}

/// `call` on flat f64 arrays with plain loops.
fn reference(call: &GemmCall, a: &[f64], b: &[f64], c: &[f64], bias: &[f64]) -> Vec<f64> {
    let mut out = c.to_vec();
    let e = call.epilogue;
    for z in 0..call.batch {
        let (a0, b0, c0) = (
            call.a.offset + z * call.a.batch_stride,
            call.b.offset + z * call.b.batch_stride,
            call.c.offset + z * call.c.batch_stride,
        );
        for i in 0..call.m {
            for j in 0..call.n {
                let mut acc = 0.0;
                for p in 0..call.k {
                    let av = if call.trans_a {
                        a[a0 + p * call.a.ld + i]
                    } else {
                        a[a0 + i * call.a.ld + p]
                    };
                    let bv = if call.trans_b {
                        b[b0 + j * call.b.ld + p]
                    } else {
                        b[b0 + p * call.b.ld + j]
                    };
                    acc += av * bv;
                }
                let dst = &mut out[c0 + i * call.c.ld + j];
                let mut y = e.alpha * acc;
                if e.beta != 0.0 {
                    y += e.beta * *dst;
                }
                y += match e.bias {
                    Bias::None => 0.0,
                    Bias::Row => bias[j],
                    Bias::Column => bias[i],
                };
                *dst = activation_factor(e.activation, e.factor, y);
            }
        }
    }
    out
}

/// A dense call of the given shape and transposes (layouts as if stored contiguously).
fn dense(batch: usize, m: usize, n: usize, k: usize, trans: (bool, bool)) -> GemmCall {
    let (ar, ac) = if trans.0 { (k, m) } else { (m, k) };
    let (br, bc) = if trans.1 { (n, k) } else { (k, n) };
    GemmCall {
        batch,
        m,
        n,
        k,
        trans_a: trans.0,
        trans_b: trans.1,
        a: MatrixLayout::dense(ar, ac),
        b: MatrixLayout::dense(br, bc),
        c: MatrixLayout::dense(m, n),
        epilogue: Epilogue::default(),
    }
}

/// Elements an operand needs: offset + (batch − 1)·stride + (rows − 1)·ld + cols.
fn need(batch: usize, rows: usize, cols: usize, l: MatrixLayout) -> usize {
    if rows == 0 || cols == 0 || batch == 0 {
        return l.offset;
    }
    l.offset + (batch - 1) * l.batch_stride + (rows - 1) * l.ld + cols
}

/// Runs `call` on `device` in `dtype` with random operands (C's untouched elements must keep
/// their values) and compares with the f64 reference.
fn check(call: &GemmCall, dtype: DType, device: Device, seed: u64) {
    let mut rng = Rng(seed);
    let (ar, ac) = if call.trans_a {
        (call.k, call.m)
    } else {
        (call.m, call.k)
    };
    let (br, bc) = if call.trans_b {
        (call.n, call.k)
    } else {
        (call.k, call.n)
    };
    let round = |v: Vec<f64>| -> Vec<f64> {
        match dtype {
            DType::F32 => v.into_iter().map(|x| x as f32 as f64).collect(),
            _ => v,
        }
    };
    let a = round(rng.vec(need(call.batch, ar, ac, call.a).max(1)));
    let b = round(rng.vec(need(call.batch, br, bc, call.b).max(1)));
    let c = round(rng.vec(need(call.batch, call.m, call.n, call.c).max(1)));
    let bias_len = match call.epilogue.bias {
        Bias::None => 0,
        Bias::Row => call.n,
        Bias::Column => call.m,
    };
    let bias = round(rng.vec(bias_len));
    let want = reference(call, &a, &b, &c, &bias);
    let t = |v: &[f64]| Tensor::from_f64s(v, [v.len()], dtype, device).expect("upload");
    let (ta, tb) = (t(&a), t(&b));
    let mut tc = t(&c);
    let tbias = (bias_len > 0).then(|| t(&bias));
    gemm_into(&ta, &tb, &mut tc, tbias.as_ref(), call)
        .unwrap_or_else(|e| panic!("{call:?} on {device:?}: {e}"));
    let got = tc.to_f64s().expect("download");
    let scale = (call.k.max(1) as f64).sqrt();
    let tol = match dtype {
        DType::F32 => 4e-6 * scale,
        _ => 1e-13 * scale,
    };
    for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{dtype:?} on {device:?}, {call:?}: element {idx} is {g}, want {w}"
        );
    }
}

const TRANS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

fn transposes_and_odd_sizes(device: Device) {
    let shapes = [
        (1, 1, 1),
        (7, 33, 129),
        (129, 7, 33),
        (33, 129, 1),
        (1, 7, 33),
    ];
    for (s, &(m, n, k)) in shapes.iter().enumerate() {
        for (t, &trans) in TRANS.iter().enumerate() {
            for dtype in [DType::F32, DType::F64] {
                check(&dense(1, m, n, k, trans), dtype, device, (s * 4 + t) as u64);
            }
        }
    }
}

/// A and B read from blocks of wider matrices, C written into a column block of a wider one
/// (its other columns untouched), over a batch with B broadcast.
fn leading_dimensions_and_offsets(device: Device) {
    for (t, &trans) in TRANS.iter().enumerate() {
        let (m, n, k, batch) = (9, 6, 35, 3);
        let mut call = dense(batch, m, n, k, trans);
        let (ar, ac) = if trans.0 { (k, m) } else { (m, k) };
        let (br, bc) = if trans.1 { (n, k) } else { (k, n) };
        call.a = MatrixLayout {
            offset: 3,
            ld: ac + 5,
            batch_stride: ar * (ac + 5) + 1,
        };
        call.b = MatrixLayout {
            offset: 2,
            ld: bc + 2,
            batch_stride: 0,
        };
        let _ = br;
        call.c = MatrixLayout {
            offset: 4,
            ld: n + 7,
            batch_stride: m * (n + 7),
        };
        call.epilogue.beta = 0.5;
        for dtype in [DType::F32, DType::F64] {
            check(&call, dtype, device, 100 + t as u64);
        }
    }
}

/// Tiny outputs with long k (the split-K shapes of the seed workload) and a batch.
fn split_k_shapes(device: Device) {
    let shapes = [
        (1, 10, 10, 1000),
        (2, 10, 1, 1000),
        (1, 1, 10, 1000),
        (3, 7, 5, 257),
    ];
    for (s, &(batch, m, n, k)) in shapes.iter().enumerate() {
        for (t, &trans) in TRANS.iter().enumerate() {
            let mut call = dense(batch, m, n, k, trans);
            call.epilogue = Epilogue {
                alpha: 0.75,
                beta: -1.5,
                bias: Bias::Row,
                activation: Activation::Tanh,
                factor: Factor::SecondDerivative,
            };
            for dtype in [DType::F32, DType::F64] {
                check(&call, dtype, device, 200 + (s * 4 + t) as u64);
            }
        }
    }
}

/// Every bias orientation, activation and factor, with α and β.
fn epilogues(device: Device) {
    let mut seed = 300;
    for bias in [Bias::None, Bias::Row, Bias::Column] {
        for activation in [Activation::Identity, Activation::Tanh, Activation::Sigmoid] {
            for factor in [
                Factor::Value,
                Factor::FirstDerivative,
                Factor::SecondDerivative,
            ] {
                let mut call = dense(2, 7, 33, 9, (false, true));
                call.epilogue = Epilogue {
                    alpha: 1.25,
                    beta: 0.5,
                    bias,
                    activation,
                    factor,
                };
                for dtype in [DType::F32, DType::F64] {
                    seed += 1;
                    check(&call, dtype, device, seed);
                }
            }
        }
    }
}

/// k = 0 (C = f(β·C + bias)), m = 1, n = 1, and an empty batch.
fn degenerate_sizes(device: Device) {
    for (batch, m, n, k) in [(2, 5, 4, 0), (1, 1, 33, 7), (1, 33, 1, 7), (0, 3, 3, 3)] {
        let mut call = dense(batch, m, n, k, (false, false));
        call.epilogue = Epilogue {
            beta: 2.0,
            bias: Bias::Column,
            activation: Activation::Sigmoid,
            ..Epilogue::default()
        };
        for dtype in [DType::F32, DType::F64] {
            check(&call, dtype, device, 400);
        }
    }
}

fn expect_invalid(result: curvature_tensor::Result<()>, needle: &str) {
    match result {
        Err(TensorError::InvalidArgument { op: "gemm", msg }) => {
            assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`")
        }
        other => panic!("expected an InvalidArgument about `{needle}`, got {other:?}"),
    }
}

/// Layouts that do not fit, overlapping outputs, bias mismatches and a shared output are
/// errors, never out-of-bounds accesses.
fn bad_calls_are_errors(device: Device) {
    let t = |len: usize| Tensor::zeros([len], DType::F64, device).expect("zeros");
    let call = dense(1, 4, 5, 6, (false, false));
    let (a, b) = (t(24), t(30));
    let mut c = t(20);
    gemm_into(&a, &b, &mut c, None, &call).expect("the dense call fits");
    expect_invalid(gemm_into(&t(23), &b, &mut c, None, &call), "A needs 24");
    expect_invalid(gemm_into(&a, &t(29), &mut c, None, &call), "B needs 30");
    expect_invalid(gemm_into(&a, &b, &mut t(19), None, &call), "C needs 20");
    let mut offset = call;
    offset.c.offset = usize::MAX;
    expect_invalid(gemm_into(&a, &b, &mut c, None, &offset), "overflows");
    let mut narrow = call;
    narrow.a.ld = 5;
    expect_invalid(
        gemm_into(&a, &b, &mut c, None, &narrow),
        "leading dimension 5",
    );
    let mut overlap = dense(2, 4, 5, 6, (false, false));
    overlap.a.batch_stride = 0;
    overlap.b.batch_stride = 0;
    overlap.c.batch_stride = 19;
    expect_invalid(gemm_into(&a, &b, &mut t(40), None, &overlap), "overlap");
    let mut with_bias = call;
    with_bias.epilogue.bias = Bias::Row;
    expect_invalid(
        gemm_into(&a, &b, &mut c, None, &with_bias),
        "none was given",
    );
    expect_invalid(
        gemm_into(&a, &b, &mut c, Some(&t(4)), &with_bias),
        "must hold 5",
    );
    expect_invalid(gemm_into(&a, &b, &mut c, Some(&t(5)), &call), "Bias::None");
    let shared = c.clone();
    expect_invalid(gemm_into(&a, &b, &mut c, None, &call), "shares its data");
    drop(shared);
    let f32_b = Tensor::zeros([30], DType::F32, device).expect("zeros");
    assert!(matches!(
        gemm_into(&a, &f32_b, &mut c, None, &call),
        Err(TensorError::DTypeMismatch { op: "gemm", .. })
    ));
}

device_tests!(
    transposes_and_odd_sizes,
    leading_dimensions_and_offsets,
    split_k_shapes,
    epilogues,
    degenerate_sizes,
    bad_calls_are_errors,
);
