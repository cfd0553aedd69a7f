//! [`GpuDevice`]: one runtime over two backends, cudarc on a real GPU and the emulated GPU.
//! Devices are opened here and cached per process by `registry`.

use std::fmt;
use std::sync::Arc;

use crate::buffer::{BufferMem, DeviceId, GpuBuffer, KernelArg};
use crate::counters::{Counters, GpuCounters};
use crate::cuda::CudaBackend;
#[cfg(feature = "emulator")]
use crate::emulator::EmuBackend;
use crate::error::panic_message;
use crate::family::ModuleKey;
use crate::launch::{Dim3, Launch};
use crate::KernelError;

#[cfg(feature = "emulator")]
use crate::buffer::HostAlloc;

enum Backend {
    Cuda(CudaBackend),
    #[cfg(feature = "emulator")]
    Emulated(EmuBackend),
}

struct DeviceInner {
    backend: Backend,
    id: DeviceId,
    counters: Arc<Counters>,
}

/// A GPU (real or emulated). Cheap to clone; the process has one device per ordinal and kind
/// (see [`GpuDevice::new`]), so every handle to it shares one context and module cache.
#[derive(Clone)]
pub struct GpuDevice {
    inner: Arc<DeviceInner>,
}

impl fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuDevice({})", self.label())
    }
}

impl GpuDevice {
    /// Opens the device `id` (uncached: `registry` keeps one per id).
    pub(crate) fn open(id: DeviceId) -> Result<GpuDevice, KernelError> {
        let backend = if id.emulated {
            Self::emulated_backend()?
        } else {
            // cudarc panics when a driver symbol it expects is missing (e.g. an older driver):
            // turn that into an error value too.
            std::panic::catch_unwind(|| CudaBackend::new(id.ordinal))
                .unwrap_or_else(|panic| {
                    Err(KernelError::NoDriver {
                        reason: format!("the CUDA driver is unusable: {}", panic_message(&panic)),
                    })
                })
                .map(Backend::Cuda)?
        };
        Ok(GpuDevice {
            inner: Arc::new(DeviceInner {
                backend,
                id,
                counters: Arc::default(),
            }),
        })
    }

    #[cfg(feature = "emulator")]
    fn emulated_backend() -> Result<Backend, KernelError> {
        Ok(Backend::Emulated(EmuBackend::new()))
    }

    #[cfg(not(feature = "emulator"))]
    fn emulated_backend() -> Result<Backend, KernelError> {
        Err(KernelError::NoEmulator)
    }

    /// Whether this is the emulated GPU.
    pub fn is_emulated(&self) -> bool {
        self.inner.id.emulated
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
        self.inner.id.ordinal
    }

    /// The architecture kernels are compiled for (`sm_90` on an H100; `emulated`).
    pub fn arch(&self) -> String {
        match &self.inner.backend {
            Backend::Cuda(b) => b.arch().to_string(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => "emulated".to_string(),
        }
    }

    /// The device's work counters so far (see [`GpuCounters`] for what each operation costs).
    pub fn counters(&self) -> GpuCounters {
        self.inner.counters.snapshot()
    }

    fn count(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn id(&self) -> DeviceId {
        self.inner.id
    }

    fn label(&self) -> String {
        format!("{} #{}", self.name(), self.ordinal())
    }

    /// Allocates `bytes` zeroed bytes.
    pub fn alloc_zeros(&self, bytes: usize) -> Result<GpuBuffer, KernelError> {
        let mem = match &self.inner.backend {
            Backend::Cuda(b) => BufferMem::Cuda(b.alloc_zeros(bytes)?),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => BufferMem::Host(HostAlloc::zeroed(bytes)?),
        };
        self.count().allocation(bytes);
        self.count().memset();
        Ok(GpuBuffer::new(
            self.id(),
            bytes,
            mem,
            self.inner.counters.clone(),
        ))
    }

    /// Copies `bytes` from the host into a new buffer.
    pub fn upload(&self, bytes: &[u8]) -> Result<GpuBuffer, KernelError> {
        let mem = match &self.inner.backend {
            Backend::Cuda(b) => BufferMem::Cuda(b.upload(bytes)?),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => BufferMem::Host(e.upload(bytes)?),
        };
        self.count().allocation(bytes.len());
        self.count().copy(bytes.len());
        Ok(GpuBuffer::new(
            self.id(),
            bytes.len(),
            mem,
            self.inner.counters.clone(),
        ))
    }

    /// Copies the whole of `buf` into `out` (which must have `buf.len_bytes()` bytes), after
    /// all work queued before it has finished.
    pub fn download(&self, buf: &GpuBuffer, out: &mut [u8]) -> Result<(), KernelError> {
        self.check_owner(buf)?;
        if out.len() != buf.len_bytes() {
            return Err(KernelError::SizeMismatch {
                buffer_bytes: buf.len_bytes(),
                host_bytes: out.len(),
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        self.count().copy(out.len());
        self.count().sync();
        match (&self.inner.backend, buf.mem()) {
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

    /// Runs `launch`. Its arguments must match the kernel's C parameters (documented in
    /// `kernels/*.cu`); the emulated GPU checks their count and types. Asynchronous on a real
    /// GPU (ordered on the device's stream); synchronous when emulated.
    pub fn launch(&self, launch: &Launch<'_>) -> Result<(), KernelError> {
        let kernel = launch.kernel();
        self.launch_module(
            ModuleKey::Family(kernel.family()),
            &kernel.name(),
            launch.grid(),
            launch.block(),
            launch.shared_bytes(),
            launch.arguments(),
        )
    }

    /// Launches a kernel of the test-only source `kernels/testing/race_test.cu`
    /// (`block_sum_nobarrier_f32`, `block_sum_barrier_f32`, `warp_sum_shfl_f32`,
    /// `divergent_barriers_f32`).
    #[doc(hidden)]
    pub fn launch_testing(
        &self,
        kernel: &str,
        grid: Dim3,
        block: Dim3,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        self.launch_module(ModuleKey::Testing, kernel, grid, block, 0, args)
    }

    fn launch_module(
        &self,
        key: ModuleKey,
        kernel: &str,
        grid: Dim3,
        block: Dim3,
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        for arg in args {
            match arg {
                KernelArg::Buffer(buf) => self.check_owner(buf)?,
                KernelArg::BufferAt(buf, offset) => {
                    self.check_owner(buf)?;
                    if *offset > buf.len_bytes() {
                        return Err(KernelError::Launch {
                            kernel: kernel.escape_default().to_string(),
                            reason: format!(
                                "offset {offset} is past the end of a {}-byte buffer",
                                buf.len_bytes()
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
        self.count().launch();
        match &self.inner.backend {
            Backend::Cuda(b) => b.launch(key, kernel, grid, block, shared_bytes, args),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.launch(kernel, grid, block, shared_bytes, args),
        }
    }

    /// Waits for all queued work (a no-op on the emulated GPU, which is synchronous).
    pub fn synchronize(&self) -> Result<(), KernelError> {
        self.count().sync();
        match &self.inner.backend {
            Backend::Cuda(b) => b.synchronize(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(()),
        }
    }

    fn check_owner(&self, buf: &GpuBuffer) -> Result<(), KernelError> {
        if buf.owner() == self.id() {
            Ok(())
        } else {
            Err(self.mismatch(buf))
        }
    }

    fn mismatch(&self, buf: &GpuBuffer) -> KernelError {
        KernelError::DeviceMismatch {
            device: self.label(),
            buffer_device: buf.owner().to_string(),
        }
    }
}
