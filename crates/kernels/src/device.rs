//! One GPU runtime, two implementations: cudarc on a real GPU, the emulated GPU (§6a).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::cuda::{CudaBackend, CudaBuffer};
#[cfg(feature = "emulator")]
use crate::emulator::{EmuBackend, HostAlloc};
use crate::family::{KernelFamily, ModuleKey};
use crate::KernelError;

/// A kernel argument, in the order of the kernel's C parameters. Pointers are
/// [`KernelArg::Buffer`]; scalars must match the C type exactly (`int` → `I32`,
/// `size_t` → `U64`, `long long` → `I64`, `float` → `F32`, `double` → `F64`).
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A device buffer, passed as a pointer to its first byte.
    Buffer(&'a GpuBuffer),
    /// A pointer `offset` bytes into a device buffer (a view; `offset ≤ len_bytes`, and a
    /// multiple of the element size the kernel reads through it).
    BufferAt(&'a GpuBuffer, usize),
    /// `int`.
    I32(i32),
    /// `unsigned int`.
    U32(u32),
    /// `long long`.
    I64(i64),
    /// `size_t` / `unsigned long long`.
    U64(u64),
    /// `float`.
    F32(f32),
    /// `double`.
    F64(f64),
}

pub(crate) enum Backend {
    Cuda(CudaBackend),
    #[cfg(feature = "emulator")]
    Emulated(EmuBackend),
}

pub(crate) struct DeviceInner {
    pub(crate) backend: Backend,
    ordinal: usize,
}

/// A GPU (real or emulated). Cheap to clone; `GpuDevice::new(i)` returns the same device (same
/// context, same module cache) every time it is called with the same ordinal.
#[derive(Clone)]
pub struct GpuDevice {
    pub(crate) inner: Arc<DeviceInner>,
}

impl fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuDevice({})", self.label())
    }
}

pub(crate) enum BufferMem {
    Cuda(CudaBuffer),
    #[cfg(feature = "emulator")]
    Host(HostAlloc),
}

/// Device memory: a cudarc allocation on a real GPU, a 16-byte aligned host allocation on the
/// emulated one. Freed on drop.
pub struct GpuBuffer {
    device: GpuDevice,
    len: usize,
    pub(crate) mem: BufferMem,
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GpuBuffer({} bytes on {})",
            self.len,
            self.device.label()
        )
    }
}

impl GpuBuffer {
    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// The device owning the buffer.
    pub fn device(&self) -> &GpuDevice {
        &self.device
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
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

type DeviceCache = Mutex<HashMap<(bool, usize), GpuDevice>>;

fn device_cache() -> &'static DeviceCache {
    static CACHE: OnceLock<DeviceCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached(
    emulated: bool,
    ordinal: usize,
    make: impl FnOnce() -> Result<Backend, KernelError>,
) -> Result<GpuDevice, KernelError> {
    let mut cache = device_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dev) = cache.get(&(emulated, ordinal)) {
        return Ok(dev.clone());
    }
    let dev = GpuDevice {
        inner: Arc::new(DeviceInner {
            backend: make()?,
            ordinal,
        }),
    };
    cache.insert((emulated, ordinal), dev.clone());
    Ok(dev)
}

impl GpuDevice {
    /// Opens GPU `ordinal`. With `CURVATURE_CUDA=emulate` (and the `emulator` feature) this is
    /// the emulated GPU. Otherwise a real GPU through cudarc, after checking that libcuda and
    /// libnvrtc can be loaded. Errors (never panics) when neither is possible, and when
    /// `CURVATURE_CUDA` has an unknown value ([`emulation_requested`]).
    pub fn new(ordinal: usize) -> Result<GpuDevice, KernelError> {
        if emulation_requested()? {
            return Self::emulated_ordinal(ordinal);
        }
        Self::cuda(ordinal)
    }

    /// Opens real GPU `ordinal` through cudarc, ignoring `CURVATURE_CUDA`. Errors (never
    /// panics) when libcuda or libnvrtc cannot be loaded or the device does not exist.
    pub fn cuda(ordinal: usize) -> Result<GpuDevice, KernelError> {
        cached(false, ordinal, || {
            // cudarc panics when a driver symbol it expects is missing (e.g. an older driver):
            // turn that into an error value too.
            std::panic::catch_unwind(|| CudaBackend::new(ordinal))
                .unwrap_or_else(|panic| {
                    Err(KernelError::NoDriver {
                        reason: format!("the CUDA driver is unusable: {}", panic_message(&panic)),
                    })
                })
                .map(Backend::Cuda)
        })
    }

    /// The emulated GPU (ordinal 0), whatever `CURVATURE_CUDA` says; `Err(NoEmulator)` when
    /// the `emulator` feature is off.
    pub fn emulated() -> Result<GpuDevice, KernelError> {
        Self::emulated_ordinal(0)
    }

    #[cfg(feature = "emulator")]
    fn emulated_ordinal(ordinal: usize) -> Result<GpuDevice, KernelError> {
        cached(true, ordinal, || Ok(Backend::Emulated(EmuBackend::new())))
    }

    #[cfg(not(feature = "emulator"))]
    fn emulated_ordinal(_ordinal: usize) -> Result<GpuDevice, KernelError> {
        Err(KernelError::NoEmulator)
    }

