//! The per-process map from a `Device::Cuda(ordinal)` to the GPU behind it, opened on first
//! use and shared by every tensor on that ordinal.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use curvature_kernels::GpuDevice;

use crate::{Result, TensorError};

type Registry = Mutex<HashMap<usize, GpuDevice>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<usize, GpuDevice>> {
    // The map is only ever inserted into, so a panic elsewhere cannot leave it inconsistent.
    registry().lock().unwrap_or_else(|e| e.into_inner())
}

/// The GPU behind `Device::Cuda(ordinal)`: the one already in use, else a real GPU (or the
/// emulated one under `CURVATURE_CUDA=emulate`) opened now. Errors, never panics, when no
/// driver, no NVRTC or no such device is present.
pub(crate) fn gpu_device(ordinal: usize) -> Result<GpuDevice> {
    let mut map = lock();
    if let Some(dev) = map.get(&ordinal) {
        return Ok(dev.clone());
    }
    let dev = GpuDevice::new(ordinal).map_err(|e| TensorError::CudaUnavailable {
        ordinal,
        reason: e.to_string(),
    })?;
    map.insert(ordinal, dev.clone());
    Ok(dev)
}

/// The emulated GPU as `Device::Cuda(0)`. Errors when the emulator is not compiled in, or when
/// `cuda:0` is already a real GPU in this process.
pub(crate) fn emulated_device() -> Result<GpuDevice> {
    let mut map = lock();
    if let Some(dev) = map.get(&0) {
        if dev.is_emulated() {
            return Ok(dev.clone());
        }
        return Err(TensorError::CudaUnavailable {
            ordinal: 0,
            reason: format!(
                "cuda:0 is already the real GPU {} in this process",
                dev.name()
            ),
        });
    }
    let dev = GpuDevice::emulated().map_err(|e| TensorError::CudaUnavailable {
        ordinal: 0,
        reason: e.to_string(),
    })?;
    map.insert(0, dev.clone());
    Ok(dev)
}

/// Waits for the work queued on `cuda:ordinal` (nothing to wait for if it was never opened).
pub(crate) fn synchronize(ordinal: usize) -> Result<()> {
    let dev = lock().get(&ordinal).cloned();
    if let Some(dev) = dev {
        dev.synchronize()?;
    }
    Ok(())
}

/// "NVIDIA H100 80GB HBM3 (cuda:0)", "emulated GPU (cuda:0)", or why it is unavailable.
pub(crate) fn describe(ordinal: usize) -> String {
    match gpu_device(ordinal) {
        Ok(dev) => format!("{} (cuda:{ordinal})", dev.name()),
        Err(e) => format!("cuda:{ordinal} (unavailable: {e})"),
    }
}
