//! The GEMM side by side of `scripts/gpu_check.sh` without a GPU: the script parses, the
//! table formatter passes its self-test, and `gpu_check.sh gemm` on a made-up bundle (a
//! stand-in `curvature` and `gemm_cublas.py` with fixed times, `tests/fixtures/gpu_check/`)
//! writes every case, ours with and without tuning, beside torch's, with the ratios and the
//! SGEMM targets the fixed times imply.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn succeeds(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?}: {stderr}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn gpu_check_script_parses_and_its_gemm_table_formats() {
    succeeds(
        Command::new("bash")
            .arg("-n")
            .arg(root().join("scripts/gpu_check.sh")),
    );
    let out = succeeds(
        Command::new("python3")
            .arg(root().join("scripts/gemm_table.py"))
            .arg("--self-test"),
    );
    assert_eq!(out, "gemm_table.py self-test: ok\n");
}

#[test]
fn gpu_check_gemm_sets_ours_beside_torch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).expect("bundle dir");
    for (from, name) in [
        ("tests/fixtures/gpu_check/curvature", "curvature"),
        ("tests/fixtures/gpu_check/gemm_cublas.py", "gemm_cublas.py"),
        ("scripts/gemm_table.py", "gemm_table.py"),
    ] {
        std::fs::copy(root().join(from), bundle.join(name)).expect("copied");
    }
    let out = dir.path().join("out");
    let stdout = succeeds(
        Command::new("bash")
            .arg(root().join("scripts/gpu_check.sh"))
            .arg("gemm")
            .env("CURVATURE_GPU_BUNDLE", &bundle)
            .env("OUT", &out),
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert_eq!(stdout, summary);
    let rows: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload"))
        .collect();
    // 16 cases, each untuned and tuned; every one matched with torch.
    assert_eq!(rows.len(), 32, "{summary}");
    let ratio = |row: &str| row.split(" | ").nth(9).map(str::to_string);
    for row in &rows {
        let expected = match () {
            _ if row.contains("| tf32 |") => "0.50×",
            _ if row.contains("| tf32x3 |") => "1.08×",
            _ => "0.90×",
        };
        assert_eq!(ratio(row).as_deref(), Some(expected), "{row}");
    }
    for (workload, shape) in [
        ("square", "4096×4096×4096"),
        ("seed", "10×10×1000 ×141"),
        ("mid", "256×256×65536"),
        ("large", "16384×4096×4096"),
    ] {
        let prefix = format!("| {workload} | {shape} | f32 | ieee | ");
        let tuned: Vec<bool> = rows
            .iter()
            .filter(|r| r.starts_with(&prefix))
            .map(|r| r.contains("| ieee | yes |"))
            .collect();
        assert_eq!(tuned, [false, true], "{prefix}: {summary}");
    }
    for dtype in ["f16", "bf16"] {
        assert!(summary.contains(&format!(
            "| square | 4096×4096×4096 | {dtype} | ieee | no |"
        )));
    }
    for target in [
        "- target SGEMM 4096³ ieee ≥ 0.85× cuBLAS fp32: 0.90× — met",
        "- target SGEMM 4096³ tf32 ≥ 0.6× cuBLAS TF32: 0.50× — MISSED",
        "- target tf32x3 4096³ faster than our ieee: 1.20× — met",
    ] {
        assert!(summary.contains(target), "{target}: {summary}");
    }
}
