//! `curvature gemm`: argument errors are one clear line, and a run on the CPU and on CUDA (a
//! real GPU, else the emulated one) prints one JSON object of the schema
//! `benches/gemm_cublas.py` shares, with the shape, dtype, precision, device and kernels.

mod common;

use common::{assert_refused, curvature, run_bounded};
use curvature::gemm_bench::{run_gemm, GemmBenchConfig};
use curvature::tensor::{DType, Device, Precision};

fn refused(args: &[&str], expected: &str) {
    let mut all = vec!["gemm"];
    all.extend_from_slice(args);
    let line = assert_refused(&run_bounded(&mut curvature(&all)));
    assert!(line.contains(expected), "expected '{expected}' in: {line}");
}

#[test]
fn gemm_arguments_are_checked_cpu() {
    let shape = ["--m", "3", "--n", "4", "--k", "5", "--device", "cpu"];
    let with = |extra: &[&str]| -> Vec<String> {
        shape.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for (extra, expected) in [
        (&["--runs", "0"][..], "--runs"),
        (&["--runs", "10001"], "--runs"),
        (&["--batch", "0"], "--batch"),
        (&["--dtype", "f8"], "--dtype"),
        (&["--precision", "fp16"], "--precision"),
        (&["--precision", "tf32"], "--precision tf32"),
    ] {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, expected);
    }
    for bad in ["0", "-1", "2147483392", "x", "99999999999999999999999"] {
        let m = format!("--m={bad}");
        refused(&[&m, "--n", "4", "--k", "5"], "--m");
    }
    refused(&["--m", "3", "--n", "4"], "--k");
    // The library refuses what the command line cannot express.
    let config = GemmBenchConfig {
        device: Device::Cpu,
        dtype: DType::F32,
        precision: Precision::Ieee,
        m: 3,
        n: 4,
        k: 5,
        batch: 1,
        runs: 1,
    };
    for (bad, expected) in [
        (GemmBenchConfig { runs: 0, ..config }, "runs is 0"),
        (GemmBenchConfig { k: 0, ..config }, "at least 1"),
        (
            GemmBenchConfig {
                precision: Precision::Tf32,
                ..config
            },
            "not the configured tf32",
        ),
        (
            GemmBenchConfig {
                m: usize::MAX / 2,
                ..config
            },
            "exceeds",
        ),
    ] {
        let e = run_gemm(&bad).expect_err("refused").to_string();
        assert!(e.contains(expected), "expected '{expected}' in: {e}");
    }
}

/// Runs `curvature gemm ARGS --json` (on the emulated GPU when `emulated`) and returns its one
/// JSON object.
fn gemm_json(args: &[&str], emulated: bool) -> serde_json::Value {
    let mut all = vec!["gemm", "--json"];
    all.extend_from_slice(args);
    let mut command = curvature(&all);
    if emulated {
        command.env("CURVATURE_CUDA", "emulate");
    }
    let output = run_bounded(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    serde_json::from_str(&stdout).expect("valid JSON")
}

fn check_common(json: &serde_json::Value, (m, n, k, batch): (u64, u64, u64, u64)) {
    assert_eq!(json["bench"], "gemm");
    assert_eq!(json["impl"], "curvature");
    for (field, value) in [("m", m), ("n", n), ("k", k), ("batch", batch)] {
        assert_eq!(json[field].as_u64(), Some(value), "{field}: {json}");
    }
    let ms = json["ms"].as_f64().expect("ms");
    let min_ms = json["min_ms"].as_f64().expect("min_ms");
    assert!(ms > 0.0 && min_ms > 0.0 && min_ms <= ms, "{json}");
    // TFLOP/s is the cost model's 2·batch·m·n·k over the median time.
    let tflops = json["tflops"].as_f64().expect("tflops");
    let expected = 2.0 * (batch * m * n * k) as f64 / (ms / 1e3) / 1e12;
    assert!((tflops - expected).abs() <= 1e-9 * expected, "{json}");
}

#[test]
fn gemm_json_on_the_cpu_cpu() {
    let json = gemm_json(
        &[
            "--m", "7", "--n", "9", "--k", "33", "--batch", "2", "--dtype", "f64", "--device",
            "cpu", "--runs", "3",
        ],
        false,
    );
    check_common(&json, (7, 9, 33, 2));
    assert_eq!(json["dtype"], "f64");
    assert_eq!(json["precision"], "ieee");
    assert_eq!(json["device"], "cpu");
    assert_eq!(json["plan"], "cpu");
    assert_eq!(json["runs"].as_u64(), Some(3));
}

#[test]
fn gemm_json_on_cuda_names_its_kernels_cuda() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let emulated = device.is_emulated();
    // A tiny output with a long k (the seed workload's shape): split-K on the small tile.
    let json = gemm_json(
        &[
            "--m", "10", "--n", "10", "--k", "1000", "--device", "cuda", "--runs", "2",
        ],
        emulated,
    );
    check_common(&json, (10, 10, 1000, 1));
    assert_eq!(json["device"], "cuda:0");
    assert_eq!(
        (json["dtype"].as_str(), json["precision"].as_str()),
        (Some("f32"), Some("ieee"))
    );
    let plan = json["plan"].as_str().expect("plan");
    assert!(plan.starts_with("gemm_small_f32 ("), "{plan}");
    // TF32 on tensor cores names its own kernel.
    let json = gemm_json(
        &[
            "--m",
            "16",
            "--n",
            "8",
            "--k",
            "24",
            "--precision",
            "tf32",
            "--device",
            "cuda",
            "--runs",
            "1",
        ],
        emulated,
    );
    check_common(&json, (16, 8, 24, 1));
    assert_eq!(json["precision"], "tf32");
    let plan = json["plan"].as_str().expect("plan");
    assert!(plan.contains("tf32"), "{plan}");
}
