//! Hessians of any `Module`: residual and two-input models against finite differences, the
//! tape against the fused sweep on MLPs, hesse's MimoModel against its closed form, closures
//! as losses, and the errors of each entry point, on the CPU and on CUDA.

mod common;

use common::rel_err;
use curvature_hessian::{
    hessian_of, loss_hessian, loss_hessian_with, model_hessian, per_sample_hessian,
    per_sample_hessian_with, HessianOptions, LinearOperator, ModelHvp, PreparedHvp,
};
use curvature_nn::{
    binary_cross_entropy_with_logits, check_param_count, gaussian_nll, mse, Activation, Dropout,
    Linear, Loss, Module, NnError, Objective, Residual, Sequential,
};
use curvature_tape::{grad, GradOptions, Tape, Var};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

fn on(values: &[f64], dims: &[usize], device: Device) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, device).unwrap()
}

/// Deterministic values in (−1, 1).
fn wave(len: usize, phase: f64) -> Vec<f64> {
    (0..len).map(|i| (1.7 * i as f64 + phase).sin()).collect()
}

/// Linear(3, 3) → softplus → x + tanh(Linear(3, 3)(x)) → Linear(3, 2): P = 32.
fn residual_model(device: Device) -> Sequential {
    let layer = |i, o, seed| Linear::seeded(i, o, DType::F64, device, seed).unwrap();
    Sequential::default()
        .with(layer(3, 3, 1))
        .with(Activation::new(UnaryOp::Softplus))
        .with(Residual::new(
            Sequential::default()
                .with(layer(3, 3, 2))
                .with(Activation::Tanh),
        ))
        .with(layer(3, 2, 3))
}

/// hesse's MimoModel: out = hstack(tr(AᵀA)·x, tr(BᵀB)·y), parameters A, B `[2, 2]`.
#[derive(Debug, Clone)]
struct MimoModel {
    a: Tensor,
    b: Tensor,
}

impl Module for MimoModel {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("A".into(), self.a.clone()), ("B".into(), self.b.clone())]
    }

    fn forward_with(&self, _: &[Var], _: &Var) -> curvature_nn::Result<Var> {
        Err(NnError::InputCount {
            module: "MimoModel",
            expected: 2,
            got: 1,
        })
    }

    fn num_inputs(&self) -> usize {
        2
    }

    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> curvature_nn::Result<Var> {
        check_param_count("MimoModel", params, 2)?;
        let [x, y] = inputs else {
            return Err(NnError::InputCount {
                module: "MimoModel",
                expected: 2,
                got: inputs.len(),
            });
        };
        let ta = params[0].t()?.matmul(&params[0])?.trace()?;
        let tb = params[1].t()?.matmul(&params[1])?.trace()?;
        Ok(Var::cat(&[&x.mul(&ta)?, &y.mul(&tb)?], 1)?)
    }
}

/// A module that only forwards to another: hides `as_sequential` and `rows_independent`, so
/// the Hessian code takes its general routes.
#[derive(Debug, Clone)]
struct Opaque(Sequential);

impl Module for Opaque {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.0.named_parameters()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> curvature_nn::Result<Var> {
        self.0.forward_with(params, x)
    }
}

/// The Hessian of `f(θ)` by central differences of its tape gradient, on the CPU in f64.
fn fd_hessian(f: impl Fn(&Var) -> curvature_nn::Result<Var>, theta: &[f64]) -> Vec<f64> {
    let p = theta.len();
    let gradient = |at: &[f64]| -> Vec<f64> {
        let tape = Tape::new();
        let leaf = tape.leaf(on(at, &[p], Device::Cpu));
        let value = f(&leaf).unwrap();
        let g = grad(&[value], &[leaf], GradOptions::default()).unwrap();
        g[0].value().to_f64s().unwrap()
    };
    let eps = 1e-5;
    let mut h = vec![0.0; p * p];
    for j in 0..p {
        let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
        plus[j] += eps;
        minus[j] -= eps;
        let (gp, gm) = (gradient(&plus), gradient(&minus));
        for i in 0..p {
            h[i * p + j] = (gp[i] - gm[i]) / (2.0 * eps);
        }
    }
    h
}

