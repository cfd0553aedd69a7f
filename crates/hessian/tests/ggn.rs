//! The Gauss–Newton and Fisher operators against independent references: the Hessian where the
//! two coincide, `Jᵀ H J` built densely in the test from a finite-difference Jacobian and the
//! loss's Hessian written out here, per-sample gradients one by one, and sampling limits.

mod common;

use common::rel_err;
use curvature_hessian::{
    hessian_of, loss_hessian, loss_hessian_with, Curvature, Ggn, GgnOptions, HessianError,
    HessianOptions, IntoOutputLoss, LinearOperator, OutputLoss,
};
use curvature_nn::{
    binary_cross_entropy_with_logits, Activation, Linear, Loss, Module, Objective, Residual,
    Sequential,
};
use curvature_tape::{grad, GradOptions, Tape};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

fn tensor(values: &[f64], dims: &[usize], device: Device) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, device).unwrap()
}

/// Deterministic values in (−1, 1).
fn wave(len: usize, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| (0.7 * i as f64 + phase).sin() * 0.9)
        .collect()
}

/// A 3 → 4 → `classes` tanh MLP.
fn mlp(inputs: usize, hidden: usize, classes: usize, device: Device) -> Sequential {
    Sequential::default()
        .with(Linear::seeded(inputs, hidden, DType::F64, device, 3).unwrap())
        .with(Activation::new(UnaryOp::Tanh))
        .with(Linear::seeded(hidden, classes, DType::F64, device, 4).unwrap())
}

/// The model's output at θ, flattened (a forward pass only).
fn forward(model: &dyn Module, theta: &[f64], x: &Tensor) -> Vec<f64> {
    let tape = Tape::new();
    let p = tape.leaf(tensor(theta, &[theta.len()], Device::Cpu));
    let out = model.forward_flat(&p, &tape.constant(x.clone())).unwrap();
    out.value().to_f64s().unwrap()
}

/// The Jacobian `[n·O, P]` of the output by central differences (step 1e-5, f64).
fn fd_jacobian(model: &dyn Module, x: &Tensor) -> (Vec<f64>, usize, usize) {
    let theta = model.flat_params().unwrap().to_f64s().unwrap();
    let p = theta.len();
    let m = forward(model, &theta, x).len();
    let h = 1e-5;
    let mut j = vec![0.0; m * p];
    for k in 0..p {
        let (mut plus, mut minus) = (theta.clone(), theta.clone());
        plus[k] += h;
        minus[k] -= h;
        let (a, b) = (forward(model, &plus, x), forward(model, &minus, x));
        for r in 0..m {
            j[r * p + k] = (a[r] - b[r]) / (2.0 * h);
        }
    }
    (j, m, p)
}

/// The loss's Hessian with respect to the output `[n·O, n·O]`, written out per loss.
fn output_hessian(loss: OutputLoss, f: &[f64], n: usize) -> Vec<f64> {
    let m = f.len();
    let o = m / n;
    let mut h = vec![0.0; m * m];
    for i in 0..n {
        let row = &f[i * o..(i + 1) * o];
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for a in 0..o {
            for b in 0..o {
                let (ra, rb) = (i * o + a, i * o + b);
                let eq = if a == b { 1.0 } else { 0.0 };
                h[ra * m + rb] = match loss {
                    OutputLoss::Mse => 2.0 / m as f64 * eq,
                    OutputLoss::SumSq => 2.0 * eq,
                    OutputLoss::CrossEntropy => {
                        let pa = (row[a] - max).exp() / z;
                        let pb = (row[b] - max).exp() / z;
                        (pa * eq - pa * pb) / n as f64
                    }
                    OutputLoss::BinaryCrossEntropyWithLogits => {
                        let s = 1.0 / (1.0 + (-row[a]).exp());
                        s * (1.0 - s) * eq / m as f64
                    }
                };
            }
        }
    }
    h
}

/// `Jᵀ H J` `[P, P]` on the host.
fn jt_h_j(j: &[f64], h: &[f64], m: usize, p: usize) -> Vec<f64> {
    let mut hj = vec![0.0; m * p];
    for r in 0..m {
        for s in 0..m {
            let hrs = h[r * m + s];
            if hrs != 0.0 {
                for k in 0..p {
                    hj[r * p + k] += hrs * j[s * p + k];
                }
            }
        }
    }
    let mut g = vec![0.0; p * p];
    for r in 0..m {
        for a in 0..p {
            let jra = j[r * p + a];
            for b in 0..p {
                g[a * p + b] += jra * hj[r * p + b];
            }
        }
    }
    g
}

