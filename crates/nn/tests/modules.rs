//! The Module trait and its layers against hand computations: names, flat views, several
//! inputs, and every error a user can provoke.

use curvature_nn::{
    check_param_count, prefixed, Activation, Dropout, Flatten, Linear, Module, NnError, Residual,
    Result, Sequential,
};
use curvature_tape::{Tape, Var};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64, Device::Cpu).unwrap()
}

fn linear(inputs: usize, outputs: usize, seed: u64) -> Linear {
    Linear::seeded(inputs, outputs, DType::F64, Device::Cpu, seed).unwrap()
}

fn names(model: &dyn Module) -> Vec<String> {
    model
        .named_parameters()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// out = tr(AᵀA)·x + B·y: a module with two inputs.
#[derive(Debug, Clone)]
struct TwoInputs {
    a: Tensor,
    b: Tensor,
}

impl Module for TwoInputs {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("a".into(), self.a.clone()), ("b".into(), self.b.clone())]
    }

    fn forward_with(&self, _params: &[Var], _x: &Var) -> Result<Var> {
        Err(NnError::InputCount {
            module: "TwoInputs",
            expected: 2,
            got: 1,
        })
    }

    fn num_inputs(&self) -> usize {
        2
    }

    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> Result<Var> {
        check_param_count("TwoInputs", params, 2)?;
        let [x, y] = inputs else {
            return Err(NnError::InputCount {
                module: "TwoInputs",
                expected: 2,
                got: inputs.len(),
            });
        };
        let trace = params[0].square()?.sum_all()?;
        Ok(x.mul(&trace)?.add(&params[1].matmul(y)?)?)
    }
}

#[test]
fn nested_modules_are_named_like_pytorch_state_dicts() {
    let block = Sequential::default()
        .with(linear(3, 3, 1))
        .with(Activation::Tanh);
    let model = Sequential::default()
        .with(linear(2, 3, 0))
        .with(Activation::new(UnaryOp::Softplus))
        .with(Residual::new(block))
        .with(Dropout::new(0.5).unwrap())
        .with(Flatten::new())
        .with(linear(3, 1, 2));
    assert_eq!(
        names(&model),
        [
            "0.weight",
            "0.bias",
            "2.0.weight",
            "2.0.bias",
            "5.weight",
            "5.bias"
        ]
    );
    assert_eq!(model.num_params(), 9 + 12 + 4);
    assert_eq!(
        names(&TwoInputs {
            a: t(&[1.0], &[1]),
            b: t(&[1.0], &[1])
        }),
        ["a", "b"]
    );
    let with_prefix: Vec<String> = prefixed("encoder", &model)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(with_prefix[2], "encoder.2.0.weight");
    assert!(model.rows_independent());
    assert!(model.as_sequential().is_some());
    assert!(linear(2, 2, 0).as_sequential().is_none());
    assert!(!Flatten::range(0, -1).rows_independent());
}

#[test]
fn forward_of_a_residual_mlp_matches_a_direct_computation() -> Result<()> {
    let (first, inner, last) = (linear(2, 3, 0), linear(3, 3, 1), linear(3, 2, 2));
    let model = Sequential::default()
        .with(first.clone())
        .with(Activation::new(UnaryOp::Softplus))
        .with(Residual::new(
            Sequential::default()
                .with(inner.clone())
                .with(Activation::Sigmoid),
        ))
        .with(Dropout::new(0.9)?)
        .with(last.clone());
    let x = [0.3, -1.2, 2.0, 0.5];
    let tape = Tape::new();
    let theta = tape.leaf(model.flat_params()?);
    let out = model.forward_flat(&theta, &tape.constant(t(&x, &[2, 2])))?;
    assert_eq!(out.dims(), &[2, 2]);
    let out = out.value().to_f64s()?;

    let dense = |layer: &Linear, h: &[f64]| -> Vec<f64> {
        let (w, b) = (
            layer.weight.to_f64s().unwrap(),
            layer.bias.to_f64s().unwrap(),
        );
        let (o, i) = (layer.weight.dims()[0], layer.weight.dims()[1]);
        (0..o)
            .map(|r| b[r] + (0..i).map(|c| w[r * i + c] * h[c]).sum::<f64>())
            .collect()
    };
    for s in 0..2 {
        let h: Vec<f64> = dense(&first, &x[2 * s..2 * s + 2])
            .iter()
            .map(|z| (1.0 + z.exp()).ln())
            .collect();
        let f: Vec<f64> = dense(&inner, &h)
            .iter()
            .map(|z| 1.0 / (1.0 + (-z).exp()))
            .collect();
        let r: Vec<f64> = h.iter().zip(&f).map(|(a, b)| a + b).collect();
        let want = dense(&last, &r);
        for o in 0..2 {
            assert!((out[2 * s + o] - want[o]).abs() < 1e-14, "{out:?} {want:?}");
        }
    }
    Ok(())
}

