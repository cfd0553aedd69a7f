//! KFAC against its definitions written out in the test, against the exact GGN block where it is
//! exact (one sample), and its damped inverse against the identity.

mod common;

use common::rel_err;
use curvature_hessian::{
    hessian_of, kfac_block_errors, Curvature, Ggn, HessianError, HessianOptions, Kfac,
    LinearOperator,
};
use curvature_nn::{Activation, Conv2d, Flatten, Linear, Loss, Module, Residual, Sequential};
use curvature_tensor::{Conv2dOptions, DType, Device, Tensor, UnaryOp};

fn tensor(values: &[f64], dims: &[usize], device: Device) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, device).unwrap()
}

fn wave(len: usize, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| (0.7 * i as f64 + phase).sin() * 0.9)
        .collect()
}

fn mlp(device: Device) -> Sequential {
    Sequential::default()
        .with(Linear::seeded(3, 4, DType::F64, device, 3).unwrap())
        .with(Activation::new(UnaryOp::Tanh))
        .with(Linear::seeded(4, 3, DType::F64, device, 4).unwrap())
}

/// Row-major matrix helpers on the host.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for l in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + l] * b[l * n + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    (0..n * m).map(|idx| a[(idx % m) * n + idx / m]).collect()
}

#[test]
fn kfac_factors_equal_their_definitions() {
    let model = mlp(Device::Cpu);
    let n = 5;
    let xs = wave(n * 3, 0.2);
    let x = tensor(&xs, &[n, 3], Device::Cpu);
    let labels = [0.0, 2.0, 1.0, 1.0, 0.0];
    let y = tensor(&labels, &[n], Device::Cpu);
    let kfac = Kfac::new(&model, Loss::CrossEntropy, &x, &y, Curvature::Ggn).unwrap();
    let layers = kfac.layers();
    assert_eq!(layers.len(), 2);
    assert_eq!((layers[0].name.as_str(), layers[0].offset), ("0", 0));
    assert_eq!((layers[1].name.as_str(), layers[1].offset), ("2", 16));

    let p = model.parameters();
    let (w1, b1) = (p[0].to_f64s().unwrap(), p[1].to_f64s().unwrap());
    let (w2, b2) = (p[2].to_f64s().unwrap(), p[3].to_f64s().unwrap());
    let mut a0 = vec![0.0; 16];
    let mut a2 = vec![0.0; 25];
    let mut g0 = vec![0.0; 16];
    let mut g2 = vec![0.0; 9];
    let s = 1.0 / n as f64; // cross-entropy's mean
    for i in 0..n {
        let xi = [xs[i * 3], xs[i * 3 + 1], xs[i * 3 + 2], 1.0];
        let z: Vec<f64> = (0..4)
            .map(|o| (0..3).map(|j| w1[o * 3 + j] * xi[j]).sum::<f64>() + b1[o])
            .collect();
        let h: Vec<f64> = z.iter().map(|v| v.tanh()).collect();
        let hi = [h[0], h[1], h[2], h[3], 1.0];
        let f: Vec<f64> = (0..3)
            .map(|o| (0..4).map(|j| w2[o * 4 + j] * h[j]).sum::<f64>() + b2[o])
            .collect();
        let max = f.iter().cloned().fold(f64::MIN, f64::max);
        let z_sum: f64 = f.iter().map(|v| (v - max).exp()).sum();
        let pr: Vec<f64> = f.iter().map(|v| (v - max).exp() / z_sum).collect();
        // The loss's Hessian H = s (diag p − p pᵀ) = Σ_r l_r l_rᵀ, so G of the last layer is
        // Σᵢ Hᵢ and that of the first Σᵢ Dᵢ W2ᵀ Hᵢ W2 Dᵢ with D = diag(1 − h²).
        let hess: Vec<f64> = (0..9)
            .map(|k| {
                let (a, b) = (k / 3, k % 3);
                s * (if a == b { pr[a] } else { 0.0 } - pr[a] * pr[b])
            })
            .collect();
        for k in 0..9 {
            g2[k] += hess[k];
        }
        let back = matmul(&matmul(&transpose(&w2, 3, 4), &hess, 4, 3, 3), &w2, 4, 3, 4);
        for a in 0..4 {
            for b in 0..4 {
                g0[a * 4 + b] += (1.0 - h[a] * h[a]) * back[a * 4 + b] * (1.0 - h[b] * h[b]);
            }
        }
        for a in 0..4 {
            for b in 0..4 {
                a0[a * 4 + b] += xi[a] * xi[b] / n as f64;
            }
        }
        for a in 0..5 {
            for b in 0..5 {
                a2[a * 5 + b] += hi[a] * hi[b] / n as f64;
            }
        }
    }
    let cpu = |v: &[f64], k: usize| tensor(v, &[k, k], Device::Cpu);
    assert!(rel_err(&layers[0].a, &cpu(&a0, 4)) <= 1e-12);
    assert!(rel_err(&layers[1].a, &cpu(&a2, 5)) <= 1e-12);
    assert!(rel_err(&layers[0].g, &cpu(&g0, 4)) <= 1e-12);
    assert!(rel_err(&layers[1].g, &cpu(&g2, 3)) <= 1e-12);
}

