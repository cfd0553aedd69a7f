//! PyTorch models exported to ONNX, imported and differentiated, against `torch.func` in
//! float64: an MLP (ReLU, exact and tanh GELU), a small CNN (conv → batch norm in evaluation
//! mode → ReLU → max pool → grouped conv → global average pool → linear), a pre-norm
//! transformer block (LayerNorm, causal multi-head attention, GELU MLP, residuals), a model
//! with two inputs and a nanoGPT-style block on int64 tokens (embeddings, a fused qkv split
//! with `Tensor.split`, which exports as sequence ops, causal attention, a tanh-GELU MLP). The fixtures in `tests/data/models/` are made by
//! `scripts/make_onnx_fixtures.py`; θ is the importer's default, every floating-point
//! initializer with more than one element in the graph's order. The output, loss, gradient,
//! eight Hessian-vector products and the Hessian diagonal agree to 1e-10 relative, on the CPU
//! and on the CUDA device; so do the gradient and Hessian of a `--params` selection. The
//! parameters are the reference's, by name, shape and order.

#[path = "../../tensor/tests/common/devices.rs"]
mod devices;

mod common {
    pub use super::devices::{cuda, Outcome};
}

use std::collections::BTreeMap;
use std::path::PathBuf;

use curvature_hessian::{apply, hessian_diagonal, hessian_of, HessianOptions, ModelHvp};
use curvature_nn::{Loss, Module};
use curvature_onnx::{OnnxModel, OnnxOptions};
use curvature_tape::Tape;
use curvature_tensor::io::Source;
use curvature_tensor::{DType, Device, Tensor};

const TOL: f64 = 1e-10;

/// A fixture's folder.
fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/models")
        .join(name)
}

