//! `curvature analyze` on bad model files: each gives one line on stderr naming the problem,
//! exit code 2, no panic, and no output file (not even a partial or temporary one).

mod common;

use std::process::Command;

use common::{check_rejected, listing, rejects, ModelFile};

#[test]
fn analyze_accepts_the_unspoiled_model_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("good.safetensors");
    std::fs::write(&model, ModelFile::golden().bytes()).expect("written");
    let status = Command::new(common::curvature_bin())
        .arg("analyze")
        .arg(&model)
        .args(["--device", "cpu"])
        .output()
        .expect("runs")
        .status;
    assert!(status.success(), "the rewritten golden model is accepted");
}

#[test]
fn analyze_rejects_missing_tensor_cpu() {
    let mut m = ModelFile::golden();
    m.tensors.retain(|t| t.0 != "1.weight");
    rejects(&m.bytes(), "missing tensor '1.weight'");
}

#[test]
fn analyze_rejects_missing_data_cpu() {
    let mut m = ModelFile::golden();
    m.tensors.retain(|t| t.0 != "y");
    rejects(&m.bytes(), "missing tensor 'y'");
}

#[test]
fn analyze_rejects_wrong_shape_cpu() {
    let mut m = ModelFile::golden();
    let bias = m.tensor("0.bias");
    bias.1 = vec![3, 2];
    rejects(&m.bytes(), "tensor '0.bias' has shape");
}

#[test]
fn analyze_rejects_wrong_data_shape_cpu() {
    let mut m = ModelFile::golden();
    let x = m.tensor("x");
    let n = x.1[0];
    x.1 = vec![n / 2, 8];
    rejects(&m.bytes(), "tensor 'x' has shape");
}

#[test]
fn analyze_rejects_unknown_activation_cpu() {
    let mut m = ModelFile::golden();
    m.metadata
        .insert("activations".into(), "[\"tanh\", \"relu\"]".into());
    rejects(&m.bytes(), "unknown activation 'relu'");
}

#[test]
fn analyze_rejects_unknown_final_activation_cpu() {
    let mut m = ModelFile::golden();
    m.metadata
        .insert("final_activation".into(), "softmax".into());
    rejects(&m.bytes(), "unknown activation 'softmax'");
}

#[test]
fn analyze_rejects_unknown_loss_cpu() {
    let mut m = ModelFile::golden();
    m.metadata.insert("loss".into(), "hinge".into());
    rejects(&m.bytes(), "unknown loss 'hinge'");
}

#[test]
fn analyze_rejects_malformed_widths_cpu() {
    let mut m = ModelFile::golden();
    m.metadata.insert("widths".into(), "[4, 6, 5".into());
    rejects(&m.bytes(), "metadata 'widths'");
}

#[test]
fn analyze_rejects_missing_metadata_cpu() {
    let mut m = ModelFile::golden();
    m.metadata.remove("loss");
    rejects(&m.bytes(), "metadata 'loss': missing");
}

#[test]
fn analyze_rejects_activation_count_mismatch_cpu() {
    let mut m = ModelFile::golden();
    m.metadata.insert("activations".into(), "[\"tanh\"]".into());
    rejects(&m.bytes(), "metadata 'activations'");
}

#[test]
fn analyze_rejects_truncated_file_cpu() {
    let bytes = ModelFile::golden().bytes();
    rejects(&bytes[..bytes.len() - 100], "not a valid safetensors file");
    rejects(&bytes[..5], "not a valid safetensors file");
}

#[test]
fn analyze_rejects_nan_in_weights_cpu() {
    let mut m = ModelFile::golden();
    m.tensor("1.weight").2[7] = f64::NAN;
    rejects(
        &m.bytes(),
        "tensor '1.weight' contains a non-finite value at index 7",
    );
}

#[test]
fn analyze_rejects_infinity_in_data_cpu() {
    let mut m = ModelFile::golden();
    m.tensor("x").2[0] = f64::INFINITY;
    rejects(
        &m.bytes(),
        "tensor 'x' contains a non-finite value at index 0",
    );
}

#[test]
fn analyze_rejects_missing_file_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_rejected(
        &dir.path().join("absent.safetensors"),
        dir.path(),
        &[],
        "cannot read",
    );
}

#[test]
fn analyze_leaves_no_partial_file_when_writing_fails_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("good.safetensors");
    std::fs::write(&model, ModelFile::golden().bytes()).expect("written");
    // The results go to an existing directory, which cannot be replaced by a file; the plot,
    // staged in the same run, must not appear either.
    let out = dir.path().join("taken");
    std::fs::create_dir(&out).expect("created");
    let plot = dir.path().join("spectrum.svg");
    let before = listing(dir.path());
    let output = Command::new(common::curvature_bin())
        .arg("analyze")
        .arg(&model)
        .args(["--device", "cpu", "--plot"])
        .arg(&plot)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert_eq!(listing(dir.path()), before);
    assert!(std::fs::read_dir(&out).expect("dir").next().is_none());
}

#[test]
fn analyze_usage_errors_exit_2() {
    let output = Command::new(common::curvature_bin())
        .args(["analyze", "model.safetensors", "--top-k", "0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn analyze_rejects_empty_data_cpu() {
    let mut m = ModelFile::golden();
    for name in ["x", "y"] {
        let t = m.tensor(name);
        t.1[0] = 0;
        t.2.clear();
    }
    rejects(&m.bytes(), "tensor 'x' has no samples");
}

#[test]
fn analyze_rejects_overflowing_loss_cpu() {
    let mut m = ModelFile::golden();
    for w in &mut m.tensor("2.weight").2 {
        *w *= 1e300;
    }
    rejects(&m.bytes(), "is not finite at these parameters");
}

#[test]
fn analyze_rejects_layers_beyond_the_widths_cpu() {
    let mut m = ModelFile::golden();
    m.tensors
        .push(("3.weight".into(), vec![3, 3], vec![0.5; 9]));
    m.tensors.push(("3.bias".into(), vec![3], vec![0.5; 3]));
    rejects(
        &m.bytes(),
        "tensor '3.bias' is a layer tensor, but metadata 'widths' describes 3 layers",
    );
}

#[test]
fn analyze_f32_reports_a_value_beyond_f32_as_overflow_cpu() {
    let mut m = ModelFile::golden();
    m.tensor("1.weight").2[4] = -1e300;
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("big.safetensors");
    std::fs::write(&model, m.bytes()).expect("written");
    check_rejected(
        &model,
        dir.path(),
        &["--dtype", "f32"],
        "tensor '1.weight' has the value -1e300 at index 4, which overflows f32",
    );
}

#[test]
fn analyze_echoes_metadata_escaped_and_cut_cpu() {
    let mut m = ModelFile::golden();
    m.metadata.insert("loss".into(), "L".repeat(50 << 20));
    rejects(&m.bytes(), &format!("unknown loss '{}…'", "L".repeat(77)));
    let mut m = ModelFile::golden();
    m.metadata
        .insert("final_activation".into(), "\x1b]0;owned\x07\r\n".into());
    rejects(
        &m.bytes(),
        "unknown activation '\\x1b]0;owned\\x07\\r\\n' (expected tanh or sigmoid)",
    );
}

#[test]
fn analyze_names_an_unreadable_model_file_once_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.safetensors");
    let line = check_rejected(&missing, dir.path(), &[], "cannot read");
    let shown = missing.display().to_string();
    assert_eq!(line.matches(&shown).count(), 1, "{line}");
    assert_eq!(
        line,
        format!("error: cannot read {shown}: No such file or directory (os error 2)\n")
    );
}
