//! The split-K arrival counters of a device: one zeroed `unsigned` per block tile of a split-K
//! GEMM launch (`kernels/gemm_splitk.cuh`). Every launch leaves its counters at 0 again, so the
//! device keeps one buffer, allocated and zeroed once (and again only when a launch needs more
//! counters than it holds), and a warm GEMM neither allocates nor zeroes. All launches of a
//! device are ordered on its one stream (or serialised, emulated), so consecutive GEMMs never
//! use the counters at the same time.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::{GpuBuffer, GpuDevice, KernelError};

/// Bytes of one counter (`unsigned`).
const COUNTER_BYTES: usize = 4;

/// The kept counter buffer of one device (none until a split-K GEMM asks).
#[derive(Default)]
pub(crate) struct TileCounters {
    kept: Mutex<Option<Arc<GpuBuffer>>>,
}

impl TileCounters {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<GpuBuffer>>> {
        // The slot holds a complete value at every point.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At least `count` zeroed counters (at least `floor` when a buffer must be made).
    pub(crate) fn get(
        &self,
        device: &GpuDevice,
        count: usize,
        floor: usize,
    ) -> Result<Arc<GpuBuffer>, KernelError> {
        let bytes = count
            .checked_mul(COUNTER_BYTES)
            .ok_or(KernelError::OutOfMemory { bytes: usize::MAX })?;
        let mut kept = self.lock();
        if let Some(buffer) = kept.as_ref().filter(|b| b.len_bytes() >= bytes) {
            return Ok(buffer.clone());
        }
        let made = count.max(floor).checked_mul(COUNTER_BYTES).unwrap_or(bytes);
        let buffer = Arc::new(device.alloc_zeros(made)?);
        *kept = Some(buffer.clone());
        Ok(buffer)
    }

    /// Forgets the kept buffer (the next request makes a zeroed one).
    pub(crate) fn discard(&self) {
        self.lock().take();
    }
}
