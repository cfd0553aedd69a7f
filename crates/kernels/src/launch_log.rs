//! An opt-in record of a device's launches (kernel name and geometry), so tests and profiles
//! can see how many blocks each launch had ([`crate::GpuDevice::start_launch_log`]).

use std::sync::Mutex;

use crate::launch::Dim3;

/// The most records a log keeps; later launches are counted but not recorded.
const CAPACITY: usize = 1 << 16;

/// One launch: the kernel's symbol and its geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchRecord {
    /// The kernel symbol (`gemm_small_f32`).
    pub kernel: String,
    /// The grid, in blocks.
    pub grid: Dim3,
    /// The block, in threads.
    pub block: Dim3,
}

impl LaunchRecord {
    /// Blocks of the launch: the product of the grid dimensions.
    pub fn blocks(&self) -> u64 {
        u64::from(self.grid.0) * u64::from(self.grid.1) * u64::from(self.grid.2)
    }
}

/// The log of one device: off (None) until started.
#[derive(Default)]
pub(crate) struct LaunchLog {
    records: Mutex<Option<Vec<LaunchRecord>>>,
}

impl LaunchLog {
    /// Starts (or restarts, emptied) recording.
    pub(crate) fn start(&self) {
        *self.lock() = Some(Vec::new());
    }

    /// The records so far; recording stops.
    pub(crate) fn take(&self) -> Vec<LaunchRecord> {
        self.lock().take().unwrap_or_default()
    }

    /// Records a launch when recording (up to [`CAPACITY`] records).
    pub(crate) fn record(&self, kernel: &str, grid: Dim3, block: Dim3) {
        if let Some(records) = self.lock().as_mut() {
            if records.len() < CAPACITY {
                records.push(LaunchRecord {
                    kernel: kernel.to_string(),
                    grid,
                    block,
                });
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<LaunchRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}
