//! `curvature bench`'s arguments: `--runs` bounded, a truthful header, each workload once, the
//! large workload on a CPU only when asked for, and `CURVATURE_CUDA` checked.

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

#[test]
fn bench_header_counts_the_runs_and_each_workload_runs_once_cpu() {
    let output = run_bounded(&mut curvature(&[
        "bench",
        "--workloads",
        "seed,seed",
        "--runs",
        "2",
        "--device",
        "cpu",
        "--dtype",
        "f64",
    ]));
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("median of 2 runs"), "{stdout}");
    assert_eq!(lines.len(), 3, "header, column names, one row: {stdout}");
    assert!(lines[2].starts_with("seed "), "{stdout}");
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
