//! SIGTERM and SIGINT while `curvature analyze` writes its outputs leave no temporary file:
//! the run is frozen (SIGSTOP) the moment a temporary file appears in the output directory,
//! signalled, and let go; it must exit with 128 + the signal and leave no `.curvature-*` file.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{analyze_into, ModelFile};

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill takes plain integers; `pid` is our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".curvature-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `analyze` and interrupts it with `sig` while a temporary file exists. Returns false
/// when the run finished before one was seen (the caller tries again).
fn interrupt_while_writing(model: &Path, sig: libc::c_int) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("results.safetensors");
    let plot = dir.path().join("spectrum.svg");
    let mut command = analyze_into(model, dir.path());
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().expect("starts");
    let start = Instant::now();
    let caught = loop {
        if !temporary_files(dir.path()).is_empty() {
            signal(&child, libc::SIGSTOP);
            // Still there once the process is frozen: the signal lands mid-write.
            break !temporary_files(dir.path()).is_empty();
        }
        if child.try_wait().expect("waits").is_some() {
            break false;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "analyze ran too long"
        );
    };
    if !caught {
        signal(&child, libc::SIGCONT);
        child.wait().expect("finishes");
        return false;
    }
    signal(&child, sig);
    signal(&child, libc::SIGCONT);
    let status = child.wait().expect("finishes");
    assert_eq!(status.code(), Some(128 + sig), "{status:?}");
    assert_eq!(temporary_files(dir.path()), Vec::<String>::new());
    // All or nothing: the outputs are either both in place or both absent.
    assert_eq!(out.exists(), plot.exists());
    true
}

#[test]
fn signals_during_the_write_leave_no_temporary_file_cpu() {
    // P = 1019 (dense Hessian, 8 MB of results), written and synced to disk: long enough to
    // be caught mid-write.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("model.safetensors");
    let file = ModelFile::random_tanh_mlp(&[2, 16, 18, 1], 8);
    std::fs::write(&model, file.bytes()).expect("written");
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let attempts = (1..=10).find(|_| interrupt_while_writing(&model, sig));
        eprintln!("signal {sig}: caught on attempt {attempts:?}");
        let caught = attempts.is_some();
        assert!(caught, "no run was caught while writing (signal {sig})");
    }
}
