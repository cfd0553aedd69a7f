//! The models people's networks are made of, against PyTorch in float64: a ReLU MLP, a GELU
//! MLP, a small CNN (conv → batch norm → ReLU → max pool → grouped conv → global average pool
//! → linear) and a pre-norm transformer block (LayerNorm, causal multi-head attention, GELU
//! MLP, residuals), built from this library's modules with the parameters of the fixtures in
//! `tests/fixtures/torch/` (made by `scripts/make_model_fixtures.py`). The loss, the gradient,
//! a batch of Hessian-vector products and the Hessian diagonal agree to 1e-10 relative, on the
//! CPU and on the CUDA device.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::rel_err;
use curvature_hessian::{apply, hessian_diagonal, HessianOptions, ModelHvp};
use curvature_nn::{
    prefixed, Activation, AdaptiveAvgPool2d, BatchNorm, Conv2d, Flatten, LayerNorm, Linear, Loss,
    MaxPool2d, Module, MultiheadAttention, Result, Sequential,
};
use curvature_tape::Var;
use curvature_tensor::{Conv2dOptions, DType, Device, Tensor, UnaryOp};

const TOL: f64 = 1e-10;
const F64: (DType, Device) = (DType::F64, Device::Cpu);

/// The fixture `name`'s tensors on `device`.
fn fixture(name: &str, device: Device) -> BTreeMap<String, Tensor> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/torch"))
        .join(format!("{name}.safetensors"));
    curvature_tensor::io::load(&path, device).unwrap()
}

/// Loads the fixture's parameters into `model` by name, in the model's own order: θ then has
/// PyTorch's order exactly when the names and their order agree with `named_parameters()`.
fn with_fixture_params<M: Module>(mut model: M, tensors: &BTreeMap<String, Tensor>) -> M {
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let stored = tensors.keys().filter(|k| k.starts_with("param.")).count();
    assert_eq!(names.len(), stored, "parameter count: {names:?}");
    let params: Vec<Tensor> = names
        .iter()
        .map(|n| tensors[&format!("param.{n}")].clone())
        .collect();
    model.set_parameters(&params).unwrap();
    model
}

fn relu() -> Activation {
    Activation::new(UnaryOp::Relu)
}

fn linear(inputs: usize, outputs: usize) -> Linear {
    Linear::seeded(inputs, outputs, F64.0, F64.1, 0).unwrap()
}

fn relu_mlp() -> Sequential {
    Sequential::new(vec![])
        .with(linear(4, 6))
        .with(relu())
        .with(linear(6, 5))
        .with(relu())
        .with(linear(5, 3))
}

fn gelu_mlp() -> Sequential {
    Sequential::new(vec![])
        .with(linear(4, 6))
        .with(Activation::new(UnaryOp::Gelu))
        .with(linear(6, 5))
        .with(Activation::new(UnaryOp::GeluTanh))
        .with(linear(5, 3))
}

fn small_cnn(tensors: &BTreeMap<String, Tensor>, device: Device) -> Sequential {
    let padded = Conv2dOptions {
        padding: (1, 1),
        ..Conv2dOptions::default()
    };
    let grouped = Conv2dOptions {
        groups: 2,
        ..Conv2dOptions::default()
    };
    let mut norm = BatchNorm::new(4, DType::F64, device).unwrap();
    norm.running_mean = tensors["buffer.1.running_mean"].clone();
    norm.running_var = tensors["buffer.1.running_var"].clone();
    let on = (DType::F64, device);
    Sequential::new(vec![])
        .with(Conv2d::seeded(2, 4, (3, 3), padded, true, on, 0).unwrap())
        .with(norm)
        .with(relu())
        .with(MaxPool2d::new((2, 2)))
        .with(Conv2d::seeded(4, 4, (2, 2), grouped, true, on, 1).unwrap())
        .with(AdaptiveAvgPool2d::new((1, 1)))
        .with(Flatten::new())
        .with(linear(4, 3))
}

/// A pre-norm transformer block, written as users write their own modules:
/// `h = x + attn(ln1(x))`, `out = h + mlp(ln2(h))`.
#[derive(Debug, Clone)]
struct Block {
    ln1: LayerNorm,
    attn: MultiheadAttention,
    ln2: LayerNorm,
    mlp: Sequential,
}