fn residual_loss_hessian_equals_finite_differences(device: Device) {
    let model = residual_model(device);
    assert_eq!(model.num_params(), 32);
    let (x, y) = (wave(12, 0.3), wave(8, 1.1));
    let h = loss_hessian(
        &model,
        Loss::Mse,
        &on(&x, &[4, 3], device),
        &on(&y, &[4, 2], device),
    )
    .unwrap();
    assert_eq!((h.dims(), h.device()), (&[32, 32][..], device));
    assert_eq!(
        ModelHvp::new(
            &model,
            Loss::Mse,
            &on(&x, &[4, 3], device),
            &on(&y, &[4, 2], device)
        )
        .unwrap()
        .engine(4),
        "tape"
    );

    let cpu = residual_model(Device::Cpu);
    let (xc, yc) = (on(&x, &[4, 3], Device::Cpu), on(&y, &[4, 2], Device::Cpu));
    let theta = cpu.flat_params().unwrap().to_f64s().unwrap();
    let want = fd_hessian(
        |t| {
            let out = cpu.forward_flat(t, &t.constant(xc.clone()))?;
            mse(&out, &t.constant(yc.clone()))
        },
        &theta,
    );
    let err = rel_err(&h, &on(&want, &[32, 32], Device::Cpu));
    assert!(err <= 1e-7, "{err:e}");
}

fn two_input_model_hessians_match_the_closed_form(device: Device) {
    let x = [[1.0, 2.0], [3.0, 4.0]];
    let model = MimoModel {
        a: on(&[0.3, -1.0, 2.0, 0.7], &[2, 2], device),
        b: on(&[-0.4, 1.5, 0.2, -2.2], &[2, 2], device),
    };
    let xt = on(&[1.0, 2.0, 3.0, 4.0], &[2, 2], device);
    let yt = xt.neg().unwrap();
    let h = model_hessian(&model, &[xt.clone(), yt.clone()]).unwrap();
    assert_eq!((h.dims(), h.device()), (&[2, 4, 8, 8][..], device));
    // tr(AᵀA) = Σ A², whose Hessian is 2·I₄: output [i, j] is x[i][j]·tr(AᵀA) for j < 2 (the
    // A-block, parameters 0..4) and y[i][j−2]·tr(BᵀB) for j ≥ 2 (the B-block, 4..8).
    let mut want = vec![0.0; 2 * 4 * 64];
    for i in 0..2 {
        for j in 0..4 {
            let (coefficient, block) = if j < 2 {
                (x[i][j], 0)
            } else {
                (-x[i][j - 2], 4)
            };
            for d in 0..4 {
                let p = block + d;
                want[(i * 4 + j) * 64 + p * 8 + p] = 2.0 * coefficient;
            }
        }
    }
    assert_eq!(h.to_vec::<f64>().unwrap(), want);

    // The loss Hessian of Σ out² through a closure, against finite differences.
    let sum_sq = |out: &Var| -> curvature_nn::Result<Var> { Ok(out.square()?.sum_all()?) };
    let inputs = [xt, yt];
    let h = loss_hessian_with(&model, &inputs, Objective::Closure(&sum_sq)).unwrap();
    assert_eq!(h.dims(), &[8, 8]);
    let cpu_inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(Device::Cpu).unwrap())
        .collect();
    let theta = model.flat_params().unwrap().to_f64s().unwrap();
    let want = fd_hessian(
        |t| {
            let vars: Vec<Var> = cpu_inputs.iter().map(|x| t.constant(x.clone())).collect();
            sum_sq(&model.forward_flat_inputs(t, &vars)?)
        },
        &theta,
    );
    let err = rel_err(&h, &on(&want, &[8, 8], Device::Cpu));
    assert!(err <= 1e-7, "{err:e}");
}