#[test]
fn kfac_equals_the_exact_ggn_block_where_it_is_exact_and_only_there() {
    let model = mlp(Device::Cpu);
    let linear =
        Sequential::default().with(Linear::seeded(3, 2, DType::F64, Device::Cpu, 9).unwrap());
    for (model, outputs) in [(&linear, 2), (&model, 3)] {
        for (loss, y1, y5) in [
            (Loss::Mse, wave(outputs, 1.0), wave(5 * outputs, 1.0)),
            (Loss::CrossEntropy, vec![1.0], vec![0.0, 1.0, 1.0, 0.0, 1.0]),
        ] {
            let dims = |n: usize| {
                if loss == Loss::Mse {
                    vec![n, outputs]
                } else {
                    vec![n]
                }
            };
            let x1 = tensor(&wave(3, 0.4), &[1, 3], Device::Cpu);
            let y = tensor(&y1, &dims(1), Device::Cpu);
            let kfac = Kfac::new(model, loss, &x1, &y, Curvature::Ggn).unwrap();
            let exact = Ggn::new(model, loss, &x1, &y, Curvature::Ggn).unwrap();
            for e in kfac_block_errors(&kfac, &exact).unwrap() {
                assert!(
                    e.relative_frobenius <= 1e-12,
                    "{loss:?} layer {}: {e:?}",
                    e.name
                );
            }
            // With several samples the Kronecker product is an approximation.
            let x5 = tensor(&wave(15, 0.4), &[5, 3], Device::Cpu);
            let y = tensor(&y5, &dims(5), Device::Cpu);
            let kfac = Kfac::new(model, loss, &x5, &y, Curvature::Ggn).unwrap();
            let exact = Ggn::new(model, loss, &x5, &y, Curvature::Ggn).unwrap();
            let errors = kfac_block_errors(&kfac, &exact).unwrap();
            if outputs == 2 && loss == Loss::Mse {
                // One linear layer under MSE: G = s·n·I for every sample, so G ⊗ A is exact.
                assert!(
                    errors.iter().all(|e| e.relative_frobenius <= 1e-12),
                    "{errors:?}"
                );
                continue;
            }
            assert!(
                errors.iter().any(|e| e.relative_frobenius > 1e-3),
                "{errors:?}"
            );
            assert!(
                errors.iter().all(|e| e.relative_frobenius < 1.0),
                "{errors:?}"
            );
        }
    }
}

