//! Small constant `long long` tables (shapes, strides, index lists) uploaded once per device
//! and content, then shared by every launch that passes them (they are never written).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curvature_kernels::{GpuBuffer, GpuDevice};

use super::to_i64;
use crate::Result;

/// Bytes of tables kept at most, host and device copies each; past this the cache starts over
/// (a workload uses a few dozen tables of a few words; index lists can be long).
const MAX_TABLE_BYTES: usize = 4 << 20;

/// (emulated, ordinal, contents) → the device copy of a small constant `long long` array.
#[derive(Default)]
struct TableCache {
    tables: HashMap<(bool, usize, Vec<i64>), Arc<GpuBuffer>>,
    /// The bytes of the tables' contents, together.
    bytes: usize,
}

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

/// The device copy of `words` on `gpu`, uploaded on first use (a table larger than the whole
/// cache is uploaded and not kept).
fn constant_table(gpu: &GpuDevice, words: Vec<i64>) -> Result<Arc<GpuBuffer>> {
    static CACHE: OnceLock<Mutex<TableCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    // Entries are complete once inserted (and the byte count updated with them), so a panic
    // elsewhere cannot leave one half-written.
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let key = (gpu.is_emulated(), gpu.ordinal(), words);
    if let Some(buffer) = cache.tables.get(&key) {
        return Ok(Arc::clone(buffer));
    }
    let bytes: Vec<u8> = key.2.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let buffer = Arc::new(gpu.upload(&bytes)?);
    if bytes.len() <= MAX_TABLE_BYTES {
        if cache.bytes + bytes.len() > MAX_TABLE_BYTES {
            cache.tables.clear();
            cache.bytes = 0;
        }
        cache.bytes += bytes.len();
        cache.tables.insert(key, Arc::clone(&buffer));
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_kept_by_bytes_and_one_larger_than_the_cache_is_not_kept() {
        let Ok(gpu) = GpuDevice::emulated() else {
            return;
        };
        let small = constant_table(&gpu, vec![3, 1, 4]).expect("uploads");
        let again = constant_table(&gpu, vec![3, 1, 4]).expect("uploads");
        assert!(
            Arc::ptr_eq(&small, &again),
            "a small table is uploaded once"
        );
        let words = MAX_TABLE_BYTES / 8 + 1;
        let huge: Vec<i64> = (0..words as i64).collect();
        let first = constant_table(&gpu, huge.clone()).expect("uploads");
        let second = constant_table(&gpu, huge).expect("uploads");
        assert!(
            !Arc::ptr_eq(&first, &second),
            "a table over the cap is not kept"
        );
        assert_eq!(first.len_bytes(), words * 8);
    }
}