/// The tensors of `file` in the fixture `name`, on `device`.
fn tensors(name: &str, file: &str, device: Device) -> BTreeMap<String, Tensor> {
    let path = fixture_dir(name).join(file);
    curvature_tensor::io::load(&path, device).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The metadata string `key` of the fixture `name`'s reference file.
fn reference_metadata(name: &str, key: &str) -> String {
    let path = fixture_dir(name).join("reference.safetensors");
    let (source, len) = Source::open(&path).unwrap();
    let header = source.header(len).unwrap();
    header
        .metadata
        .get(key)
        .unwrap_or_else(|| panic!("{}: no metadata '{key}'", path.display()))
        .clone()
}

/// The parameters' names and shapes, as the reference's `params` metadata lists them.
fn names_and_shapes(model: &OnnxModel) -> Vec<(String, Vec<usize>)> {
    model
        .named_parameters()
        .into_iter()
        .map(|(name, t)| (name, t.dims().to_vec()))
        .collect()
}

/// max|ours − reference| / max|reference|; the element counts must agree.
fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(
        ours.elem_count(),
        reference.elem_count(),
        "element counts differ: {:?} vs {:?}",
        ours.shape(),
        reference.shape()
    );
    let a = ours.to_f64s().unwrap();
    let b = reference.to_f64s().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn assert_close(name: &str, what: &str, ours: &Tensor, torch: &Tensor) {
    let err = rel_err(ours, torch);
    assert!(err <= TOL, "{name} {what}: {err:e} relative to PyTorch");
}

/// The imported model, the graph inputs in the graph's order and the target.
fn load(name: &str, params: &[&str], device: Device) -> (OnnxModel, Vec<Tensor>, Tensor) {
    let options = OnnxOptions {
        params: params.iter().map(|p| p.to_string()).collect(),
    };
    let path = fixture_dir(name).join("model.onnx");
    let model = OnnxModel::load(&path, &options, DType::F64, device)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut data = tensors(name, "data.safetensors", device);
    let inputs = model
        .graph()
        .inputs
        .iter()
        .map(|input| {
            data.remove(&input.name)
                .unwrap_or_else(|| panic!("{name}: no data for graph input '{}'", input.name))
        })
        .collect();
    let y = data.remove("y").expect("the target y");
    (model, inputs, y)
}

/// The model's output on its inputs (parameters and inputs as constants on a fresh tape).
fn output(model: &OnnxModel, inputs: &[Tensor]) -> Tensor {
    let tape = Tape::new();
    let params: Vec<_> = model
        .parameters()
        .into_iter()
        .map(|p| tape.constant(p))
        .collect();
    let inputs: Vec<_> = inputs.iter().map(|x| tape.constant(x.clone())).collect();
    model
        .forward_inputs(&params, &inputs)
        .unwrap()
        .value()
        .clone()
}

/// The output, loss, gradient, HVPs of the fixture's directions and Hessian diagonal with
/// every default parameter, each within `TOL` of PyTorch's.
fn check_against_torch(name: &str, loss: Loss, device: Device) {
    let reference = tensors(name, "reference.safetensors", device);
    let (model, inputs, y) = load(name, &[], device);
    assert_eq!(reference_metadata(name, "loss"), loss.name());
    let torch_params: Vec<(String, Vec<usize>)> =
        serde_json::from_str(&reference_metadata(name, "params")).unwrap();
    assert_eq!(
        names_and_shapes(&model),
        torch_params,
        "{name}: θ's initializers differ from the reference's"
    );
    assert_close(
        name,
        "output",
        &output(&model, &inputs),
        &reference["output"],
    );
    let op = ModelHvp::new(&model, loss, &inputs, &y).unwrap();
    let value = Tensor::from_f64s(&[op.value().unwrap()], [], DType::F64, Device::Cpu).unwrap();
    assert_close(name, "loss", &value, &reference["loss"]);
    assert_close(
        name,
        "gradient",
        &op.gradient().unwrap(),
        &reference["grad"],
    );
    let hv = apply(&op, &reference["v"]).unwrap();
    assert_close(name, "HVPs", &hv, &reference["hv"]);
    let diagonal = hessian_diagonal(&op, &HessianOptions::default()).unwrap();
    assert_close(
        name,
        "Hessian diagonal",
        &diagonal,
        &reference["hessian_diag"],
    );
}

/// The gradient and Hessian with respect to the initializers `glob` selects (the others
/// constants), within `TOL` of PyTorch's sub-gradient and sub-Hessian.
fn check_selection(name: &str, glob: &str, loss: Loss, device: Device) {
    let reference = tensors(name, "reference.safetensors", device);
    let (model, inputs, y) = load(name, &[glob], device);
    assert_eq!(reference_metadata(name, "sub_params"), glob);
    let torch_names: Vec<String> =
        serde_json::from_str(&reference_metadata(name, "sub_names")).unwrap();
    let names: Vec<String> = names_and_shapes(&model)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names, torch_names,
        "{name}: --params {glob} selects other initializers"
    );
    let op = ModelHvp::new(&model, loss, &inputs, &y).unwrap();
    let what = format!("--params {glob}");
    assert_close(
        name,
        &format!("{what} gradient"),
        &op.gradient().unwrap(),
        &reference["sub_grad"],
    );
    let hessian = hessian_of(&op, &HessianOptions::default()).unwrap();
    assert_close(
        name,
        &format!("{what} Hessian"),
        &hessian,
        &reference["sub_hessian"],
    );
}

fn mlp_matches_torch(device: Device) {
    check_against_torch("mlp", Loss::CrossEntropy, device);
}

fn cnn_matches_torch(device: Device) {
    check_against_torch("cnn", Loss::CrossEntropy, device);
}

fn transformer_matches_torch(device: Device) {
    check_against_torch("transformer", Loss::Mse, device);
}

fn two_inputs_match_torch(device: Device) {
    check_against_torch("two_inputs", Loss::Mse, device);
}

fn gpt2_matches_torch(device: Device) {
    check_against_torch("gpt2", Loss::CrossEntropy, device);
}

fn gpt2_qkv_matches_torch(device: Device) {
    check_selection("gpt2", "qkv.*", Loss::CrossEntropy, device);
}

fn mlp_last_layer_matches_torch(device: Device) {
    check_selection("mlp", "6.*", Loss::CrossEntropy, device);
}

fn transformer_mlp_output_layer_matches_torch(device: Device) {
    check_selection("transformer", "mlp.2.*", Loss::Mse, device);
}

device_tests!(
    mlp_matches_torch,
    cnn_matches_torch,
    transformer_matches_torch,
    two_inputs_match_torch,
    gpt2_matches_torch,
    mlp_last_layer_matches_torch,
    gpt2_qkv_matches_torch,
    transformer_mlp_output_layer_matches_torch,
);
