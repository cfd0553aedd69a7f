//! `curvature bench --ranks R`: the split batch measured against one rank, as a table and as
//! JSON, and its bounds.

mod common;

use common::{assert_refused, curvature, run_bounded};
use curvature::bench::BenchConfig;
use curvature::bench_ranks::run_workload_ranks;
use curvature::tensor::{DType, Device};
use curvature::workloads;

fn bench_stdout(args: &[&str]) -> String {
    let mut all = vec![
        "bench",
        "--device",
        "cpu",
        "--dtype",
        "f64",
        "--workloads",
        "seed",
    ];
    all.extend_from_slice(args);
    let output = run_bounded(&mut curvature(&all));
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn ranks_json_reports_both_times_the_speedup_and_the_efficiency_cpu() {
    let stdout = bench_stdout(&["--ranks", "2", "--runs", "1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["workload"], "seed");
    assert_eq!(json["backend"], "in-process");
    assert_eq!(json["ranks"], 2);
    assert_eq!(json["samples"], 1000);
    let one = json["hvp_batch_ms_one_rank"]
        .as_f64()
        .expect("one-rank time");
    let two = json["hvp_batch_ms"].as_f64().expect("two-rank time");
    assert!(one > 0.0 && two > 0.0, "{json}");
    let speedup = json["speedup"].as_f64().expect("speedup");
    assert!((speedup - one / two).abs() <= 1e-12 * speedup, "{json}");
    let efficiency = json["efficiency"].as_f64().expect("efficiency");
    assert!(
        (efficiency - speedup / 2.0).abs() <= 1e-12 * efficiency,
        "{json}"
    );
    let hvp_per_s = json["hvp_per_s"].as_f64().expect("HVP/s");
    assert!(
        (hvp_per_s - 141.0 / (two / 1e3)).abs() <= 1e-9 * hvp_per_s,
        "{json}"
    );
}

#[test]
fn ranks_table_has_one_row_and_explains_its_columns_cpu() {
    let stdout = bench_stdout(&["--ranks", "3", "--runs", "1"]);
    let header = stdout
        .lines()
        .find(|l| l.starts_with("workload"))
        .expect("a header");
    for column in ["ranks", "1 rank ms", "R ranks ms", "speedup", "efficiency"] {
        assert!(header.contains(column), "{header}");
    }
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("seed ")).collect();
    assert_eq!(rows.len(), 1, "{stdout}");
    let fields: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(&fields[2..5], ["141", "141", "3"], "{stdout}");
    for legend in ["1 rank ms / R ranks ms:", "speedup:", "efficiency:"] {
        assert!(stdout.contains(legend), "{stdout}");
    }
}

#[test]
fn ranks_out_of_range_are_refused_cpu() {
    for ranks in ["0", "1", "257", "-2"] {
        let arg = format!("--ranks={ranks}");
        let line = assert_refused(&run_bounded(&mut curvature(&[
            "bench", "--device", "cpu", &arg,
        ])));
        assert!(line.contains("--ranks"), "{line}");
    }
    let seed = workloads::by_name("seed").expect("seed");
    let config = |runs| BenchConfig {
        device: Device::Cpu,
        dtype: DType::F64,
        workloads: vec![],
        runs,
    };
    let e = run_workload_ranks(&seed, &config(0), 2).expect_err("0 runs");
    assert_eq!(
        e.to_string(),
        "run_workload_ranks on rank 0: runs is 0, expected 1 to 10000"
    );
    let e = run_workload_ranks(&seed, &config(1), 1).expect_err("1 rank");
    assert_eq!(
        e.to_string(),
        "run_workload_ranks on rank 0: ranks is 1, expected 2 to 256 for the seed workload's 1000 samples"
    );
}

#[test]
fn bench_under_an_mpi_launcher_is_refused_by_rank_0_alone() {
    let launched = |rank: &str| {
        let mut command = curvature(&["bench", "--device", "cpu", "--ranks", "2"]);
        command.envs([
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_RANK", rank),
        ]);
        run_bounded(&mut command)
    };
    let line = assert_refused(&launched("0"));
    assert!(
        line.contains("under mpirun every process would run the whole benchmark"),
        "{line}"
    );
    // The other ranks leave with status 0 and no output: rank 0's status 2 is the job's, and
    // a non-zero status would let the launcher end rank 0 before it prints.
    let other = launched("1");
    assert_eq!(other.status.code(), Some(0));
    assert!(
        other.stdout.is_empty() && other.stderr.is_empty(),
        "{other:?}"
    );
}
