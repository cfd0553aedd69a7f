//! The launch log of the emulated GPU (132 SMs, like an H100 / H200) while the seed workload's
//! GEMM shapes run: alone in this test binary, so no other test's launches or allocations are
//! counted.

use curvature_tensor::{DType, Device, Tensor};

/// The seed workload's GEMM shapes (10×10, 10×1 and 1×10 outputs with k = 1000, alone and
/// batched over its 141 directions): on CUDA every GEMM launch has at least as many blocks as
/// the GPU has SMs whenever split-K can supply them (⌈k / 32⌉ slices per small tile), a
/// product is that one launch (the splits are summed in it), and once warm a product neither
/// allocates (the workspace comes from the buffer cache) nor zeroes (the device keeps its
/// arrival counters at 0).
#[test]
fn seed_shapes_fill_the_sms() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let Device::Cuda(ordinal) = device else {
        panic!("{device:?} is not a CUDA device");
    };
    let shapes = [
        (1, 10, 10, 1000),
        (1, 10, 1, 1000),
        (1, 1, 10, 1000),
        (141, 10, 10, 1000),
    ];
    let run = |(batch, m, n, k): (usize, usize, usize, usize)| {
        let a = Tensor::ones([batch, m, k], DType::F32, device).expect("a");
        let b = Tensor::ones([batch, k, n], DType::F32, device).expect("b");
        let c = a.matmul(&b).expect("matmul");
        let got = c.to_f64s().expect("download");
        assert!(got.iter().all(|&v| v == k as f64), "{batch}×{m}×{n}×{k}");
    };
    for &shape in &shapes {
        run(shape);
    }
    let gpu = curvature_kernels::GpuDevice::named(ordinal).expect("the device is open");
    let sms = u64::from(gpu.sm_count());
    if gpu.is_emulated() {
        assert_eq!(sms, 132, "the emulated GPU models an H100 / H200");
    }
    for &shape in &shapes {
        let (batch, m, n, k) = shape;
        let before = gpu.counters();
        gpu.start_launch_log();
        run(shape);
        let log = gpu.take_launch_log();
        let after = gpu.counters();
        let gemms: Vec<_> = log
            .iter()
            .filter(|r| r.kernel.starts_with("gemm_"))
            .collect();
        assert_eq!(gemms.len(), 1, "{shape:?}: {log:?}");
        let want = [m, n, k, batch].map(|v| v as i64);
        assert_eq!(gemms[0].ints[..4], want, "m, n, k, batch of {log:?}");
        let tiles = (m.div_ceil(32) * n.div_ceil(32) * batch) as u64;
        let fillable = tiles * k.div_ceil(32) as u64;
        assert!(
            gemms[0].blocks() >= sms.min(fillable),
            "{shape:?}: {} blocks ({log:?})",
            gemms[0].blocks()
        );
        let work = after.since(&before);
        assert_eq!(work.allocations, 0, "{shape:?}: allocations once warm");
        assert_eq!(work.memsets, 0, "{shape:?}: memsets once warm");
    }
}