#[test]
fn kfac_operator_is_block_diagonal_with_the_blocks() {
    let model = mlp(Device::Cpu);
    let x = tensor(&wave(12, 0.2), &[4, 3], Device::Cpu);
    let y = tensor(&wave(12, 0.9), &[4, 3], Device::Cpu);
    let kfac = Kfac::new(&model, Loss::Mse, &x, &y, Curvature::Ggn).unwrap();
    let dense = hessian_of(&kfac, &HessianOptions::default())
        .unwrap()
        .to_f64s()
        .unwrap();
    let p = kfac.dim();
    assert_eq!(p, 31);
    let mut expected = vec![0.0; p * p];
    for (index, layer) in kfac.layers().iter().enumerate() {
        let b = kfac.block(index).unwrap().to_f64s().unwrap();
        let q = layer.parameters();
        // The block is G ⊗ A on [W | b]: entry ((o, j), (o', j')) = G[o, o'] A[j, j'], with the
        // weight's columns j < in first and the bias (j = in) after all the weights.
        let (g, a) = (layer.g.to_f64s().unwrap(), layer.a.to_f64s().unwrap());
        let (o_n, i_n) = (layer.outputs, layer.inputs);
        let index_of = |o: usize, j: usize| if j < i_n { o * i_n + j } else { o_n * i_n + o };
        for o in 0..o_n {
            for j in 0..=i_n {
                for o2 in 0..o_n {
                    for j2 in 0..=i_n {
                        let v = g[o * o_n + o2] * a[j * (i_n + 1) + j2];
                        let (r, c) = (index_of(o, j), index_of(o2, j2));
                        assert!((b[r * q + c] - v).abs() <= 1e-12 * (1.0 + v.abs()));
                        expected[(layer.offset + r) * p + layer.offset + c] = v;
                    }
                }
            }
        }
    }
    assert!(
        rel_err(
            &tensor(&dense, &[p, p], Device::Cpu),
            &tensor(&expected, &[p, p], Device::Cpu)
        ) <= 1e-12
    );
}

/// `(K + λI)⁻¹ (K + λI) V = V`.
fn inverse_on(device: Device) {
    let model = mlp(device);
    let x = tensor(&wave(12, 0.2), &[4, 3], device);
    let y = tensor(&[0.0, 2.0, 1.0, 2.0], &[4], device);
    for curvature in [
        Curvature::Ggn,
        Curvature::MonteCarloFisher {
            samples: 2,
            seed: 1,
        },
        Curvature::EmpiricalFisher,
    ] {
        let kfac = Kfac::new(&model, Loss::CrossEntropy, &x, &y, curvature).unwrap();
        let damping = 1e-3;
        let inverse = kfac.inverse(damping).unwrap();
        let p = kfac.dim();
        let v = tensor(&wave(3 * p, 0.5), &[3, p], device);
        let damped = kfac
            .apply_batch(&v)
            .unwrap()
            .add(&v.mul_scalar(damping).unwrap())
            .unwrap();
        let back = inverse.apply_batch(&damped).unwrap();
        assert_eq!(back.device(), device);
        assert!(
            rel_err(&back, &v) <= 1e-8,
            "{curvature:?}: {}",
            rel_err(&back, &v)
        );
        let forth = inverse.apply_batch(&v).unwrap();
        let again = kfac
            .apply_batch(&forth)
            .unwrap()
            .add(&forth.mul_scalar(damping).unwrap())
            .unwrap();
        assert!(rel_err(&again, &v) <= 1e-8);
    }
}

device_tests!(inverse_on);

