//! The emulated GPU is as strict as a real one: deliberately broken kernels of
//! `kernels/testing/race_test.cu` must be caught with an error naming the kernel (and the
//! threads or addresses involved), and their correct counterparts must run.
#![cfg(feature = "emulator")]

mod common;

use common::{download, emulator, upload, zeros};
use curvature_kernels::{emulator_contracts_fma, nvrtc_available, GpuDevice, KernelArg};

fn launch_err(
    dev: &GpuDevice,
    kernel: &str,
    threads: u32,
    shared: u32,
    args: &[KernelArg],
) -> String {
    dev.launch_testing_shared(kernel, ((1, 1, 1), (threads, 1, 1)), shared, args)
        .expect_err("the emulated GPU must reject this kernel")
        .to_string()
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
}

#[test]
fn never_written_shared_memory_read_is_reported_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 64);
    let err = launch_err(
        &dev,
        "shared_uninit_read_f32",
        64,
        0,
        &[KernelArg::Buffer(&out)],
    );
    assert_mentions(
        &err,
        &[
            "shared_uninit_read_f32",
            "thread (63, 0, 0)",
            "never-written",
            "`s` (byte 256",
        ],
    );
}

#[test]
fn shared_memory_race_names_both_threads_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 64);
    let err = launch_err(&dev, "shared_race_f32", 64, 0, &[KernelArg::Buffer(&out)]);
    assert_mentions(
        &err,
        &[
            "shared_race_f32",
            "race on `s` (byte 4",
            "(0, 0, 0)",
            "(1, 0, 0)",
        ],
    );
}

#[test]
fn missing_barrier_is_reported_emulated() {
    let dev = emulator();
    let x = upload::<f32>(&dev, &[1.0; 128]);
    let out = zeros::<f32>(&dev, 1);
    let args = [
        KernelArg::Buffer(&x),
        KernelArg::Buffer(&out),
        KernelArg::I32(128),
    ];
    let err = launch_err(&dev, "block_sum_nobarrier_f32", 128, 0, &args);
    assert_mentions(&err, &["block_sum_nobarrier_f32", "`s`"]);
    dev.launch_testing_shared("block_sum_barrier_f32", ((1, 1, 1), (128, 1, 1)), 0, &args)
        .expect("with the barrier");
    assert_eq!(download::<f32>(&dev, &out), vec![128.0]);
}

#[test]
fn shuffle_masks_are_enforced_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 32);
    let err = launch_err(
        &dev,
        "shfl_half_mask_f32",
        32,
        0,
        &[KernelArg::Buffer(&out)],
    );
    assert_mentions(
        &err,
        &["shfl_half_mask_f32", "mask 0x0000ffff", "excludes it"],
    );
    let err = launch_err(
        &dev,
        "shfl_exited_lane_f32",
        32,
        0,
        &[KernelArg::Buffer(&out)],
    );
    assert_mentions(&err, &["shfl_exited_lane_f32", "lane 16", "exited"]);
    // Lanes 0–15 shuffling among themselves after lanes 16–31 exited is correct.
    dev.launch_testing_shared(
        "shfl_half_warp_f32",
        ((1, 1, 1), (32, 1, 1)),
        0,
        &[KernelArg::Buffer(&out)],
    )
    .expect("a half-warp shuffle");
    let got = download::<f32>(&dev, &out);
    let want: Vec<f64> = (0..16)
        .map(|l| f64::from(if l < 15 { l + 1 } else { 15 }))
        .collect();
    assert_eq!(&got[..16], &want[..]);
}

#[test]
fn dynamic_shared_memory_up_to_227_kib_emulated() {
    let dev = emulator();
    let n = 256;
    let x = upload::<f32>(&dev, &vec![2.0; n]);
    let out = zeros::<f32>(&dev, 1);
    let args = [
        KernelArg::Buffer(&x),
        KernelArg::Buffer(&out),
        KernelArg::I32(n as i32),
    ];
    for shared in [1024, 100 * 1024, 227 * 1024] {
        dev.launch_testing_shared(
            "dynamic_shared_sum_f32",
            ((1, 1, 1), (256, 1, 1)),
            shared,
            &args,
        )
        .unwrap_or_else(|e| panic!("{shared} bytes: {e}"));
        assert_eq!(download::<f32>(&dev, &out), vec![512.0]);
    }
    let err = launch_err(&dev, "dynamic_shared_sum_f32", 256, 227 * 1024 + 1, &args);
    assert_mentions(
        &err,
        &[
            "dynamic_shared_sum_f32",
            "232449 bytes of dynamic shared memory",
        ],
    );
    // Reading past the n written slots reads never-written (NaN-filled) shared memory.
    let more = [
        KernelArg::Buffer(&x),
        KernelArg::Buffer(&out),
        KernelArg::I32(300),
    ];
    let err = launch_err(&dev, "dynamic_shared_sum_f32", 256, 2048, &more);
    assert_mentions(
        &err,
        &["never-written", "dynamic shared memory (byte 1024)"],
    );
}

#[test]
fn launch_limits_are_checked_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 64);
    let args = [KernelArg::Buffer(&out)];
    for (grid, block, what) in [
        ((1, 1, 1), (1025, 1, 1), "1025 threads"),
        ((1, 1, 1), (1, 1, 65), "1024 threads per block"),
        ((1, 65536, 1), (32, 1, 1), "grid (1, 65536, 1)"),
        ((0, 1, 1), (32, 1, 1), "empty grid"),
    ] {
        let err = dev
            .launch_testing_shared("shfl_half_warp_f32", (grid, block), 0, &args)
            .expect_err(what)
            .to_string();
        assert_mentions(&err, &["shfl_half_warp_f32", what]);
    }
}