fn dense(op: &dyn LinearOperator) -> Tensor {
    hessian_of(op, &HessianOptions::default()).unwrap()
}

fn diag_of(m: &[f64], p: usize) -> Vec<f64> {
    (0..p).map(|i| m[i * p + i]).collect()
}

/// ‖a − b‖_F / ‖b‖_F.
fn frobenius_rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn ggn_equals_the_hessian_of_a_linear_model_with_mse() {
    let model =
        Sequential::default().with(Linear::seeded(3, 2, DType::F64, Device::Cpu, 1).unwrap());
    let x = tensor(&wave(15, 0.1), &[5, 3], Device::Cpu);
    let y = tensor(&wave(10, 2.0), &[5, 2], Device::Cpu);
    let g = dense(&Ggn::new(&model, Loss::Mse, &x, &y, Curvature::Ggn).unwrap());
    let h = loss_hessian(&model, Loss::Mse, &x, &y).unwrap();
    assert!(rel_err(&g, &h) <= 1e-12, "{}", rel_err(&g, &h));
}

#[test]
fn ggn_equals_the_hessian_of_linear_logits_with_cross_entropy_and_bce() {
    // Logits linear in θ: the loss Hessian is exactly the GGN.
    let model =
        Sequential::default().with(Linear::seeded(3, 4, DType::F64, Device::Cpu, 1).unwrap());
    let x = tensor(&wave(15, 0.1), &[5, 3], Device::Cpu);
    let labels = tensor(&[0.0, 3.0, 1.0, 2.0, 3.0], &[5], Device::Cpu);
    let g = dense(&Ggn::new(&model, Loss::CrossEntropy, &x, &labels, Curvature::Ggn).unwrap());
    let h = loss_hessian(&model, Loss::CrossEntropy, &x, &labels).unwrap();
    assert!(rel_err(&g, &h) <= 1e-12, "{}", rel_err(&g, &h));

    let t: Vec<f64> = wave(20, 1.0).iter().map(|v| 0.5 + 0.5 * v).collect();
    let targets = tensor(&t, &[5, 4], Device::Cpu);
    let bce = OutputLoss::BinaryCrossEntropyWithLogits;
    let g = dense(&Ggn::new(&model, bce, &x, &targets, Curvature::Ggn).unwrap());
    let f = |out: &curvature_tape::Var| {
        binary_cross_entropy_with_logits(out, &out.constant(targets.clone()))
    };
    let h = loss_hessian_with(&model, &x, Objective::Closure(&f)).unwrap();
    assert!(rel_err(&g, &h) <= 1e-12, "{}", rel_err(&g, &h));
}

/// `Ggn` against `Jᵀ H J` with J by finite differences and H written out: 1e-6.
fn check_against_fd(model: &dyn Module, loss: OutputLoss, x: &Tensor, y: &Tensor, chunk: usize) {
    let (j, m, p) = fd_jacobian(model, x);
    let f = forward(model, &model.flat_params().unwrap().to_f64s().unwrap(), x);
    let n = x.dims()[0];
    let reference = jt_h_j(&j, &output_hessian(loss, &f, n), m, p);
    let options = GgnOptions {
        column_chunk: chunk,
        ..GgnOptions::default()
    };
    let op = Ggn::with_options(model, loss, x, y, Curvature::Ggn, options).unwrap();
    let g = dense(&op).to_f64s().unwrap();
    let err = rel_err(
        &tensor(&g, &[p, p], Device::Cpu),
        &tensor(&reference, &[p, p], Device::Cpu),
    );
    assert!(err <= 1e-6, "{loss:?} chunk {chunk}: {err}");
    // The exact diagonal is the dense matrix's diagonal.
    let d = op.diagonal().unwrap().to_f64s().unwrap();
    let err = rel_err(
        &tensor(&d, &[p], Device::Cpu),
        &tensor(&diag_of(&g, p), &[p], Device::Cpu),
    );
    assert!(err <= 1e-12, "{loss:?} diagonal: {err}");
}

#[test]
fn ggn_equals_a_finite_difference_jt_h_j_on_the_golden_models() {
    for name in common::GOLDEN {
        let file = common::load(name);
        let loss = file.loss.into_output_loss().unwrap();
        check_against_fd(&file.model, loss, &file.x, &file.y, 0);
    }
}

