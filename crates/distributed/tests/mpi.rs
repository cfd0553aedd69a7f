//! The MPI back end under `mpirun -np 2`: this test binary starts itself as the two ranks
//! (`CURVATURE_MPI_CHILD` names the body each rank runs), and each rank checks every
//! collective against closed forms of what the ranks contributed; a rank that aborts ends the
//! job with status 2 and its rank and message on stderr.
//!
//! Needs Open MPI or MPICH (`mpirun` on PATH); without them these tests print a skip reason,
//! unless `CURVATURE_REQUIRE_MPI=1`, when they fail.

#![cfg(unix)]

use std::process::{Command, Output};

use curvature_distributed::mpi::{launched_by_mpi, Mpi, MpiError};
use curvature_distributed::Collective;
use curvature_tensor::{DType, Device, Tensor};

/// The environment variable naming the body a rank runs.
const CHILD: &str = "CURVATURE_MPI_CHILD";

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

/// Runs the test `body` of this binary as `ranks` MPI processes.
fn mpirun(ranks: usize, body: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    // Open MPI keeps its session files under one directory per host and user, which two
    // mpiruns starting at once race to create ("mkdir ... File exists"): each run gets its own.
    let session = std::env::temp_dir().join(format!("curvature-mpi-{}-{body}", std::process::id()));
    std::fs::create_dir_all(&session).expect("a session directory for mpirun");
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .arg(exe)
        .args(["--exact", body, "--nocapture", "--test-threads", "1"])
        .env(CHILD, body)
        .env("OMPI_MCA_orte_tmpdir_base", &session)
        .env("PRTE_MCA_prte_tmpdir_base", &session)
        .output()
        .expect("mpirun starts");
    let _ = std::fs::remove_dir_all(&session);
    out
}

/// Whether this process is a rank started to run `body`.
fn is_rank_running(body: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == body)
}

fn tensor(values: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_f64s(values, shape.to_vec(), dtype, Device::Cpu).unwrap()
}

