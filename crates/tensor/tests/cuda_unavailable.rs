//! `Device::cuda` without a usable GPU is an error value, never a panic. Its own test binary:
//! no test here selects the emulated GPU, so `cuda:0` is whatever the machine has.

use curvature_kernels::GpuDevice;
use curvature_tensor::{DType, Device, Tensor, TensorError};

fn emulation_requested() -> bool {
    std::env::var("CURVATURE_CUDA").is_ok_and(|v| v == "emulate")
}

#[test]
fn cuda_without_driver_is_an_error_cpu() {
    if emulation_requested() {
        eprintln!("skipped: CURVATURE_CUDA=emulate selects the emulated GPU for cuda:0");
        return;
    }
    // Whether this machine has a usable NVIDIA driver, NVRTC and GPU 0 (the kernels crate's
    // probe, which itself never panics).
    if let Ok(real) = GpuDevice::cuda(0) {
        eprintln!(
            "a real GPU is present ({}): checking that it opens",
            real.name()
        );
        assert_eq!(Device::cuda(0).unwrap(), Device::Cuda(0));
        assert_eq!(Device::cuda_if_available(0), Device::Cuda(0));
        return;
    }
    match Device::cuda(0) {
        Err(TensorError::CudaUnavailable { ordinal: 0, reason }) => {
            assert!(!reason.is_empty());
        }
        other => panic!("expected CudaUnavailable, got {other:?}"),
    }
    assert_eq!(Device::cuda_if_available(0), Device::Cpu);
    // Creating a tensor on the unavailable device is an error too.
    assert!(matches!(
        Tensor::zeros([2], DType::F64, Device::Cuda(0)),
        Err(TensorError::CudaUnavailable { ordinal: 0, .. })
    ));
    let host = Tensor::ones([2], DType::F32, Device::Cpu).unwrap();
    assert!(host.to_device(Device::Cuda(0)).is_err());
    assert!(Device::Cuda(0).description().contains("unavailable"));
}

#[test]
fn cuda_with_an_absent_ordinal_is_an_error_cpu() {
    if emulation_requested() {
        eprintln!("skipped: CURVATURE_CUDA=emulate opens the emulated GPU for any ordinal");
        return;
    }
    let ordinal = 1 << 20;
    assert!(matches!(
        Device::cuda(ordinal),
        Err(TensorError::CudaUnavailable { ordinal: o, .. }) if o == ordinal
    ));
    assert_eq!(Device::cuda_if_available(ordinal), Device::Cpu);
}
