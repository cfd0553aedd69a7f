//! `curvature analyze` over ranks: under `mpirun -np 2` (the MPI back end) and with
//! `--ranks N` (threads), every tensor of the results file equals the single-process run's to
//! 1e-12 times the larger of 1 and the tensor's largest magnitude (the ranks sum their shards
//! in another order than one pass over all samples, so results agree to rounding, not bit for
//! bit, and residuals and error bars of order 1e-13 are rounding themselves), with
//! uneven splits (13 samples over 2 and 3 ranks); only rank 0 prints; a rank whose shard fails
//! ends the run with exit status 2 and its rank and error.
//!
//! The `mpirun` tests need Open MPI or MPICH; without `mpirun` they print a skip reason, unless
//! `CURVATURE_REQUIRE_MPI=1` (CI sets it), when they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{curvature_bin, read_f64_file, ModelFile};

/// Relative agreement of every tensor with the single-process run.
const TOL: f64 = 1e-12;

/// How long one run (or one MPI job) may take.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Whether `mpirun` runs here; with `CURVATURE_REQUIRE_MPI=1` its absence fails `test`.
fn mpirun_or_skip(test: &str) -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("CURVATURE_REQUIRE_MPI").is_ok_and(|v| v == "1") {
        panic!("{test}: CURVATURE_REQUIRE_MPI=1 but mpirun cannot be run");
    }
    eprintln!("skipping {test}: mpirun not found (install openmpi-bin and libopenmpi-dev)");
    false
}

/// Runs `command`, killing it (and failing) after [`TIME_LIMIT`].
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let start = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            panic!("{command:?} ran past {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `curvature analyze MODEL --out OUT ARGS…`, directly or under `mpirun -np RANKS`.
fn analyze(model: &Path, out: &Path, args: &[&str], mpi_ranks: Option<usize>) -> Output {
    let mut command = match mpi_ranks {
        Some(ranks) => {
            let mut c = Command::new("mpirun");
            // Open MPI keeps its session files under one directory per host and user, which
            // two mpiruns starting at once race to create: each run gets its own, in `out`'s
            // directory (a test's own temporary directory).
            let session = out.with_extension("mpi-session");
            std::fs::create_dir_all(&session).expect("a session directory for mpirun");
            c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
                .arg(ranks.to_string())
                .arg(curvature_bin())
                .env("OMPI_MCA_orte_tmpdir_base", &session)
                .env("PRTE_MCA_prte_tmpdir_base", &session);
            c
        }
        None => Command::new(curvature_bin()),
    };
    command
        .arg("analyze")
        .arg(model)
        .arg("--out")
        .arg(out)
        .args(args);
    run(&mut command)
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed:\n{stdout}\n{stderr}");
    stdout
}

/// A tanh MLP 4-16-16-2 (P = 386) with 13 samples, written into `dir`.
fn model_in(dir: &Path) -> PathBuf {
    let path = dir.join("mlp.safetensors");
    std::fs::write(
        &path,
        ModelFile::random_tanh_mlp(&[4, 16, 16, 2], 13).bytes(),
    )
    .unwrap();
    path
}

/// Every tensor and metadata entry of `ranks` equals `single`'s: tensors to [`TOL`] times the
/// larger of 1 and the tensor's largest magnitude, metadata exactly (σ, printed in full, to [`TOL`]).
fn assert_same_results(single: &Path, ranks: &Path) {
    let (a, meta_a) = read_f64_file(single);
    let (b, meta_b) = read_f64_file(ranks);
    let names = |t: &common::F64Tensors| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    for (name, (shape, values)) in &a {
        let (other_shape, other) = &b[name];
        assert_eq!(shape, other_shape, "{name}");
        let scale = values.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in values.iter().zip(other).enumerate() {
            assert!(
                (x - y).abs() <= TOL * scale,
                "{name}[{i}]: one process {x}, ranks {y} (scale {scale})"
            );
        }
    }
    for (key, value) in &meta_a {
        let other = &meta_b[key];
        if key == "spectral_density_sigma" {
            let (x, y): (f64, f64) = (value.parse().unwrap(), other.parse().unwrap());
            assert!((x - y).abs() <= TOL * x.abs(), "{key}: {x} vs {y}");
        } else {
            assert_eq!(value, other, "metadata {key}");
        }
    }
    assert_eq!(meta_a.len(), meta_b.len());
}

#[test]
fn mpirun_two_ranks_give_the_single_process_results() {
    if !mpirun_or_skip("mpirun_two_ranks_give_the_single_process_results") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    let (single, mpi) = (dir.path().join("single.st"), dir.path().join("mpi.st"));
    let one = succeeded(&analyze(&model, &single, &[], None));
    let two = succeeded(&analyze(&model, &mpi, &[], Some(2)));
    assert_same_results(&single, &mpi);
    // Only rank 0 printed: one report, as long as the single process's.
    assert_eq!(two.matches("curvature analyze:").count(), 1, "{two}");
    assert_eq!(one.lines().count(), two.lines().count(), "{one}\n{two}");
}

#[test]
fn three_in_process_ranks_give_the_single_process_results() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    for extra in [
        &[][..],
        &["--curvature", "ggn", "--per-layer", "--probes", "4"][..],
    ] {
        let (single, ranks) = (dir.path().join("single.st"), dir.path().join("ranks.st"));
        let one = succeeded(&analyze(&model, &single, extra, None));
        let mut args = extra.to_vec();
        args.extend(["--ranks", "3"]);
        let three = succeeded(&analyze(&model, &ranks, &args, None));
        assert_same_results(&single, &ranks);
        assert_eq!(three.matches("curvature analyze:").count(), 1, "{three}");
        assert_eq!(one.lines().count(), three.lines().count(), "{one}\n{three}");
    }
}

