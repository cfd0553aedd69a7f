//! `curvature bench`'s arguments and output: `--runs` bounded, a header naming each workload
//! and its runs, a legend of the columns, each workload once, the large workload on a CPU only
//! when asked for, and `CURVATURE_CUDA` checked.

mod common;

use common::{assert_refused, curvature, data, run_bounded};
use curvature::bench::{run_workload, BenchConfig};
use curvature::tensor::{DType, Device};
use curvature::workloads;

fn refused(args: &[&str], expected: &str) {
    let line = assert_refused(&run_bounded(&mut curvature(args)));
    assert!(line.contains(expected), "expected '{expected}' in: {line}");
}

#[test]
fn bench_runs_out_of_range_are_refused_cpu() {
    for runs in ["0", "10001", "1000000000000", "18446744073709551615", "-1"] {
        let arg = format!("--runs={runs}");
        refused(&["bench", &arg, "--device", "cpu"], "--runs");
    }
    let config = BenchConfig {
        device: Device::Cpu,
        dtype: DType::F64,
        workloads: vec![],
        runs: 0,
    };
    let seed = workloads::by_name("seed").expect("seed");
    let e = run_workload(&seed, &config).expect_err("0 runs is an error");
    assert_eq!(
        e.to_string(),
        "run_workload: runs is 0, expected 1 to 10000"
    );
}

/// The standard output of `curvature bench ARGS` on the CPU in f64, which must succeed.
fn bench_stdout(args: &[&str]) -> String {
    let mut all = vec!["bench", "--device", "cpu", "--dtype", "f64"];
    all.extend_from_slice(args);
    let output = run_bounded(&mut curvature(&all));
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn bench_header_counts_the_runs_and_each_workload_runs_once_cpu() {
    let stdout = bench_stdout(&["--workloads", "seed,seed", "--runs", "2"]);
    let lines: Vec<&str> = stdout.lines().collect();
    let described: Vec<&&str> = lines.iter().filter(|l| l.starts_with("  seed:")).collect();
    assert_eq!(described.len(), 1, "one line describes seed: {stdout}");
    assert!(
        described[0].contains(
            "MLP 1-10-10-1 (tanh), 1000 samples, mse loss; P = 141 parameters, K = 141 directions"
        ),
        "{stdout}"
    );
    assert!(described[0].ends_with("median of 2 runs"), "{stdout}");
    let rows = lines.iter().filter(|l| l.starts_with("seed ")).count();
    assert_eq!(rows, 1, "one row: {stdout}");
    assert!(!stdout.contains("mid"), "{stdout}");
    // The columns are explained under the table.
    for column in [
        "K HVPs ms:",
        "+ primal ms:",
        "1 HVP ms:",
        "HVP/s:",
        "GFLOP/s:",
    ] {
        assert!(stdout.contains(column), "no legend for {column}: {stdout}");
    }
}

#[test]
fn bench_times_small_workloads_ten_times_by_default_and_json_is_only_json_cpu() {
    let stdout = bench_stdout(&["--workloads", "seed"]);
    assert!(stdout.contains("median of 10 runs"), "{stdout}");
    let seed = workloads::by_name("seed").expect("seed");
    let mid = workloads::by_name("mid").expect("mid");
    assert_eq!((seed.default_runs(), mid.default_runs()), (10, 3));
    let stdout = bench_stdout(&["--workloads", "seed", "--runs", "1", "--json"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["workload"], "seed", "{stdout}");
}

#[test]
fn bench_rejects_unknown_workloads_and_the_large_one_on_cpu_cpu() {
    refused(
        &["bench", "--workloads", "seed,huge", "--device", "cpu"],
        "unknown workload 'huge' (expected seed, mid or large)",
    );
    refused(
        &["bench", "--workloads", "large", "--device", "cpu"],
        "the large workload (P = 41956352, 8.2 TFLOP per batch of 8 HVPs) takes minutes per measurement on a CPU; pass --allow-large",
    );
}

#[test]
fn unknown_curvature_cuda_values_are_rejected_cpu() {
    let model = data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let model = model.to_str().expect("utf-8 path");
    for value in ["1", "real", "EMULATE", "emulate\n"] {
        for args in [
            &["bench", "--workloads", "seed", "--runs", "1"][..],
            &["analyze", model],
            &["analyze", model, "--device", "cpu"],
        ] {
            let mut command = curvature(args);
            command.env("CURVATURE_CUDA", value);
            let line = assert_refused(&run_bounded(&mut command));
            assert!(
                line.contains("is not recognised: set it to `emulate`"),
                "{line}"
            );
            assert!(line.contains(&format!("{value:?}")), "{line}");
        }
    }
}

/// 64-bit FNV-1a over every file of `kernels/` (relative path, NUL, length, contents, in path
/// order): the fingerprint `build.rs` is documented to compute, recomputed from the sources.
fn kernels_fingerprint() -> String {
    fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("kernels/ is listed") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                collect(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("kernels"), &mut files);
    let mut relative: Vec<String> = files
        .iter()
        .map(|f| {
            let r = f.strip_prefix(root).expect("below the package root");
            r.to_string_lossy().replace('\\', "/")
        })
        .collect();
    relative.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut write = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for name in &relative {
        let contents = std::fs::read(root.join(name)).expect("a kernel source is read");
        write(name.as_bytes());
        write(&[0]);
        write(&(contents.len() as u64).to_le_bytes());
        write(&contents);
    }
    format!("{hash:016x}")
}

#[test]
fn version_and_bench_json_name_the_kernel_sources_cpu() {
    let fingerprint = kernels_fingerprint();
    let output = run_bounded(&mut curvature(&["--version"]));
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(
        stdout.trim(),
        format!(
            "curvature {} (kernels {fingerprint})",
            env!("CARGO_PKG_VERSION")
        )
    );
    let output = run_bounded(&mut curvature(&[
        "bench",
        "--workloads",
        "seed",
        "--runs",
        "1",
        "--device",
        "cpu",
        "--json",
    ]));
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let line: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a line")).expect("a JSON line");
    assert_eq!(line["kernels"], fingerprint.as_str(), "{stdout}");
}
