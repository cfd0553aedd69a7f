//! The fused MLP operator against independent references: the golden files (JAX, float64) and
//! the tape's prepared operator, for both sweep layouts, f64 and f32, every loss and
//! activation of the golden data, and models wider than the golden ones.

mod common;

use common::{load, rel_err, GOLDEN};
use curvature_hessian::{
    probes, LinearOperator, MlpHvp, MlpStrategy, ModelHvp, PreparedHvp, Probe,
};
use curvature_nn::{Activation, Linear, Loss, ModelFile, Module, Sequential};
use curvature_tensor::{DType, Device, Tensor};

const STRATEGIES: [MlpStrategy; 2] = [MlpStrategy::Narrow, MlpStrategy::Wide];

#[test]
fn fused_matches_golden_hvps_value_and_gradient_f64() {
    for name in GOLDEN {
        let file = load(name);
        for strategy in STRATEGIES {
            let op = MlpHvp::new(&file.model, file.loss, &file.x, &file.y)
                .unwrap()
                .with_strategy(strategy);
            let hvps = op.apply_batch(file.tensor("V").unwrap()).unwrap();
            let err = rel_err(&hvps, file.tensor("hvps").unwrap());
            assert!(err <= 1e-12, "{name} {strategy:?}: hvps vs golden {err:e}");
            let grad = rel_err(&op.gradient().unwrap(), file.tensor("grad").unwrap());
            assert!(
                grad <= 1e-12,
                "{name} {strategy:?}: grad vs golden {grad:e}"
            );
            let loss = file.tensor("loss").unwrap().to_scalar().unwrap();
            assert!(
                (op.value() - loss).abs() <= 1e-12 * loss.abs().max(1.0),
                "{name}: loss {} vs golden {loss}",
                op.value()
            );
        }
    }
}

#[test]
fn fused_full_hessian_matches_golden_f64() {
    for name in GOLDEN {
        let file = load(name);
        let golden = file.tensor("hessian").unwrap();
        let p = golden.dims()[0];
        let eye = Tensor::eye(p, p, DType::F64, Device::Cpu).unwrap();
        for strategy in STRATEGIES {
            let op = MlpHvp::new(&file.model, file.loss, &file.x, &file.y)
                .unwrap()
                .with_strategy(strategy);
            let err = rel_err(&op.apply_batch(&eye).unwrap(), golden);
            assert!(
                err <= 1e-12,
                "{name} {strategy:?}: hessian vs golden {err:e}"
            );
        }
    }
}

#[test]
fn fused_matches_golden_in_f32() {
    for name in GOLDEN {
        let path = common::data_dir().join(format!("{name}.safetensors"));
        let file = ModelFile::load(&path, DType::F32, Device::Cpu).unwrap();
        for strategy in STRATEGIES {
            let op = MlpHvp::new(&file.model, file.loss, &file.x, &file.y)
                .unwrap()
                .with_strategy(strategy);
            let hvps = op.apply_batch(file.tensor("V").unwrap()).unwrap();
            let err = rel_err(&hvps, file.tensor("hvps").unwrap());
            assert!(
                err <= 1e-4,
                "{name} {strategy:?}: f32 hvps vs golden {err:e}"
            );
        }
    }
}