impl Block {
    fn new(d: usize, heads: usize, hidden: usize) -> Block {
        Block {
            ln1: LayerNorm::new(d, F64.0, F64.1).unwrap(),
            attn: MultiheadAttention::seeded(d, heads, true, F64.0, F64.1, 0).unwrap(),
            ln2: LayerNorm::new(d, F64.0, F64.1).unwrap(),
            mlp: Sequential::new(vec![])
                .with(linear(d, hidden))
                .with(Activation::new(UnaryOp::Gelu))
                .with(linear(hidden, d)),
        }
    }

    fn parts(&self) -> [(&str, &dyn Module); 4] {
        [
            ("ln1", &self.ln1),
            ("attn", &self.attn),
            ("ln2", &self.ln2),
            ("mlp", &self.mlp),
        ]
    }
}

impl Module for Block {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.parts()
            .into_iter()
            .flat_map(|(name, part)| prefixed(name, part))
            .collect()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        let (ln1, rest) = params.split_at(2);
        let (attn, rest) = rest.split_at(4);
        let (ln2, mlp) = rest.split_at(2);
        let h = x.add(&self.attn.forward_with(attn, &self.ln1.forward_with(ln1, x)?)?)?;
        Ok(h.add(&self.mlp.forward_with(mlp, &self.ln2.forward_with(ln2, &h)?)?)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        let (ln1, rest) = params.split_at(2.min(params.len()));
        let (attn, rest) = rest.split_at(4.min(rest.len()));
        let (ln2, mlp) = rest.split_at(2.min(rest.len()));
        self.ln1.set_parameters(ln1)?;
        self.attn.set_parameters(attn)?;
        self.ln2.set_parameters(ln2)?;
        self.mlp.set_parameters(mlp)
    }
}

/// Moves every parameter of `model` to `device`.
fn to_device<M: Module>(mut model: M, device: Device) -> M {
    let moved: Vec<Tensor> = model
        .parameters()
        .iter()
        .map(|p| p.to_device(device).unwrap())
        .collect();
    model.set_parameters(&moved).unwrap();
    model
}

/// The model's loss, gradient, HVPs of the fixture's directions and Hessian diagonal, each
/// within `TOL` of PyTorch's.
fn check_against_torch<M: Module>(name: &str, model: M, loss: Loss, device: Device) {
    let tensors = fixture(name, device);
    let model = to_device(with_fixture_params(model, &tensors), device);
    let op = ModelHvp::new(&model, loss, &tensors["x"], &tensors["y"]).unwrap();
    let value = Tensor::from_f64s(&[op.value().unwrap()], [], DType::F64, Device::Cpu).unwrap();
    let results = [
        ("loss", value, &tensors["loss"]),
        ("gradient", op.gradient().unwrap(), &tensors["grad"]),
        ("HVPs", apply(&op, &tensors["v"]).unwrap(), &tensors["hv"]),
        (
            "Hessian diagonal",
            hessian_diagonal(&op, &HessianOptions::default()).unwrap(),
            &tensors["hessian_diag"],
        ),
    ];
    for (what, ours, torch) in results {
        let err = rel_err(&ours, torch);
        assert!(err <= TOL, "{name} {what}: {err:e} relative to PyTorch");
    }
}

fn relu_mlp_matches_torch(device: Device) {
    check_against_torch("relu_mlp", relu_mlp(), Loss::Mse, device);
}

fn gelu_mlp_matches_torch(device: Device) {
    check_against_torch("gelu_mlp", gelu_mlp(), Loss::CrossEntropy, device);
}

fn small_cnn_matches_torch(device: Device) {
    let model = small_cnn(&fixture("small_cnn", device), device);
    check_against_torch("small_cnn", model, Loss::CrossEntropy, device);
}

fn transformer_block_matches_torch(device: Device) {
    check_against_torch("transformer_block", Block::new(8, 2, 16), Loss::Mse, device);
}

device_tests!(
    relu_mlp_matches_torch,
    gelu_mlp_matches_torch,
    small_cnn_matches_torch,
    transformer_block_matches_torch,
);
