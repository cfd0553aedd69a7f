//! Work counters of a device: what the runtime asked of the GPU (launches, allocations, copies,
//! synchronizations) and how many driver calls that took. Counted by the device layer, so the
//! real GPU and the emulated one count alike.

use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a device's work counters since it was opened ([`crate::GpuDevice::counters`]).
/// Subtract two snapshots (`after - before`, or [`GpuCounters::since`]) for the work in between.
///
/// What one operation costs in driver calls on a real GPU (cudarc with event tracking off,
/// stream-ordered allocation): an allocation 1 (`cuMemAllocAsync`), a zeroing 1
/// (`cuMemsetD8Async`), a copy 1 (`cuMemcpyHtoDAsync` / `cuMemcpyDtoHAsync`; a download adds
/// the synchronization it waits for), a launch 1 (`cuLaunchKernel`), a synchronization 1
/// (`cuStreamSynchronize`), a free 1 (`cuMemFreeAsync`; 2 on a device without memory pools,
/// which synchronizes first). Buffers taken from or returned to the device's cache cost none.
/// Not counted: the context query cudarc makes before each call, and loading a module or
/// looking up a kernel the first time it is used. The emulated GPU counts the same operations
/// at the same costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// Kernel launches.
    pub launches: u64,
    /// Device allocations (buffers taken from the cache are not allocations).
    pub allocations: u64,
    /// Device frees (buffers returned to the cache are not freed).
    pub frees: u64,
    /// Buffers zeroed on the device.
    pub memsets: u64,
    /// Bytes of the device allocations.
    pub bytes_allocated: u64,
    /// Buffers served from the cache of freed buffers.
    pub reuses: u64,
    /// Host-to-device and device-to-host copies.
    pub copies: u64,
    /// Bytes copied between host and device.
    pub bytes_copied: u64,
    /// Synchronizations with the host (explicit, and the one ending each download).
    pub syncs: u64,
    /// Driver calls for all of the above.
    pub driver_calls: u64,
}

impl GpuCounters {
    /// The work done between `earlier` and `self` (each field `self − earlier`, at least 0).
    pub fn since(&self, earlier: &GpuCounters) -> GpuCounters {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        GpuCounters {
            launches: d(self.launches, earlier.launches),
            allocations: d(self.allocations, earlier.allocations),
            frees: d(self.frees, earlier.frees),
            memsets: d(self.memsets, earlier.memsets),
            bytes_allocated: d(self.bytes_allocated, earlier.bytes_allocated),
            reuses: d(self.reuses, earlier.reuses),
            copies: d(self.copies, earlier.copies),
            bytes_copied: d(self.bytes_copied, earlier.bytes_copied),
            syncs: d(self.syncs, earlier.syncs),
            driver_calls: d(self.driver_calls, earlier.driver_calls),
        }
    }
}

impl Sub for GpuCounters {
    type Output = GpuCounters;

    /// [`GpuCounters::since`].
    fn sub(self, earlier: GpuCounters) -> GpuCounters {
        self.since(&earlier)
    }
}

/// The live counters of one device.
#[derive(Default)]
pub(crate) struct Counters {
    launches: AtomicU64,
    allocations: AtomicU64,
    frees: AtomicU64,
    memsets: AtomicU64,
    bytes_allocated: AtomicU64,
    reuses: AtomicU64,
    copies: AtomicU64,
    bytes_copied: AtomicU64,
    syncs: AtomicU64,
    driver_calls: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// A byte count as a counter increment.
fn wide(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

impl Counters {
    pub(crate) fn snapshot(&self) -> GpuCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GpuCounters {
            launches: get(&self.launches),
            allocations: get(&self.allocations),
            frees: get(&self.frees),
            memsets: get(&self.memsets),
            bytes_allocated: get(&self.bytes_allocated),
            reuses: get(&self.reuses),
            copies: get(&self.copies),
            bytes_copied: get(&self.bytes_copied),
            syncs: get(&self.syncs),
            driver_calls: get(&self.driver_calls),
        }
    }

    /// A kernel launch: one driver call.
    pub(crate) fn launch(&self) {
        bump(&self.launches, 1);
        bump(&self.driver_calls, 1);
    }

    /// A device allocation of `bytes`: one driver call.
    pub(crate) fn allocation(&self, bytes: usize) {
        bump(&self.allocations, 1);
        bump(&self.bytes_allocated, wide(bytes));
        bump(&self.driver_calls, 1);
    }

    /// A buffer served from the cache: no driver call.
    pub(crate) fn reuse(&self) {
        bump(&self.reuses, 1);
    }

    /// A device free that took `calls` driver calls.
    pub(crate) fn free(&self, calls: u64) {
        bump(&self.frees, 1);
        bump(&self.driver_calls, calls);
    }

    /// A buffer zeroed: one driver call.
    pub(crate) fn memset(&self) {
        bump(&self.memsets, 1);
        bump(&self.driver_calls, 1);
    }

    /// A copy of `bytes` between host and device: one driver call.
    pub(crate) fn copy(&self, bytes: usize) {
        bump(&self.copies, 1);
        bump(&self.bytes_copied, wide(bytes));
        bump(&self.driver_calls, 1);
    }

    /// A synchronization with the host: one driver call.
    pub(crate) fn sync(&self) {
        bump(&self.syncs, 1);
        bump(&self.driver_calls, 1);
    }
}
