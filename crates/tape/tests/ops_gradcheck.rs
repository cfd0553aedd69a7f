//! `gradcheck` and `gradgradcheck` (central finite differences in f64) for every differentiable
//! `Var` op, on seeded random inputs. Sizes are tiny: finite differences cost two evaluations per
//! input element and `gradgradcheck` differentiates a gradient, so the whole file stays fast.

mod common;

use common::{assert_gradchecks, Inputs};
use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{Result, Var};
use curvature_tensor::backend::TernaryOp;
use curvature_tensor::{Device, Tensor};

fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Var]) -> Result<Var>) {
    assert_gradchecks(name, inputs, f)
}

#[test]
fn unary_ops_gradcheck_cpu() {
    let mut r = Inputs::new(1, Device::Cpu);
    let shape = [2, 3];
    check("neg", &[r.any(&shape)], |v| v[0].neg());
    check("exp", &[r.any(&shape)], |v| v[0].exp());
    check("log", &[r.uniform(&shape, 0.5, 2.0)], |v| v[0].log());
    check("sin", &[r.uniform(&shape, -3.0, 3.0)], |v| v[0].sin());
    check("cos", &[r.uniform(&shape, -3.0, 3.0)], |v| v[0].cos());
    check("sqrt", &[r.uniform(&shape, 0.5, 2.0)], |v| v[0].sqrt());
    check("abs", &[r.away_from_zero(&shape)], |v| v[0].abs());
    check("tanh", &[r.uniform(&shape, -2.0, 2.0)], |v| v[0].tanh());
    check("sigmoid", &[r.uniform(&shape, -3.0, 3.0)], |v| {
        v[0].sigmoid()
    });
    check("square", &[r.any(&shape)], |v| v[0].square());
    check("powf 3", &[r.uniform(&shape, 0.5, 1.5)], |v| v[0].powf(3.0));
    check("powf 2.5", &[r.uniform(&shape, 0.5, 1.5)], |v| {
        v[0].powf(2.5)
    });
    check("powf -1.5", &[r.uniform(&shape, 0.5, 1.5)], |v| {
        v[0].powf(-1.5)
    });
    check("scalar tanh", &[r.any(&[])], |v| v[0].tanh());
}

#[test]
fn scalar_forms_gradcheck_cpu() {
    let mut r = Inputs::new(2, Device::Cpu);
    let shape = [3, 2];
    check("affine", &[r.any(&shape)], |v| v[0].affine(-1.5, 0.25));
    check("add_scalar", &[r.any(&shape)], |v| v[0].add_scalar(2.0));
    check("sub_scalar", &[r.any(&shape)], |v| v[0].sub_scalar(2.0));
    check("mul_scalar", &[r.any(&shape)], |v| v[0].mul_scalar(-3.0));
    check("div_scalar", &[r.any(&shape)], |v| v[0].div_scalar(4.0));
    // Composed with a nonlinearity so the second derivative is not identically zero.
    check("affine then square", &[r.any(&shape)], |v| {
        v[0].affine(2.0, -0.5)?.square()
    });
}

/// Shape pairs for the broadcasting binary ops.
const BROADCAST_PAIRS: [(&[usize], &[usize]); 7] = [
    (&[2, 3], &[2, 3]),
    (&[3, 4], &[4]),
    (&[4], &[3, 4]),
    (&[2, 1, 4], &[3, 1]),
    (&[3, 1], &[2, 1, 4]),
    (&[], &[3]),
    (&[3], &[]),
];

#[test]
fn add_sub_broadcast_gradcheck_cpu() {
    let mut r = Inputs::new(3, Device::Cpu);
    for (a, b) in BROADCAST_PAIRS {
        let inputs = [r.any(a), r.any(b)];
        check(&format!("add {a:?} {b:?}"), &inputs, |v| v[0].add(&v[1]));
        check(&format!("sub {a:?} {b:?}"), &inputs, |v| v[0].sub(&v[1]));
    }
}

#[test]
fn mul_div_broadcast_gradcheck_cpu() {
    let mut r = Inputs::new(4, Device::Cpu);
    for (a, b) in BROADCAST_PAIRS {
        let inputs = [r.any(a), r.any(b)];
        check(&format!("mul {a:?} {b:?}"), &inputs, |v| v[0].mul(&v[1]));
        let inputs = [r.any(a), r.away_from_zero(b)];
        check(&format!("div {a:?} {b:?}"), &inputs, |v| v[0].div(&v[1]));
    }
    // The same variable on both sides.
    check("mul self", &[r.any(&[3])], |v| v[0].mul(&v[0]));
    check("div self-ish", &[r.away_from_zero(&[3])], |v| {
        v[0].square()?.div(&v[0].exp()?)
    });
}

