//! Device memory on the emulated GPU: uninitialised buffers hold NaN bytes (so a kernel that
//! reads an output it did not write is caught), dropped buffers are reused by the next
//! allocation of their size class without a driver call, and the counters show both.

use curvature_kernels::{GpuCounters, GpuDevice};

fn download(dev: &GpuDevice, buf: &curvature_kernels::GpuBuffer) -> Vec<u8> {
    let mut out = vec![0u8; buf.len_bytes()];
    dev.download(buf, &mut out).expect("downloads");
    out
}

#[test]
fn buffers_are_garbage_or_zero_as_asked_and_reused_after_drop() {
    let dev = GpuDevice::emulated().expect("the emulated GPU");
    // One test, so no other test's allocations land between the snapshots.
    dev.release_cached();
    let start = dev.counters();

    let buf = dev.upload(&[7u8; 100]).expect("uploads");
    assert_eq!(download(&dev, &buf), vec![7u8; 100]);
    drop(buf);
    assert_eq!(
        dev.cached_bytes(),
        112,
        "100 bytes kept as a 112-byte class"
    );

    // The same size class reuses the dropped buffer, refilled with NaN bytes.
    let buf = dev.alloc(97).expect("allocates");
    let bytes = download(&dev, &buf);
    assert!(bytes.iter().all(|&b| b == 0xff), "{bytes:?}");
    let f = f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert!(f.is_nan());
    drop(buf);
    let zeros = dev.alloc_zeros(100).expect("allocates");
    assert_eq!(download(&dev, &zeros), vec![0u8; 100]);

    let used = dev.counters().since(&start);
    assert_eq!(
        used,
        GpuCounters {
            launches: 0,
            allocations: 1,
            frees: 0,
            memsets: 1,
            bytes_allocated: 112,
            reuses: 2,
            copies: 4,
            bytes_copied: 100 + 97 + 100 + 100,
            syncs: 3,
            driver_calls: 1 + 1 + 4 + 3,
        }
    );
    drop(zeros);
    assert_eq!(dev.release_cached(), 112);
    assert_eq!(dev.cached_bytes(), 0);
    let after = dev.counters() - start;
    assert_eq!((after.frees, after.driver_calls), (1, 10));
}
