//! The per-process map from a `Device::Cuda(ordinal)` to the GPU behind it, opened on first
//! use and shared by every tensor on that ordinal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curvature_kernels::{GpuBuffer, GpuDevice};

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

/// Tables kept at most; past this the cache starts over (a workload uses a few dozen).
const MAX_TABLES: usize = 4096;

/// (emulated, ordinal, contents) → the device copy of a small constant `long long` array.
type TableCache = Mutex<HashMap<(bool, usize, Vec<i64>), Arc<GpuBuffer>>>;

/// The device copy of `words` on `gpu`, uploaded on first use. Saves an allocation and a
/// host-to-device copy per launch of the broadcasting, strided and gather kernels.
pub(crate) fn constant_table(gpu: &GpuDevice, words: Vec<i64>) -> Result<Arc<GpuBuffer>> {
    static CACHE: OnceLock<TableCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // Entries are complete once inserted, so a panic elsewhere cannot leave one half-written.
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    let key = (gpu.is_emulated(), gpu.ordinal(), words);
    if let Some(buffer) = map.get(&key) {
        return Ok(Arc::clone(buffer));
    }
    if map.len() >= MAX_TABLES {
        map.clear();
    }
    let bytes: Vec<u8> = key.2.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let buffer = Arc::new(gpu.upload(&bytes)?);
    map.insert(key, Arc::clone(&buffer));
    Ok(buffer)
}