#[test]
fn ggn_of_cross_entropy_and_bce_equal_finite_difference_jt_h_j_in_column_chunks() {
    let model = mlp(3, 4, 5, Device::Cpu);
    let x = tensor(&wave(18, 0.3), &[6, 3], Device::Cpu);
    let labels = tensor(&[0.0, 4.0, 1.0, 2.0, 3.0, 4.0], &[6], Device::Cpu);
    for chunk in [0, 1, 2, 5] {
        check_against_fd(&model, OutputLoss::CrossEntropy, &x, &labels, chunk);
    }
    let t: Vec<f64> = wave(30, 0.5).iter().map(|v| 0.5 + 0.5 * v).collect();
    let targets = tensor(&t, &[6, 5], Device::Cpu);
    for chunk in [0, 2] {
        check_against_fd(
            &model,
            OutputLoss::BinaryCrossEntropyWithLogits,
            &x,
            &targets,
            chunk,
        );
        check_against_fd(&model, OutputLoss::Mse, &x, &targets, chunk);
    }
}

/// Mean over samples of the outer products of each one-sample batch's loss gradient, with the
/// gradients taken one by one on the tape.
fn per_sample_fisher(model: &dyn Module, loss: Loss, x: &Tensor, y: &Tensor) -> Vec<f64> {
    let n = x.dims()[0];
    let theta = model.flat_params().unwrap();
    let p = theta.elem_count();
    let mut f = vec![0.0; p * p];
    for i in 0..n {
        let tape = Tape::new();
        let leaf = tape.leaf(theta.clone());
        let out = model
            .forward_flat(&leaf, &tape.constant(x.narrow(0, i, 1).unwrap()))
            .unwrap();
        let l = loss.compute(&out, &y.narrow(0, i, 1).unwrap()).unwrap();
        let g = grad(&[l], &[leaf], GradOptions::default()).unwrap()[0]
            .value()
            .to_f64s()
            .unwrap();
        for a in 0..p {
            for b in 0..p {
                f[a * p + b] += g[a] * g[b] / n as f64;
            }
        }
    }
    f
}

#[test]
fn empirical_fisher_is_the_mean_of_per_sample_gradient_outer_products() {
    let model = mlp(3, 4, 3, Device::Cpu);
    let x = tensor(&wave(15, 0.3), &[5, 3], Device::Cpu);
    let labels = tensor(&[0.0, 2.0, 1.0, 2.0, 0.0], &[5], Device::Cpu);
    let targets = tensor(&wave(15, 1.3), &[5, 3], Device::Cpu);
    for (loss, y) in [
        (Loss::CrossEntropy, &labels),
        (Loss::Mse, &targets),
        (Loss::SumSq, &targets),
    ] {
        let reference = per_sample_fisher(&model, loss, &x, y);
        for chunk in [0, 2] {
            let options = GgnOptions {
                column_chunk: chunk,
                ..GgnOptions::default()
            };
            let op = Ggn::with_options(&model, loss, &x, y, Curvature::EmpiricalFisher, options)
                .unwrap();
            let f = dense(&op).to_f64s().unwrap();
            let p = op.dim();
            let r = tensor(&reference, &[p, p], Device::Cpu);
            let err = rel_err(&tensor(&f, &[p, p], Device::Cpu), &r);
            assert!(err <= 1e-12, "{loss:?}: {err}");
            let d = op.diagonal().unwrap();
            assert!(rel_err(&d, &tensor(&diag_of(&reference, p), &[p], Device::Cpu)) <= 1e-12);
        }
    }
}

