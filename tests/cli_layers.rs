//! `curvature analyze` on model files in the `layers` form, exported from PyTorch by
//! `scripts/make_layer_fixtures.py` (which runs `scripts/export_torch.py`): a small CNN
//! (conv, batch norm, ReLU, max pool, flatten, linear), a GELU/LayerNorm MLP, a Conv1d model
//! through every other activation, and a CNN with average and adaptive pooling. The loss, the
//! gradient and the Hessian written by the binary must match PyTorch's float64 loss, gradient
//! and Hessian-vector products stored in each file (max|ours − torch| / max|torch| ≤ 1e-10),
//! and the results file and the summary must say what the model is.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

const MODELS: [(&str, &str); 4] = [
    (
        "small_cnn",
        "Conv2d → BatchNorm2d → ReLU → MaxPool2d → Flatten → Linear",
    ),
    (
        "gelu_layernorm_mlp",
        "Linear → LayerNorm → GELU → Linear → GELU → Dropout → Linear",
    ),
    (
        "conv1d_activations",
        "Conv1d → BatchNorm1d → ELU → Flatten → Linear → LeakyReLU → Linear → Softplus → \
         Linear → Tanh → Linear → Sigmoid",
    ),
    (
        "pool_cnn",
        "Conv2d → SiLU → AvgPool2d → AdaptiveAvgPool2d → Flatten → Linear",
    ),
];

const TOL: f64 = 1e-10;

/// A file's f64 tensors by name: (shape, values).
type Tensors = common::F64Tensors;

/// A file's f64 tensors and its metadata.
fn read(path: &Path) -> (Tensors, BTreeMap<String, String>) {
    common::read_f64_file(path)
}

/// max|a − b| / max|b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// Row k of `v` `[K, P]` times the row-major `[P, P]` Hessian, for every k, by direct loops.
fn products(v: &[f64], hessian: &[f64], p: usize) -> Vec<f64> {
    v.chunks_exact(p)
        .flat_map(|row| {
            (0..p).map(move |j| (0..p).map(|i| row[i] * hessian[i * p + j]).sum::<f64>())
        })
        .collect()
}

#[test]
fn analyze_matches_pytorch_on_layer_files_f64_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, types) in MODELS {
        let model = common::data(&format!("layers/{name}"));
        let out = dir.path().join(format!("{name}.out.safetensors"));
        let output = common::curvature(&["analyze"])
            .arg(&model)
            .args(["--device", "cpu", "--dtype", "f64", "--out"])
            .arg(&out)
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("Sequential({types})")),
            "{name}: the summary names the layers: {stdout}"
        );
        let (ours, meta) = read(&out);
        let (torch, model_meta) = read(&model);
        let p: usize = model_meta["params"].parse().expect("P");
        assert_eq!(meta["params"], p.to_string(), "{name}: P");
        let layers: Value = serde_json::from_str(&meta["layers"]).expect("layers JSON");
        let exported: Value = serde_json::from_str(&model_meta["layers"]).expect("layers JSON");
        assert_eq!(
            layers, exported,
            "{name}: the results file describes the model"
        );

        for tensor in ["loss", "grad"] {
            let err = rel_err(&ours[tensor].1, &torch[tensor].1);
            assert!(
                err <= TOL,
                "{name}: {tensor} differs from PyTorch's by {err:e}"
            );
        }
        let (shape, hessian) = &ours["hessian"];
        assert_eq!(shape, &vec![p, p], "{name}: the dense Hessian");
        let hv = products(&torch["v"].1, hessian, p);
        let err = rel_err(&hv, &torch["hv"].1);
        assert!(
            err <= TOL,
            "{name}: Hessian-vector products differ by {err:e}"
        );
        let diagonal: Vec<f64> = (0..p).map(|i| hessian[i * p + i]).collect();
        assert_eq!(ours["hessian_diag"].1, diagonal, "{name}: the diagonal");
    }
}

/// In f32 the same file gives the same numbers to 1e-4 (PyTorch's references are f64).
#[test]
fn analyze_runs_layer_files_in_f32_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = common::data("layers/small_cnn");
    let out = dir.path().join("out.safetensors");
    let output = common::curvature(&["analyze"])
        .arg(&model)
        .args(["--device", "cpu", "--dtype", "f32", "--out"])
        .arg(&out)
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    let (ours, _) = read(&out);
    let (torch, _) = read(&model);
    for tensor in ["loss", "grad"] {
        let err = rel_err(&ours[tensor].1, &torch[tensor].1);
        assert!(
            err <= 1e-4,
            "{tensor} differs from PyTorch's by {err:e} in f32"
        );
    }
}