#[test]
fn fused_activation_derivatives_gradcheck_cpu() {
    let mut r = Inputs::new(5, Device::Cpu);
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

#[test]
fn matmul_gradcheck_cpu() {
    let mut r = Inputs::new(6, Device::Cpu);
    let cases: [(&[usize], &[usize]); 10] = [
        (&[2, 3], &[3, 4]),
        (&[3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[4], &[4]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
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
    check("x @ x^T", &[r.any(&[2, 3])], |v| v[0].matmul(&v[0].t()?));
}

#[test]
fn sum_and_mean_gradcheck_cpu() {
    let mut r = Inputs::new(7, Device::Cpu);
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
    // Nonlinear downstream of the reduction, so the second derivative flows through it.
    check("square of sum", &[r.any(&[2, 3])], |v| {
        v[0].sum(&[1], false)?.square()
    });
}

#[test]
fn sum_to_gradcheck_cpu() {
    let mut r = Inputs::new(8, Device::Cpu);
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

#[test]
fn max_gradcheck_cpu() {
    let mut r = Inputs::new(9, Device::Cpu);
    // Continuous random values: no ties, and gaps far wider than the finite-difference step.
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

#[test]
fn logsumexp_gradcheck_cpu() {
    let mut r = Inputs::new(10, Device::Cpu);
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

#[test]
fn log_softmax_gradcheck_cpu() {
    let mut r = Inputs::new(11, Device::Cpu);
    let m = r.uniform(&[3, 4], -2.0, 2.0);
    for axis in [0, -1] {
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

#[test]
fn reshape_unsqueeze_permute_gradcheck_cpu() {
    let mut r = Inputs::new(12, Device::Cpu);
    let x = r.any(&[2, 3, 4]);
    check("reshape [6, 4]", std::slice::from_ref(&x), |v| {
        v[0].reshape([6, 4])
    });
    check("reshape [24]", std::slice::from_ref(&x), |v| {
        v[0].reshape([24])
    });
    check("reshape scalar", &[r.any(&[])], |v| v[0].reshape([1, 1]));
    check("unsqueeze 0", std::slice::from_ref(&x), |v| {
        v[0].unsqueeze(0)
    });
    check("unsqueeze 3", std::slice::from_ref(&x), |v| {
        v[0].unsqueeze(3)
    });
    check("permute [2, 0, 1]", std::slice::from_ref(&x), |v| {
        v[0].permute(&[2, 0, 1])
    });
    check("permute [1, 2, 0]", std::slice::from_ref(&x), |v| {
        v[0].permute(&[1, 2, 0])
    });
    check("transpose 0 2", std::slice::from_ref(&x), |v| {
        v[0].transpose(0, 2)
    });
    check("transpose -1 -2", std::slice::from_ref(&x), |v| {
        v[0].transpose(-1, -2)
    });
    check("t [2, 3, 4]", std::slice::from_ref(&x), |v| v[0].t());
    check("t [3, 2]", &[r.any(&[3, 2])], |v| v[0].t());
    check("square after permute", &[x], |v| {
        v[0].permute(&[2, 0, 1])?.square()
    });
}

#[test]
fn broadcast_narrow_pad_gradcheck_cpu() {
    let mut r = Inputs::new(13, Device::Cpu);
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
    check("narrow 1 1 2", std::slice::from_ref(&x), |v| {
        v[0].narrow(1, 1, 2)
    });
    check("narrow 0 2 1", std::slice::from_ref(&x), |v| {
        v[0].narrow(0, 2, 1)
    });
    check("narrow -1 0 4", std::slice::from_ref(&x), |v| {
        v[0].narrow(-1, 0, 4)
    });
    check("pad_zeros 0 1 2", std::slice::from_ref(&x), |v| {
        v[0].pad_zeros(0, 1, 2)
    });
    check("pad_zeros -1 2 0", std::slice::from_ref(&x), |v| {
        v[0].pad_zeros(-1, 2, 0)
    });
    check("square of narrow", &[x], |v| v[0].narrow(1, 1, 2)?.square());
}

#[test]
fn cat_and_stack_gradcheck_cpu() {
    let mut r = Inputs::new(14, Device::Cpu);
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

#[test]
fn trace_and_gather_labels_gradcheck_cpu() {
    let mut r = Inputs::new(15, Device::Cpu);
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

#[test]
fn small_mlp_gradcheck_cpu() {
    let mut r = Inputs::new(16, Device::Cpu);
    // x [4, 3], W1 [5, 3], b1 [5], W2 [2, 5], b2 [2]: tanh hidden layer, sigmoid output, MSE.
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

#[test]
fn checks_detect_wrong_derivatives_cpu() {
    // Negative controls, so a check that passes everything cannot go unnoticed.
    let mut r = Inputs::new(17, Device::Cpu);
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
