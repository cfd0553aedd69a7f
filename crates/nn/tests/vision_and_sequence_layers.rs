//! The convolution, pooling, normalisation, embedding and attention modules: names and shapes
//! like PyTorch's, values against formulas written here, and every error a user can provoke.

use curvature_nn::{
    AdaptiveAvgPool2d, BatchNorm, Conv1d, Conv2d, Embedding, LayerNorm, Module, MultiheadAttention,
    NnError,
};
use curvature_tape::Tape;
use curvature_tensor::{Conv1dOptions, Conv2dOptions, DType, Device, Tensor};

const ON: (DType, Device) = (DType::F64, Device::Cpu);

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, ON.0, ON.1).unwrap()
}

fn names(model: &dyn Module) -> Vec<String> {
    model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Runs `model` on `x` with its own parameters.
fn forward(model: &dyn Module, x: Tensor) -> curvature_nn::Result<Tensor> {
    let tape = Tape::new();
    let theta = tape.leaf(model.flat_params()?);
    Ok(model
        .forward_flat(&theta, &tape.constant(x))?
        .value()
        .clone())
}

#[test]
fn parameters_have_pytorch_names_and_shapes() {
    let conv = Conv2d::seeded(
        4,
        6,
        (3, 2),
        Conv2dOptions {
            groups: 2,
            ..Default::default()
        },
        true,
        ON,
        0,
    )
    .unwrap();
    assert_eq!(names(&conv), ["weight", "bias"]);
    assert_eq!(conv.weight.dims(), &[6, 2, 3, 2]);
    let conv1 = Conv1d::seeded(3, 5, 4, Conv1dOptions::default(), false, ON, 0).unwrap();
    assert_eq!(names(&conv1), ["weight"]);
    assert_eq!(conv1.weight.dims(), &[5, 3, 4]);
    let attention = MultiheadAttention::seeded(6, 3, false, ON.0, ON.1, 0).unwrap();
    assert_eq!(
        names(&attention),
        [
            "in_proj_weight",
            "in_proj_bias",
            "out_proj.weight",
            "out_proj.bias"
        ]
    );
    assert_eq!(attention.num_params(), 3 * 36 + 18 + 36 + 6);
    let norm = BatchNorm::new(3, ON.0, ON.1).unwrap();
    assert_eq!(names(&norm), ["weight", "bias"]);
    // Default initialisation bounds: U(−1/√fan_in, 1/√fan_in), fan_in = 2·3·2.
    let bound = 1.0 / 12f64.sqrt();
    assert!(conv
        .weight
        .to_f64s()
        .unwrap()
        .iter()
        .all(|w| w.abs() <= bound));
}

#[test]
fn conv1d_without_bias_is_a_sliding_dot_product() {
    // One channel in and out, kernel [1, 2, 3], stride 1, padding 1.
    let options = Conv1dOptions {
        padding: 1,
        ..Default::default()
    };
    let conv = Conv1d::from_tensors(t(&[1.0, 2.0, 3.0], &[1, 1, 3]), None, options);
    let y = forward(&conv, t(&[1.0, 0.0, -1.0, 2.0], &[1, 1, 4])).unwrap();
    // y[i] = x[i−1]·1 + x[i]·2 + x[i+1]·3 with zeros outside.
    assert_eq!(y.to_f64s().unwrap(), [2.0, -2.0, 4.0, 3.0]);
}

#[test]
fn conv2d_adds_its_bias_per_channel() {
    let weight = Tensor::zeros([2, 1, 1, 1], ON.0, ON.1).unwrap();
    let conv = Conv2d::from_tensors(
        weight,
        Some(t(&[0.5, -1.0], &[2])),
        Conv2dOptions::default(),
    );
    let y = forward(&conv, Tensor::ones([1, 1, 2, 2], ON.0, ON.1).unwrap()).unwrap();
    assert_eq!(
        y.to_f64s().unwrap(),
        [0.5, 0.5, 0.5, 0.5, -1.0, -1.0, -1.0, -1.0]
    );
}

#[test]
fn layer_norm_and_batch_norm_match_their_formulas() {
    let mut norm = LayerNorm::new(2, ON.0, ON.1).unwrap();
    norm.affine = Some((t(&[2.0, 3.0], &[2]), t(&[1.0, 0.0], &[2])));
    norm.eps = 0.0;
    // Row [1, 3]: mean 2, biased variance 1, x̂ = [−1, 1] → [2·(−1) + 1, 3·1 + 0].
    let y = forward(&norm, t(&[1.0, 3.0], &[1, 2])).unwrap();
    assert_eq!(y.to_f64s().unwrap(), [-1.0, 3.0]);

    let mut batch = BatchNorm::new(2, ON.0, ON.1).unwrap();
    batch.running_mean = t(&[1.0, -1.0], &[2]);
    batch.running_var = t(&[4.0, 0.25], &[2]);
    batch.eps = 0.0;
    batch.affine = Some((t(&[1.0, 2.0], &[2]), t(&[0.0, 1.0], &[2])));
    // Channel 0: (x − 1)/2; channel 1: 2·(x + 1)/0.5 + 1.
    let y = forward(&batch, t(&[3.0, 5.0, 0.0, 1.0], &[1, 2, 2, 1])).unwrap();
    assert_eq!(y.to_f64s().unwrap(), [1.0, 2.0, 5.0, 9.0]);
}

#[test]
fn embedding_looks_up_rows_and_rejects_bad_indices() {
    let table = Embedding {
        weight: t(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]),
    };
    let y = forward(&table, t(&[2.0, 0.0, 2.0], &[3])).unwrap();
    assert_eq!(y.dims(), &[3, 2]);
    assert_eq!(y.to_f64s().unwrap(), [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    for bad in [3.0, -1.0, 0.5, f64::NAN] {
        let err = forward(&table, t(&[bad], &[1])).unwrap_err();
        assert!(
            matches!(
                err,
                NnError::InvalidArgument {
                    op: "Embedding",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn causal_attention_of_one_token_is_its_value_projection() {
    // With one token, softmax over one key is 1: the output is out_proj(v_proj(x)).
    let mut attention = MultiheadAttention::seeded(2, 1, true, ON.0, ON.1, 0).unwrap();
    let mut w = vec![0.0; 12];
    w[8] = 1.0; // v = x (rows 4..6 of in_proj_weight are the value projection)
    w[11] = 1.0;
    attention.in_proj_weight = t(&w, &[6, 2]);
    attention.out_proj.weight = t(&[2.0, 0.0, 0.0, 3.0], &[2, 2]);
    let y = forward(&attention, t(&[1.5, -1.0], &[1, 2])).unwrap();
    assert_eq!(y.to_f64s().unwrap(), [3.0, -3.0]);
}

#[test]
fn layers_reject_what_pytorch_rejects() {
    let bad_groups = Conv2dOptions {
        groups: 3,
        ..Default::default()
    };
    assert!(Conv2d::seeded(4, 6, (3, 3), bad_groups, true, ON, 0).is_err());
    assert!(Conv1d::seeded(
        4,
        6,
        3,
        Conv1dOptions {
            groups: 0,
            ..Default::default()
        },
        true,
        ON,
        0
    )
    .is_err());
    assert!(MultiheadAttention::seeded(6, 4, false, ON.0, ON.1, 0).is_err());
    assert!(MultiheadAttention::seeded(6, 0, false, ON.0, ON.1, 0).is_err());

    let attention = MultiheadAttention::seeded(4, 2, false, ON.0, ON.1, 0).unwrap();
    assert!(forward(&attention, Tensor::ones([2, 3, 5], ON.0, ON.1).unwrap()).is_err());
    let conv = Conv2d::seeded(2, 2, (3, 3), Conv2dOptions::default(), true, ON, 0).unwrap();
    assert!(forward(&conv, Tensor::ones([1, 3, 4, 4], ON.0, ON.1).unwrap()).is_err());
    assert!(forward(
        &AdaptiveAvgPool2d::new((1, 1)),
        Tensor::ones([4], ON.0, ON.1).unwrap()
    )
    .is_err());

    let mut norm = LayerNorm::new(3, ON.0, ON.1).unwrap();
    assert!(norm
        .set_parameters(&[t(&[1.0], &[1]), t(&[1.0], &[1])])
        .is_err());
    assert!(norm.set_parameters(&[]).is_err());
    let mut batch = BatchNorm::new(2, ON.0, ON.1).unwrap();
    assert!(batch.set_parameters(&[t(&[1.0, 1.0], &[2])]).is_err());
}
