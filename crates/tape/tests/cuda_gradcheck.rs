//! The tape on `Device::Cuda`, unchanged: `gradcheck` and `gradgradcheck` (central finite
//! differences in f64) for every op family, and the golden suite (loss, gradient and batched
//! Hessian-vector products of every tests/data model, f64 to 1e-10 and f32 to 1e-4 of the
//! independent JAX values), with the CUDA results also equal to the CPU's.
//!
//! Runs on a real GPU when present, else on the emulated GPU (ARCHITECTURE.md, "The emulated GPU"); with
//! `CURVATURE_REQUIRE_GPU=1` a missing GPU fails instead. Sizes are small: every finite
//! difference is a full forward pass of kernel launches.

mod common;

use common::{assert_gradchecks, golden_files, relative_error, Inputs};
use curvature_nn::ModelFile;
use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{grad, vjp, GradOptions, Result, Tape, Var};
use curvature_tensor::backend::TernaryOp;
use curvature_tensor::{DType, Device, Tensor};

fn gpu() -> Device {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    eprintln!("running on {}", device.description());
    device
}

/// gradcheck and gradgradcheck of `f` at `inputs` (all on the CUDA device), and the value of
/// `f` equal to the CPU's.
fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Var]) -> Result<Var>) {
    assert_gradchecks(name, inputs, &f);

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
    let (gpu, cpu) = (value(inputs.to_vec()), value(on_cpu));
    assert!(
        relative_error(&gpu, &cpu) <= 1e-12,
        "{name}: CUDA value {gpu:?} vs CPU {cpu:?}"
    );
}

#[test]
fn unary_and_scalar_ops_gradcheck_cuda() {
    let mut r = Inputs::new(1, gpu());
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
    check("powf 2.5", &[r.uniform(&shape, 0.5, 1.5)], |v| {
        v[0].powf(2.5)
    });
    check("powf -1.5", &[r.uniform(&shape, 0.5, 1.5)], |v| {
        v[0].powf(-1.5)
    });
    check("scalar tanh", &[r.any(&[])], |v| v[0].tanh());
    check("affine then square", &[r.any(&shape)], |v| {
        v[0].affine(2.0, -0.5)?.square()
    });
    check("div_scalar", &[r.any(&shape)], |v| v[0].div_scalar(4.0));
}

#[test]
fn binary_broadcast_gradcheck_cuda() {
    let mut r = Inputs::new(2, gpu());
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3]),
        (&[3, 2], &[2]),
        (&[2, 1, 3], &[2, 1]),
        (&[], &[3]),
    ];
    for (a, b) in pairs {
        let inputs = [r.any(a), r.away_from_zero(b)];
        check(&format!("add {a:?} {b:?}"), &inputs, |v| v[0].add(&v[1]));
        check(&format!("sub {a:?} {b:?}"), &inputs, |v| v[0].sub(&v[1]));
        check(&format!("mul {a:?} {b:?}"), &inputs, |v| v[0].mul(&v[1]));
        check(&format!("div {a:?} {b:?}"), &inputs, |v| v[0].div(&v[1]));
    }
    check("mul self", &[r.any(&[3])], |v| v[0].mul(&v[0]));
}

#[test]
fn fused_activation_derivatives_gradcheck_cuda() {
    let mut r = Inputs::new(3, gpu());
    let pairs: [(&[usize], &[usize]); 2] = [(&[2, 3], &[2, 3]), (&[2, 3], &[3])];
    for (g, y) in pairs {
        let inputs = [r.any(g), r.uniform(y, -0.9, 0.9)];
        check(&format!("tanh_backward {g:?} {y:?}"), &inputs, |v| {
            v[0].tanh_backward(&v[1])
        });
        let inputs = [r.any(g), r.uniform(y, 0.1, 0.9)];
        check(&format!("sigmoid_backward {g:?} {y:?}"), &inputs, |v| {
            v[0].sigmoid_backward(&v[1])
        });
    }
    for op in [
        TernaryOp::TanhBackwardGradY,
        TernaryOp::SigmoidBackwardGradY,
    ] {
        let inputs = [r.any(&[2, 3]), r.any(&[3]), r.uniform(&[2, 1], -0.9, 0.9)];
        check(op.name(), &inputs, |v| v[0].ternary(op, &v[1], &v[2]));
    }
}

