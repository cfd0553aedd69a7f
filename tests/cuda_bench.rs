//! The benchmark on `Device::Cuda` (a real GPU when present, else the emulated one): it runs
//! end to end, reports the device by its name, and synchronizes before reading the clock.

use curvature::bench::{run_workload, BenchConfig};
use curvature::device_description;
use curvature::tensor::{DType, Device};
use curvature::workloads::Workload;

#[test]
fn bench_runs_on_cuda_and_names_the_device_cuda() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let name = device_description(device);
    assert!(name.ends_with("(cuda:0)"), "{name}");
    if device.is_emulated() {
        assert_eq!(name, "emulated GPU (cuda:0)");
    }
    // A small MLP, so the emulated GPU stays quick.
    let workload = Workload {
        name: "tiny",
        widths: vec![3, 5, 2],
        samples: 16,
        k: 4,
    };
    let config = BenchConfig {
        device,
        dtype: DType::F32,
        workloads: vec![workload.clone()],
        runs: 2,
    };
    let result = run_workload(&workload, &config).expect("the benchmark runs on CUDA");
    assert_eq!(result.device, device);
    for ms in [
        result.hvp_batch_ms,
        result.hvp_batch_cold_ms,
        result.single_hvp_ms,
    ] {
        assert!(ms.is_finite() && ms > 0.0, "{result:?}");
    }
    assert!(result.to_json()["device"] == "cuda:0");
}
