//! Softmax, the normalisations, differentiable indexing and attention on the tape, on every
//! device: values (attention against a scalar formula written here; the others against the
//! tensor ops, themselves tested against loops in the tensor crate), gradcheck and
//! gradgradcheck by finite differences in f64, the batched-cotangent invariant, causal
//! attention's exact independence of later keys, and argument errors.

mod common;

use common::{assert_batched_cotangents, assert_gradchecks, Inputs};
use curvature_tape::{
    grad, scaled_dot_product_attention, GradOptions, Result, Tape, TapeError, Var,
};
use curvature_tensor::{DType, Device, Indices, Tensor, TensorError};

/// The op applied to tape variables.
type Apply = Box<dyn Fn(&[Var]) -> Result<Var>>;

/// One differentiable function of this file's ops and the inputs it is checked at.
struct Case {
    name: &'static str,
    inputs: Vec<Tensor>,
    apply: Apply,
}

fn cases(device: Device) -> Vec<Case> {
    let mut draw = Inputs::new(15, device);
    let constant = |values: &[f64]| {
        Tensor::from_f64s(values, [values.len()], DType::F64, device).expect("statistics")
    };
    let (mean, var) = (constant(&[0.3, -0.2]), constant(&[0.8, 1.7]));
    let gather_index = Indices::new(vec![2, 0, 2, 1, 1, 0], [2, 3]).expect("indices");
    vec![
        Case {
            name: "softmax(-1)",
            inputs: vec![draw.any(&[2, 3])],
            apply: Box::new(|v| v[0].softmax(-1)),
        },
        Case {
            name: "softmax(0)",
            inputs: vec![draw.any(&[3, 2])],
            apply: Box::new(|v| v[0].softmax(0)),
        },
        Case {
            name: "layer_norm",
            inputs: vec![draw.any(&[2, 4])],
            apply: Box::new(|v| v[0].layer_norm(1e-5)),
        },
        Case {
            name: "batch_norm",
            inputs: vec![draw.any(&[2, 2, 2])],
            apply: Box::new(move |v| v[0].batch_norm(&mean, &var, 1e-3)),
        },
        Case {
            name: "group_norm",
            inputs: vec![draw.any(&[1, 4, 2])],
            apply: Box::new(|v| v[0].group_norm(2, 1e-5)),
        },
        Case {
            // An embedding lookup with a repeated token: its rows' gradients add up.
            name: "index_select",
            inputs: vec![draw.any(&[3, 2])],
            apply: Box::new(|v| v[0].index_select(0, &[2, 0, 2])?.square()),
        },
        Case {
            name: "index_add",
            inputs: vec![draw.any(&[2, 3])],
            apply: Box::new(|v| v[0].index_add(1, &[1, 3, 1], 4)?.square()),
        },
        Case {
            name: "gather",
            inputs: vec![draw.any(&[2, 3])],
            apply: Box::new(move |v| v[0].gather(1, &gather_index)?.square()),
        },
        Case {
            name: "attention",
            inputs: vec![draw.any(&[2, 2]), draw.any(&[3, 2]), draw.any(&[3, 2])],
            apply: Box::new(|v| scaled_dot_product_attention(&v[0], &v[1], &v[2], false)),
        },
        Case {
            name: "causal attention",
            inputs: vec![
                draw.any(&[1, 3, 2]),
                draw.any(&[1, 3, 2]),
                draw.any(&[1, 3, 1]),
            ],
            apply: Box::new(|v| scaled_dot_product_attention(&v[0], &v[1], &v[2], true)),
        },
    ]
}

/// gradcheck and gradgradcheck in f64.
fn derivatives_match_finite_differences(device: Device) {
    for case in cases(device) {
        assert_gradchecks(case.name, &case.inputs, &case.apply);
    }
}

/// One `vjp` with `[K, …]` cotangents equals K separate ones, for the op and its gradient.
fn batched_cotangents_equal_separate_ones(device: Device) {
    for case in cases(device) {
        assert_batched_cotangents(case.name, &case.inputs, &case.apply);
    }
}