/// Register counts come from ptxas (NVRTC); without it the check is skipped.
#[test]
fn registers_times_threads_are_checked_emulated() {
    if !nvrtc_available() {
        assert!(
            std::env::var("CURVATURE_REQUIRE_NVRTC").map_or(true, |v| v != "1"),
            "CURVATURE_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded"
        );
        eprintln!("skipping registers_times_threads_are_checked_emulated: no libnvrtc");
        return;
    }
    let dev = emulator();
    let x = zeros::<f64>(&dev, 48 * 1024);
    let out = zeros::<f64>(&dev, 1024);
    let args = [KernelArg::Buffer(&x), KernelArg::Buffer(&out)];
    let err = launch_err(&dev, "register_hog_f64", 1024, 0, &args);
    assert_mentions(
        &err,
        &["register_hog_f64", "1024 threads", "65536 registers"],
    );
    dev.launch_testing_shared("register_hog_f64", ((1, 1, 1), (128, 1, 1)), 0, &args)
        .expect("128 threads fit");
}

#[test]
fn multiply_subtract_is_contracted_to_fma_emulated() {
    let dev = emulator();
    // a = b = 1 + 2⁻³⁰: a·b = 1 + 2⁻²⁹ + 2⁻⁶⁰, rounded to p = 1 + 2⁻²⁹; fma(a, b, −p) = 2⁻⁶⁰.
    let a = 1.0 + 2f64.powi(-30);
    let p = 1.0 + 2f64.powi(-29);
    let ab = upload::<f64>(&dev, &[a]);
    let pb = upload::<f64>(&dev, &[p]);
    let out = zeros::<f64>(&dev, 1);
    let args = [
        KernelArg::Buffer(&ab),
        KernelArg::Buffer(&ab),
        KernelArg::Buffer(&pb),
        KernelArg::Buffer(&out),
    ];
    dev.launch_testing_shared("fma_residual_f64", ((1, 1, 1), (1, 1, 1)), 0, &args)
        .expect("launch");
    let want = if emulator_contracts_fma() {
        2f64.powi(-60)
    } else {
        0.0
    };
    assert_eq!(download::<f64>(&dev, &out), vec![want]);
}

/// Runs this test binary's test `name` in a child process with `env` set; its stderr and
/// whether it succeeded.
fn child(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .expect("run the child test");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A write just before a buffer's first byte hits the guard page before it.
#[test]
fn write_before_a_buffer_faults_emulated() {
    if std::env::var_os("CURVATURE_BEFORE_CHILD").is_some() {
        let dev = emulator();
        // 1024 floats fill a page exactly: the buffer starts right after the guard page.
        let buf = zeros::<f32>(&dev, 1024);
        let args = [KernelArg::Buffer(&buf), KernelArg::I64(1)];
        let _ = dev.launch_testing_shared("write_before_f32", ((1, 1, 1), (32, 1, 1)), 0, &args);
        return;
    }
    let (ok, stderr) = child(
        "write_before_a_buffer_faults_emulated",
        &[("CURVATURE_BEFORE_CHILD", "1")],
    );
    assert!(!ok, "the write before the buffer went unnoticed");
    assert!(
        stderr.contains("kernel `write_before_f32` accessed memory outside its buffers"),
        "no guard-page report in the child's stderr:\n{stderr}"
    );
}

/// With CURVATURE_EMU_ASYNC=1 launches are queued: a kernel's error surfaces at the next copy
/// to the host, not at the launch.
#[test]
fn asynchronous_launches_report_at_the_next_copy_emulated() {
    if std::env::var_os("CURVATURE_ASYNC_CHILD").is_some() {
        let dev = emulator();
        let out = zeros::<f32>(&dev, 32);
        dev.launch_testing_shared(
            "shfl_half_mask_f32",
            ((1, 1, 1), (32, 1, 1)),
            0,
            &[KernelArg::Buffer(&out)],
        )
        .expect("queued, not run yet");
        let mut host = [0u8; 128];
        let err = dev
            .download(&out, &mut host)
            .expect_err("the queued kernel fails");
        eprintln!("async error: {err}");
        return;
    }
    let (ok, stderr) = child(
        "asynchronous_launches_report_at_the_next_copy_emulated",
        &[("CURVATURE_ASYNC_CHILD", "1"), ("CURVATURE_EMU_ASYNC", "1")],
    );
    assert!(ok, "the child failed:\n{stderr}");
    assert_mentions(
        &stderr,
        &["async error", "shfl_half_mask_f32", "(queued launch)"],
    );
}

/// With CURVATURE_CUDA_SYNC=1 as well, the same queued fault is reported by the launch itself,
/// naming the kernel and its arguments.
#[test]
fn sync_after_each_launch_names_the_failing_launch_emulated() {
    if std::env::var_os("CURVATURE_SYNC_CHILD").is_some() {
        let dev = emulator();
        let out = zeros::<f32>(&dev, 32);
        let err = dev
            .launch_testing_shared(
                "shfl_half_mask_f32",
                ((1, 1, 1), (32, 1, 1)),
                0,
                &[KernelArg::Buffer(&out)],
            )
            .expect_err("the launch itself fails");
        eprintln!("sync error: {err}");
        return;
    }
    let (ok, stderr) = child(
        "sync_after_each_launch_names_the_failing_launch_emulated",
        &[
            ("CURVATURE_SYNC_CHILD", "1"),
            ("CURVATURE_EMU_ASYNC", "1"),
            ("CURVATURE_CUDA_SYNC", "1"),
        ],
    );
    assert!(ok, "the child failed:\n{stderr}");
    assert_mentions(
        &stderr,
        &[
            "sync error",
            "shfl_half_mask_f32",
            "CURVATURE_CUDA_SYNC=1",
            "block (32, 1, 1)",
            "Buffer(",
        ],
    );
}
