//! The losses against their PyTorch definitions written out in f64 loops, their gradients
//! against finite differences, and their errors.

use curvature_nn::{
    binary_cross_entropy_with_logits, cross_entropy, cross_entropy_soft, gaussian_nll, nll_loss,
    Loss, Objective, Result,
};
use curvature_tape::check::{gradcheck, CheckOptions};
use curvature_tape::{grad, GradOptions, Tape, Var};
use curvature_tensor::{DType, Device, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64, Device::Cpu).unwrap()
}

const LOGITS: [f64; 6] = [0.5, -1.0, 2.0, 1.5, 0.25, -0.75];

fn log_softmax_row(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

fn scalar(v: &Var) -> f64 {
    v.value().to_scalar().unwrap()
}

#[test]
fn cross_entropy_with_probabilities_is_the_soft_target_formula() -> Result<()> {
    let probs = [0.2, 0.3, 0.5, 1.0, 0.0, 0.0];
    let tape = Tape::new();
    let logits = tape.leaf(t(&LOGITS, &[2, 3]));
    let loss = cross_entropy_soft(&logits, &tape.constant(t(&probs, &[2, 3])))?;
    let mut want = 0.0;
    for s in 0..2 {
        let ls = log_softmax_row(&LOGITS[3 * s..3 * s + 3]);
        want -= (0..3).map(|c| probs[3 * s + c] * ls[c]).sum::<f64>();
    }
    assert!((scalar(&loss) - want / 2.0).abs() < 1e-15);
    // One-hot probabilities give the label cross-entropy.
    let one_hot = tape.constant(t(&[0.0, 0.0, 1.0, 1.0, 0.0, 0.0], &[2, 3]));
    let soft = scalar(&cross_entropy_soft(&logits, &one_hot)?);
    let hard = scalar(&cross_entropy(&logits, &[2, 0])?);
    assert!((soft - hard).abs() < 1e-15);
    // One unbatched sample.
    let row = tape.leaf(t(&LOGITS[..3], &[3]));
    let single = cross_entropy_soft(&row, &tape.constant(t(&probs[..3], &[3])))?;
    let ls = log_softmax_row(&LOGITS[..3]);
    let want: f64 = -(0..3).map(|c| probs[c] * ls[c]).sum::<f64>();
    assert!((scalar(&single) - want).abs() < 1e-15);
    // Its gradient is softmax − p, over the number of samples.
    let g = grad(
        &[loss],
        std::slice::from_ref(&logits),
        GradOptions::default(),
    )?;
    let g = g[0].value().to_f64s()?;
    for s in 0..2 {
        let ls = log_softmax_row(&LOGITS[3 * s..3 * s + 3]);
        for c in 0..3 {
            let want = (ls[c].exp() - probs[3 * s + c]) / 2.0;
            assert!((g[3 * s + c] - want).abs() < 1e-15);
        }
    }
    // Shape errors.
    assert!(cross_entropy_soft(&logits, &tape.constant(t(&probs[..3], &[3]))).is_err());
    let cube = tape.leaf(t(&[0.0; 8], &[2, 2, 2]));
    assert!(cross_entropy_soft(&cube, &cube).is_err());
    let empty = tape.leaf(t(&[], &[0, 3]));
    assert!(cross_entropy_soft(&empty, &empty).is_err());
    Ok(())
}

#[test]
fn nll_of_log_probabilities_is_minus_the_mean_picked_entry() -> Result<()> {
    let tape = Tape::new();
    let log_probs = tape.leaf(t(&LOGITS, &[2, 3]));
    let loss = nll_loss(&log_probs, &[1, 2])?;
    assert!((scalar(&loss) - (1.0 + 0.75) / 2.0).abs() < 1e-15);
    // nll of log_softmax is cross-entropy.
    let ce = cross_entropy(&log_probs, &[1, 2])?;
    let nll = nll_loss(&log_probs.log_softmax(-1)?, &[1, 2])?;
    assert!((scalar(&ce) - scalar(&nll)).abs() < 1e-15);
    assert!(nll_loss(&log_probs, &[1, 3]).is_err());
    assert!(nll_loss(&log_probs, &[1]).is_err());
    assert!(nll_loss(&tape.leaf(t(&LOGITS, &[6])), &[1]).is_err());
    Ok(())
}

#[test]
fn gaussian_nll_is_pytorchs_formula_with_the_eps_clamp() -> Result<()> {
    let input: [f64; 4] = [0.5, -1.0, 2.0, 1.5];
    let target = [0.0, -0.5, 1.0, 2.5];
    let var = [0.5, 2.0, 1e-8, 0.25];
    let eps = 1e-6;
    let formula = |vars: &[f64]| -> f64 {
        (0..4)
            .map(|i| {
                let v = vars[i].max(eps);
                0.5 * (v.ln() + (input[i] - target[i]).powi(2) / v)
            })
            .sum::<f64>()
            / 4.0
    };
    let tape = Tape::new();
    let x = tape.leaf(t(&input, &[2, 2]));
    let y = tape.constant(t(&target, &[2, 2]));
    let v = tape.leaf(t(&var, &[2, 2]));
    let loss = gaussian_nll(&x, &y, &v, eps)?;
    assert!((scalar(&loss) - formula(&var)).abs() < 1e-12 * formula(&var).abs());
    // The clamp passes the gradient through: ∂/∂v at the clamped value.
    let g = grad(&[loss], &[x.clone(), v.clone()], GradOptions::default())?;
    let (gx, gv) = (g[0].value().to_f64s()?, g[1].value().to_f64s()?);
    for i in 0..4 {
        let vc = var[i].max(eps);
        let d = input[i] - target[i];
        assert!((gx[i] - d / vc / 4.0).abs() <= 1e-12 * (d / vc / 4.0).abs().max(1.0));
        let want = 0.5 * (1.0 / vc - d * d / (vc * vc)) / 4.0;
        assert!((gv[i] - want).abs() <= 1e-12 * want.abs().max(1.0), "{i}");
    }
    // One variance per sample: shape [2] or [2, 1].
    let per_sample = [0.5, 2.0];
    let expanded = [0.5, 0.5, 2.0, 2.0];
    for shape in [&[2][..], &[2, 1][..]] {
        let v = tape.leaf(t(&per_sample, shape));
        let loss = gaussian_nll(&x, &y, &v, eps)?;
        assert!((scalar(&loss) - formula(&expanded)).abs() < 1e-14);
    }
    // Errors: negative variance, bad eps, shapes.
    let negative = tape.leaf(t(&[0.5, -2.0, 1.0, 1.0], &[2, 2]));
    assert!(gaussian_nll(&x, &y, &negative, eps).is_err());
    assert!(gaussian_nll(&x, &y, &v, 0.0).is_err());
    assert!(gaussian_nll(&x, &y, &v, f64::NAN).is_err());
    assert!(gaussian_nll(&x, &y, &tape.leaf(t(&[1.0; 3], &[3])), eps).is_err());
    assert!(gaussian_nll(&x, &tape.constant(t(&[1.0; 2], &[2])), &v, eps).is_err());
    // Its first and second derivatives in the mean and the variance, by finite differences.
    let f = |vars: &[Var]| -> curvature_tape::Result<Var> {
        let tgt = vars[0].constant(t(&target, &[2, 2]));
        gaussian_nll(&vars[0], &tgt, &vars[1], eps).map_err(|e| match e {
            curvature_nn::NnError::Tape(e) => e,
            other => panic!("{other}"),
        })
    };
    let report = gradcheck(
        f,
        &[t(&input, &[2, 2]), t(&[0.5, 2.0, 0.75, 0.25], &[2, 2])],
        CheckOptions::default(),
    )?;
    assert!(report.passed, "{report:?}");
    Ok(())
}

#[test]
fn binary_cross_entropy_with_logits_is_stable_and_matches_the_formula() -> Result<()> {
    let logits = [0.5, -1.0, 2.0, -3.0, 40.0, -40.0];
    let targets = [1.0, 0.0, 0.25, 1.0, 0.0, 1.0];
    let tape = Tape::new();
    let x = tape.leaf(t(&logits, &[3, 2]));
    let loss = binary_cross_entropy_with_logits(&x, &tape.constant(t(&targets, &[3, 2])))?;
    // −[y log σ(x) + (1 − y) log(1 − σ(x))], with log σ(x) = −log(1 + e⁻ˣ) written stably.
    let log_sigmoid = |z: f64| -> f64 { -(-z).exp().ln_1p() };
    let want: f64 = logits
        .iter()
        .zip(&targets)
        .map(|(&z, &y)| -(y * log_sigmoid(z) + (1.0 - y) * log_sigmoid(-z)))
        .sum::<f64>()
        / 6.0;
    assert!(scalar(&loss).is_finite());
    assert!(
        (scalar(&loss) - want).abs() < 1e-14,
        "{} {want}",
        scalar(&loss)
    );
    let g = grad(&[loss], std::slice::from_ref(&x), GradOptions::default())?;
    for (i, got) in g[0].value().to_f64s()?.iter().enumerate() {
        let want = (1.0 / (1.0 + (-logits[i]).exp()) - targets[i]) / 6.0;
        assert!((got - want).abs() < 1e-15);
    }
    assert!(binary_cross_entropy_with_logits(&x, &tape.constant(t(&targets, &[6]))).is_err());
    Ok(())
}

#[test]
fn objectives_are_a_builtin_loss_or_a_closure() -> Result<()> {
    let tape = Tape::new();
    let out = tape.leaf(t(&[1.0, 2.0], &[1, 2]));
    let y = t(&[0.0, 4.0], &[1, 2]);
    let builtin = Loss::Mse.against(&y).compute(&out)?;
    assert_eq!(scalar(&builtin), (1.0 + 4.0) / 2.0);
    let closure = |o: &Var| -> Result<Var> { Ok(o.powf(3.0)?.sum_all()?) };
    let custom = Objective::Closure(&closure).compute(&out)?;
    assert_eq!(scalar(&custom), 9.0);
    assert_eq!(format!("{:?}", Loss::Mse.against(&y)), "mse(target [1, 2])");
    Ok(())
}

#[test]
fn loss_variants_compute_their_functions() -> Result<()> {
    let tape = Tape::new();
    let out = tape.leaf(t(&LOGITS, &[2, 3]));
    let labels = t(&[2.0, 0.0], &[2]);
    let probs = t(&[0.2, 0.3, 0.5, 1.0, 0.0, 0.0], &[2, 3]);
    let soft = Loss::SoftCrossEntropy.compute(&out, &probs)?;
    let want = cross_entropy_soft(&out, &tape.constant(probs.clone()))?;
    assert_eq!(scalar(&soft), scalar(&want));
    let nll = Loss::Nll.compute(&out, &labels)?;
    assert_eq!(scalar(&nll), -(LOGITS[2] + LOGITS[3]) / 2.0);
    let bce = Loss::BceWithLogits.compute(&out, &probs)?;
    let want = binary_cross_entropy_with_logits(&out, &tape.constant(probs))?;
    assert_eq!(scalar(&bce), scalar(&want));
    assert!(Loss::Nll.compute(&out, &t(&[0.5, 1.0], &[2])).is_err());
    // Only the model-file losses parse, and only they have the fused sweep.
    for loss in [Loss::Mse, Loss::SumSq, Loss::CrossEntropy] {
        assert_eq!(loss.name().parse::<Loss>(), Ok(loss));
        assert!(loss.is_fused());
    }
    for loss in [Loss::SoftCrossEntropy, Loss::Nll, Loss::BceWithLogits] {
        assert!(loss.name().parse::<Loss>().is_err());
        assert!(!loss.is_fused());
    }
    // The scalar pieces: binary cross-entropy's gradient in the logit is (σ − y)/(n·out).
    let scale: f64 = Loss::BceWithLogits.output_scale(2, 3);
    assert_eq!(scale, 1.0 / 6.0);
    assert!((Loss::BceWithLogits.output_gradient(0.75, 0.25, scale) - 0.5 / 6.0).abs() < 1e-16);
    assert_eq!(Loss::Nll.output_gradient(-1.0, 1.0, 0.5), -0.5);
    Ok(())
}
