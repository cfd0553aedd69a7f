//! Small constant `long long` tables (shapes, strides, index lists) uploaded once per device
//! and content, then shared by every launch that passes them (they are never written).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curvature_kernels::{GpuBuffer, GpuDevice};

use super::to_i64;
use crate::Result;

/// Tables kept at most; past this the cache starts over (a workload uses a few dozen).
const MAX_TABLES: usize = 4096;

/// (emulated, ordinal, contents) → the device copy of a small constant `long long` array.
type TableCache = Mutex<HashMap<(bool, usize, Vec<i64>), Arc<GpuBuffer>>>;

/// `values` as a device array of `long long` (at least one element, so the pointer is valid
/// even for rank 0), uploaded once per device and content. Saves an allocation and a
/// host-to-device copy per launch of the broadcasting, strided and gather kernels.
pub(super) fn upload_i64s(
    op: &'static str,
    gpu: &GpuDevice,
    values: &[usize],
) -> Result<Arc<GpuBuffer>> {
    let mut words = values
        .iter()
        .map(|&v| to_i64(op, v))
        .collect::<Result<Vec<i64>>>()?;
    if words.is_empty() {
        words.push(0);
    }
    constant_table(gpu, words)
}

/// The device copy of `words` on `gpu`, uploaded on first use.
fn constant_table(gpu: &GpuDevice, words: Vec<i64>) -> Result<Arc<GpuBuffer>> {
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