fn model_hessian_by_rows_equals_the_whole_model(device: Device) {
    let model = residual_model(device);
    let x = on(&wave(9, 0.5), &[3, 3], device);
    let by_rows = model_hessian(&model, &x).unwrap();
    let whole = model_hessian(&Opaque(model.clone()), &x).unwrap();
    assert_eq!(by_rows.dims(), &[3, 2, 32, 32]);
    assert_eq!(whole.dims(), &[3, 2, 32, 32]);
    let err = rel_err(&by_rows, &whole);
    assert!(err <= 1e-12, "{err:e}");
}

fn per_sample_hessians_with_a_closure_equal_the_builtin_loss(device: Device) {
    let model = residual_model(device);
    let (x, y) = (
        on(&wave(9, 0.2), &[3, 3], device),
        on(&wave(6, 0.9), &[3, 2], device),
    );
    let builtin = per_sample_hessian(&model, Loss::Mse, &x, &y).unwrap();
    assert_eq!(builtin.dims(), &[3, 32, 32]);
    let closure = |i: usize, out: &Var| -> curvature_nn::Result<Var> {
        mse(out, &out.constant(y.narrow(0, i, 1)?))
    };
    let custom = per_sample_hessian_with(&model, &x, &closure).unwrap();
    let err = rel_err(&custom, &builtin);
    assert!(err <= 1e-12, "{err:e}");
    // The batch MSE Hessian is the mean of the per-sample ones (rows are independent).
    let batch = loss_hessian(&model, Loss::Mse, &x, &y).unwrap();
    let mean = builtin
        .sum(&[0], false)
        .unwrap()
        .mul_scalar(1.0 / 3.0)
        .unwrap();
    let err = rel_err(&batch, &mean);
    assert!(err <= 1e-12, "{err:e}");
}

fn model_entry_points_reject_wrong_inputs(device: Device) {
    let model = residual_model(device);
    let x = on(&wave(6, 0.0), &[2, 3], device);
    let y = on(&wave(4, 0.0), &[2, 2], device);
    let two = [x.clone(), x.clone()];
    let message = |r: curvature_hessian::Result<Tensor>| r.unwrap_err().to_string();
    let err = message(model_hessian(&model, &two));
    assert!(err.contains("takes 1 input(s), got 2"), "{err}");
    let err = message(loss_hessian(&model, Loss::Mse, &two, &y));
    assert!(err.contains("takes 1 input(s), got 2"), "{err}");
    assert!(ModelHvp::new(&model, Loss::Mse, &Vec::<Tensor>::new(), &y).is_err());
    let mimo = MimoModel {
        a: on(&[1.0; 4], &[2, 2], device),
        b: on(&[1.0; 4], &[2, 2], device),
    };
    let err = message(model_hessian(&mimo, &x));
    assert!(err.contains("takes 2 input(s), got 1"), "{err}");
    // dtype and device mismatches between the parameters and the data.
    let x32 = x.to_dtype(DType::F32).unwrap();
    let err = message(loss_hessian(&model, Loss::Mse, &x32, &y));
    assert!(err.contains("dtype mismatch"), "{err}");
    let err = message(loss_hessian(
        &model,
        Loss::Mse,
        &x,
        &y.to_dtype(DType::F32).unwrap(),
    ));
    assert!(err.contains("dtype mismatch"), "{err}");
    if device != Device::Cpu {
        let err = message(model_hessian(&model, &x.to_device(Device::Cpu).unwrap()));
        assert!(err.contains("device mismatch"), "{err}");
    }
    // Samples that disagree, targets of the wrong shape, an empty batch.
    let err = message(per_sample_hessian(
        &mimo,
        Loss::SumSq,
        &[x.clone(), y.narrow(0, 0, 1).unwrap()],
        &y,
    ));
    assert!(err.contains("same non-empty leading batch axis"), "{err}");
    assert!(per_sample_hessian(&model, Loss::Mse, &x, &y.narrow(0, 0, 1).unwrap()).is_err());
    assert!(loss_hessian(&model, Loss::Mse, &x, &on(&[0.0; 3], &[3], device)).is_err());
    assert!(model_hessian(&model, &x.narrow(0, 0, 0).unwrap()).is_err());
    // A closure's error comes back unchanged.
    let failing = |_: &Var| -> curvature_nn::Result<Var> {
        Err(NnError::InvalidArgument {
            op: "my_loss",
            msg: "refused".into(),
        })
    };
    let err = message(loss_hessian_with(&model, &x, Objective::Closure(&failing)));
    assert_eq!(err, "my_loss: refused");
}

