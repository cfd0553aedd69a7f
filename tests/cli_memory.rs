//! `curvature analyze` plans its memory before it starts: a run whose planned peak exceeds the
//! memory available is refused with one `error:` line naming the step, what it needs, what is
//! available and what to change (exit 2, no output file), and a run that fits prints its plan.
//! `--memory-limit` fixes the available memory so the outcome does not depend on the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_refused as assert_one_error_line, curvature, run_bounded, ModelFile};

/// Writes an MLP of `widths` (tanh hidden layers, MSE) with `samples` samples in the golden
/// format.
fn write_model(path: &Path, widths: &[usize], samples: usize) {
    std::fs::write(path, ModelFile::random_tanh_mlp(widths, samples).bytes()).expect("written");
}

fn analyze(model: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let out = model.with_file_name("results.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(model)
        .args(["--device", "cpu", "--out"])
        .arg(&out)
        .args(extra);
    (run_bounded(&mut command), out)
}

/// Exit 2, one line `error: not enough memory: …` containing every piece of `expected`, no
/// summary and no results file.
fn assert_refused(output: &Output, out: &Path, expected: &[&str]) {
    let stderr = assert_one_error_line(output);
    assert!(stderr.starts_with("error: not enough memory: "), "{stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "expected '{piece}' in: {stderr}");
    }
    assert!(!out.exists(), "no results file");
}

#[test]
fn a_primal_pass_too_large_for_memory_is_refused_before_loading_cpu() {
    // 24 MB on disk, but the primal pass keeps 100 000 × 1 000 000 activations per array:
    // 3.2 TB, once an abort ("memory allocation of 800000000000 bytes failed").
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("wide.safetensors");
    write_model(&model, &[1, 1_000_000, 1], 100_000);
    let started = std::time::Instant::now();
    let (output, out) = analyze(&model, &["--memory-limit", "16"]);
    assert_refused(
        &output,
        &out,
        &[
            "the primal pass",
            "TiB",
            "16.0 GiB is available (--memory-limit)",
            "fewer samples",
        ],
    );
    // Refused from the header: the model's 24 MB are never converted.
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn a_full_hessian_too_large_for_memory_is_refused_with_its_size_cpu() {
    // P = 102 001 in a 0.8 MB file: the dense Hessian alone is P² · 8 B = 83 GB.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("full.safetensors");
    write_model(&model, &[100, 1000, 1], 10);
    let (output, out) = analyze(&model, &["--full", "--memory-limit", "16"]);
    // P² · 8 B for the Hessian in f64 plus its host copy: 2 · 77.5 GiB at least.
    assert_refused(&output, &out, &["the dense Hessian", "GiB", "drop --full"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let needs: f64 = stderr
        .split("needs ")
        .nth(1)
        .and_then(|rest| rest.split(" GiB").next())
        .and_then(|n| n.parse().ok())
        .expect("a size in GiB");
    let hessian = (102_001f64 * 102_001.0 * 8.0) / (1u64 << 30) as f64;
    assert!(
        needs >= 2.0 * hessian,
        "needs {needs} GiB, the Hessian is {hessian} GiB"
    );
    // Without --full the plan has no dense step: the estimators' memory is O(probes · P),
    // so under a limit of 128 MiB it is an estimator's step that does not fit, and it needs
    // far less than a GiB.
    let (output, out) = analyze(&model, &["--memory-limit", "0.125"]);
    assert_refused(&output, &out, &["MiB but 128.0 MiB is available"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("dense"), "{stderr}");
}

#[test]
fn a_run_that_fits_prints_its_plan_and_a_tight_limit_refuses_it_cpu() {
    let model = common::data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("model.safetensors");
    std::fs::copy(&model, &copy).expect("copied");
    let (output, out) = analyze(&copy, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("memory"))
        .expect("a memory line");
    assert!(
        line.contains("planned peak") && line.contains("available"),
        "{line}"
    );
    std::fs::remove_file(&out).expect("removed");
    let (output, out) = analyze(&copy, &["--memory-limit", "0.001"]);
    assert_refused(&output, &out, &["1.0 MiB is available (--memory-limit)"]);
}

#[test]
fn sigma_outside_the_accepted_range_is_a_usage_error() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/seed_linear_sigmoid_sumsq.safetensors");
    for sigma in ["1e-320", "1e308", "inf", "NaN", "0", "-1"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join("model.safetensors");
        std::fs::copy(&model, &copy).expect("copied");
        let (output, out) = analyze(&copy, &[&format!("--sigma={sigma}")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "σ = {sigma}: {stderr}");
        assert!(
            stderr.contains("expected a number in [1e-300, 1e300]"),
            "σ = {sigma}: {stderr}"
        );
        assert!(!out.exists());
    }
    // The ends of the range give a finite density.
    for sigma in ["1e-300", "1e300"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join("model.safetensors");
        std::fs::copy(&model, &copy).expect("copied");
        let (output, out) = analyze(&copy, &["--sigma", sigma]);
        assert!(output.status.success(), "σ = {sigma}");
        let bytes = std::fs::read(&out).expect("results");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("parses");
        for name in ["spectral_density", "spectral_density_grid"] {
            let view = file.tensor(name).expect("present");
            assert!(
                view.data()
                    .chunks_exact(8)
                    .all(|c| f64::from_le_bytes(c.try_into().expect("8")).is_finite()),
                "σ = {sigma}: {name} is not finite"
            );
        }
    }
}
