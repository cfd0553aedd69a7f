//! `curvature analyze model.onnx --data … --loss … [--params GLOB]` end to end through the
//! built binary: the loss, gradient, Hessian and Gauss–Newton matrix of small ONNX graphs
//! (an MLP of Gemm → Tanh → Gemm, a graph of two inputs) against the closed forms computed in
//! f64 by scripts/make_onnx_cli_fixtures.py, `--params` selecting the right sub-Hessian, the
//! parameter layout in the results' metadata, and the one-line refusal of every bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_refused, check_rejected, curvature, data_dir, read_f64_file, run_bounded};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A file of tests/data/onnx.
fn onnx_data(name: &str) -> PathBuf {
    data_dir().join("onnx").join(name)
}

/// Runs `analyze model --device cpu --data data --loss loss --out dir/out.safetensors extra…`
/// and returns the results file's tensors and metadata.
fn analyze(
    model: &Path,
    data: &Path,
    loss: &str,
    extra: &[&str],
) -> (
    common::F64Tensors,
    std::collections::BTreeMap<String, String>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(model)
        .arg("--data")
        .arg(data)
        .args(["--loss", loss, "--device", "cpu", "--probes", "4", "--out"])
        .arg(&out)
        .args(extra);
    let output = run_bounded(&mut command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_f64_file(&out)
}

/// Max |a − b| within `1e-10 · max(1, max |b|)`.
fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-10 * scale, "{name}: max error {err:e}");
}

/// Runs the case `case` (model, data `<case>.safetensors`, reference
/// `<case>_reference.safetensors` with its `--params` patterns) with `loss` and checks the
/// loss, gradient, matrix `matrix` (`hessian` or `ggn`) and parameter layout.
fn check_case(model: &str, case: &str, loss: &str, matrix: &str) {
    let (reference, meta) = read_f64_file(&onnx_data(&format!("{case}_reference.safetensors")));
    let patterns: Vec<String> = serde_json::from_str(&meta["params"]).expect("a list");
    let mut extra: Vec<&str> = patterns
        .iter()
        .flat_map(|p| ["--params", p.as_str()])
        .collect();
    if matrix != "hessian" {
        extra.extend(["--curvature", matrix]);
    }
    let (got, got_meta) = analyze(
        &onnx_data(model),
        &onnx_data(&format!("{case}.safetensors")),
        loss,
        &extra,
    );
    for name in ["loss", "grad", matrix] {
        let (shape, want) = &reference[name];
        assert_eq!(&got[name].0, shape, "{case}: shape of {name}");
        assert_close(&format!("{case} {name}"), &got[name].1, want);
    }
    let layout: serde_json::Value = serde_json::from_str(&got_meta["parameters"]).expect("JSON");
    let want: serde_json::Value = serde_json::from_str(&meta["parameters"]).expect("JSON");
    assert_eq!(layout, want, "{case}: the parameter layout");
    assert_eq!(got_meta["format"], "onnx");
    assert_eq!(got_meta["params"], got["grad"].1.len().to_string());
}

#[test]
fn an_mlp_with_mse_matches_its_closed_form() {
    check_case("mlp.onnx", "mlp_mse", "mse", "hessian");
}