#[test]
fn monte_carlo_fisher_converges_to_the_ggn() {
    // E[F_MC] = GGN; with n·M = 3·20000 draws the relative Frobenius error's standard deviation
    // is about 1/√(n·M) ≈ 0.4%, so 5% is more than ten of them.
    let model = mlp(3, 3, 3, Device::Cpu);
    let x = tensor(&wave(9, 0.3), &[3, 3], Device::Cpu);
    let labels = tensor(&[0.0, 2.0, 1.0], &[3], Device::Cpu);
    let targets: Vec<f64> = wave(9, 2.1).iter().map(|v| 0.5 + 0.5 * v).collect();
    let targets = tensor(&targets, &[3, 3], Device::Cpu);
    for (loss, y) in [
        (OutputLoss::CrossEntropy, &labels),
        (OutputLoss::Mse, &targets),
        (OutputLoss::BinaryCrossEntropyWithLogits, &targets),
    ] {
        let ggn = Ggn::new(&model, loss, &x, y, Curvature::Ggn).unwrap();
        let exact = dense(&ggn).to_f64s().unwrap();
        let mc = Curvature::MonteCarloFisher {
            samples: 20_000,
            seed: 7,
        };
        let fisher = Ggn::new(&model, loss, &x, y, mc).unwrap();
        let sampled = dense(&fisher).to_f64s().unwrap();
        let err = frobenius_rel(&sampled, &exact);
        assert!(err < 0.05, "{loss:?}: {err}");
        // Its diagonal is the Monte-Carlo estimate of the GGN's diagonal.
        let p = ggn.dim();
        let d = fisher.diagonal().unwrap().to_f64s().unwrap();
        assert!(frobenius_rel(&d, &diag_of(&exact, p)) < 0.05);
        assert!(frobenius_rel(&d, &diag_of(&sampled, p)) < 1e-12);
        // A handful of samples is far from it: the check above can fail.
        let few = Curvature::MonteCarloFisher {
            samples: 1,
            seed: 7,
        };
        let rough = dense(&Ggn::new(&model, loss, &x, y, few).unwrap())
            .to_f64s()
            .unwrap();
        assert!(frobenius_rel(&rough, &exact) > 0.05, "{loss:?}");
    }
}

#[test]
fn monte_carlo_fisher_is_reproducible_from_its_seed() {
    let model = mlp(3, 3, 3, Device::Cpu);
    let x = tensor(&wave(9, 0.3), &[3, 3], Device::Cpu);
    let labels = tensor(&[0.0, 2.0, 1.0], &[3], Device::Cpu);
    let make = |seed| {
        let c = Curvature::MonteCarloFisher { samples: 4, seed };
        Ggn::new(&model, Loss::CrossEntropy, &x, &labels, c)
            .unwrap()
            .curvature_factors()
            .unwrap()
            .to_f64s()
            .unwrap()
    };
    assert_eq!(make(1), make(1));
    assert_ne!(make(1), make(2));
}

#[test]
fn jvp_and_vjp_batches_match_the_finite_difference_jacobian() {
    let model = mlp(3, 4, 2, Device::Cpu);
    let x = tensor(&wave(12, 0.3), &[4, 3], Device::Cpu);
    let y = tensor(&wave(8, 0.3), &[4, 2], Device::Cpu);
    let op = Ggn::new(&model, Loss::Mse, &x, &y, Curvature::Ggn).unwrap();
    let (j, m, p) = fd_jacobian(&model, &x);
    let v = wave(2 * p, 0.9);
    let jv = op.jvp_batch(&tensor(&v, &[2, p], Device::Cpu)).unwrap();
    assert_eq!(jv.dims(), &[2, 4, 2]);
    let reference: Vec<f64> = (0..2)
        .flat_map(|k| {
            let v = &v;
            let j = &j;
            (0..m).map(move |r| (0..p).map(|c| j[r * p + c] * v[k * p + c]).sum::<f64>())
        })
        .collect();
    assert!(rel_err(&jv, &tensor(&reference, &[2, 4, 2], Device::Cpu)) <= 1e-8);
    let w = wave(2 * m, 0.2);
    let jtw = op.vjp_batch(&tensor(&w, &[2, 4, 2], Device::Cpu)).unwrap();
    let reference: Vec<f64> = (0..2)
        .flat_map(|k| {
            let w = &w;
            let j = &j;
            (0..p).map(move |c| (0..m).map(|r| j[r * p + c] * w[k * m + r]).sum::<f64>())
        })
        .collect();
    assert!(rel_err(&jtw, &tensor(&reference, &[2, p], Device::Cpu)) <= 1e-8);
}