/// The model with the last sample's target so large that its squared error overflows: only the
/// shard holding sample 12 (rank 2 of 3: samples 9..13; rank 1 of 2: samples 7..13) fails.
fn overflowing_model_in(dir: &Path) -> PathBuf {
    let mut file = ModelFile::random_tanh_mlp(&[4, 16, 16, 2], 13);
    file.tensor("y").2[25] = 1e200;
    let path = dir.join("overflow.safetensors");
    std::fs::write(&path, file.bytes()).unwrap();
    path
}

#[test]
fn a_failing_in_process_rank_ends_the_run_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = overflowing_model_in(dir.path());
    let out = analyze(&model, &dir.path().join("out.st"), &["--ranks", "3"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: rank 2: ")
            && stderr.contains("the loss (inf) or its gradient over samples 9..13 is not finite"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join("out.st").exists());
}

#[test]
fn a_failing_mpi_rank_ends_the_job_with_its_error() {
    if !mpirun_or_skip("a_failing_mpi_rank_ends_the_job_with_its_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = overflowing_model_in(dir.path());
    let out = analyze(&model, &dir.path().join("out.st"), &[], Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: rank 1: ")
            && stderr.contains("the loss (inf) or its gradient over samples 7..13 is not finite"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.st").exists());
}

/// A refused run: its extra arguments, its environment and the error it must name.
type Refusal<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn ranks_that_cannot_split_the_run_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    let out_path = dir.path().join("out.st");
    let cases: [Refusal; 3] = [
        (
            &["--ranks", "14"],
            &[],
            "13 samples cannot be split over 14 ranks",
        ),
        (
            &["--ranks", "2", "--curvature", "fisher"],
            &[],
            "--curvature fisher draws its targets in one sequence",
        ),
        (
            &["--ranks", "2"],
            &[("OMPI_COMM_WORLD_SIZE", "2")],
            "under mpirun the MPI processes are the ranks",
        ),
    ];
    for (args, env, expected) in cases {
        let mut command = Command::new(curvature_bin());
        command
            .arg("analyze")
            .arg(&model)
            .arg("--out")
            .arg(&out_path)
            .args(args);
        command.envs(env.iter().copied());
        let out = run(&mut command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out_path.exists());
    }
}

/// A file of tests/data/onnx (graphs whose batch axis is the symbolic dim `batch`, 5 samples).
fn onnx_data(name: &str) -> PathBuf {
    common::data_dir().join("onnx").join(name)
}

/// `--data tests/data/onnx/<data> --loss mse` and `extra`.
fn onnx_args<'a>(data: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--data",
        data.to_str().expect("a UTF-8 path"),
        "--loss",
        "mse",
    ];
    args.extend(extra);
    args
}

#[test]
fn onnx_graphs_over_ranks_give_the_single_process_results() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "two_inputs.onnx",
            "two_inputs_mse.safetensors",
            &["--ranks", "2"],
        ),
        (
            "two_inputs.onnx",
            "two_inputs_mse.safetensors",
            &["--ranks", "5"],
        ),
        (
            "mlp.onnx",
            "mlp_mse.safetensors",
            &["--ranks", "3", "--curvature", "ggn", "--per-layer"],
        ),
    ];
    for (model, data, ranks) in cases {
        let (model, data) = (onnx_data(model), onnx_data(data));
        let curvature: &[&str] = if ranks.contains(&"ggn") {
            &["--curvature", "ggn", "--per-layer"]
        } else {
            &[]
        };
        let (single, split) = (dir.path().join("single.st"), dir.path().join("split.st"));
        succeeded(&analyze(
            &model,
            &single,
            &onnx_args(&data, curvature),
            None,
        ));
        succeeded(&analyze(&model, &split, &onnx_args(&data, ranks), None));
        assert_same_results(&single, &split);
    }
}