#[test]
fn matmul_gradcheck_cuda() {
    let mut r = Inputs::new(4, gpu());
    let cases: [(&[usize], &[usize]); 6] = [
        (&[2, 3], &[3, 4]),
        (&[3], &[3, 2]),
        (&[2, 3], &[3]),
        (&[2, 2, 3], &[2, 3, 2]),
        (&[2, 2, 3], &[3, 2]),
        (&[2, 1, 2, 3], &[2, 3, 2]),
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
}

#[test]
fn reductions_gradcheck_cuda() {
    let mut r = Inputs::new(5, gpu());
    let x = r.any(&[2, 3, 4]);
    let one = std::slice::from_ref(&x);
    for axes in [&[0isize][..], &[-1], &[0, 2]] {
        check(&format!("sum {axes:?}"), one, |v| v[0].sum(axes, false));
        check(&format!("mean {axes:?} keepdim"), one, |v| {
            v[0].mean(axes, true)
        });
    }
    check("sum_all", one, |v| v[0].sum_all());
    check("mean_all", one, |v| v[0].mean_all());
    for target in [&[3, 1][..], &[1, 3, 4], &[4], &[]] {
        check(&format!("sum_to {target:?}"), one, |v| v[0].sum_to(target));
    }
    check("square of sum", &[r.any(&[2, 3])], |v| {
        v[0].sum(&[1], false)?.square()
    });
    for (axis, keepdim) in [(0, false), (1, true), (-1, false)] {
        check(&format!("max {axis} {keepdim}"), one, |v| {
            v[0].max(axis, keepdim)
        });
    }
    let m = r.uniform(&[3, 4], -2.0, 2.0);
    for axis in [0, 1] {
        check(
            &format!("logsumexp {axis}"),
            std::slice::from_ref(&m),
            |v| v[0].logsumexp(axis, false),
        );
        check(
            &format!("log_softmax {axis}"),
            std::slice::from_ref(&m),
            |v| v[0].log_softmax(axis),
        );
    }
    check("logsumexp keepdim", std::slice::from_ref(&m), |v| {
        v[0].logsumexp(-1, true)
    });
    let t = r.uniform(&[2, 3, 2], -2.0, 2.0);
    check("logsumexp [2, 3, 2] 1", std::slice::from_ref(&t), |v| {
        v[0].logsumexp(1, false)
    });
    check("log_softmax [2, 3, 2] 1", &[t], |v| v[0].log_softmax(1));
}

#[test]
fn layout_ops_gradcheck_cuda() {
    let mut r = Inputs::new(6, gpu());
    let x = r.any(&[2, 3, 4]);
    let one = std::slice::from_ref(&x);
    check("reshape", one, |v| v[0].reshape([6, 4]));
    check("unsqueeze", one, |v| v[0].unsqueeze(1));
    check("permute", one, |v| v[0].permute(&[2, 0, 1]));
    check("transpose", one, |v| v[0].transpose(0, 2));
    check("t", one, |v| v[0].t());
    check("broadcast_to", &[r.any(&[3, 1])], |v| {
        v[0].broadcast_to([2, 3, 4])
    });
    check("expand scalar", &[r.any(&[])], |v| v[0].expand([2, 2]));
    check("narrow", one, |v| v[0].narrow(2, 1, 2));
    check("pad_zeros", one, |v| v[0].pad_zeros(1, 1, 2));
    check("square of permute", one, |v| {
        v[0].permute(&[2, 0, 1])?.square()
    });
    let parts = [r.any(&[2, 1]), r.any(&[2, 3])];
    check("cat", &parts, |v| Var::cat(&[&v[1], &v[0], &v[1]], -1));
    let rows = [r.any(&[1, 3]), r.any(&[2, 3])];
    check("cat 0", &rows, |v| Var::cat(&[&v[0], &v[1]], 0));
    let same = [r.any(&[2, 3]), r.any(&[2, 3])];
    check("stack product", &same, |v| {
        let s = Var::stack(&[&v[0], &v[1]], 0)?;
        s.narrow(0, 0, 1)?.mul(&s.narrow(0, 1, 1)?)
    });
    for axis in [1, 2] {
        check(&format!("stack {axis}"), &same, |v| {
            Var::stack(&[&v[0], &v[1]], axis)
        });
    }
    check("gather_labels", &[r.any(&[3, 4])], |v| {
        v[0].gather_labels(&[2, 0, 3])
    });
    check("trace", &[r.any(&[3, 4])], |v| v[0].trace());
    check("trace of x x^T", &[r.any(&[2, 3])], |v| {
        v[0].matmul(&v[0].t()?)?.trace()
    });
    check("cross-entropy", &[r.any(&[3, 4])], |v| {
        v[0].log_softmax(-1)?
            .gather_labels(&[1, 3, 0])?
            .mean_all()?
            .neg()
    });
}

#[test]
fn small_mlp_gradcheck_cuda() {
    let mut r = Inputs::new(7, gpu());
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

/// Loss, gradient and the batched HVPs `vjp(∇L, V)` of a model file, as host values.
fn loss_grad_hvps(file: &ModelFile) -> curvature_nn::Result<[Vec<f64>; 3]> {
    let tape = Tape::new();
    let theta = tape.leaf(file.model.flat_params()?);
    let loss = file.loss_of(&theta)?;
    let g = grad(
        std::slice::from_ref(&loss),
        std::slice::from_ref(&theta),
        GradOptions::create_graph(),
    )?
    .remove(0);
    let v = tape.constant(file.tensor("V")?.clone());
    let hv = vjp(
        std::slice::from_ref(&g),
        &[v],
        std::slice::from_ref(&theta),
        false,
    )?
    .remove(0);
    assert_eq!(hv.device(), theta.device(), "results stay on the device");
    Ok([
        loss.value().to_f64s()?,
        g.value().to_f64s()?,
        hv.value().to_f64s()?,
    ])
}

#[test]
fn golden_loss_grad_and_batched_hvps_cuda() -> curvature_nn::Result<()> {
    let device = gpu();
    for path in golden_files() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let reference = ModelFile::load(&path, DType::F64, Device::Cpu)?;
        let golden = [
            reference.tensor("loss")?.to_f64s()?,
            reference.tensor("grad")?.to_f64s()?,
            reference.tensor("hvps")?.to_f64s()?,
        ];
        let cpu = loss_grad_hvps(&reference)?;
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            let file = ModelFile::load(&path, dtype, device)?;
            assert_eq!(file.x.device(), device);
            let ours = loss_grad_hvps(&file)?;
            for (what, i) in [("loss", 0), ("grad", 1), ("hvps", 2)] {
                let err = relative_error(&ours[i], &golden[i]);
                assert!(err <= tol, "{name:?} {dtype} {what}: {err:e} vs golden");
                if dtype == DType::F64 {
                    let err = relative_error(&ours[i], &cpu[i]);
                    assert!(err <= 1e-12, "{name:?} {what}: {err:e} vs CPU");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn third_derivative_of_x4_cuda() -> Result<()> {
    // x⁴ → 4x³ → 12x² → 24x, each a `grad` of the previous graph on the device.
    let device = gpu();
    let tape = Tape::new();
    let x = tape.leaf(Tensor::from_f64s(&[1.5, -0.5], [2], DType::F64, device)?);
    let y = x.powf(4.0)?.sum_all()?;
    let d1 = grad(&[y], std::slice::from_ref(&x), GradOptions::create_graph())?.remove(0);
    let d2 = grad(
        &[d1.sum_all()?],
        std::slice::from_ref(&x),
        GradOptions::create_graph(),
    )?
    .remove(0);
    let d3 = grad(&[d2.sum_all()?], &[x], GradOptions::default())?.remove(0);
    for (got, want) in [
        (d1, [4.0 * 1.5f64.powi(3), 4.0 * (-0.5f64).powi(3)]),
        (d2, [12.0 * 1.5f64.powi(2), 12.0 * 0.25]),
        (d3, [24.0 * 1.5, 24.0 * -0.5]),
    ] {
        assert_eq!(got.device(), device);
        let got = got.value().to_f64s()?;
        assert!(relative_error(&got, &want) <= 1e-14, "{got:?} vs {want:?}");
    }
    Ok(())
}

#[test]
fn checks_detect_wrong_derivatives_cuda() {
    // Negative controls on the device, so a check that passes everything cannot go unnoticed.
    let mut r = Inputs::new(8, gpu());
    let x = [r.uniform(&[4], 0.5, 1.5)];
    let options = CheckOptions::default();
    // x·detach(x): value x², but the tape sees derivative x instead of 2x.
    let wrong_first = |v: &[Var]| v[0].mul(&v[0].detach());
    let report = gradcheck(wrong_first, &x, options).expect("gradcheck runs");
    assert!(
        !report.passed,
        "gradcheck missed a wrong derivative: {report:#?}"
    );
    // detach(x)²·x − ⅔·detach(x)³: right value and first derivative, second derivative 0.
    let wrong_second = |v: &[Var]| {
        let d = v[0].detach();
        d.square()?
            .mul(&v[0])?
            .sub(&d.powf(3.0)?.mul_scalar(2.0 / 3.0)?)
    };
    assert!(gradcheck(wrong_second, &x, options).expect("runs").passed);
    let second = gradgradcheck(wrong_second, &x, options, 3).expect("gradgradcheck runs");
    assert!(
        !second.passed,
        "gradgradcheck missed a wrong second derivative: {second:#?}"
    );
}
