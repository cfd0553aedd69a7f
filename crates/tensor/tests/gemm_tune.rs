//! CUDA GEMMs with `CURVATURE_GEMM_TUNE=1` (real or emulated GPU): a plan kept in the tuning
//! file decides the launch, a shape missing from it is tuned on first use and kept, and either
//! way the product equals an f64 reference. Alone in this test binary, because the switch is
//! read once per process.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use curvature_kernels::gemm_select::{select_gemm, GemmTile};
use curvature_kernels::gemm_tune::{GemmShape, GemmTuner, GpuIdentity, TuneKey, TunedChoice};
use curvature_kernels::{Dtype, GpuDevice, Precision};
use curvature_tensor::{DType, Device, Tensor};

/// The seeded shape: f64 80×70 with k = 256, where the table takes the large tile with 16
/// splits; the file says the small tile with 2.
const SEEDED: (usize, usize, usize) = (80, 70, 256);

/// The device and the tuning file, with tuning switched on before any product runs.
fn setup() -> (Device, GpuDevice, PathBuf) {
    static SETUP: OnceLock<(Device, PathBuf)> = OnceLock::new();
    let (device, file) = SETUP.get_or_init(|| {
        let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
        let dir = std::env::temp_dir().join(format!("curvature-gemm-tune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("tune.txt");
        let mut tuner = GemmTuner::with_file(&file);
        tuner.insert(
            key(&gpu(&device), Dtype::F64, SEEDED, 1, false),
            TunedChoice {
                tile: GemmTile::Small,
                splits: 2,
                ms: 1.0,
            },
        );
        tuner.save();
        // Set once, before the first product reads them, by the only thread that sets them.
        std::env::set_var("CURVATURE_GEMM_TUNE", "1");
        std::env::set_var("CURVATURE_GEMM_TUNE_FILE", &file);
        (device, file)
    });
    (*device, gpu(device), file.clone())
}

fn gpu(device: &Device) -> GpuDevice {
    let Device::Cuda(ordinal) = *device else {
        panic!("{device:?} is not a CUDA device");
    };
    GpuDevice::named(ordinal).expect("the device is open")
}

fn key(
    gpu: &GpuDevice,
    dtype: Dtype,
    (m, n, k): (usize, usize, usize),
    batch: usize,
    trans_b: bool,
) -> TuneKey {
    TuneKey {
        gpu: GpuIdentity::of(gpu),
        shape: GemmShape {
            dtype,
            precision: Precision::Ieee,
            m,
            n,
            k,
            batch,
            trans_a: false,
            trans_b,
        },
    }
}

fn values(len: usize, phase: f64) -> Vec<f64> {
    (0..len).map(|i| (i as f64 * 0.37 + phase).sin()).collect()
}

/// `a` (batch×m×k) times `b` (batch×k×n, or batch×n×k when `trans_b`) in f64, with Σ|a·b| per
/// element for the tolerance.
fn reference(
    a: &[f64],
    b: &[f64],
    (m, n, k): (usize, usize, usize),
    batch: usize,
    trans_b: bool,
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(batch * m * n);
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let (mut sum, mut abs) = (0.0, 0.0);
                for p in 0..k {
                    let bv = match trans_b {
                        true => b[z * n * k + j * k + p],
                        false => b[z * k * n + p * n + j],
                    };
                    let term = a[z * m * k + i * k + p] * bv;
                    sum += term;
                    abs += term.abs();
                }
                out.push((sum, abs));
            }
        }
    }
    out
}

/// Runs the product with the launch log on; asserts it against the reference within `tol`
/// relative to Σ|a·b|, and returns the GEMM launches.
fn product(
    device: Device,
    gpu: &GpuDevice,
    dtype: DType,
    dims: (usize, usize, usize),
    batch: usize,
    trans_b: bool,
    tol: f64,
) -> Vec<curvature_kernels::LaunchRecord> {
    // One product at a time: the launch log is the device's.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (m, n, k) = dims;
    let (av, bv) = (values(batch * m * k, 0.1), values(batch * k * n, 1.3));
    let a = Tensor::from_f64s(&av, [batch, m, k], dtype, device).expect("a");
    let b_shape = if trans_b {
        [batch, n, k]
    } else {
        [batch, k, n]
    };
    let b = Tensor::from_f64s(&bv, b_shape, dtype, device).expect("b");
    gpu.start_launch_log();
    let c = a.matmul_transposed(&b, false, trans_b).expect("matmul");
    let got = c.to_f64s().expect("download");
    let log = gpu.take_launch_log();
    let want = reference(&av, &bv, dims, batch, trans_b);
    assert_eq!(got.len(), want.len());
    for (i, (g, (w, abs))) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * abs.max(1.0),
            "{dims:?}×{batch}: element {i} is {g}, expected {w}"
        );
    }
    log.into_iter()
        .filter(|r| r.kernel.starts_with("gemm_"))
        .collect()
}

#[test]
fn a_plan_in_the_tuning_file_decides_the_launch() {
    let (device, gpu, _) = setup();
    let (m, n, k) = SEEDED;
    let table = select_gemm(Dtype::F64, m, n, k, 1, gpu.sm_count());
    assert_eq!(
        table.tile,
        GemmTile::Large,
        "the seeded plan differs from the table's"
    );
    let gemms = product(device, &gpu, DType::F64, SEEDED, 1, false, 1e-13);
    let names: Vec<&str> = gemms.iter().map(|r| r.kernel.as_str()).collect();
    assert_eq!(names, ["gemm_small_f64"]);
    assert_eq!(gemms[0].grid, (3, 3, 2));
}

#[test]
fn a_shape_missing_from_the_file_is_tuned_kept_and_reused() {
    let (device, gpu, file) = setup();
    let dims = (33, 20, 500);
    let first = product(device, &gpu, DType::F32, dims, 2, true, 1e-5);
    let kept = GemmTuner::with_file(&file);
    let plan = kept
        .lookup(&key(&gpu, Dtype::F32, dims, 2, true))
        .expect("the tuned plan is in the file");
    // The launches of the first product: the candidates' timing runs, then the product with
    // the chosen plan (one launch, split or not); the second product runs only that plan.
    let main =
        |log: &[curvature_kernels::LaunchRecord]| log.last().map(|r| (r.kernel.clone(), r.grid));
    let expected = Some((plan.kernel(Dtype::F32).name(), plan.grid));
    assert_eq!(main(&first), expected);
    let second = product(device, &gpu, DType::F32, dims, 2, true, 1e-5);
    assert_eq!(main(&second), expected);
    assert_eq!(second.len(), 1);
}