#[test]
fn mpirun_runs_an_onnx_graph_of_two_inputs() {
    if !mpirun_or_skip("mpirun_runs_an_onnx_graph_of_two_inputs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = (
        onnx_data("two_inputs.onnx"),
        onnx_data("two_inputs_mse.safetensors"),
    );
    let (single, mpi) = (dir.path().join("single.st"), dir.path().join("mpi.st"));
    succeeded(&analyze(&model, &single, &onnx_args(&data, &[]), None));
    succeeded(&analyze(&model, &mpi, &onnx_args(&data, &[]), Some(3)));
    assert_same_results(&single, &mpi);
}

#[test]
fn one_rank_draws_the_fisher_targets_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    let (single, ranks) = (dir.path().join("single.st"), dir.path().join("ranks.st"));
    let fisher = ["--curvature", "fisher", "--probes", "4"];
    succeeded(&analyze(&model, &single, &fisher, None));
    let mut args = fisher.to_vec();
    args.extend(["--ranks", "1"]);
    succeeded(&analyze(&model, &ranks, &args, None));
    assert_same_results(&single, &ranks);
}

/// The lines of standard error that report an error.
fn error_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_error_every_rank_would_find_is_reported_once_without_a_rank() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.st");
    let data = onnx_data("mlp_mse.safetensors");
    let fixed = onnx_data("mlp_fixed_batch.onnx");
    let model = model_in(dir.path());
    let cases: [(&Path, Vec<&str>, &str); 3] = [
        (
            &fixed,
            onnx_args(&data, &["--ranks", "2"]),
            "the graph declares input 'x' as [5, 3], a fixed batch of 5 samples, which the \
             shards of 2 ranks cannot take",
        ),
        (
            &model,
            vec!["--ranks", "64"],
            "13 samples cannot be split over 64 ranks",
        ),
        (
            &model,
            vec!["--ranks", "64", "--curvature", "fisher"],
            "--curvature fisher draws its targets in one sequence",
        ),
    ];
    for (model, args, expected) in cases {
        let output = analyze(model, &out, &args, None);
        let lines = error_lines(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(expected), "{args:?}: {lines:?}");
        assert!(!lines[0].contains("rank 1"), "{args:?}: {lines:?}");
        assert!(!out.exists());
    }
    // One rank takes the fixed batch whole.
    succeeded(&analyze(
        &fixed,
        &out,
        &onnx_args(&data, &["--ranks", "1"]),
        None,
    ));
}

