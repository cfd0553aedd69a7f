//! The process's GPUs: every device opened so far (one context and module cache per real GPU
//! ordinal, one emulated GPU per ordinal) and what each `cuda:{ordinal}` names.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::buffer::DeviceId;
use crate::device::GpuDevice;
use crate::KernelError;

#[derive(Default)]
struct Registry {
    /// Every device opened, by kind and ordinal.
    opened: HashMap<DeviceId, GpuDevice>,
    /// The device `cuda:{ordinal}` names in this process, fixed on first use.
    ordinals: HashMap<usize, DeviceId>,
}

impl Registry {
    /// The device `id`, opened now unless it already is. A failure is not remembered, so a
    /// later call tries again.
    fn open(&mut self, id: DeviceId) -> Result<GpuDevice, KernelError> {
        if let Some(dev) = self.opened.get(&id) {
            return Ok(dev.clone());
        }
        let dev = GpuDevice::open(id)?;
        self.opened.insert(id, dev.clone());
        Ok(dev)
    }

    /// `cuda:{ordinal}`: the device it already names, else `id` opened now and named by it.
    fn bind(&mut self, ordinal: usize, id: DeviceId) -> Result<GpuDevice, KernelError> {
        let id = *self.ordinals.get(&ordinal).unwrap_or(&id);
        let dev = self.open(id)?;
        self.ordinals.insert(ordinal, id);
        Ok(dev)
    }
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    // Entries are complete once inserted, so a panic elsewhere cannot leave the map inconsistent.
    REGISTRY
        .get_or_init(|| Mutex::new(Registry::default()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether `CURVATURE_CUDA` selects the emulated GPU: `emulate` does, unset or empty does not,
/// and any other value is an error naming the accepted ones.
pub fn emulation_requested() -> Result<bool, KernelError> {
    match std::env::var_os("CURVATURE_CUDA") {
        None => Ok(false),
        Some(v) if v.is_empty() => Ok(false),
        Some(v) if v == "emulate" => Ok(true),
        Some(v) => Err(KernelError::UnknownCudaMode {
            value: v.to_string_lossy().chars().take(40).collect(),
        }),
    }
}

impl GpuDevice {
    /// The device `cuda:{ordinal}` names in this process: the one it already names, else, on
    /// first use, the emulated GPU under `CURVATURE_CUDA=emulate` (with the `emulator`
    /// feature) or real GPU `ordinal` through cudarc, after checking that libcuda and libnvrtc
    /// can be loaded. Errors (never panics) when neither is possible, and when
    /// `CURVATURE_CUDA` has an unknown value ([`emulation_requested`]).
    pub fn new(ordinal: usize) -> Result<GpuDevice, KernelError> {
        let emulated = emulation_requested()?;
        registry().bind(ordinal, DeviceId { emulated, ordinal })
    }

    /// Real GPU `ordinal` through cudarc, ignoring `CURVATURE_CUDA` and what `cuda:{ordinal}`
    /// names. Errors (never panics) when libcuda or libnvrtc cannot be loaded or the device
    /// does not exist.
    pub fn cuda(ordinal: usize) -> Result<GpuDevice, KernelError> {
        registry().open(DeviceId {
            emulated: false,
            ordinal,
        })
    }

    /// The emulated GPU (ordinal 0), whatever `CURVATURE_CUDA` says and whatever `cuda:0`
    /// names; `Err(NoEmulator)` when the `emulator` feature is off.
    pub fn emulated() -> Result<GpuDevice, KernelError> {
        registry().open(DeviceId {
            emulated: true,
            ordinal: 0,
        })
    }

    /// Makes `cuda:0` name the emulated GPU for the rest of the process, and returns it.
    /// Errors when the emulator is not compiled in, or when `cuda:0` already names a real GPU
    /// ([`KernelError::OrdinalInUse`]).
    pub fn emulated_as_cuda0() -> Result<GpuDevice, KernelError> {
        let mut registry = registry();
        let emulated = DeviceId {
            emulated: true,
            ordinal: 0,
        };
        if let Some(id) = registry.ordinals.get(&0).copied() {
            if id != emulated {
                let name = registry.open(id)?.name();
                return Err(KernelError::OrdinalInUse { ordinal: 0, name });
            }
        }
        registry.bind(0, emulated)
    }

    /// The device `cuda:{ordinal}` names, if it was opened in this process.
    pub fn named(ordinal: usize) -> Option<GpuDevice> {
        let registry = registry();
        let id = registry.ordinals.get(&ordinal)?;
        registry.opened.get(id).cloned()
    }
}
