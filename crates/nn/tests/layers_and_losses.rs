//! nn layers, losses and parameter naming against hand computations.

use curvature_nn::{
    cross_entropy, mse, softmax_curvature, sum_sq, Activation, Linear, Loss, Module, Result,
    Sequential,
};
use curvature_tape::Tape;
use curvature_tensor::{DType, Device, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64, Device::Cpu).unwrap()
}

#[test]
fn named_parameters_follow_pytorch_sequential_indices_cpu() -> Result<()> {
    let model = Sequential::mlp(
        &[1, 10, 10, 1],
        &[Activation::Tanh, Activation::Tanh],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )?;
    let named: Vec<(String, Vec<usize>)> = model
        .named_parameters()
        .into_iter()
        .map(|(name, p)| (name, p.dims().to_vec()))
        .collect();
    let expected = [
        ("0.weight", vec![10, 1]),
        ("0.bias", vec![10]),
        ("2.weight", vec![10, 10]),
        ("2.bias", vec![10]),
        ("4.weight", vec![1, 10]),
        ("4.bias", vec![1]),
    ];
    assert_eq!(named.len(), expected.len());
    for ((name, dims), (want_name, want_dims)) in named.iter().zip(&expected) {
        assert_eq!((name.as_str(), dims), (*want_name, want_dims));
    }
    assert_eq!(model.num_params(), 141);
    Ok(())
}

#[test]
fn initialisation_is_seeded_and_within_pytorch_bounds_cpu() -> Result<()> {
    let build = |seed| {
        Sequential::mlp(
            &[4, 8, 2],
            &[Activation::Sigmoid],
            None,
            DType::F64,
            Device::Cpu,
            seed,
        )
    };
    let (a, b, c) = (build(3)?, build(3)?, build(4)?);
    let values = |m: &Sequential| m.flat_params().and_then(|t| Ok(t.to_f64s()?));
    assert_eq!(values(&a)?, values(&b)?);
    assert_ne!(values(&a)?, values(&c)?);
    // U(−1/√in, 1/√in) per layer.
    for (name, p) in a.named_parameters() {
        let fan_in = if name.starts_with('0') { 4.0 } else { 8.0 };
        let bound = 1.0 / f64::sqrt(fan_in);
        assert!(p.to_f64s()?.iter().all(|v| v.abs() <= bound), "{name}");
    }
    Ok(())
}

#[test]
fn linear_and_losses_match_hand_computation_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.constant(t(&[1.0, 2.0, -1.0, 0.5], &[2, 2]));
    let w = tape.leaf(t(&[0.5, -1.0, 2.0, 0.25, 0.0, 1.0], &[3, 2]));
    let b = tape.leaf(t(&[0.1, 0.2, 0.3], &[3]));
    let y = Linear::apply(&x, &w, &b)?;
    // y[i, o] = Σ_k x[i, k]·w[o, k] + b[o]
    let expected = [
        0.5 - 2.0 + 0.1,
        2.0 + 0.5 + 0.2,
        0.0 + 2.0 + 0.3,
        -0.5 - 0.5 + 0.1,
        -2.0 + 0.125 + 0.2,
        0.0 + 0.5 + 0.3,
    ];
    let got = y.value().to_f64s()?;
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-15, "{got:?}");
    }
    let target = tape.constant(t(&[0.0; 6], &[2, 3]));
    let sq: f64 = expected.iter().map(|v| v * v).sum();
    assert!((mse(&y, &target)?.value().to_scalar()? - sq / 6.0).abs() < 1e-14);
    assert!((sum_sq(&y)?.value().to_scalar()? - sq).abs() < 1e-14);
    // Cross-entropy: mean over rows of logsumexp(row) − row[label].
    let labels = [2, 0];
    let ce: f64 = expected
        .chunks(3)
        .zip(labels)
        .map(|(row, l)| row.iter().map(|v| v.exp()).sum::<f64>().ln() - row[l])
        .sum::<f64>()
        / 2.0;
    assert!((cross_entropy(&y, &labels)?.value().to_scalar()? - ce).abs() < 1e-14);
    Ok(())
}

