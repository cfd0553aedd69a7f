//! `curvature analyze` and its output files: destinations refused before any work (the input
//! itself, the other output, links and special files), permissions kept, the same results
//! giving the same bytes, and standard output that is closed or full.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{assert_refused, curvature, data, listing, run_bounded, ModelFile};

const GOLDEN: &str = "mlp_4_6_5_3_tanh_sigmoid_mse";

/// A fresh directory holding a copy of the golden model as `model.safetensors`.
fn with_model() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("model.safetensors");
    std::fs::copy(data(GOLDEN), &model).expect("copied");
    (dir, model)
}

/// Runs `analyze model --device cpu` with `args`; expects a refusal containing `expected`.
fn refused(model: &Path, args: &[&str], expected: &str) -> String {
    let mut command = curvature(&["analyze"]);
    command.arg(model).args(["--device", "cpu"]).args(args);
    let line = assert_refused(&run_bounded(&mut command));
    assert!(line.contains(expected), "expected '{expected}' in: {line}");
    line
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn analyze_refuses_to_overwrite_its_input_cpu() {
    let (dir, model) = with_model();
    let original = std::fs::read(&model).expect("read");
    let spelled_differently = dir.path().join(".").join("model.safetensors");
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&model, &link).expect("symlink");
    for (input, flag, dest) in [
        (&model, "--out", &model),
        (&model, "--plot", &model),
        (&model, "--out", &spelled_differently),
        // The input through a symbolic link, the output by its real name.
        (&link, "--out", &model),
    ] {
        let line = refused(input, &[flag, path_str(dest)], "is the input model file");
        assert!(line.contains(flag), "{line}");
        assert_eq!(std::fs::read(&model).expect("read"), original);
    }
    // Refused before the model is even read: a broken model gives the same answer.
    std::fs::write(&model, b"not a model").expect("written");
    refused(
        &model,
        &["--out", path_str(&model)],
        "is the input model file",
    );
    assert_eq!(std::fs::read(&model).expect("read"), b"not a model");
}

#[test]
fn analyze_refuses_one_file_for_both_outputs_cpu() {
    let (dir, model) = with_model();
    let out = dir.path().join("results");
    let same = dir.path().join("sub").join("..").join("results");
    std::fs::create_dir(dir.path().join("sub")).expect("dir");
    let line = refused(
        &model,
        &["--out", path_str(&out), "--plot", path_str(&same)],
        "--out and --plot name the same file",
    );
    assert!(line.contains("results"), "{line}");
    assert!(!out.exists());
}

#[test]
fn analyze_writes_only_regular_files_or_new_paths_cpu() {
    let (dir, model) = with_model();
    let d = dir.path();
    let target = d.join("target.txt");
    std::fs::write(&target, "keep me").expect("written");
    let symlink = d.join("symlink.safetensors");
    std::os::unix::fs::symlink(&target, &symlink).expect("symlink");
    let hard = d.join("hard.safetensors");
    std::fs::hard_link(&target, &hard).expect("hard link");
    let fifo = d.join("fifo.svg");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let directory = d.join("directory.svg");
    std::fs::create_dir(&directory).expect("dir");
    let missing_dir = d.join("absent").join("results.safetensors");
    let before = listing(d);
    for (dest, expected) in [
        (symlink.as_path(), "it is a symbolic link"),
        (hard.as_path(), "it has 2 hard links"),
        (fifo.as_path(), "it is a FIFO"),
        (directory.as_path(), "it is a directory"),
        (Path::new("/dev/null"), "it is a character device"),
        (missing_dir.as_path(), "No such file or directory"),
    ] {
        for flag in ["--out", "--plot"] {
            let line = refused(&model, &[flag, path_str(dest)], expected);
            assert!(line.starts_with("error: cannot write"), "{line}");
        }
    }
    assert_eq!(listing(d), before);
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
}

#[test]
fn analyze_keeps_permissions_and_new_files_follow_the_umask_cpu() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (dir, model) = with_model();
    let out = dir.path().join("results.safetensors");
    std::fs::write(&out, "previous results").expect("written");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let plot = dir.path().join("spectrum.svg");
    let mut command = curvature(&["analyze"]);
    command
        .arg(&model)
        .args(["--device", "cpu", "--out", path_str(&out), "--plot"])
        .arg(&plot);
    // SAFETY: runs in the forked child before exec; umask is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let output = run_bounded(&mut command);
    assert!(output.status.success(), "{output:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o600, "the replaced file keeps its mode");
    assert_eq!(mode(&plot), 0o644, "a new file is 0666 less the umask 022");
    assert!(std::fs::read(&out).expect("read").len() > 100);
}

#[test]
fn analyze_gives_byte_identical_results_twice_cpu() {
    let (dir, model) = with_model();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let mut command = curvature(&["analyze"]);
        command
            .arg(&model)
            .args(["--device", "cpu", "--seed", "3", "--out"])
            .arg(&out);
        assert!(run_bounded(&mut command).status.success());
        std::fs::read(out).expect("written")
    };
    let (first, second) = (run("first.safetensors"), run("second.safetensors"));
    assert!(first == second, "two runs with the same seed differ");
    // The metadata is in key order.
    let n = u64::from_le_bytes(first[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&first[8..8 + n]).expect("JSON");
    let keys: Vec<&String> = header["__metadata__"]
        .as_object()
        .expect("metadata")
        .keys()
        .collect();
    let text = std::str::from_utf8(&first[8..8 + n]).expect("utf-8");
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).expect("key"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

/// `command` with its standard output a pipe whose reader has gone: exit 0, nothing on stderr.
fn quiet_when_stdout_closes(mut command: Command) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("finishes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// `command` with its standard output on a full disk: exit 2 and one error line.
fn error_when_stdout_is_full(mut command: Command) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    command.stdout(full).stderr(Stdio::piped());
    let output = command.output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: cannot write to standard output: No space left on device (os error 28)\n"
    );
}

#[test]
fn analyze_and_bench_handle_a_closed_or_full_stdout_cpu() {
    let (_dir, model) = with_model();
    let analyze = || {
        let mut command = curvature(&["analyze"]);
        command.arg(&model).args(["--device", "cpu"]);
        command
    };
    let bench = || {
        curvature(&[
            "bench",
            "--workloads",
            "seed",
            "--runs",
            "1",
            "--device",
            "cpu",
        ])
    };
    quiet_when_stdout_closes(analyze());
    quiet_when_stdout_closes(bench());
    error_when_stdout_is_full(analyze());
    error_when_stdout_is_full(bench());
}

#[test]
fn analyze_writes_a_file_that_reloads_after_replacing_one_cpu() {
    // The previous results are replaced in place, and the model written by the test helpers
    // is itself accepted.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("m.safetensors");
    std::fs::write(&model, ModelFile::golden().bytes()).expect("written");
    let out = dir.path().join("r.safetensors");
    std::fs::write(&out, "old").expect("written");
    let mut command = curvature(&["analyze"]);
    command
        .arg(&model)
        .args(["--device", "cpu", "--out"])
        .arg(&out);
    assert!(run_bounded(&mut command).status.success());
    let bytes = std::fs::read(&out).expect("read");
    safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");
    assert_eq!(listing(dir.path()), [model, out]);
}