#[test]
fn bad_inputs_are_errors() {
    let x = tensor(&wave(6, 0.2), &[2, 3], Device::Cpu);
    let y = tensor(&wave(4, 0.2), &[2, 2], Device::Cpu);
    let invalid =
        |r: Result<Kfac, HessianError>| matches!(r, Err(HessianError::InvalidArgument { .. }));
    // Not a Sequential; a layer with parameters that is not Linear.
    let lone = Linear::seeded(3, 2, DType::F64, Device::Cpu, 0).unwrap();
    assert!(invalid(Kfac::new(&lone, Loss::Mse, &x, &y, Curvature::Ggn)));
    let residual = Sequential::default()
        .with(Residual::new(
            Linear::seeded(3, 3, DType::F64, Device::Cpu, 0).unwrap(),
        ))
        .with(Linear::seeded(3, 2, DType::F64, Device::Cpu, 1).unwrap());
    assert!(invalid(Kfac::new(
        &residual,
        Loss::Mse,
        &x,
        &y,
        Curvature::Ggn
    )));
    // A grouped convolution.
    let grouped = Conv2dOptions {
        groups: 2,
        ..Conv2dOptions::default()
    };
    let conv = Conv2d::seeded(2, 2, (1, 1), grouped, true, (DType::F64, Device::Cpu), 0).unwrap();
    let grouped = Sequential::default().with(conv).with(Flatten::new());
    let image = tensor(&wave(8, 0.2), &[1, 2, 2, 2], Device::Cpu);
    let target = tensor(&wave(8, 0.4), &[1, 8], Device::Cpu);
    assert!(invalid(Kfac::new(
        &grouped,
        Loss::Mse,
        &image,
        &target,
        Curvature::Ggn
    )));
    // Inputs that are not [n, in]; targets of the wrong shape.
    let model =
        Sequential::default().with(Linear::seeded(3, 2, DType::F64, Device::Cpu, 0).unwrap());
    let x3 = tensor(&wave(6, 0.2), &[1, 2, 3], Device::Cpu);
    assert!(invalid(Kfac::new(
        &model,
        Loss::Mse,
        &x3,
        &y,
        Curvature::Ggn
    )));
    let y_bad = tensor(&wave(3, 0.2), &[3], Device::Cpu);
    assert!(invalid(Kfac::new(
        &model,
        Loss::Mse,
        &x,
        &y_bad,
        Curvature::Ggn
    )));
    // Damping that is not positive and finite; a layer that does not exist.
    let kfac = Kfac::new(&model, Loss::Mse, &x, &y, Curvature::Ggn).unwrap();
    for damping in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            kfac.inverse(damping),
            Err(HessianError::InvalidArgument { .. })
        ));
    }
    assert!(kfac.block(1).is_err());
    // An exact operator of another dimension.
    let other = Ggn::new(
        &mlp(Device::Cpu),
        Loss::Mse,
        &x,
        &tensor(&wave(6, 0.1), &[2, 3], Device::Cpu),
        Curvature::Ggn,
    )
    .unwrap();
    assert!(matches!(
        kfac_block_errors(&kfac, &other),
        Err(HessianError::VectorLength { .. })
    ));
    // Batches of the wrong width.
    assert!(kfac
        .apply_batch(&tensor(&[0.0; 9], &[1, 9], Device::Cpu))
        .is_err());
    assert!(kfac
        .inverse(1.0)
        .unwrap()
        .apply_batch(&tensor(&[0.0; 9], &[1, 9], Device::Cpu))
        .is_err());
}

/// conv(2 → 3 channels, `kernel`, bias or not) → tanh → flatten → Linear(3·T → 2).
fn conv_net(kernel: usize, side: usize, bias: bool) -> Sequential {
    let t = (side - kernel + 1) * (side - kernel + 1);
    let conv = Conv2d::seeded(
        2,
        3,
        (kernel, kernel),
        Conv2dOptions::default(),
        bias,
        (DType::F64, Device::Cpu),
        5,
    )
    .unwrap();
    Sequential::default()
        .with(conv)
        .with(Activation::new(UnaryOp::Tanh))
        .with(Flatten::new())
        .with(Linear::seeded(3 * t, 2, DType::F64, Device::Cpu, 6).unwrap())
}