/// The ops on variables compute the tensor ops' values (tested against loops in the tensor
/// crate), bit for bit.
fn values_equal_the_tensor_ops(device: Device) -> Result<()> {
    let mut draw = Inputs::new(16, device);
    let x = draw.any(&[2, 4, 3]);
    let stats = draw.uniform(&[4], 0.5, 1.5);
    let index = Indices::new(vec![1, 0, 3, 3], [1, 4, 1])?;
    let tape = Tape::new();
    let v = tape.leaf(x.clone());
    let pairs = [
        ("softmax", v.softmax(1)?, x.softmax(1)?),
        ("layer_norm", v.layer_norm(1e-5)?, x.layer_norm(1e-5)?),
        (
            "batch_norm",
            v.batch_norm(&stats, &stats, 1e-5)?,
            x.batch_norm(&stats, &stats, 1e-5)?,
        ),
        ("group_norm", v.group_norm(2, 1e-5)?, x.group_norm(2, 1e-5)?),
        (
            "index_select",
            v.index_select(1, &[3, 0, 3])?,
            x.index_select(1, &[3, 0, 3])?,
        ),
        (
            "index_add",
            v.index_add(2, &[0, 2, 0], 4)?,
            x.index_add(2, &[0, 2, 0], 4)?,
        ),
        ("gather", v.gather(1, &index)?, x.gather(1, &index)?),
    ];
    for (name, ours, reference) in pairs {
        assert_eq!(ours.dims(), reference.dims(), "{name}: shape");
        assert_eq!(
            ours.value().to_f64s()?,
            reference.to_f64s()?,
            "{name}: values"
        );
        assert!(ours.requires_grad(), "{name} is recorded");
    }
    Ok(())
}

/// softmax(q·kᵀ/√d + mask)·v by loops over `q: [B, L, d]`, `k: [Bk, S, d]`, `v: [Bk, S, dv]`
/// (Bk = 1 broadcasts), with the causal mask hiding j > i.
fn attention_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    [b, l, s, d, dv, bk]: [usize; 6],
    causal: bool,
) -> Vec<f64> {
    let mut out = Vec::new();
    for batch in 0..b {
        let kb = if bk == 1 { 0 } else { batch };
        for i in 0..l {
            let visible: Vec<usize> = (0..s).filter(|&j| !causal || j <= i).collect();
            let scores: Vec<f64> = visible
                .iter()
                .map(|&j| {
                    let dot: f64 = (0..d)
                        .map(|c| q[(batch * l + i) * d + c] * k[(kb * s + j) * d + c])
                        .sum();
                    dot / (d as f64).sqrt()
                })
                .collect();
            let max = scores.iter().fold(f64::MIN, |m, &x| m.max(x));
            let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for e in 0..dv {
                let value: f64 = visible
                    .iter()
                    .zip(&weights)
                    .map(|(&j, w)| w / total * v[(kb * s + j) * dv + e])
                    .sum();
                out.push(value);
            }
        }
    }
    out
}

/// Attention against the loops, with broadcast batch axes, L ≠ S, and both masks.
fn attention_matches_a_scalar_formula(device: Device) -> Result<()> {
    let [b, l, s, d, dv] = [2, 3, 4, 5, 2];
    let mut draw = Inputs::new(17, device);
    let (q, k, v) = (
        draw.any(&[b, l, d]),
        draw.uniform(&[1, s, d], -2.0, 2.0),
        draw.any(&[1, s, dv]),
    );
    let tape = Tape::new();
    let [qv, kv, vv] = [&q, &k, &v].map(|t| tape.leaf(t.clone()));
    for causal in [false, true] {
        let ours = scaled_dot_product_attention(&qv, &kv, &vv, causal)?;
        assert_eq!(ours.dims(), &[b, l, dv]);
        let reference = attention_reference(
            &q.to_f64s()?,
            &k.to_f64s()?,
            &v.to_f64s()?,
            [b, l, s, d, dv, 1],
            causal,
        );
        let got = ours.value().to_f64s()?;
        for (i, (a, r)) in got.iter().zip(&reference).enumerate() {
            assert!(
                (a - r).abs() <= 1e-13,
                "causal {causal}: element {i}: {a} vs {r}"
            );
        }
    }
    // f32: the same formula to f32 precision.
    let [q32, k32, v32] = [&q, &k, &v].map(|t| t.to_dtype(DType::F32).map(|t| tape.leaf(t)));
    let (q32, k32, v32) = (q32?, k32?, v32?);
    for causal in [false, true] {
        let ours = scaled_dot_product_attention(&q32, &k32, &v32, causal)?;
        let reference = attention_reference(
            &q.to_f64s()?,
            &k.to_f64s()?,
            &v.to_f64s()?,
            [b, l, s, d, dv, 1],
            causal,
        );
        for (i, (a, r)) in ours.value().to_f64s()?.iter().zip(&reference).enumerate() {
            assert!(
                (a - r).abs() <= 1e-5,
                "f32 causal {causal}: element {i}: {a} vs {r}"
            );
        }
    }
    Ok(())
}

