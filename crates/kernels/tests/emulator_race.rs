//! The emulated GPU must expose a missing `__syncthreads()`: the same shared-memory block sum
//! is right with its barrier and a launch error without it. Also checks warp shuffles and launch errors.
#![cfg(feature = "emulator")]

mod common;

use common::{download, emulator, upload, zeros, Rng};
use curvature_kernels::{Dtype, Kernel, KernelArg, KernelError, Launch};

fn block_sums(kernel: &str, x: &[f64], blocks: usize, n: usize) -> Result<Vec<f64>, KernelError> {
    let dev = emulator();
    let xb = upload::<f32>(&dev, x);
    let out = zeros::<f32>(&dev, blocks);
    dev.launch_testing(
        kernel,
        (blocks as u32, 1, 1),
        (n as u32, 1, 1),
        &[
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out),
            KernelArg::I32(n as i32),
        ],
    )?;
    Ok(download::<f32>(&dev, &out))
}

#[test]
fn block_sum_missing_barrier_is_an_error_emulated() {
    let (blocks, n) = (4, 128);
    // Integers in [1, 8]: every partial sum is exact in f32, so only the race can differ.
    let mut rng = Rng::new(7);
    let x: Vec<f64> = (0..blocks * n)
        .map(|_| (rng.next_u64() % 8 + 1) as f64)
        .collect();
    let want: Vec<f64> = x.chunks(n).map(|c| c.iter().sum()).collect();

    let with_barrier = block_sums("block_sum_barrier_f32", &x, blocks, n).expect("launch");
    assert_eq!(
        with_barrier, want,
        "with __syncthreads() the sums are exact"
    );

    let err = block_sums("block_sum_nobarrier_f32", &x, blocks, n)
        .expect_err("the race was not exposed")
        .to_string();
    assert!(
        err.contains("block_sum_nobarrier_f32") && err.contains("`s`"),
        "{err}"
    );
}

#[test]
fn warp_shuffle_sum_emulated() {
    let dev = emulator();
    let mut rng = Rng::new(11);
    let x: Vec<f64> = (0..3 * 32).map(|_| (rng.next_u64() % 16) as f64).collect();
    let want: Vec<f64> = x.chunks(32).map(|c| c.iter().sum()).collect();
    let xb = upload::<f32>(&dev, &x);
    let out = zeros::<f32>(&dev, 3);
    dev.launch_testing(
        "warp_sum_shfl_f32",
        (3, 1, 1),
        (32, 1, 1),
        &[KernelArg::Buffer(&xb), KernelArg::Buffer(&out)],
    )
    .expect("launch");
    assert_eq!(download::<f32>(&dev, &out), want);
}

#[test]
fn launch_errors_are_values_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 4);
    let launch = |kernel: Kernel, block: (u32, u32, u32), args: &[KernelArg]| {
        dev.launch(&Launch::new(kernel, ((1, 1, 1), block)).args(args.iter().copied()))
    };
    let fill_f32 = Kernel::fill(Dtype::F32);
    let fill = [
        KernelArg::Buffer(&out),
        KernelArg::U64(4),
        KernelArg::F32(1.0),
    ];
    assert!(matches!(
        launch(
            Kernel::unary("no_such_kernel", Dtype::F32),
            (32, 1, 1),
            &fill
        ),
        Err(KernelError::Launch { .. })
    ));
    // Wrong scalar type (f64 for a float parameter) and wrong arity are rejected.
    let wrong_type = [
        KernelArg::Buffer(&out),
        KernelArg::U64(4),
        KernelArg::F64(1.0),
    ];
    assert!(matches!(
        launch(fill_f32, (32, 1, 1), &wrong_type),
        Err(KernelError::Launch { .. })
    ));
    assert!(matches!(
        launch(fill_f32, (32, 1, 1), &fill[..2]),
        Err(KernelError::Launch { .. })
    ));
    // More than 1024 threads per block.
    assert!(matches!(
        launch(fill_f32, (1024, 2, 1), &fill),
        Err(KernelError::Launch { .. })
    ));
    launch(fill_f32, (32, 1, 1), &fill).expect("a valid launch");
    assert_eq!(download::<f32>(&dev, &out), vec![1.0; 4]);
    // A host copy of the wrong size.
    let mut small = [0u8; 3];
    assert!(matches!(
        dev.download(&out, &mut small),
        Err(KernelError::SizeMismatch { .. })
    ));
}

/// Barriers that can never complete are a launch error, not a hang.
#[test]
fn divergent_barriers_are_an_error_emulated() {
    let dev = emulator();
    let out = zeros::<f32>(&dev, 32);
    let err = dev
        .launch_testing(
            "divergent_barriers_f32",
            (1, 1, 1),
            (32, 1, 1),
            &[KernelArg::Buffer(&out)],
        )
        .expect_err("a deadlock");
    assert!(err.to_string().contains("deadlock"), "{err}");
}

/// A kernel writing past the end of its buffer hits the guard page: the process dies with
/// SIGSEGV and the emulator names the kernel. Runs the write in a child test process.
#[test]
fn out_of_bounds_write_faults_emulated() {
    if std::env::var_os("CURVATURE_OOB_CHILD").is_some() {
        let dev = emulator();
        let out = zeros::<f32>(&dev, 4);
        // n = 5000 floats into a 4-float buffer.
        let args = [
            KernelArg::Buffer(&out),
            KernelArg::U64(5000),
            KernelArg::F32(1.0),
        ];
        let _ =
            dev.launch(&Launch::new(Kernel::fill(Dtype::F32), ((1, 1, 1), (32, 1, 1))).args(args));
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            "out_of_bounds_write_faults_emulated",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CURVATURE_OOB_CHILD", "1")
        .output()
        .expect("run the child test");
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        !child.status.success(),
        "the out-of-bounds write went unnoticed"
    );
    assert!(
        stderr.contains("kernel `fill_f32` accessed memory outside its buffers"),
        "no guard-page report in the child's stderr:\n{stderr}"
    );
}

/// The last-arriving-block pattern of split-K (`__threadfence`, `atomicAdd` on `unsigned`, a
/// decision broadcast through shared memory, `__ldcg`) over 64 blocks, which the emulated GPU
/// spreads over its worker threads in any order: the total equals the sum of every value, and
/// the counter is back at 0 after each launch.
#[test]
fn last_block_sums_every_block_emulated() {
    let dev = emulator();
    let (blocks, n) = (64usize, 40usize);
    // Integers in [1, 8]: every partial sum is exact in f32.
    let mut rng = Rng::new(9);
    let x: Vec<f64> = (0..blocks * n)
        .map(|_| (rng.next_u64() % 8 + 1) as f64)
        .collect();
    let want: f64 = x.iter().sum();
    let xb = upload::<f32>(&dev, &x);
    let partial = zeros::<f32>(&dev, blocks);
    let counter = dev.alloc_zeros(4).expect("counter");
    for run in 0..3 {
        let out = zeros::<f32>(&dev, 1);
        dev.launch_testing(
            "last_block_total_f32",
            (blocks as u32, 1, 1),
            (64, 1, 1),
            &[
                KernelArg::Buffer(&xb),
                KernelArg::Buffer(&partial),
                KernelArg::Buffer(&counter),
                KernelArg::Buffer(&out),
                KernelArg::I32(n as i32),
            ],
        )
        .expect("launch");
        assert_eq!(download::<f32>(&dev, &out), vec![want], "run {run}");
        let mut raw = [0xa5u8; 4];
        dev.download(&counter, &mut raw).expect("download");
        assert_eq!(raw, [0; 4], "run {run}: counter left at {raw:?}");
    }
}