#[test]
fn conv_kfac_factors_equal_their_definitions() {
    let (n, side, kernel) = (2, 3, 2);
    let (oh, t, k) = (side - kernel + 1, 4, 2 * kernel * kernel);
    let model = conv_net(kernel, side, true);
    let xs = wave(n * 2 * side * side, 0.3);
    let x = tensor(&xs, &[n, 2, side, side], Device::Cpu);
    let y = tensor(&wave(2 * n, 1.1), &[n, 2], Device::Cpu);
    let kfac = Kfac::new(&model, Loss::Mse, &x, &y, Curvature::Ggn).unwrap();
    let layer = &kfac.layers()[0];
    assert_eq!(
        (layer.inputs, layer.outputs, layer.positions, layer.bias),
        (k, 3, t, true)
    );
    assert_eq!(kfac.layers()[1].offset, 3 * k + 3);
    let p = model.parameters();
    let (w, b, w2) = (
        p[0].to_f64s().unwrap(),
        p[1].to_f64s().unwrap(),
        p[2].to_f64s().unwrap(),
    );
    let c = 2.0 / (n * 2) as f64; // MSE: H = c·I on the [n, 2] output
    let mut a = vec![0.0; (k + 1) * (k + 1)];
    let mut g = vec![0.0; 9];
    for i in 0..n {
        let px = |ch: usize, r: usize, q: usize| xs[((i * 2 + ch) * side + r) * side + q];
        for (pos, (r0, q0)) in (0..oh)
            .flat_map(|r| (0..oh).map(move |q| (r, q)))
            .enumerate()
        {
            // The patch, channel-major then kernel row and column, and the one.
            let mut patch = Vec::with_capacity(k + 1);
            for ch in 0..2 {
                for di in 0..kernel {
                    for dj in 0..kernel {
                        patch.push(px(ch, r0 + di, q0 + dj));
                    }
                }
            }
            patch.push(1.0);
            for u in 0..=k {
                for v in 0..=k {
                    a[u * (k + 1) + v] += patch[u] * patch[v] / n as f64;
                }
            }
            // ∂f/∂s at this position: W2[:, ch·T + pos] · tanh'(s), s = W·patch + b.
            let d: Vec<Vec<f64>> = (0..3)
                .map(|ch| {
                    let s: f64 = (0..k).map(|u| w[ch * k + u] * patch[u]).sum::<f64>() + b[ch];
                    let slope = 1.0 - s.tanh() * s.tanh();
                    (0..2)
                        .map(|o| w2[o * 3 * t + ch * t + pos] * slope)
                        .collect()
                })
                .collect();
            // G = (1/T) Σ_r g_r g_rᵀ with g_r = √c · ∂f/∂sᵀ e_r, so (c/T) Σ_o d[·][o] d[·][o].
            for ch in 0..3 {
                for ch2 in 0..3 {
                    let dot: f64 = (0..2).map(|o| d[ch][o] * d[ch2][o]).sum();
                    g[ch * 3 + ch2] += c / t as f64 * dot;
                }
            }
        }
    }
    assert!(rel_err(&layer.a, &tensor(&a, &[k + 1, k + 1], Device::Cpu)) <= 1e-12);
    assert!(rel_err(&layer.g, &tensor(&g, &[3, 3], Device::Cpu)) <= 1e-12);
}

#[test]
fn conv_kfac_is_exact_for_one_sample_at_one_position() {
    for bias in [true, false] {
        // A 3 × 3 kernel on a 3 × 3 image: one output position.
        let model = conv_net(3, 3, bias);
        let x = tensor(&wave(18, 0.3), &[1, 2, 3, 3], Device::Cpu);
        let y = tensor(&[0.0], &[1], Device::Cpu);
        let kfac = Kfac::new(&model, Loss::CrossEntropy, &x, &y, Curvature::Ggn).unwrap();
        assert_eq!(kfac.dim(), model.num_params());
        let exact = Ggn::new(&model, Loss::CrossEntropy, &x, &y, Curvature::Ggn).unwrap();
        for e in kfac_block_errors(&kfac, &exact).unwrap() {
            assert!(e.relative_frobenius <= 1e-12, "bias {bias}: {e:?}");
        }
        // Several positions: an approximation.
        let model = conv_net(2, 3, bias);
        let x = tensor(&wave(18, 0.3), &[1, 2, 3, 3], Device::Cpu);
        let kfac = Kfac::new(&model, Loss::CrossEntropy, &x, &y, Curvature::Ggn).unwrap();
        let exact = Ggn::new(&model, Loss::CrossEntropy, &x, &y, Curvature::Ggn).unwrap();
        let errors = kfac_block_errors(&kfac, &exact).unwrap();
        assert!(errors[0].relative_frobenius > 1e-3, "{errors:?}");
        assert!(errors[1].relative_frobenius <= 1e-12, "{errors:?}");
        let inverse = kfac.inverse(1e-2).unwrap();
        let v = tensor(&wave(2 * kfac.dim(), 0.1), &[2, kfac.dim()], Device::Cpu);
        let forth = inverse.apply_batch(&v).unwrap();
        let again = kfac
            .apply_batch(&forth)
            .unwrap()
            .add(&forth.mul_scalar(1e-2).unwrap())
            .unwrap();
        assert!(rel_err(&again, &v) <= 1e-8);
    }
}