/// A heteroscedastic regression head (mean and softplus variance from one Linear layer) under
/// the Gaussian NLL, plus a binary cross-entropy on the mean: the loss Hessian through a
/// closure equals finite differences.
fn closure_losses_have_finite_difference_hessians(device: Device) {
    let model = Sequential::default()
        .with(Linear::seeded(3, 4, DType::F64, device, 5).unwrap())
        .with(Activation::Tanh)
        .with(Linear::seeded(4, 2, DType::F64, device, 6).unwrap());
    let x = wave(12, 0.7);
    let y = wave(4, 1.3);
    let labels: Vec<f64> = y.iter().map(|v| f64::from(*v > 0.0)).collect();
    let objective = |y: Tensor, labels: Tensor| {
        move |out: &Var| -> curvature_nn::Result<Var> {
            let mean = out.narrow(1, 0, 1)?;
            let var = out.narrow(1, 1, 1)?.softplus()?;
            let gaussian = gaussian_nll(&mean, &out.constant(y.clone()), &var, 1e-6)?;
            let bce = binary_cross_entropy_with_logits(&mean, &out.constant(labels.clone()))?;
            Ok(gaussian.add(&bce)?)
        }
    };
    let f = objective(on(&y, &[4, 1], device), on(&labels, &[4, 1], device));
    let h = loss_hessian_with(&model, &on(&x, &[4, 3], device), Objective::Closure(&f)).unwrap();
    assert_eq!((h.dims(), h.device()), (&[26, 26][..], device));

    let f = objective(
        on(&y, &[4, 1], Device::Cpu),
        on(&labels, &[4, 1], Device::Cpu),
    );
    let xc = on(&x, &[4, 3], Device::Cpu);
    let theta = model.flat_params().unwrap().to_f64s().unwrap();
    let cpu = Sequential::default()
        .with(Linear::seeded(3, 4, DType::F64, Device::Cpu, 5).unwrap())
        .with(Activation::Tanh)
        .with(Linear::seeded(4, 2, DType::F64, Device::Cpu, 6).unwrap());
    let want = fd_hessian(
        |t| f(&cpu.forward_flat(t, &t.constant(xc.clone()))?),
        &theta,
    );
    let err = rel_err(&h, &on(&want, &[26, 26], Device::Cpu));
    assert!(err <= 1e-7, "{err:e}");
}

device_tests! {
    closure_losses_have_finite_difference_hessians,
    residual_loss_hessian_equals_finite_differences,
    two_input_model_hessians_match_the_closed_form,
    model_hessian_by_rows_equals_the_whole_model,
    per_sample_hessians_with_a_closure_equal_the_builtin_loss,
    model_entry_points_reject_wrong_inputs,
}