#[test]
fn functional_call_equals_forward_of_the_flat_parameters_cpu() -> Result<()> {
    let model = Sequential::mlp(
        &[3, 5, 2],
        &[Activation::Tanh],
        Some(Activation::Sigmoid),
        DType::F64,
        Device::Cpu,
        1,
    )?;
    let tape = Tape::new();
    let x = tape.constant(t(&[0.3, -0.2, 0.9, 1.5, 0.0, -0.7], &[2, 3]));
    let params: Vec<_> = model
        .parameters()
        .into_iter()
        .map(|p| tape.leaf(p))
        .collect();
    let theta = tape.leaf(model.flat_params()?);
    let a = model.forward_with(&params, &x)?.value().to_f64s()?;
    let b = model.forward_flat(&theta, &x)?.value().to_f64s()?;
    assert_eq!(a, b);
    // By hand: sigmoid(tanh(x·W0ᵀ + b0)·W1ᵀ + b1).
    let p: Vec<Vec<f64>> = model
        .parameters()
        .iter()
        .map(|p| p.to_f64s().unwrap())
        .collect();
    let xs = [[0.3, -0.2, 0.9], [1.5, 0.0, -0.7]];
    for (i, row) in xs.iter().enumerate() {
        let h: Vec<f64> = (0..5)
            .map(|o| ((0..3).map(|k| row[k] * p[0][o * 3 + k]).sum::<f64>() + p[1][o]).tanh())
            .collect();
        for o in 0..2 {
            let z: f64 = (0..5).map(|k| h[k] * p[2][o * 5 + k]).sum::<f64>() + p[3][o];
            let want = 1.0 / (1.0 + (-z).exp());
            assert!((a[i * 2 + o] - want).abs() < 1e-15);
        }
    }
    Ok(())
}

#[test]
fn activation_derivatives_match_their_closed_forms() {
    for z in [-2.0f64, -0.3, 0.0, 0.7, 3.0] {
        let (t, d1, d2) = Activation::Tanh.derivatives(z).unwrap();
        assert_eq!(t, z.tanh());
        assert!((d1 - (1.0 - z.tanh().powi(2))).abs() < 1e-15);
        assert!((d2 + 2.0 * z.tanh() * d1).abs() < 1e-15);
        let (s, d1, d2) = Activation::Sigmoid.derivatives(z).unwrap();
        let want = 1.0 / (1.0 + (-z).exp());
        assert!((s - want).abs() < 1e-15);
        assert!((d1 - want * (1.0 - want)).abs() < 1e-15);
        assert!((d2 - d1 * (1.0 - 2.0 * want)).abs() < 1e-15);
    }
    // Other ops have no closed forms for the fused sweep.
    let softplus = Activation::new(curvature_tensor::UnaryOp::Softplus);
    assert!(softplus.derivatives(0.5f64).is_none());
}

#[test]
fn loss_scalar_pieces_match_the_losses_derivatives() {
    // MSE over 2 samples × 3 outputs: c = 2/6; sum of squares: c = 2; cross-entropy: c = 1/2.
    assert_eq!(Loss::Mse.output_scale::<f64>(2, 3), 2.0 / 6.0);
    assert_eq!(Loss::SumSq.output_scale::<f64>(2, 3), 2.0);
    assert_eq!(Loss::CrossEntropy.output_scale::<f64>(2, 3), 0.5);
    assert_eq!(Loss::Mse.output_gradient(3.0, 1.0, 0.5), 1.0);
    assert_eq!(Loss::SumSq.output_gradient(3.0, 1.0, 2.0), 6.0);
    assert_eq!(Loss::CrossEntropy.output_gradient(0.25, 1.0, 0.5), -0.375);

    // Two directions side by side over three classes: t ← p ⊙ (t − p·t) · scale.
    let p = [0.2f64, 0.3, 0.5];
    let mut t = [1.0f64, 0.0, -1.0, 2.0, 0.5, 0.0];
    softmax_curvature(&p, &mut t, 2, 2.0);
    let dots = [0.2 - 0.3 + 0.25, 0.0 + 0.6 + 0.0];
    let want = [1.0, 0.0, -1.0, 2.0, 0.5, 0.0]
        .iter()
        .enumerate()
        .map(|(i, &t)| p[i / 2] * (t - dots[i % 2]) * 2.0);
    for (got, want) in t.iter().zip(want) {
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    }
}
