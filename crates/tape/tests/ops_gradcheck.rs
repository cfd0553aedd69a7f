//! `gradcheck` and `gradgradcheck` (central finite differences in f64) for every differentiable
//! `Var` op, on seeded random inputs, on the CPU and on `Device::Cuda`; on CUDA each value also
//! equals the CPU's. Sizes are tiny: finite differences cost two evaluations per input element
//! (each a full forward pass of kernel launches on a GPU) and `gradgradcheck` differentiates a
//! gradient, so the whole file stays fast.

mod common;

use common::{assert_gradchecks, relative_error, Domain, Inputs};
use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{Result, Tape, Var};
use curvature_tensor::{BinaryOp, TernaryOp};
use curvature_tensor::{Device, Tensor};

/// gradcheck and gradgradcheck of `f` at `inputs`; where the inputs are on a CUDA device, the
/// value of `f` also equals the CPU's to 1e-12 relative.
fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Var]) -> Result<Var>) {
    assert_gradchecks(name, inputs, &f);
    if inputs.iter().all(|t| t.device() == Device::Cpu) {
        return;
    }
    let value = |inputs: Vec<Tensor>| -> Vec<f64> {
        let tape = Tape::new();
        let vars: Vec<Var> = inputs.into_iter().map(|t| tape.leaf(t)).collect();
        let out = f(&vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.value().to_f64s().expect("download")
    };
    let on_cpu = inputs
        .iter()
        .map(|t| t.to_device(Device::Cpu).expect("download"))
        .collect();
    let (device, cpu) = (value(inputs.to_vec()), value(on_cpu));
    assert!(
        relative_error(&device, &cpu) <= 1e-12,
        "{name}: CUDA value {device:?} vs CPU {cpu:?}"
    );
}

/// A one-input op: its name, where its inputs are drawn, and the op.
type UnaryCase = (&'static str, Domain, fn(&Var) -> Result<Var>);

// ---------------------------------------------------------------------------------------------
// Elementwise ops

/// Parameters and shapes beyond the op tables' own cases (every op of `UnaryOp::ALL` passes
/// both checks in `op_table.rs`).
const UNARY: &[UnaryCase] = &[
    ("powf 3", Domain::Range(0.5, 1.5), |x| x.powf(3.0)),
    ("powf -1.5", Domain::Range(0.5, 1.5), |x| x.powf(-1.5)),
];

/// The scalar forms, and one composed with a nonlinearity so the second derivative is not
/// identically zero.
const SCALAR_FORMS: &[UnaryCase] = &[
    ("affine", Domain::Any, |x| x.affine(-1.5, 0.25)),
    ("add_scalar", Domain::Any, |x| x.add_scalar(2.0)),
    ("sub_scalar", Domain::Any, |x| x.sub_scalar(2.0)),
    ("mul_scalar", Domain::Any, |x| x.mul_scalar(-3.0)),
    ("div_scalar", Domain::Any, |x| x.div_scalar(4.0)),
    ("affine then square", Domain::Any, |x| {
        x.affine(2.0, -0.5)?.square()
    }),
];

/// Shape pairs for the broadcasting binary ops: same shape, trailing, leading, both-sided and
/// scalar broadcasts.
const BROADCAST_PAIRS: [(&[usize], &[usize]); 9] = [
    (&[2, 3], &[2, 3]),
    (&[3, 4], &[4]),
    (&[3, 2], &[2]),
    (&[4], &[3, 4]),
    (&[2, 1, 4], &[3, 1]),
    (&[2, 1, 3], &[2, 1]),
    (&[3, 1], &[2, 1, 4]),
    (&[], &[3]),
    (&[3], &[]),
];

/// More exponents on a matrix, and tanh on a scalar, pass both checks.
fn unary_ops_gradcheck(device: Device) {
    let mut r = Inputs::new(1, device);
    for &(name, domain, op) in UNARY {
        check(name, &[r.draw(domain, &[2, 3])], |v| op(&v[0]));
    }
    check("scalar tanh", &[r.any(&[])], |v| v[0].tanh());
}

/// Every scalar form passes both checks.
fn scalar_forms_gradcheck(device: Device) {
    let mut r = Inputs::new(2, device);
    for &(name, domain, op) in SCALAR_FORMS {
        check(name, &[r.draw(domain, &[3, 2])], |v| op(&v[0]));
    }
}

/// Every binary op (`BinaryOp::ALL`) passes both checks for every broadcast pair, each operand
/// drawn from the op's domain for it.
fn binary_broadcast_gradcheck(device: Device) {
    let mut r = Inputs::new(3, device);
    for (a, b) in BROADCAST_PAIRS {
        for &op in BinaryOp::ALL {
            let [a_domain, b_domain] = op.domains();
            let inputs = [r.intervals(a, a_domain), r.intervals(b, b_domain)];
            check(&format!("{} {a:?} {b:?}", op.name()), &inputs, |v| {
                v[0].binary(op, &v[1])
            });
        }
    }
}

/// Binary ops with the same variable on both sides pass both checks.
fn same_variable_on_both_sides_gradcheck(device: Device) {
    let mut r = Inputs::new(4, device);
    check("mul self", &[r.any(&[3])], |v| v[0].mul(&v[0]));
    check("div self-ish", &[r.away_from_zero(&[3])], |v| {
        v[0].square()?.div(&v[0].exp()?)
    });
}

/// The fused activation derivatives (tanh' and σ' applied to a cotangent, and their
/// derivatives with respect to the activation) pass both checks, broadcasting included.
fn fused_activation_derivatives_gradcheck(device: Device) {
    let mut r = Inputs::new(5, device);
    let pairs: [(&[usize], &[usize]); 3] = [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[3], &[2, 3])];
    for (g, y) in pairs {
        let tanh_inputs = [r.any(g), r.uniform(y, -0.9, 0.9)];
        check(&format!("tanh_backward {g:?} {y:?}"), &tanh_inputs, |v| {
            v[0].tanh_backward(&v[1])
        });
        let sigmoid_inputs = [r.any(g), r.uniform(y, 0.1, 0.9)];
        check(
            &format!("sigmoid_backward {g:?} {y:?}"),
            &sigmoid_inputs,
            |v| v[0].sigmoid_backward(&v[1]),
        );
    }
    let triples: [(&[usize], &[usize], &[usize]); 3] = [
        (&[2, 3], &[2, 3], &[2, 3]),
        (&[2, 3], &[3], &[2, 1]),
        (&[], &[2, 3], &[3]),
    ];
    for op in [
        TernaryOp::TanhBackwardGradY,
        TernaryOp::SigmoidBackwardGradY,
    ] {
        for (a, b, c) in triples {
            let inputs = [r.any(a), r.any(b), r.uniform(c, -0.9, 0.9)];
            check(&format!("{} {a:?} {b:?} {c:?}", op.name()), &inputs, |v| {
                v[0].ternary(op, &v[1], &v[2])
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix products

/// `matmul` passes both checks for every operand rank (vectors promoted, batches broadcast),
/// `matmul_transposed` for every pair of transpose flags, and x·xᵀ with one input.
fn matmul_gradcheck(device: Device) {
    let mut r = Inputs::new(6, device);
    let cases: [(&[usize], &[usize]); 14] = [
        (&[2, 3], &[3, 4]),
        (&[3], &[3, 4]),
        (&[3], &[3, 2]),
        (&[2, 3], &[3]),
        (&[4], &[4]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 2, 3], &[2, 3, 2]),
        (&[2, 3, 4], &[4, 5]),
        (&[2, 2, 3], &[3, 2]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[2, 1, 2, 3], &[2, 3, 2]),
        (&[3, 4], &[2, 4, 2]),
        (&[3], &[2, 3, 2]),
        (&[2, 2, 3], &[3]),
    ];
    for (a, b) in cases {
        check(
            &format!("matmul {a:?} @ {b:?}"),
            &[r.any(a), r.any(b)],
            |v| v[0].matmul(&v[1]),
        );
    }
    for (ta, tb) in [(true, false), (false, true), (true, true)] {
        let a = if ta { r.any(&[3, 2]) } else { r.any(&[2, 3]) };
        let b = if tb { r.any(&[4, 3]) } else { r.any(&[3, 4]) };
        check(&format!("matmul_transposed {ta} {tb}"), &[a, b], |v| {
            v[0].matmul_transposed(&v[1], ta, tb)
        });
    }
    check("x @ x^T", &[r.any(&[2, 3])], |v| v[0].matmul(&v[0].t()?));
}

// ---------------------------------------------------------------------------------------------
// Reductions

/// `sum` and `mean` over every axis set with and without keepdim, the whole-tensor forms, and a
/// nonlinearity downstream so the second derivative flows through the reduction.
fn sum_and_mean_gradcheck(device: Device) {
    let mut r = Inputs::new(7, device);
    let x = r.any(&[2, 3, 4]);
    let axis_sets: [&[isize]; 5] = [&[0], &[1], &[-1], &[0, 2], &[0, 1, 2]];
    for axes in axis_sets {
        for keepdim in [true, false] {
            let inputs = [x.clone()];
            check(&format!("sum {axes:?} keepdim {keepdim}"), &inputs, |v| {
                v[0].sum(axes, keepdim)
            });
            check(&format!("mean {axes:?} keepdim {keepdim}"), &inputs, |v| {
                v[0].mean(axes, keepdim)
            });
        }
    }
    check("sum_all", std::slice::from_ref(&x), |v| v[0].sum_all());
    check("mean_all", std::slice::from_ref(&x), |v| v[0].mean_all());
    check("sum_all of a scalar", &[r.any(&[])], |v| v[0].sum_all());
    check("square of sum", &[r.any(&[2, 3])], |v| {
        v[0].sum(&[1], false)?.square()
    });
}

/// `sum_to` (the adjoint of broadcasting) to every kind of target shape.
fn sum_to_gradcheck(device: Device) {
    let mut r = Inputs::new(8, device);
    let x = r.any(&[2, 3, 4]);
    let targets: [&[usize]; 5] = [&[3, 1], &[4], &[1, 3, 4], &[2, 1, 1], &[]];
    for target in targets {
        check(
            &format!("sum_to {target:?}"),
            std::slice::from_ref(&x),
            |v| v[0].sum_to(target),
        );
    }
}

/// `max` over each axis: continuous random values, so no ties and gaps far wider than the
/// finite-difference step.
fn max_gradcheck(device: Device) {
    let mut r = Inputs::new(9, device);
    let x = r.any(&[2, 3, 4]);
    for axis in [0, 1, -1] {
        for keepdim in [true, false] {
            check(
                &format!("max {axis} keepdim {keepdim}"),
                std::slice::from_ref(&x),
                |v| v[0].max(axis, keepdim),
            );
        }
    }
    check("square of max", &[r.any(&[3, 4])], |v| {
        v[0].max(1, false)?.square()
    });
}

/// `logsumexp` over every axis of a matrix and a rank-3 tensor.
fn logsumexp_gradcheck(device: Device) {
    let mut r = Inputs::new(10, device);
    let m = r.uniform(&[3, 4], -2.0, 2.0);
    for axis in [0, 1, -1] {
        for keepdim in [true, false] {
            check(
                &format!("logsumexp [3, 4] {axis} keepdim {keepdim}"),
                std::slice::from_ref(&m),
                |v| v[0].logsumexp(axis, keepdim),
            );
        }
    }
    let t = r.uniform(&[2, 3, 2], -2.0, 2.0);
    for axis in [0, 1, 2] {
        check(
            &format!("logsumexp [2, 3, 2] {axis}"),
            std::slice::from_ref(&t),
            |v| v[0].logsumexp(axis, false),
        );
    }
}

/// `log_softmax` over every axis of a vector, a matrix and a rank-3 tensor.
fn log_softmax_gradcheck(device: Device) {
    let mut r = Inputs::new(11, device);
    let m = r.uniform(&[3, 4], -2.0, 2.0);
    for axis in [0, 1, -1] {
        check(
            &format!("log_softmax [3, 4] {axis}"),
            std::slice::from_ref(&m),
            |v| v[0].log_softmax(axis),
        );
    }
    let t = r.uniform(&[2, 3, 2], -2.0, 2.0);
    for axis in [0, 1, 2] {
        check(
            &format!("log_softmax [2, 3, 2] {axis}"),
            std::slice::from_ref(&t),
            |v| v[0].log_softmax(axis),
        );
    }
    check("log_softmax [4]", &[r.any(&[4])], |v| v[0].log_softmax(0));
}

// ---------------------------------------------------------------------------------------------
// Layout ops

/// `reshape`, `unsqueeze`, `permute`, `transpose` and `t`, and a nonlinearity after a permute.
fn reshape_unsqueeze_permute_gradcheck(device: Device) {
    let mut r = Inputs::new(12, device);
    let x = r.any(&[2, 3, 4]);
    let one = std::slice::from_ref(&x);
    check("reshape [6, 4]", one, |v| v[0].reshape([6, 4]));
    check("reshape [24]", one, |v| v[0].reshape([24]));
    check("reshape scalar", &[r.any(&[])], |v| v[0].reshape([1, 1]));
    for axis in [0, 1, 3] {
        check(&format!("unsqueeze {axis}"), one, |v| v[0].unsqueeze(axis));
    }
    check("permute [2, 0, 1]", one, |v| v[0].permute(&[2, 0, 1]));
    check("permute [1, 2, 0]", one, |v| v[0].permute(&[1, 2, 0]));
    check("transpose 0 2", one, |v| v[0].transpose(0, 2));
    check("transpose -1 -2", one, |v| v[0].transpose(-1, -2));
    check("t [2, 3, 4]", one, |v| v[0].t());
    check("t [3, 2]", &[r.any(&[3, 2])], |v| v[0].t());
    check("square after permute", one, |v| {
        v[0].permute(&[2, 0, 1])?.square()
    });
}

/// `broadcast_to` / `expand`, `narrow` and `pad_zeros` along every kind of axis.
fn broadcast_narrow_pad_gradcheck(device: Device) {
    let mut r = Inputs::new(13, device);
    check("broadcast_to [3, 1] -> [2, 3, 4]", &[r.any(&[3, 1])], |v| {
        v[0].broadcast_to([2, 3, 4])
    });
    check("broadcast_to [4] -> [3, 4]", &[r.any(&[4])], |v| {
        v[0].broadcast_to([3, 4])
    });
    check("expand [] -> [2, 2]", &[r.any(&[])], |v| {
        v[0].expand([2, 2])
    });
    let x = r.any(&[3, 4]);
    let one = std::slice::from_ref(&x);
    check("narrow 1 1 2", one, |v| v[0].narrow(1, 1, 2));
    check("narrow 0 2 1", one, |v| v[0].narrow(0, 2, 1));
    check("narrow -1 0 4", one, |v| v[0].narrow(-1, 0, 4));
    check("pad_zeros 0 1 2", one, |v| v[0].pad_zeros(0, 1, 2));
    check("pad_zeros -1 2 0", one, |v| v[0].pad_zeros(-1, 2, 0));
    check("square of narrow", one, |v| v[0].narrow(1, 1, 2)?.square());
    let t = r.any(&[2, 3, 4]);
    check("narrow [2, 3, 4] 2 1 2", std::slice::from_ref(&t), |v| {
        v[0].narrow(2, 1, 2)
    });
    check("pad_zeros [2, 3, 4] 1 1 2", &[t], |v| {
        v[0].pad_zeros(1, 1, 2)
    });
}

/// `cat` along each axis (a repeated input included) and `stack` at every position.
fn cat_and_stack_gradcheck(device: Device) {
    let mut r = Inputs::new(14, device);
    let parts = [r.any(&[2, 1]), r.any(&[2, 3]), r.any(&[2, 2])];
    check("cat 1", &parts, |v| Var::cat(&[&v[0], &v[1], &v[2]], 1));
    check("cat -1 (repeated input)", &parts[..2], |v| {
        Var::cat(&[&v[1], &v[0], &v[1]], -1)
    });
    let rows = [r.any(&[1, 3]), r.any(&[2, 3])];
    check("cat 0", &rows, |v| Var::cat(&[&v[0], &v[1]], 0));
    let same = [r.any(&[2, 3]), r.any(&[2, 3])];
    for axis in 0..3 {
        check(&format!("stack {axis}"), &same, |v| {
            Var::stack(&[&v[0], &v[1]], axis)
        });
    }
    check("product of stacked", &same, |v| {
        let s = Var::stack(&[&v[0], &v[1]], 0)?;
        s.narrow(0, 0, 1)?.mul(&s.narrow(0, 1, 1)?)
    });
}

/// `trace` of square and rectangular matrices, `gather_labels`, and a cross-entropy built
/// from them.
fn trace_and_gather_labels_gradcheck(device: Device) {
    let mut r = Inputs::new(15, device);
    check("trace [3, 3]", &[r.any(&[3, 3])], |v| v[0].trace());
    check("trace [3, 4]", &[r.any(&[3, 4])], |v| v[0].trace());
    check("trace [4, 2]", &[r.any(&[4, 2])], |v| v[0].trace());
    check("trace of x x^T", &[r.any(&[2, 3])], |v| {
        v[0].matmul(&v[0].t()?)?.trace()
    });
    check("gather_labels", &[r.any(&[3, 4])], |v| {
        v[0].gather_labels(&[2, 0, 3])
    });
    check("cross-entropy", &[r.any(&[3, 4])], |v| {
        v[0].log_softmax(-1)?
            .gather_labels(&[1, 3, 0])?
            .mean_all()?
            .neg()
    });
}

// ---------------------------------------------------------------------------------------------
// Compositions and negative controls

/// A two-layer MLP loss (tanh hidden layer, sigmoid output, MSE) in all five of its inputs:
/// x [4, 3], W1 [5, 3], b1 [5], W2 [2, 5], b2 [2].
fn small_mlp_gradcheck(device: Device) {
    let mut r = Inputs::new(16, device);
    let inputs = [
        r.any(&[4, 3]),
        r.any(&[5, 3]),
        r.any(&[5]),
        r.any(&[2, 5]),
        r.any(&[2]),
    ];
    check("mlp", &inputs, |v| {
        let h = v[0].matmul(&v[1].t()?)?.add(&v[2])?.tanh()?;
        let out = h.matmul(&v[3].t()?)?.add(&v[4])?.sigmoid()?;
        out.sub_scalar(0.5)?.square()?.mean_all()
    });
}

/// The checks fail on a wrong first derivative and on a wrong second derivative, so a check
/// that passes everything cannot go unnoticed.
fn checks_detect_wrong_derivatives(device: Device) {
    let mut r = Inputs::new(17, device);
    let x = [r.uniform(&[4], 0.5, 1.5)];
    let options = CheckOptions::default();
    // x·detach(x) has value x² but the tape sees derivative x instead of 2x.
    let wrong_first = |v: &[Var]| v[0].mul(&v[0].detach());
    let report = gradcheck(wrong_first, &x, options).expect("gradcheck runs");
    assert!(
        !report.passed,
        "gradcheck missed a wrong first derivative: {report:#?}"
    );
    // x³/3 written as detach(x)²·x − ⅔·detach(x)³: the value and the first derivative (x²) are
    // right, but the gradient is a constant to the tape, so the second derivative is 0, not 2x.
    let wrong_second = |v: &[Var]| {
        let d = v[0].detach();
        d.square()?
            .mul(&v[0])?
            .sub(&d.powf(3.0)?.mul_scalar(2.0 / 3.0)?)
    };
    let first = gradcheck(wrong_second, &x, options).expect("gradcheck runs");
    assert!(first.passed, "the first derivative is right: {first:#?}");
    let second = gradgradcheck(wrong_second, &x, options, 3).expect("gradgradcheck runs");
    assert!(
        !second.passed,
        "gradgradcheck missed a wrong second derivative: {second:#?}"
    );
    // The honest x³/3 passes both.
    check("x^3 / 3", &x, |v| v[0].powf(3.0)?.div_scalar(3.0));
}

device_tests! {
    unary_ops_gradcheck,
    scalar_forms_gradcheck,
    binary_broadcast_gradcheck,
    same_variable_on_both_sides_gradcheck,
    fused_activation_derivatives_gradcheck,
    matmul_gradcheck,
    sum_and_mean_gradcheck,
    sum_to_gradcheck,
    max_gradcheck,
    logsumexp_gradcheck,
    log_softmax_gradcheck,
    reshape_unsqueeze_permute_gradcheck,
    broadcast_narrow_pad_gradcheck,
    cat_and_stack_gradcheck,
    trace_and_gather_labels_gradcheck,
    small_mlp_gradcheck,
    checks_detect_wrong_derivatives,
}