    /// Whether this is the emulated GPU.
    pub fn is_emulated(&self) -> bool {
        match &self.inner.backend {
            Backend::Cuda(_) => false,
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => true,
        }
    }

    /// The device's name (the driver's name for a real GPU).
    pub fn name(&self) -> String {
        match &self.inner.backend {
            Backend::Cuda(b) => b.name(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => "emulated GPU".to_string(),
        }
    }

    /// The ordinal the device was opened with.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The architecture kernels are compiled for (`sm_90` on an H100; `emulated`).
    pub fn arch(&self) -> String {
        match &self.inner.backend {
            Backend::Cuda(b) => b.arch().to_string(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => "emulated".to_string(),
        }
    }

    fn label(&self) -> String {
        format!("{} #{}", self.name(), self.inner.ordinal)
    }

    fn wrap(&self, len: usize, mem: BufferMem) -> GpuBuffer {
        GpuBuffer {
            device: self.clone(),
            len,
            mem,
        }
    }

    /// Allocates `bytes` zeroed bytes.
    pub fn alloc_zeros(&self, bytes: usize) -> Result<GpuBuffer, KernelError> {
        let mem = match &self.inner.backend {
            Backend::Cuda(b) => BufferMem::Cuda(b.alloc_zeros(bytes)?),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => BufferMem::Host(HostAlloc::zeroed(bytes)?),
        };
        Ok(self.wrap(bytes, mem))
    }

    /// Copies `bytes` from the host into a new buffer.
    pub fn upload(&self, bytes: &[u8]) -> Result<GpuBuffer, KernelError> {
        let mem = match &self.inner.backend {
            Backend::Cuda(b) => BufferMem::Cuda(b.upload(bytes)?),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => BufferMem::Host(e.upload(bytes)?),
        };
        Ok(self.wrap(bytes.len(), mem))
    }

    /// Copies the whole of `buf` into `out` (which must have `buf.len_bytes()` bytes), after
    /// all work queued before it has finished.
    pub fn download(&self, buf: &GpuBuffer, out: &mut [u8]) -> Result<(), KernelError> {
        self.check_owner(buf)?;
        if out.len() != buf.len {
            return Err(KernelError::SizeMismatch {
                buffer_bytes: buf.len,
                host_bytes: out.len(),
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        match (&self.inner.backend, &buf.mem) {
            (Backend::Cuda(b), BufferMem::Cuda(m)) => b.download(m, out),
            #[cfg(feature = "emulator")]
            (Backend::Emulated(e), BufferMem::Host(h)) => {
                e.download(h, out);
                Ok(())
            }
            #[cfg(feature = "emulator")]
            _ => Err(self.mismatch(buf)),
        }
    }

    /// Launches `kernel` of `family` over `grid` blocks of `block` threads with
    /// `shared_bytes` of dynamic shared memory. `args` must match the kernel's C parameters
    /// (documented in `kernels/*.cu`); the emulated GPU checks their count and types.
    /// Asynchronous on a real GPU (ordered on the device's stream); synchronous when emulated.
    pub fn launch(
        &self,
        family: KernelFamily,
        kernel: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        self.launch_module(
            ModuleKey::Family(family),
            kernel,
            grid,
            block,
            shared_bytes,
            args,
        )
    }

    /// Launches a kernel of the test-only source `kernels/testing/race_test.cu`
    /// (`block_sum_nobarrier_f32`, `block_sum_barrier_f32`, `warp_sum_shfl_f32`,
    /// `divergent_barriers_f32`).
    #[doc(hidden)]
    pub fn launch_testing(
        &self,
        kernel: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        self.launch_module(ModuleKey::Testing, kernel, grid, block, 0, args)
    }

    fn launch_module(
        &self,
        key: ModuleKey,
        kernel: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        for arg in args {
            match arg {
                KernelArg::Buffer(buf) => self.check_owner(buf)?,
                KernelArg::BufferAt(buf, offset) => {
                    self.check_owner(buf)?;
                    if *offset > buf.len {
                        return Err(KernelError::Launch {
                            kernel: kernel.escape_default().to_string(),
                            reason: format!(
                                "offset {offset} is past the end of a {}-byte buffer",
                                buf.len
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        if kernel.contains('\0') {
            return Err(KernelError::Launch {
                kernel: kernel.escape_default().to_string(),
                reason: "kernel name contains a NUL byte".to_string(),
            });
        }
        match &self.inner.backend {
            Backend::Cuda(b) => b.launch(key, kernel, grid, block, shared_bytes, args),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.launch(kernel, grid, block, shared_bytes, args),
        }
    }

    /// Waits for all queued work (a no-op on the emulated GPU, which is synchronous).
    pub fn synchronize(&self) -> Result<(), KernelError> {
        match &self.inner.backend {
            Backend::Cuda(b) => b.synchronize(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(()),
        }
    }

    fn check_owner(&self, buf: &GpuBuffer) -> Result<(), KernelError> {
        if Arc::ptr_eq(&self.inner, &buf.device.inner) {
            Ok(())
        } else {
            Err(self.mismatch(buf))
        }
    }

    fn mismatch(&self, buf: &GpuBuffer) -> KernelError {
        KernelError::DeviceMismatch {
            device: self.label(),
            buffer_device: buf.device.label(),
        }
    }
}