#[test]
fn linear_takes_one_dimensional_inputs_and_seeded_init_is_pytorchs_bound() -> Result<()> {
    let layer = linear(4, 3, 7);
    let bound = 0.5; // 1/√4
    for v in layer.weight.to_f64s()?.iter().chain(&layer.bias.to_f64s()?) {
        assert!(v.abs() < bound, "{v}");
    }
    let again = linear(4, 3, 7);
    assert_eq!(layer.weight.to_f64s()?, again.weight.to_f64s()?);
    assert_ne!(layer.weight.to_f64s()?, linear(4, 3, 8).weight.to_f64s()?);

    let tape = Tape::new();
    let params: Vec<Var> = layer
        .parameters()
        .into_iter()
        .map(|p| tape.leaf(p))
        .collect();
    let x = [1.0, -2.0, 0.5, 3.0];
    let y = layer.forward_with(&params, &tape.constant(t(&x, &[4])))?;
    assert_eq!(y.dims(), &[3]);
    let (w, b) = (layer.weight.to_f64s()?, layer.bias.to_f64s()?);
    for (r, got) in y.value().to_f64s()?.iter().enumerate() {
        let want = b[r] + (0..4).map(|c| w[r * 4 + c] * x[c]).sum::<f64>();
        assert!((got - want).abs() < 1e-14);
    }
    Ok(())
}

#[test]
fn flat_views_split_and_join_named_parameters() -> Result<()> {
    let model = Sequential::default()
        .with(linear(2, 3, 0))
        .with(Activation::Tanh)
        .with(linear(3, 1, 1));
    let p = model.num_params();
    let theta = model.flat_params()?;
    let named = model.split_flat(&theta)?;
    for ((name, part), (want_name, want)) in named.iter().zip(model.named_parameters()) {
        assert_eq!(name, &want_name);
        assert_eq!(part.dims(), want.dims());
        assert_eq!(part.to_f64s()?, want.to_f64s()?);
    }
    let parts: Vec<Tensor> = named.into_iter().map(|(_, t)| t).collect();
    assert_eq!(model.join_flat(&parts, false)?.to_f64s()?, theta.to_f64s()?);

    // A [K, P] batch: row k of every part is row k of the batch.
    let values: Vec<f64> = (0..2 * p).map(|i| i as f64).collect();
    let batch = t(&values, &[2, p]);
    let rows = model.split_flat(&batch)?;
    assert_eq!(rows[0].1.dims(), &[2, 3, 2]);
    assert_eq!(rows[3].1.dims(), &[2, 1]);
    assert_eq!(
        rows[3].1.to_f64s()?,
        vec![(p - 1) as f64, (2 * p - 1) as f64]
    );
    let parts: Vec<Tensor> = rows.into_iter().map(|(_, t)| t).collect();
    assert_eq!(model.join_flat(&parts, true)?.to_f64s()?, values);

    // Errors: wrong lengths, counts, shapes and batch sizes.
    assert!(model.split_flat(&t(&vec![0.0; p + 1], &[p + 1])).is_err());
    assert!(model.split_flat(&t(&vec![0.0; p], &[1, 1, p])).is_err());
    assert!(model.join_flat(&parts[..3], true).is_err());
    let mut wrong_k = parts.clone();
    wrong_k[1] = t(&[0.0; 9], &[3, 3]);
    assert!(model.join_flat(&wrong_k, true).is_err());
    assert!(model.join_flat(&parts, false).is_err());
    let f32_part = parts[0].to_dtype(DType::F32)?;
    let mut mixed = parts.clone();
    mixed[0] = f32_part;
    assert!(model.join_flat(&mixed, true).is_err());
    assert!(Activation::Tanh.flat_params().is_err());
    Ok(())
}