/// On CUDA (the emulated GPU when no real one is present) the imported graph gives the same
/// closed-form loss, gradient and Hessian.
#[test]
fn an_mlp_on_cuda_matches_its_closed_form_cuda() {
    let (reference, _) = read_f64_file(&onnx_data("mlp_mse_reference.safetensors"));
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(onnx_data("mlp.onnx"))
        .arg("--data")
        .arg(onnx_data("mlp_mse.safetensors"))
        .args([
            "--loss", "mse", "--device", "cuda", "--probes", "2", "--top-k", "1",
        ])
        .arg("--out")
        .arg(&out);
    if curvature::tensor::Device::cuda(0).is_err() {
        command.env("CURVATURE_CUDA", "emulate");
    }
    let output = run_bounded(&mut command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (got, meta) = read_f64_file(&out);
    assert_eq!(meta["device"], "cuda:0");
    for name in ["loss", "grad", "hessian"] {
        assert_close(&format!("cuda {name}"), &got[name].1, &reference[name].1);
    }
}

#[test]
fn an_mlp_with_cross_entropy_matches_its_closed_form() {
    check_case("mlp.onnx", "mlp_xent", "cross_entropy", "hessian");
}

#[test]
fn the_gauss_newton_matrix_of_an_onnx_mlp_matches_its_closed_form() {
    check_case("mlp.onnx", "mlp_xent", "cross_entropy", "ggn");
}

#[test]
fn params_select_the_sub_hessian_of_the_chosen_initializers() {
    check_case("mlp.onnx", "mlp_mse_fc2", "mse", "hessian");
}

#[test]
fn a_graph_of_two_inputs_matches_its_closed_form() {
    check_case("two_inputs.onnx", "two_inputs_mse", "mse", "hessian");
}

/// A data file of f64 tensors `(name, shape)`, values 0.5 (or the given dtype's bytes).
fn data_file(dir: &Path, tensors: &[(&str, Vec<usize>, Dtype)]) -> PathBuf {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape, dtype)| {
            let n: usize = shape.iter().product();
            match dtype {
                Dtype::I64 => (0..n).flat_map(|i| (i as i64 % 2).to_le_bytes()).collect(),
                _ => (0..n).flat_map(|_| 0.5f64.to_le_bytes()).collect(),
            }
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, shape, dtype), bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes).expect("a view");
            (name.to_string(), view)
        });
    let bytes = safetensors::tensor::serialize(views, None).expect("serialised");
    let path = dir.join("data.safetensors");
    std::fs::write(&path, bytes).expect("written");
    path
}

/// Checks that `analyze model --data data … extra` is refused with one line containing
/// `expected`, writing nothing.
fn refused(model: &Path, data: Option<&Path>, extra: &[&str], expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args: Vec<String> = Vec::new();
    if let Some(data) = data {
        args.extend(["--data".to_string(), data.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_rejected(model, dir.path(), &args, expected);
}

const F64: Dtype = Dtype::F64;

#[test]
fn an_onnx_model_without_data_or_loss_is_refused() {
    let model = onnx_data("mlp.onnx");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model,
        None,
        &["--loss", "mse"],
        "give its data with --data",
    );
    refused(
        &model,
        Some(&data),
        &[],
        "give the loss of its output with --loss",
    );
}

#[test]
fn an_unknown_loss_is_refused() {
    let model = onnx_data("mlp.onnx");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model,
        Some(&data),
        &["--loss", "hinge"],
        "expected one of mse",
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = onnx_data("two_inputs.onnx");
    let missing = data_file(
        dir.path(),
        &[("a", vec![5, 3], F64), ("y", vec![5, 2], F64)],
    );
    refused(
        &model,
        Some(&missing),
        &["--loss", "mse"],
        "missing tensor 'b'",
    );
    let extra = data_file(
        dir.path(),
        &[
            ("a", vec![5, 3], F64),
            ("b", vec![5, 3], F64),
            ("z", vec![5], F64),
            ("y", vec![5, 2], F64),
        ],
    );
    refused(
        &model,
        Some(&extra),
        &["--loss", "mse"],
        "unexpected tensor 'z'",
    );
    let no_targets = data_file(
        dir.path(),
        &[("a", vec![5, 3], F64), ("b", vec![5, 3], F64)],
    );
    refused(
        &model,
        Some(&no_targets),
        &["--loss", "mse"],
        "missing tensor 'y'",
    );
}

#[test]
fn mis_shaped_tensors_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = onnx_data("two_inputs.onnx");
    let wrong_width = data_file(
        dir.path(),
        &[
            ("a", vec![5, 4], F64),
            ("b", vec![5, 3], F64),
            ("y", vec![5, 2], F64),
        ],
    );
    refused(
        &model,
        Some(&wrong_width),
        &["--loss", "mse"],
        "tensor 'a' has shape [5, 4], but the graph declares its input as [batch, 3]",
    );
    let wrong_samples = data_file(
        dir.path(),
        &[
            ("a", vec![5, 3], F64),
            ("b", vec![4, 3], F64),
            ("y", vec![5, 2], F64),
        ],
    );
    refused(
        &model,
        Some(&wrong_samples),
        &["--loss", "mse"],
        "tensor 'b' has shape [4, 3], but the targets 'y' have 5 samples",
    );
    let integer_labels = data_file(
        dir.path(),
        &[
            ("a", vec![5, 3], F64),
            ("b", vec![5, 3], F64),
            ("y", vec![5], Dtype::I64),
        ],
    );
    refused(
        &model,
        Some(&integer_labels),
        &["--loss", "cross_entropy"],
        "tensor 'y' has dtype I64",
    );
}

#[test]
fn a_glob_matching_no_initializer_is_refused() {
    let model = onnx_data("mlp.onnx");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model,
        Some(&data),
        &["--loss", "mse", "--params", "nothing*"],
        "nothing*",
    );
}

