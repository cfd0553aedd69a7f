//! Opening devices: without a driver `GpuDevice::new` is an error value, never a panic; the
//! emulated GPU is reachable through `CURVATURE_CUDA=emulate` semantics and `emulated()`.

mod common;

use curvature_kernels::{GpuDevice, KernelError};

fn driver_present() -> bool {
    // SAFETY: only tries to dlopen libcuda's candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[test]
fn new_without_driver_is_err() {
    let emulate = std::env::var("CURVATURE_CUDA").is_ok_and(|v| v == "emulate");
    match GpuDevice::new(0) {
        Ok(dev) => assert!(
            emulate || (driver_present() && !dev.is_emulated()),
            "a device without a driver or CURVATURE_CUDA=emulate: {dev:?}"
        ),
        Err(e) => {
            assert!(
                !emulate || !cfg!(feature = "emulator"),
                "emulation requested but: {e}"
            );
            eprintln!("GpuDevice::new(0) without a GPU: {e}");
        }
    }
    if !driver_present() {
        assert!(matches!(
            GpuDevice::cuda(0),
            Err(KernelError::NoDriver { .. })
        ));
    }
}

#[test]
fn cuda_device_with_huge_ordinal_is_err() {
    assert!(GpuDevice::cuda(1 << 20).is_err());
}

#[cfg(feature = "emulator")]
#[test]
fn emulated_device_basics() {
    let dev = GpuDevice::emulated().expect("emulator");
    assert!(dev.is_emulated());
    assert_eq!(dev.ordinal(), 0);
    // The same device every time: buffers from one handle work with another.
    let again = GpuDevice::emulated().expect("emulator");
    let buf = again.upload(&[1, 2, 3, 4, 5]).expect("upload");
    assert_eq!(buf.len_bytes(), 5);
    let mut out = [0u8; 5];
    dev.download(&buf, &mut out).expect("download");
    assert_eq!(out, [1, 2, 3, 4, 5]);
    let empty = dev.alloc_zeros(0).expect("empty buffer");
    dev.download(&empty, &mut []).expect("empty download");
    dev.synchronize().expect("synchronize");
}

/// Every family compiles into the emulator with its own kernels, each defined once, and the
/// kernels named by `Kernel` values are found in their family's table.
#[cfg(feature = "emulator")]
#[test]
fn emulator_tables_hold_each_family_emulated() {
    use curvature_kernels::{emulated_kernel_names, Dtype, Kernel, KernelFamily};
    let mut all: Vec<String> = Vec::new();
    for family in KernelFamily::all() {
        let names = emulated_kernel_names(*family);
        assert!(!names.is_empty(), "{}: no kernels", family.name());
        all.extend(names);
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a kernel is defined twice");
    for dt in Dtype::ALL {
        for kernel in [
            Kernel::fill(dt),
            Kernel::gemm(curvature_kernels::gemm_select::GemmTile::Large, dt),
            Kernel::gemm(curvature_kernels::gemm_select::GemmTile::Small, dt),
            Kernel::reduce("reduce_sum", dt),
            Kernel::cast(dt, dt),
        ] {
            let found = emulated_kernel_names(kernel.family()).contains(&kernel.name());
            // Casts exist only between different dtypes.
            let cast_to_itself = kernel == Kernel::cast(dt, dt);
            assert_eq!(found, !cast_to_itself, "{kernel}");
        }
    }
}

/// A real GPU, when present: name, arch and a byte round trip.
#[test]
fn real_gpu_round_trip_cuda() {
    let Some(dev) = common::cuda_device("real_gpu_round_trip_cuda") else {
        return;
    };
    assert!(!dev.is_emulated());
    assert!(dev.arch().starts_with("sm_"), "{}", dev.arch());
    let bytes: Vec<u8> = (0..=255).collect();
    let buf = dev.upload(&bytes).expect("upload");
    let mut out = vec![0u8; 256];
    dev.download(&buf, &mut out).expect("download");
    assert_eq!(out, bytes);
}

/// Devices and buffers can be shared across threads (tensors are).
#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GpuDevice>();
    check::<curvature_kernels::GpuBuffer>();
    check::<KernelError>();
}