/// A model wider than the golden ones, so the narrow sweep runs several direction blocks and
/// the wide sweep real matrix products; compared with the tape in f64.
#[test]
fn fused_equals_tape_on_wider_models_f64() {
    // Widths, hidden activation, final activation, loss, samples.
    type Case = (
        &'static [usize],
        Activation,
        Option<Activation>,
        Loss,
        usize,
    );
    let cases: [Case; 3] = [
        (&[7, 33, 20, 5], Activation::Tanh, None, Loss::Mse, 37),
        (
            &[4, 40, 3],
            Activation::Sigmoid,
            Some(Activation::Sigmoid),
            Loss::SumSq,
            19,
        ),
        (
            &[6, 24, 24, 4],
            Activation::Tanh,
            None,
            Loss::CrossEntropy,
            21,
        ),
    ];
    for (widths, act, last, loss, n) in cases {
        let hidden = vec![act; widths.len() - 2];
        let model = Sequential::mlp(widths, &hidden, last, DType::F64, Device::Cpu, 3).unwrap();
        let (inputs, outputs) = (widths[0], widths[widths.len() - 1]);
        let x = probes(n, inputs, Probe::Gaussian, 11, DType::F64, Device::Cpu).unwrap();
        let y = match loss {
            Loss::CrossEntropy => {
                let labels: Vec<f64> = (0..n).map(|i| (i * 7 % outputs) as f64).collect();
                Tensor::from_f64s(&labels, [n], DType::F64, Device::Cpu).unwrap()
            }
            _ => probes(n, outputs, Probe::Gaussian, 12, DType::F64, Device::Cpu).unwrap(),
        };
        let tape = PreparedHvp::for_model(&model, loss, &x, &y).unwrap();
        // 40 directions: more than one narrow block for these parameter counts.
        let v = probes(40, tape.dim(), Probe::Gaussian, 5, DType::F64, Device::Cpu).unwrap();
        let expected = tape.apply_batch(&v).unwrap();
        for strategy in STRATEGIES {
            let op = MlpHvp::new(&model, loss, &x, &y)
                .unwrap()
                .with_strategy(strategy);
            let err = rel_err(&op.apply_batch(&v).unwrap(), &expected);
            assert!(
                err <= 1e-12,
                "{widths:?} {loss:?} {strategy:?}: vs tape {err:e}"
            );
            let one = op.apply_batch(&v.narrow(0, 3, 1).unwrap()).unwrap();
            let err = rel_err(&one, &expected.narrow(0, 3, 1).unwrap());
            assert!(
                err <= 1e-12,
                "{widths:?} {strategy:?}: single direction {err:e}"
            );
        }
    }
}

#[test]
fn model_hvp_takes_the_fused_route_for_mlps_and_the_tape_otherwise() {
    let file = load("seed_simplenet_tanh_mse");
    let fused = ModelHvp::new(&file.model, file.loss, &file.x, &file.y).unwrap();
    assert_eq!(fused.engine(141), "fused-narrow");
    assert_eq!(fused.engine(1), "fused-wide");
    let v = file.tensor("V").unwrap();
    let err = rel_err(&fused.apply_batch(v).unwrap(), file.tensor("hvps").unwrap());
    assert!(err <= 1e-12, "{err:e}");

    // Two activations in a row: not a dense chain, so the tape computes it.
    let mut layers = file.model.layers().to_vec();
    layers.push(Box::new(Activation::Tanh));
    layers.push(Box::new(Activation::Sigmoid));
    let odd = Sequential::new(layers);
    let err = MlpHvp::new(&odd, file.loss, &file.x, &file.y)
        .err()
        .expect("two activations in a row are rejected")
        .to_string();
    assert!(err.contains("does not follow a Linear layer"), "{err}");
    // A Linear layer whose bias does not match its weight: rejected, never a panic.
    let mut bad = file.model.layers().to_vec();
    let weight = file.model.parameters()[0].clone();
    let bias = Tensor::zeros([3], DType::F64, Device::Cpu).unwrap();
    bad[0] = Box::new(Linear { weight, bias });
    let err = MlpHvp::new(&Sequential::new(bad), file.loss, &file.x, &file.y)
        .err()
        .expect("a mismatched bias is rejected")
        .to_string();
    assert!(err.contains("needs [out, in] and [out]"), "{err}");
    let empty = Sequential::mlp(
        &[1, 0, 1],
        &[Activation::Tanh],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )
    .unwrap();
    let err = MlpHvp::new(&empty, file.loss, &file.x, &file.y)
        .err()
        .expect("a layer of width 0 is rejected")
        .to_string();
    assert!(err.contains("out, in ≥ 1"), "{err}");

    let routed = ModelHvp::new(&odd, file.loss, &file.x, &file.y).unwrap();
    assert_eq!(routed.engine(141), "tape");
    let tape = PreparedHvp::for_model(&odd, file.loss, &file.x, &file.y).unwrap();
    let err = rel_err(
        &routed.apply_batch(v).unwrap(),
        &tape.apply_batch(v).unwrap(),
    );
    assert_eq!(err, 0.0);
}