#[test]
fn a_malformed_onnx_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, b"\x0a\xff\xff\xff\xff\x0fnot a protobuf").expect("written");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model,
        Some(&data),
        &["--loss", "mse"],
        "malformed ONNX file",
    );
}

#[test]
fn onnx_flags_with_a_model_file_and_kfac_with_a_graph_are_refused() {
    let model_file = common::data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model_file,
        Some(&data),
        &[],
        "--data applies to ONNX models",
    );
    refused(
        &model_file,
        None,
        &["--params", "0.*"],
        "--params applies to ONNX models",
    );
    refused(
        &model_file,
        None,
        &["--loss", "mse"],
        "--loss applies to ONNX models",
    );
    refused(
        &onnx_data("mlp.onnx"),
        Some(&data),
        &[
            "--loss",
            "mse",
            "--curvature",
            "ggn",
            "--per-layer",
            "--kfac",
        ],
        "--kfac needs a Sequential",
    );
}

#[test]
fn the_data_file_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data.safetensors");
    std::fs::copy(onnx_data("mlp_mse.safetensors"), &data).expect("copied");
    let before = std::fs::read(&data).expect("readable");
    let mut command = curvature(&["analyze"]);
    command
        .arg(onnx_data("mlp.onnx"))
        .arg("--data")
        .arg(&data)
        .args(["--loss", "mse", "--device", "cpu", "--out"])
        .arg(&data);
    let line = assert_refused(&run_bounded(&mut command));
    assert!(line.contains("is the input data file"), "{line}");
    assert_eq!(std::fs::read(&data).expect("readable"), before);
}

/// A graph whose weights live in an external data file (`y = x + w`, `w` in
/// `weights/w.bin`): `--out` and `--plot` naming that file are refused and it is left as it was.
#[test]
fn the_external_data_file_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let parse = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/onnx/tests/data/parse");
    std::fs::create_dir(dir.path().join("weights")).expect("folder");
    let model = dir.path().join("external.onnx");
    std::fs::copy(parse.join("external.onnx"), &model).expect("copied");
    let weights = dir.path().join("weights/w.bin");
    std::fs::copy(parse.join("weights/w.bin"), &weights).expect("copied");
    let before = std::fs::read(&weights).expect("readable");
    let data = data_file(
        dir.path(),
        &[("x", vec![2, 3], F64), ("y", vec![2, 3], F64)],
    );
    for flag in ["--out", "--plot"] {
        let mut command = curvature(&["analyze"]);
        command
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .args(["--loss", "mse", "--device", "cpu", flag])
            .arg(&weights);
        let line = assert_refused(&run_bounded(&mut command));
        assert!(line.contains("is the input external data file"), "{line}");
        assert_eq!(std::fs::read(&weights).expect("readable"), before);
    }
    // The same graph and data analyse normally with the results elsewhere.
    let out = dir.path().join("out.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args(["--loss", "mse", "--device", "cpu", "--out"])
        .arg(&out);
    let output = run_bounded(&mut command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.exists());
}

#[test]
fn an_onnx_run_that_does_not_fit_the_memory_limit_is_refused() {
    let model = onnx_data("mlp.onnx");
    let data = onnx_data("mlp_mse.safetensors");
    refused(
        &model,
        Some(&data),
        &["--loss", "mse", "--memory-limit", "0.01"],
        "not enough memory",
    );
}