/// The tape's loss Hessian of an MLP equals the fused sweep's, which `ModelHvp` picks for a
/// plain MLP `Sequential` and not for the same layers behind another module or with another
/// activation.
#[test]
fn tape_and_fused_sweep_agree_on_mlps_cpu() {
    let device = Device::Cpu;
    let (x, labels) = (
        on(&wave(15, 0.4), &[5, 3], device),
        on(&[0.0, 2.0, 1.0, 1.0, 0.0], &[5], device),
    );
    let targets = on(&wave(15, 2.0), &[5, 3], device);
    let cases = [
        (&[3, 4, 3][..], Activation::Tanh, Loss::Mse, &targets),
        (
            &[3, 5, 4, 3][..],
            Activation::Sigmoid,
            Loss::CrossEntropy,
            &labels,
        ),
        (&[3, 4, 3][..], Activation::Tanh, Loss::SumSq, &targets),
    ];
    for (widths, act, loss, y) in cases {
        let hidden = vec![act; widths.len() - 2];
        let model = Sequential::mlp(widths, &hidden, None, DType::F64, device, 11).unwrap();
        let fused = ModelHvp::new(&model, loss, &x, y).unwrap();
        assert_eq!(fused.engine(2), "fused-wide");
        let opaque = Opaque(model.clone());
        let tape = ModelHvp::new(&opaque, loss, &x, y).unwrap();
        assert_eq!(tape.engine(2), "tape");
        let options = HessianOptions::default();
        let (a, b) = (
            hessian_of(&fused, &options).unwrap(),
            hessian_of(&tape, &options).unwrap(),
        );
        let err = rel_err(&a, &b);
        assert!(err <= 1e-12, "{widths:?} {loss:?}: {err:e}");
        let prepared = PreparedHvp::for_model(&model, loss, &x, y).unwrap();
        assert_eq!(prepared.dim(), model.num_params());
        assert!(rel_err(&a, &hessian_of(&prepared, &options).unwrap()) <= 1e-12);
        assert!((fused.value().unwrap() - tape.value().unwrap()).abs() <= 1e-14);
    }
    // Dropout is the identity at evaluation: still the fused sweep, equal to the tape.
    let layer = |i, o, seed| Linear::seeded(i, o, DType::F64, device, seed).unwrap();
    let with_dropout = Sequential::default()
        .with(layer(3, 4, 1))
        .with(Activation::Tanh)
        .with(Dropout::new(0.5).unwrap())
        .with(layer(4, 3, 2));
    let fused = ModelHvp::new(&with_dropout, Loss::Mse, &x, &targets).unwrap();
    assert_eq!(fused.engine(2), "fused-wide");
    let tape = PreparedHvp::for_model(&with_dropout, Loss::Mse, &x, &targets).unwrap();
    let options = HessianOptions::default();
    let err = rel_err(
        &hessian_of(&fused, &options).unwrap(),
        &hessian_of(&tape, &options).unwrap(),
    );
    assert!(err <= 1e-12, "{err:e}");
    // Losses the fused sweep does not implement: the tape.
    let hidden = [Activation::Tanh];
    let mlp = Sequential::mlp(&[3, 4, 3], &hidden, None, DType::F64, device, 2).unwrap();
    let probs = on(
        &wave(15, 0.1).iter().map(|v| v.abs()).collect::<Vec<_>>(),
        &[5, 3],
        device,
    );
    for loss in [Loss::BceWithLogits, Loss::SoftCrossEntropy] {
        let op = ModelHvp::new(&mlp, loss, &x, &probs).unwrap();
        assert_eq!(op.engine(2), "tape");
        let h = hessian_of(&op, &HessianOptions::default()).unwrap();
        let theta = mlp.flat_params().unwrap().to_f64s().unwrap();
        let want = fd_hessian(
            |t| {
                let out = mlp.forward_flat(t, &t.constant(x.clone()))?;
                loss.compute(&out, &probs)
            },
            &theta,
        );
        let err = rel_err(&h, &on(&want, &[31, 31], Device::Cpu));
        assert!(err <= 1e-7, "{loss:?}: {err:e}");
    }
    let err = curvature_hessian::MlpHvp::new(&mlp, Loss::Nll, &x, &labels)
        .err()
        .expect("nll is not fused")
        .to_string();
    assert!(err.contains("not nll_loss"), "{err}");
    // An activation without closed-form derivatives: the tape.
    let model = Sequential::mlp(
        &[3, 4, 3],
        &[Activation::new(UnaryOp::Softplus)],
        None,
        DType::F64,
        device,
        1,
    )
    .unwrap();
    assert_eq!(
        ModelHvp::new(&model, Loss::Mse, &x, &targets)
            .unwrap()
            .engine(2),
        "tape"
    );
    // A closure objective: the tape, equal to the built-in loss.
    let closure = |out: &Var| mse(out, &out.constant(targets.clone()));
    let custom = ModelHvp::with_objective(&model, &x, Objective::Closure(&closure)).unwrap();
    assert_eq!(custom.engine(2), "tape");
    let builtin = loss_hessian(&model, Loss::Mse, &x, &targets).unwrap();
    let err = rel_err(
        &hessian_of(&custom, &HessianOptions::default()).unwrap(),
        &builtin,
    );
    assert!(err <= 1e-12, "{err:e}");
}