#[test]
fn modules_reject_wrong_parameters_and_inputs() -> Result<()> {
    let model = Sequential::default()
        .with(linear(2, 3, 0))
        .with(Activation::Tanh);
    let tape = Tape::new();
    let x = tape.constant(t(&[1.0, 2.0], &[1, 2]));
    // θ of the wrong length.
    let short = tape.leaf(t(&[0.0; 8], &[8]));
    assert!(model.forward_flat(&short, &x).is_err());
    let matrix = tape.leaf(t(&[0.0; 9], &[1, 9]));
    assert!(model.unflatten(&matrix).is_err());
    // Too few parameter variables.
    let one = [tape.leaf(t(&[0.0; 6], &[3, 2]))];
    let err = model.forward_with(&one, &x).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::ParamCount {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
    // Parameters of the wrong shape reach the ops, which refuse them.
    let wrong = [
        tape.leaf(t(&[0.0; 6], &[2, 3])),
        tape.leaf(t(&[0.0; 3], &[3])),
    ];
    assert!(model.forward_with(&wrong, &x).is_err());
    // Two inputs to a one-input module, and one to a two-input module.
    let params: Vec<Var> = model
        .parameters()
        .into_iter()
        .map(|p| tape.leaf(p))
        .collect();
    let err = model
        .forward_inputs(&params, &[x.clone(), x.clone()])
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::InputCount {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
    let two = TwoInputs {
        a: t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]),
        b: t(&[1.0, 0.0, 0.0, 1.0], &[2, 2]),
    };
    let theta = tape.leaf(two.flat_params()?);
    assert!(two.forward_flat(&theta, &x).is_err());
    let xy = tape.constant(t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let out = two.forward_flat_inputs(&theta, &[xy.clone(), xy.clone()])?;
    // tr(AᵀA) = 30, B = I: out = 31·x.
    let want: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().map(|v| 31.0 * v).collect();
    assert_eq!(out.value().to_f64s()?, want);
    // A Sequential takes as many inputs as its first module.
    let chain = Sequential::default()
        .with(two.clone())
        .with(Activation::Tanh);
    assert_eq!(chain.num_inputs(), 2);
    let theta = tape.leaf(chain.flat_params()?);
    let out = chain.forward_flat_inputs(&theta, &[xy.clone(), xy])?;
    let tanh: Vec<f64> = want.iter().map(|v| v.tanh()).collect();
    assert_eq!(out.value().to_f64s()?, tanh);
    // A dtype mismatch between parameters and input.
    let x32 = tape.constant(t(&[1.0, 2.0], &[1, 2]).to_dtype(DType::F32)?);
    assert!(model.forward_with(&params, &x32).is_err());
    Ok(())
}

#[test]
fn set_parameters_checks_every_layer_before_changing_any() -> Result<()> {
    let mut model = Sequential::default()
        .with(linear(2, 3, 0))
        .with(Activation::Tanh)
        .with(linear(3, 1, 1));
    let before = model.flat_params()?.to_f64s()?;
    let mut params = model.parameters();
    params[3] = t(&[0.0; 2], &[2]); // the last bias has shape [1]
    assert!(model.set_parameters(&params).is_err());
    assert!(model.set_parameters(&params[..3]).is_err());
    assert_eq!(model.flat_params()?.to_f64s()?, before);
    params[3] = t(&[5.0], &[1]);
    model.set_parameters(&params)?;
    assert_eq!(model.parameters()[3].to_f64s()?, vec![5.0]);
    // A module that does not implement it says so.
    let mut two = TwoInputs {
        a: t(&[1.0], &[1]),
        b: t(&[1.0], &[1]),
    };
    let err = two.set_parameters(&[]).unwrap_err().to_string();
    assert!(
        err.contains("TwoInputs does not implement set_parameters"),
        "{err}"
    );
    Ok(())
}

#[test]
fn flatten_dropout_and_residual_shapes_and_errors() -> Result<()> {
    let tape = Tape::new();
    let values: Vec<f64> = (0..24).map(f64::from).collect();
    let x = tape.constant(t(&values, &[2, 3, 4]));
    let flat = Flatten::new().forward_with(&[], &x)?;
    assert_eq!(flat.dims(), &[2, 12]);
    assert_eq!(flat.value().to_f64s()?, values);
    assert_eq!(Flatten::range(0, 1).forward_with(&[], &x)?.dims(), &[6, 4]);
    assert_eq!(
        Flatten::range(-2, -1).forward_with(&[], &x)?.dims(),
        &[2, 12]
    );
    assert!(Flatten::range(2, 1).forward_with(&[], &x).is_err());
    assert!(Flatten::range(0, 3).forward_with(&[], &x).is_err());
    assert!(Flatten::range(-4, 1).forward_with(&[], &x).is_err());

    assert_eq!(
        Dropout::new(0.25)?
            .forward_with(&[], &x)?
            .value()
            .to_f64s()?,
        values
    );
    assert!(Dropout::new(1.5).is_err());
    assert!(Dropout::new(f64::NAN).is_err());
    assert!(Dropout::new(0.1)?
        .forward_with(std::slice::from_ref(&x), &x)
        .is_err());

    let widen = Residual::new(linear(4, 5, 0));
    let params: Vec<Var> = widen
        .parameters()
        .into_iter()
        .map(|p| tape.leaf(p))
        .collect();
    let err = widen.forward_with(&params, &x).unwrap_err().to_string();
    assert!(err.contains("needs equal shapes"), "{err}");
    Ok(())
}