#[test]
fn labels_of_any_shape_give_one_label_per_row_of_the_logits() {
    // Six rows of logits, their labels given as [3, 2] (a sequence model's [batch, t]): the
    // logits are linear in θ, so the GGN is exactly the loss Hessian, which reads the labels
    // in row-major order.
    let model =
        Sequential::default().with(Linear::seeded(3, 4, DType::F64, Device::Cpu, 1).unwrap());
    let x = tensor(&wave(18, 0.1), &[6, 3], Device::Cpu);
    let labels = tensor(&[0.0, 3.0, 1.0, 2.0, 3.0, 1.0], &[3, 2], Device::Cpu);
    let g = dense(&Ggn::new(&model, Loss::CrossEntropy, &x, &labels, Curvature::Ggn).unwrap());
    let h = loss_hessian(&model, Loss::CrossEntropy, &x, &labels).unwrap();
    assert!(rel_err(&g, &h) <= 1e-12, "{}", rel_err(&g, &h));
    let five = tensor(&[0.0, 3.0, 1.0, 2.0, 3.0], &[5], Device::Cpu);
    assert!(Ggn::new(&model, Loss::CrossEntropy, &x, &five, Curvature::Ggn).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let model = mlp(3, 4, 3, Device::Cpu);
    let x = tensor(&wave(6, 0.3), &[2, 3], Device::Cpu);
    let labels = tensor(&[0.0, 2.0], &[2], Device::Cpu);
    let targets = tensor(&wave(6, 0.1), &[2, 3], Device::Cpu);
    let ggn = Curvature::Ggn;
    let is_invalid = |r: Result<Ggn, HessianError>| {
        matches!(r, Err(HessianError::InvalidArgument { op: "Ggn::new", .. }))
    };
    // Labels out of range, of the wrong shape, not integers.
    let bad = tensor(&[0.0, 3.0], &[2], Device::Cpu);
    assert!(is_invalid(Ggn::new(
        &model,
        Loss::CrossEntropy,
        &x,
        &bad,
        ggn
    )));
    assert!(is_invalid(Ggn::new(
        &model,
        Loss::CrossEntropy,
        &x,
        &targets,
        ggn
    )));
    let frac = tensor(&[0.5, 1.0], &[2], Device::Cpu);
    assert!(Ggn::new(&model, Loss::CrossEntropy, &x, &frac, ggn).is_err());
    // MSE targets of the wrong shape; BCE targets outside [0, 1]; non-finite targets.
    assert!(is_invalid(Ggn::new(&model, Loss::Mse, &x, &labels, ggn)));
    let bce = OutputLoss::BinaryCrossEntropyWithLogits;
    let big = tensor(&[0.0, 1.0, 2.0, 0.0, 0.0, 0.0], &[2, 3], Device::Cpu);
    assert!(is_invalid(Ggn::new(&model, bce, &x, &big, ggn)));
    let nan = tensor(&[0.0, f64::NAN, 0.0, 0.0, 0.0, 0.0], &[2, 3], Device::Cpu);
    assert!(is_invalid(Ggn::new(&model, Loss::Mse, &x, &nan, ggn)));
    // Monte-Carlo Fisher of the sum of squares, or with no samples.
    let mc0 = Curvature::MonteCarloFisher {
        samples: 0,
        seed: 0,
    };
    assert!(is_invalid(Ggn::new(
        &model,
        Loss::CrossEntropy,
        &x,
        &labels,
        mc0
    )));
    let mc = Curvature::MonteCarloFisher {
        samples: 2,
        seed: 0,
    };
    assert!(is_invalid(Ggn::new(&model, Loss::SumSq, &x, &targets, mc)));
    // Inputs of another dtype; the wrong number of inputs.
    let x32 = x.to_dtype(DType::F32).unwrap();
    assert!(matches!(
        Ggn::new(&model, Loss::Mse, &x32, &targets, ggn),
        Err(HessianError::DTypeMismatch { .. })
    ));
    assert!(Ggn::new(&model, Loss::Mse, &[x.clone(), x.clone()], &targets, ggn).is_err());
    // Batches of the wrong width, rank or dtype; cotangents of the wrong shape.
    let op = Ggn::new(&model, Loss::Mse, &x, &targets, ggn).unwrap();
    let p = op.dim();
    assert!(matches!(
        op.apply_batch(&tensor(&vec![0.0; p + 1], &[1, p + 1], Device::Cpu)),
        Err(HessianError::VectorLength { .. })
    ));
    assert!(op
        .apply_batch(&tensor(&vec![0.0; p], &[p], Device::Cpu))
        .is_err());
    assert!(matches!(
        op.apply_batch(&Tensor::zeros([0, p], DType::F64, Device::Cpu).unwrap()),
        Err(HessianError::EmptyBatch { .. })
    ));
    assert!(op
        .jvp_batch(&Tensor::zeros([1, p], DType::F32, Device::Cpu).unwrap())
        .is_err());
    assert!(op
        .vjp_batch(&tensor(&[0.0; 6], &[1, 3, 2], Device::Cpu))
        .is_err());
    assert!(op
        .vjp_batch(&tensor(&[0.0; 6], &[2, 3], Device::Cpu))
        .is_err());
}

/// The GGN and the Fisher operators on a device, against the CPU.
fn ggn_on_device(device: Device) {
    let cpu_model = mlp(3, 3, 3, Device::Cpu);
    let model = mlp(3, 3, 3, device);
    let xs = wave(6, 0.3);
    let labels = [0.0, 2.0];
    for curvature in [
        Curvature::Ggn,
        Curvature::EmpiricalFisher,
        Curvature::MonteCarloFisher {
            samples: 3,
            seed: 5,
        },
    ] {
        let options = GgnOptions {
            column_chunk: 2,
            ..GgnOptions::default()
        };
        let op = Ggn::with_options(
            &model,
            Loss::CrossEntropy,
            &tensor(&xs, &[2, 3], device),
            &tensor(&labels, &[2], device),
            curvature,
            options,
        )
        .unwrap();
        let reference = Ggn::new(
            &cpu_model,
            Loss::CrossEntropy,
            &tensor(&xs, &[2, 3], Device::Cpu),
            &tensor(&labels, &[2], Device::Cpu),
            curvature,
        )
        .unwrap();
        let p = op.dim();
        let v = wave(2 * p, 0.4);
        let got = op.apply_batch(&tensor(&v, &[2, p], device)).unwrap();
        assert_eq!(got.device(), device);
        let want = reference
            .apply_batch(&tensor(&v, &[2, p], Device::Cpu))
            .unwrap();
        assert!(rel_err(&got, &want) <= 1e-12, "{curvature:?}");
        let d = op.diagonal().unwrap();
        assert_eq!(d.device(), device);
        assert!(rel_err(&d, &reference.diagonal().unwrap()) <= 1e-12);
    }
}

device_tests!(ggn_on_device);

#[test]
fn curvatures_are_named() {
    for c in [
        Curvature::Ggn,
        Curvature::MonteCarloFisher {
            samples: 3,
            seed: 9,
        },
        Curvature::EmpiricalFisher,
    ] {
        assert_eq!(Curvature::from_name(c.name(), 3, 9).unwrap(), c);
    }
    assert!(matches!(
        Curvature::from_name("hessian", 1, 0),
        Err(HessianError::InvalidArgument { .. })
    ));
}

#[test]
fn ggn_of_a_residual_model_equals_finite_difference_jt_h_j() {
    // Any module: a residual block and softplus, not a plain MLP.
    let model = Sequential::default()
        .with(Linear::seeded(3, 4, DType::F64, Device::Cpu, 1).unwrap())
        .with(Residual::new(
            Sequential::default()
                .with(Activation::new(UnaryOp::Softplus))
                .with(Linear::seeded(4, 4, DType::F64, Device::Cpu, 2).unwrap()),
        ))
        .with(Activation::new(UnaryOp::Tanh))
        .with(Linear::seeded(4, 3, DType::F64, Device::Cpu, 3).unwrap());
    let x = tensor(&wave(15, 0.8), &[5, 3], Device::Cpu);
    let labels = tensor(&[2.0, 0.0, 1.0, 1.0, 2.0], &[5], Device::Cpu);
    check_against_fd(&model, OutputLoss::CrossEntropy, &x, &labels, 0);
    check_against_fd(&model, OutputLoss::CrossEntropy, &x, &labels, 2);
}

#[test]
fn ggn_in_f32_agrees_with_f64() {
    let model = mlp(3, 4, 3, Device::Cpu);
    let x = tensor(&wave(12, 0.3), &[4, 3], Device::Cpu);
    let labels = tensor(&[0.0, 2.0, 1.0, 2.0], &[4], Device::Cpu);
    let reference =
        dense(&Ggn::new(&model, Loss::CrossEntropy, &x, &labels, Curvature::Ggn).unwrap());
    let mut model32 = model.clone();
    let params: Vec<Tensor> = model
        .parameters()
        .iter()
        .map(|p| p.to_dtype(DType::F32).unwrap())
        .collect();
    model32.set_parameters(&params).unwrap();
    let op = Ggn::new(
        &model32,
        Loss::CrossEntropy,
        &x.to_dtype(DType::F32).unwrap(),
        &labels.to_dtype(DType::F32).unwrap(),
        Curvature::Ggn,
    )
    .unwrap();
    let g = dense(&op);
    assert_eq!(g.dtype(), DType::F32);
    assert!(
        rel_err(&g, &reference) <= 1e-5,
        "{}",
        rel_err(&g, &reference)
    );
}
