//! An opt-in record of a device's launches (kernel name, geometry and integer arguments), so
//! tests and profiles can see how many blocks each launch had and for which sizes
//! ([`crate::GpuDevice::start_launch_log`]).

use std::sync::Mutex;

use crate::buffer::KernelArg;
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
    /// The launch's integer arguments (`int`, `unsigned`, `long long`, `size_t`; a `size_t`
    /// above `i64::MAX` saturates), in the order of the kernel's parameters: for a
    /// `gemm_{tile}_{dt}` launch m, n, k, batch, splits, lda, … (`kernels/matmul.cu`).
    pub ints: Vec<i64>,
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
    pub(crate) fn record(&self, kernel: &str, grid: Dim3, block: Dim3, args: &[KernelArg]) {
        if let Some(records) = self.lock().as_mut() {
            if records.len() < CAPACITY {
                let ints = args
                    .iter()
                    .filter_map(|arg| match *arg {
                        KernelArg::I32(v) => Some(i64::from(v)),
                        KernelArg::U32(v) => Some(i64::from(v)),
                        KernelArg::I64(v) => Some(v),
                        KernelArg::U64(v) => Some(i64::try_from(v).unwrap_or(i64::MAX)),
                        _ => None,
                    })
                    .collect();
                records.push(LaunchRecord {
                    kernel: kernel.to_string(),
                    grid,
                    block,
                    ints,
                });
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<LaunchRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}