/// Rank body: each collective on rank r's contribution `(r + 1) · (1, 2, …)`, checked against
/// the closed forms for R ranks, in f64 and f32.
#[test]
fn rank_body_collectives() {
    if !is_rank_running("rank_body_collectives") {
        return;
    }
    assert!(launched_by_mpi());
    let mpi = Mpi::init().unwrap();
    let (rank, size) = (mpi.rank(), mpi.size());
    assert_eq!(size, 2);
    assert_eq!(mpi.backend(), "mpi");
    let rf = rank as f64;
    let sf = size as f64;
    for dtype in [DType::F64, DType::F32] {
        // All-reduce: Σ_r (r + 1) · i = i · R(R + 1)/2.
        let mine: Vec<f64> = (1..=6).map(|i| (rf + 1.0) * i as f64).collect();
        let sum = mpi.all_reduce_sum(&tensor(&mine, &[2, 3], dtype)).unwrap();
        assert_eq!(sum.dims(), &[2, 3]);
        assert_eq!(sum.dtype(), dtype);
        let expected: Vec<f64> = (1..=6).map(|i| i as f64 * sf * (sf + 1.0) / 2.0).collect();
        assert_eq!(sum.to_f64s().unwrap(), expected);

        // Broadcast from the last rank: every rank gets (R, 2R, 3R).
        let mine: Vec<f64> = (1..=3).map(|i| (rf + 1.0) * i as f64).collect();
        let got = mpi
            .broadcast(&tensor(&mine, &[3], dtype), size - 1)
            .unwrap();
        assert_eq!(got.to_f64s().unwrap(), vec![sf, 2.0 * sf, 3.0 * sf]);

        // Reduce-scatter of [2R, 2] rows: rank r gets rows 2r, 2r+1 of the sum.
        let rows = 2 * size;
        let mine: Vec<f64> = (0..rows * 2).map(|i| (rf + 1.0) * i as f64).collect();
        let got = mpi
            .reduce_scatter_sum(&tensor(&mine, &[rows, 2], dtype))
            .unwrap();
        assert_eq!(got.dims(), &[2, 2]);
        let total = sf * (sf + 1.0) / 2.0;
        let expected: Vec<f64> = (rank * 4..rank * 4 + 4).map(|i| total * i as f64).collect();
        assert_eq!(got.to_f64s().unwrap(), expected);

        // All-gather of [1, 2] rows: row r is (r, 10 r).
        let got = mpi
            .all_gather(&tensor(&[rf, 10.0 * rf], &[1, 2], dtype))
            .unwrap();
        assert_eq!(got.dims(), &[size, 2]);
        let expected: Vec<f64> = (0..size)
            .flat_map(|r| [r as f64, 10.0 * r as f64])
            .collect();
        assert_eq!(got.to_f64s().unwrap(), expected);
    }
    mpi.barrier().unwrap();

    // Bytes (a NCCL id travels this way).
    let mut bytes: Vec<u8> = (0..128)
        .map(|i| (i as u8).wrapping_mul(rank as u8 + 1))
        .collect();
    mpi.broadcast_bytes(&mut bytes, 0).unwrap();
    assert_eq!(bytes, (0..128).map(|i| i as u8).collect::<Vec<u8>>());

    // Arguments no collective can take are errors, before any MPI call.
    let odd = tensor(&[1.0, 2.0, 3.0], &[3], DType::F64);
    assert!(mpi.reduce_scatter_sum(&odd).is_err());
    assert!(mpi.broadcast(&odd, size).is_err());
    let scalar = Tensor::scalar(1.0, DType::F64, Device::Cpu).unwrap();
    assert!(mpi.all_gather(&scalar).is_err());
    // MPI cannot be initialised twice in one process.
    assert!(matches!(Mpi::init(), Err(MpiError::AlreadyInitialised)));
    println!("rank {rank} of {size}: collectives agree");
}

#[test]
fn two_ranks_agree_on_every_collective() {
    if is_rank_running("rank_body_collectives") || !mpirun_or_skip("two_ranks_agree") {
        return;
    }
    let out = mpirun(2, "rank_body_collectives");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpirun failed:\n{stdout}\n{stderr}");
    for rank in 0..2 {
        let line = format!("rank {rank} of 2: collectives agree");
        assert!(
            stdout.contains(&line),
            "no '{line}' in:\n{stdout}\n{stderr}"
        );
    }
}

/// Rank body: rank 1 fails while rank 0 waits in an all-reduce that rank 1 never enters.
#[test]
fn rank_body_one_rank_fails() {
    if !is_rank_running("rank_body_one_rank_fails") {
        return;
    }
    let mpi = Mpi::init().unwrap();
    if mpi.rank() == 1 {
        mpi.abort("the shard of samples 4..8 is malformed");
    }
    let x = tensor(&[1.0], &[1], DType::F64);
    let _ = mpi.all_reduce_sum(&x);
    // Reached only if the abort did not end this rank.
    println!("rank 0 left the all-reduce");
}

#[test]
fn a_failing_rank_ends_the_job_with_its_error() {
    if is_rank_running("rank_body_one_rank_fails") || !mpirun_or_skip("a_failing_rank") {
        return;
    }
    let out = mpirun(2, "rank_body_one_rank_fails");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: rank 1: the shard of samples 4..8 is malformed"),
        "{stderr}"
    );
    assert!(!stdout.contains("rank 0 left the all-reduce"), "{stdout}");
}

#[test]
fn a_missing_library_is_a_clear_error() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let err = Mpi::init_from("/nonexistent/libmpi.so.40")
        .err()
        .expect("no library there");
    assert!(matches!(err, MpiError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("libmpi not found"), "{message}");
    assert!(message.contains("/nonexistent/libmpi.so.40"), "{message}");
}