#[test]
fn mpirun_reports_an_error_every_rank_finds_once() {
    if !mpirun_or_skip("mpirun_reports_an_error_every_rank_finds_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.st");
    let data = onnx_data("mlp_mse.safetensors");
    let output = analyze(
        &onnx_data("mlp_fixed_batch.onnx"),
        &out,
        &onnx_args(&data, &[]),
        Some(3),
    );
    let lines = error_lines(&output);
    assert_eq!(output.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("a fixed batch of 5 samples, which the shards of 3 ranks cannot take"),
        "{lines:?}"
    );
    assert!(!out.exists());
}

/// The commands of the README's "Scale out" section, continuation lines joined, comments
/// dropped.
fn scale_out_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README");
    let section = readme
        .split("\n### Scale out\n")
        .nth(1)
        .expect("a Scale out section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("its sh block");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let (text, continued) = match line.trim().strip_suffix('\\') {
            Some(text) => (text, true),
            None => (line.trim(), false),
        };
        current.push_str(text);
        current.push(' ');
        if !continued {
            commands.push(current.trim().to_string());
            current.clear();
        }
    }
    commands
}

#[test]
fn the_readme_scale_out_commands_run() {
    let commands = scale_out_commands();
    assert!(commands.len() >= 4, "{commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.safetensors");
    let has_mpirun = mpirun_or_skip("the_readme_scale_out_commands_run (its mpirun command)");
    for command in &commands {
        let words: Vec<String> = command
            .split_whitespace()
            .map(|w| match w {
                "results.safetensors" => results.display().to_string(),
                "curvature" => curvature_bin().display().to_string(),
                other => other.to_string(),
            })
            .collect();
        let mut process = if words[0] == "mpirun" {
            if !has_mpirun {
                continue;
            }
            let mut c = Command::new("mpirun");
            c.args(["--allow-run-as-root", "--oversubscribe"]);
            c.args(&words[1..]);
            c
        } else {
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]);
            c
        };
        process.current_dir(env!("CARGO_MANIFEST_DIR"));
        succeeded(&run(&mut process));
        let _ = std::fs::remove_file(&results);
    }
}

#[test]
fn mpirun_reports_a_bad_destination_once() {
    if !mpirun_or_skip("mpirun_reports_a_bad_destination_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    // --out names a folder, which is never replaced.
    let output = analyze(&model, dir.path(), &[], Some(3));
    let lines = error_lines(&output);
    assert_eq!(output.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("it is a directory"), "{lines:?}");
}

#[test]
fn mpirun_reports_a_missing_mpi_library_once() {
    if !mpirun_or_skip("mpirun_reports_a_missing_mpi_library_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = model_in(dir.path());
    let mut command = Command::new("mpirun");
    command
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "3", "-x"])
        .arg("CURVATURE_MPI_LIB=/nonexistent/libmpi.so")
        .arg(curvature_bin())
        .arg("analyze")
        .arg(&model);
    let output = run(&mut command);
    let lines = error_lines(&output);
    assert_eq!(output.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("/nonexistent/libmpi.so"), "{lines:?}");
}

#[test]
fn an_error_every_rank_meets_when_loading_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = ModelFile::random_tanh_mlp(&[4, 16, 16, 2], 13);
    file.tensor("x").2[5] = f64::NAN;
    let model = dir.path().join("nan.safetensors");
    std::fs::write(&model, file.bytes()).unwrap();
    let out = dir.path().join("out.st");
    let mut runs = vec![analyze(&model, &out, &["--ranks", "3"], None)];
    if mpirun_or_skip("an_error_every_rank_meets_when_loading_is_reported_once (mpirun)") {
        runs.push(analyze(&model, &out, &[], Some(3)));
    }
    for output in runs {
        let lines = error_lines(&output);
        assert_eq!(output.status.code(), Some(2), "{lines:?}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("tensor 'x' contains a non-finite value at index 5"),
            "{lines:?}"
        );
        assert!(!lines[0].contains("rank "), "{lines:?}");
        assert!(!out.exists());
    }
}