/// The model file route writes its parameter layout too: the golden MLP 4-6-5-3's Linear
/// layers (modules 0, 2, 4 between the activations), offsets by hand.
#[test]
fn a_model_file_run_writes_its_parameter_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(common::data("mlp_4_6_5_3_tanh_sigmoid_mse"))
        .args(["--device", "cpu", "--probes", "4", "--out"])
        .arg(&out);
    let output = run_bounded(&mut command);
    assert!(output.status.success());
    let (_, meta) = read_f64_file(&out);
    let layout: serde_json::Value = serde_json::from_str(&meta["parameters"]).expect("JSON");
    let want = serde_json::json!([
        {"name": "0.weight", "shape": [6, 4], "offset": 0},
        {"name": "0.bias", "shape": [6], "offset": 24},
        {"name": "2.weight", "shape": [5, 6], "offset": 30},
        {"name": "2.bias", "shape": [5], "offset": 60},
        {"name": "4.weight", "shape": [3, 5], "offset": 65},
        {"name": "4.bias", "shape": [3], "offset": 80},
    ]);
    assert_eq!(layout, want);
}

/// The README's ONNX section names every op the importer lowers.
#[test]
fn the_readme_lists_every_supported_op() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README");
    let start = readme.find("### Through ONNX").expect("the ONNX section");
    let end = readme[start..]
        .find("### Through a model file")
        .map_or(readme.len(), |e| start + e);
    let section = &readme[start..end];
    let missing: Vec<&str> = curvature::onnx::lower::SUPPORTED_OPS
        .iter()
        .copied()
        .filter(|op| !section.contains(&format!("`{op}`")))
        .collect();
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}

/// Data for mlp.onnx (x [5, 3], output [batch, 2]): x all 0.25 but for `x_at` (index,
/// value), and the targets `y` of shape `y_shape`.
fn mlp_data(dir: &Path, x_at: Option<(usize, f64)>, y_shape: &[usize], y: &[f64]) -> PathBuf {
    let mut x = vec![0.25f64; 15];
    if let Some((index, value)) = x_at {
        x[index] = value;
    }
    let bytes = |v: &[f64]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (x_bytes, y_bytes) = (bytes(&x), bytes(y));
    let views = [
        (
            "x".to_string(),
            TensorView::new(F64, vec![5, 3], &x_bytes).expect("x"),
        ),
        (
            "y".to_string(),
            TensorView::new(F64, y_shape.to_vec(), &y_bytes).expect("y"),
        ),
    ];
    let path = dir.join("values.safetensors");
    std::fs::write(
        &path,
        safetensors::tensor::serialize(views, None).expect("serialised"),
    )
    .expect("written");
    path
}

/// A data file's bad value: x's changed element, y's shape and values, the loss, the error.
type ValueCase<'a> = (Option<(usize, f64)>, Vec<usize>, Vec<f64>, &'a str, &'a str);

#[test]
fn data_values_the_loss_cannot_read_are_refused_naming_the_element() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = onnx_data("mlp.onnx");
    let labels = [0.0, 1.0, 1.0, 0.0, 1.0];
    let with_label = |index: usize, value: f64| {
        let mut y = labels.to_vec();
        y[index] = value;
        y
    };
    let targets = [0.5; 10];
    let cases: [ValueCase; 8] = [
        (
            Some((7, f64::NAN)),
            vec![5, 2],
            targets.to_vec(),
            "mse",
            "tensor 'x' element 7 is NaN; the data must be finite",
        ),
        (
            None,
            vec![5, 2],
            {
                let mut t = targets.to_vec();
                t[3] = f64::INFINITY;
                t
            },
            "mse",
            "tensor 'y' element 3 is inf; the data must be finite",
        ),
        (
            None,
            vec![5],
            with_label(4, 0.5),
            "cross_entropy",
            "target 'y' element 4 is 0.5, but --loss cross_entropy needs class labels",
        ),
        (
            None,
            vec![5],
            with_label(1, -1.0),
            "nll",
            "target 'y' element 1 is -1, but --loss nll needs class labels",
        ),
        (
            None,
            vec![5],
            with_label(2, 2.0),
            "cross_entropy",
            "element 2 is 2, but --loss cross_entropy needs a class label below the graph \
             output's 2 classes",
        ),
        (
            None,
            vec![5],
            with_label(0, 7.0),
            "nll",
            "element 0 is 7, but --loss nll needs a class label below",
        ),
        (
            None,
            vec![5, 2],
            {
                let mut t = targets.to_vec();
                t[9] = 1.5;
                t
            },
            "bce_with_logits",
            "target 'y' element 9 is 1.5, but --loss bce_with_logits needs targets in [0, 1]",
        ),
        (
            None,
            vec![5, 2],
            {
                let mut t = targets.to_vec();
                t[0] = 1e300;
                t
            },
            "mse",
            "tensor 'y' element 0 is 1e300, beyond f32's range (use --dtype f64)",
        ),
    ];
    for (x_at, y_shape, y, loss, expected) in cases {
        let data = mlp_data(dir.path(), x_at, &y_shape, &y);
        let dtype = if expected.contains("f32") {
            "f32"
        } else {
            "f64"
        };
        refused(
            &model,
            Some(&data),
            &["--loss", loss, "--dtype", dtype],
            expected,
        );
    }
    // The same files with the offending element corrected are accepted.
    let data = mlp_data(dir.path(), None, &[5], &labels);
    let (tensors, _) = analyze(&model, &data, "nll", &[]);
    assert!(tensors.contains_key("grad"));
}