/// With the causal mask, output row i does not depend on key or value rows j > i: its
/// gradient there is exactly 0 (no NaN from the mask), and so is the Hessian-vector product's.
fn causal_rows_ignore_later_keys(device: Device) -> Result<()> {
    let (l, d) = (4, 3);
    let mut draw = Inputs::new(18, device);
    let tape = Tape::new();
    let [q, k, v] = [draw.any(&[l, d]), draw.any(&[l, d]), draw.any(&[l, d])].map(|t| tape.leaf(t));
    let out = scaled_dot_product_attention(&q, &k, &v, true)?;
    for i in 0..l {
        let row = out.narrow(0, i, 1)?.sum_all()?;
        let grads = grad(&[row], &[k.clone(), v.clone()], GradOptions::create_graph())?;
        // A second-order product through the row's gradient with respect to k.
        let hvp = grad(
            &[grads[0].square()?.sum_all()?],
            &[k.clone(), v.clone()],
            GradOptions {
                allow_unused: true,
                retain_graph: Some(true),
                ..GradOptions::default()
            },
        )?;
        for (what, g) in [
            ("dk", &grads[0]),
            ("dv", &grads[1]),
            ("d²k", &hvp[0]),
            ("d²v", &hvp[1]),
        ] {
            let values = g.value().to_f64s()?;
            assert!(
                values.iter().all(|x| x.is_finite()),
                "row {i} {what}: {values:?}"
            );
            for (e, &x) in values.iter().enumerate().filter(|(e, _)| e / d > i) {
                assert_eq!(x, 0.0, "row {i} {what}: element {e} of a later key is {x}");
            }
            // The visible rows are not all zero: the check above can fail.
            if what == "dv" {
                assert!(
                    values[..(i + 1) * d].iter().any(|&x| x != 0.0),
                    "row {i} {what}"
                );
            }
        }
    }
    Ok(())
}

/// Asserts that the error's message names every one of `parts`.
fn assert_mentions(err: &TapeError, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} does not mention {part:?}"
        );
    }
}

fn error_of(result: Result<Var>) -> TapeError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

/// Bad arguments on variables are errors naming the op.
fn bad_arguments_are_errors(device: Device) -> Result<()> {
    let tape = Tape::new();
    let zeros =
        |dims: &[usize]| -> Result<Var> { Ok(tape.leaf(Tensor::zeros(dims, DType::F64, device)?)) };
    let x = zeros(&[2, 3])?;
    let err = error_of(x.index_select(0, &[0, 2]));
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::IndexOutOfRange {
                op: "index_select",
                index: 2,
                len: 2
            })
        ),
        "{err:?}"
    );
    let err = error_of(x.index_add(1, &[0, 1, 4], 4));
    assert_mentions(&err, &["index_add", "index 4", "length 4"]);
    let err = error_of(x.gather(0, &Indices::new(vec![5], [1, 1])?));
    assert_mentions(&err, &["gather", "index 5", "length 2"]);
    assert_mentions(&error_of(x.softmax(2)), &["log_softmax", "axis 2"]);
    assert_mentions(&error_of(x.layer_norm(-1.0)), &["layer_norm", "eps"]);
    assert_mentions(
        &error_of(x.group_norm(2, 1e-5)),
        &["group_norm", "2 groups", "3 channels"],
    );
    let stats = Tensor::zeros([2], DType::F64, device)?;
    assert_mentions(
        &error_of(x.batch_norm(&stats, &stats, 1e-5)),
        &["batch_norm", "[3]", "[2]"],
    );
    // Attention: ranks, mismatched d or S, d = 0, S = 0, dtypes and tapes.
    let op = "scaled_dot_product_attention";
    let attention =
        |q: &Var, k: &Var, v: &Var| error_of(scaled_dot_product_attention(q, k, v, false));
    let (q, k) = (zeros(&[2, 4])?, zeros(&[3, 4])?);
    assert_mentions(&attention(&zeros(&[4])?, &k, &k), &[op, "[4]"]);
    assert_mentions(&attention(&q, &zeros(&[3, 5])?, &k), &[op, "[3, 5]"]);
    assert_mentions(&attention(&q, &k, &zeros(&[2, 4])?), &[op, "[2, 4]"]);
    assert_mentions(
        &attention(&zeros(&[2, 0])?, &zeros(&[3, 0])?, &k),
        &[op, "d > 0"],
    );
    assert_mentions(
        &attention(&q, &zeros(&[0, 4])?, &zeros(&[0, 4])?),
        &[op, "S > 0"],
    );
    let single = tape.leaf(Tensor::zeros([3, 4], DType::F32, device)?);
    let err = attention(&q, &single, &k);
    assert!(
        matches!(
            err,
            TapeError::Tensor(TensorError::DTypeMismatch {
                op: "scaled_dot_product_attention",
                ..
            })
        ),
        "{err:?}"
    );
    let other = Tape::new().leaf(Tensor::zeros([3, 4], DType::F64, device)?);
    let err = attention(&q, &k, &other);
    assert!(
        matches!(
            err,
            TapeError::TapeMismatch {
                op: "scaled_dot_product_attention"
            }
        ),
        "{err:?}"
    );
    Ok(())
}

device_tests!(
    derivatives_match_finite_differences,
    batched_cotangents_equal_separate_ones,
    values_equal_the_tensor_ops,
    attention_matches_a_scalar_formula,
    causal_rows_ignore_later_keys,
    bad_arguments_are_errors,
);