#[test]
fn fused_rejects_bad_inputs_with_clear_errors() {
    let file = load("seed_simplenet_tanh_mse");
    let wrong_x = Tensor::zeros([5, 3], DType::F64, Device::Cpu).unwrap();
    let err = MlpHvp::new(&file.model, file.loss, &wrong_x, &file.y)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("x must be [n, 1]"), "{err}");
    let wrong_y = Tensor::zeros([7, 1], DType::F64, Device::Cpu).unwrap();
    let err = MlpHvp::new(&file.model, file.loss, &file.x, &wrong_y)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mse needs y of shape"), "{err}");
    let f32_x = file.x.to_dtype(DType::F32).unwrap();
    let err = MlpHvp::new(&file.model, file.loss, &f32_x, &file.y)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dtype mismatch"), "{err}");
    let op = MlpHvp::new(&file.model, file.loss, &file.x, &file.y).unwrap();
    let short = Tensor::zeros([2, 5], DType::F64, Device::Cpu).unwrap();
    let err = op.apply_batch(&short).err().unwrap().to_string();
    assert!(err.contains("length 141"), "{err}");
    let xent = load("mlp_5_8_4_tanh_xent");
    let bad_labels = Tensor::full(9.0, xent.y.dims(), DType::F64, Device::Cpu).unwrap();
    let err = MlpHvp::new(&xent.model, xent.loss, &xent.x, &bad_labels)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("label 9 is out of range"), "{err}");
}

/// Bit patterns of a tensor's values, for exact comparisons.
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_f64s().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// The operator built and applied inside a pool of `threads` threads: its value, gradient and
/// products as bits.
fn run_with_threads(
    threads: usize,
    model: &Sequential,
    x: &Tensor,
    y: &Tensor,
    v: &Tensor,
) -> (u64, Vec<u64>, Vec<u64>, &'static str) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let op = ModelHvp::new(model, Loss::Mse, x, y).unwrap();
        let engine = op.engine(v.dims()[0]);
        let hv = op.apply_batch(v).unwrap();
        (
            op.value().unwrap().to_bits(),
            bits(&op.gradient().unwrap()),
            bits(&hv),
            engine,
        )
    })
}

#[test]
fn fused_results_are_bit_identical_for_1_2_and_3_threads() {
    // Narrow: a small model, many samples (several reduction leaves, an uneven last one) and
    // K ≥ 16. Wide: layers large enough that the products are split over threads, with fewer
    // directions than threads and more.
    type Case = (&'static [usize], usize, &'static [usize], &'static str);
    let cases: [Case; 2] = [
        (&[1, 10, 10, 1], 777, &[20, 141], "fused-narrow"),
        (&[32, 128, 128, 4], 512, &[1, 5], "fused-wide"),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (widths, n, directions, engine) in cases {
            let hidden = vec![Activation::Tanh; widths.len() - 2];
            let model = Sequential::mlp(widths, &hidden, None, dtype, Device::Cpu, 7).unwrap();
            let (inputs, outputs) = (widths[0], widths[widths.len() - 1]);
            let x = probes(n, inputs, Probe::Gaussian, 1, dtype, Device::Cpu).unwrap();
            let y = probes(n, outputs, Probe::Gaussian, 2, dtype, Device::Cpu).unwrap();
            for &k in directions {
                let v = probes(
                    k,
                    model.num_params(),
                    Probe::Gaussian,
                    3,
                    dtype,
                    Device::Cpu,
                )
                .unwrap();
                let one = run_with_threads(1, &model, &x, &y, &v);
                assert_eq!(one.3, engine, "{widths:?} K = {k}");
                for threads in [2, 3] {
                    let many = run_with_threads(threads, &model, &x, &y, &v);
                    assert!(
                        one == many,
                        "{dtype} {widths:?} K = {k}: {threads} threads differ from 1"
                    );
                }
            }
        }
    }
}

#[test]
fn impossible_sizes_are_refused_before_any_product() {
    // [3, 0xAAAA_AAAA_AAAA_AAAB] has 3 · 0xAAAA_AAAA_AAAA_AAAB elements, which wraps to 1 in
    // 64-bit arithmetic. The tensor crate may refuse such a shape; if it does not, the fused
    // operator must, before any matrix product sees the sizes.
    let huge = 0xAAAA_AAAA_AAAA_AAAB_u64 as usize;
    let (Ok(weight), Ok(x)) = (
        Tensor::from_f64s(&[1.0], [3, huge], DType::F64, Device::Cpu),
        Tensor::from_f64s(&[1.0], [3, huge], DType::F64, Device::Cpu),
    ) else {
        return;
    };
    let bias = Tensor::zeros([3], DType::F64, Device::Cpu).unwrap();
    let model = Sequential::default().with(Linear { weight, bias });
    let y = Tensor::zeros([3, 3], DType::F64, Device::Cpu).unwrap();
    let err = MlpHvp::new(&model, Loss::Mse, &x, &y)
        .err()
        .expect("refused");
    assert!(
        matches!(err, curvature_hessian::HessianError::SizeOverflow { .. }),
        "{err:?}"
    );
}