#[test]
fn targets_that_do_not_fit_the_declared_output_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let cases: [(&str, Vec<usize>, &str, &str); 3] = [
        (
            "mlp.onnx",
            vec![5],
            "mse",
            "the targets 'y' have shape [5], but the graph declares its output 'out' as \
             [batch, 2] and --loss mse needs the output's shape",
        ),
        (
            "mlp.onnx",
            vec![5, 2, 1],
            "bce_with_logits",
            "--loss bce_with_logits needs the output's shape",
        ),
        (
            "mlp_fixed_batch.onnx",
            vec![5, 2],
            "cross_entropy",
            "the targets 'y' have shape [5, 2], but the graph declares its output 'out' as \
             [5, 2] and --loss cross_entropy needs one class label per row of the output",
        ),
    ];
    for (model, y_shape, loss, expected) in cases {
        let count: usize = y_shape.iter().product();
        let data = mlp_data(dir.path(), None, &y_shape, &labels[..count]);
        refused(&onnx_data(model), Some(&data), &["--loss", loss], expected);
    }
}

/// Data for embedding.onnx: ids `[5, 4]` (as floats) and targets `[5, 12]` of 0.5.
fn embedding_data(dir: &Path, ids: &[f64]) -> PathBuf {
    let bytes = |v: &[f64]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (id_bytes, y_bytes) = (bytes(ids), bytes(&[0.5; 60]));
    let views = [
        (
            "ids".to_string(),
            TensorView::new(F64, vec![5, 4], &id_bytes).expect("ids"),
        ),
        (
            "y".to_string(),
            TensorView::new(F64, vec![5, 12], &y_bytes).expect("y"),
        ),
    ];
    let path = dir.join("tokens.safetensors");
    std::fs::write(
        &path,
        safetensors::tensor::serialize(views, None).expect("serialised"),
    )
    .expect("written");
    path
}

#[test]
fn token_ids_index_the_table_and_bad_ids_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = onnx_data("embedding.onnx");
    let ids: Vec<f64> = (0..20).map(|k| f64::from((k * 3) % 7)).collect();
    // The loss in closed form: mean over the 60 outputs of (table[id][c] − 0.5)², the table
    // linspace(−1, 1, 21) rounded to f32 as the file stores it.
    let table = |r: usize, c: usize| f64::from((-1.0 + 0.1 * (3 * r + c) as f64) as f32);
    let expected = ids
        .iter()
        .flat_map(|&id| (0..3).map(move |c| (table(id as usize, c) - 0.5).powi(2)))
        .sum::<f64>()
        / 60.0;
    let (tensors, _) = analyze(&model, &embedding_data(dir.path(), &ids), "mse", &[]);
    let loss = tensors["loss"].1[0];
    assert!((loss - expected).abs() <= 1e-12, "{loss} vs {expected}");

    let mut fractional = ids.clone();
    fractional[9] = 2.5;
    refused(
        &model,
        Some(&embedding_data(dir.path(), &fractional)),
        &["--loss", "mse"],
        "tokens.safetensors: tensor 'ids' element 9 is 2.5, but the graph's input is I64",
    );
    let mut beyond = ids;
    beyond[19] = 7.0;
    let line = check_rejected(
        &model,
        dir.path(),
        &[
            "--data",
            embedding_data(dir.path(), &beyond).to_str().expect("UTF-8"),
            "--loss",
            "mse",
        ],
        "index 7 is out of range for axis 0 of length 7",
    );
    assert!(line.contains("embedding.onnx: "), "{line}");
}
