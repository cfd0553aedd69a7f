//! The GEMM launches of one whole batch of the seed workload's HVPs (its real sizes: 1 000
//! samples, K = 141 directions, the compiled plan) on `cuda:0` (a real GPU when present, else
//! the emulated one, which has 132 SMs like an H100 / H200), read from the device's launch log.
//! Alone in this test binary, so no other test's launches are logged.
//!
//! With T output tiles (over the batch) of BM×BN and ⌈k / BK⌉ k-slices per tile, every GEMM's
//! blocks B satisfy B ≥ min(SMs, T·⌈k / BK⌉) (split-K supplies blocks for small outputs), and
//! every GEMM runs in one wave: B ≤ SMs × blocks per SM. Outputs with more tiles than that (the
//! seed's tall products, 141 000 × 10 with k ≤ 10: 4 407 small tiles) are walked by one wave of
//! blocks, each taking its share of the tiles.

use curvature::tensor::{DType, Device};
use curvature::workloads::by_name;
use curvature_hessian::{probes, LinearOperator, ModelHvp, Probe};
use curvature_kernels::gemm_select::{GemmTile, GEMM_BLOCKS_PER_SM};
use curvature_kernels::{Dtype, GpuDevice, LaunchRecord};

/// The tile of a `gemm_{tile}_f32` kernel and how many of its blocks one SM holds (the
/// `__launch_bounds__` minimum of `kernels/matmul.cu`).
fn tile_of(record: &LaunchRecord) -> Option<(GemmTile, u64)> {
    match record.kernel.as_str() {
        "gemm_large_f32" => Some((GemmTile::Large, GEMM_BLOCKS_PER_SM)),
        "gemm_small_f32" => Some((GemmTile::Small, GEMM_BLOCKS_PER_SM)),
        _ => None,
    }
}

#[test]
fn seed_batch_gemms_fill_one_wave() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let Device::Cuda(ordinal) = device else {
        panic!("{device:?} is not a CUDA device");
    };
    let gpu = GpuDevice::named(ordinal).expect("the device is open");
    let sms = u64::from(gpu.sm_count());
    let workload = by_name("seed").expect("the seed workload");
    let problem = workload
        .build(DType::F32, device)
        .expect("the seed problem");
    let operator = ModelHvp::new(&problem.model, problem.loss, &problem.x, &problem.y)
        .expect("the HVP operator");
    let directions = probes(
        workload.k,
        operator.dim(),
        Probe::Gaussian,
        7,
        DType::F32,
        device,
    )
    .expect("probes");
    // The first batch traces and compiles the plan; the logged one replays it.
    operator.apply_batch(&directions).expect("warm-up batch");
    device.synchronize().expect("synchronize");
    gpu.start_launch_log();
    operator.apply_batch(&directions).expect("batch");
    device.synchronize().expect("synchronize");
    let log = gpu.take_launch_log();
    let gemms: Vec<&LaunchRecord> = log
        .iter()
        .filter(|r| r.kernel.starts_with("gemm_"))
        .collect();
    eprintln!(
        "seed batch (K = {}, {} samples): {} launches, {} GEMMs",
        workload.k,
        workload.samples,
        log.len(),
        gemms.len()
    );
    eprintln!("kernel | grid | blocks | batch × m × n, k | splits");
    for r in &gemms {
        let [m, n, k, batch, splits] = r.ints[..5] else {
            panic!("{r:?} has fewer than 5 integer arguments");
        };
        eprintln!(
            "{} | {:?} | {} | {batch} × {m} × {n}, k = {k} | {splits}",
            r.kernel,
            r.grid,
            r.blocks()
        );
    }
    assert!(!gemms.is_empty(), "no GEMM in {log:?}");
    for r in &gemms {
        let (tile, per_sm) = tile_of(r).unwrap_or_else(|| panic!("unexpected GEMM {r:?}"));
        let (m, n, k, batch) = (r.ints[0], r.ints[1], r.ints[2], r.ints[3]);
        let size = |v: i64| u64::try_from(v).expect("a non-negative size");
        let (m, n, k, batch) = (size(m), size(n), size(k), size(batch));
        let (bm, bn, bk) = tile.dims(Dtype::F32);
        let (bm, bn, bk) = (bm as u64, bn as u64, bk as u64);
        let tiles = m.div_ceil(bm) * n.div_ceil(bn) * batch;
        let fillable = tiles * k.div_ceil(bk).max(1);
        assert!(
            r.blocks() >= sms.min(fillable),
            "{r:?}: {} blocks, fewer than min({sms} SMs, {fillable})",
            r.blocks()
        );
        let wave = sms * per_sm;
        assert!(
            r.blocks() <= wave,
            "{r:?}: {} blocks, more than one wave of {sms} × {per_sm}",
            r.blocks()
        );
    }
}
