//! [`GpuDevice`]: one runtime over two backends, cudarc on a real GPU and the emulated GPU.
//! Devices are opened here and cached per process by `registry`. Every allocation, copy,
//! launch and synchronization of either backend goes through here, where it is counted
//! ([`GpuCounters`]) and where buffers are taken from the device's cache of free buffers.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::buffer::{BufferMem, DeviceId, GpuBuffer, KernelArg};
use crate::cache::{BufferCache, Classes};
use crate::counters::{Counters, GpuCounters};
use crate::cuda::CudaBackend;
#[cfg(feature = "emulator")]
use crate::emulator::EmuBackend;
use crate::error::panic_message;
use crate::family::ModuleKey;
use crate::launch::{Dim3, Launch};
use crate::launch_log::{LaunchLog, LaunchRecord};
use crate::precision::arch_number;
use crate::tile_counters::TileCounters;
use crate::{KernelError, Precision};

#[cfg(feature = "emulator")]
use crate::buffer::HostAlloc;

enum Backend {
    // Boxed: a real GPU's state is far larger than the emulator's handle.
    Cuda(Box<CudaBackend>),
    #[cfg(feature = "emulator")]
    Emulated(EmuBackend),
}

struct DeviceInner {
    backend: Backend,
    id: DeviceId,
    counters: Arc<Counters>,
    cache: Arc<BufferCache>,
    classes: Classes,
    /// The f32 GEMM precision ([`Precision::code`]).
    precision: AtomicU8,
    launch_log: LaunchLog,
    tile_counters: TileCounters,
}

/// Multiprocessors the emulated GPU reports (an H100 / H200).
#[cfg(feature = "emulator")]
const EMULATED_SM_COUNT: u32 = 132;

/// The most bytes of free buffers the emulated GPU keeps.
#[cfg(feature = "emulator")]
const EMULATED_CACHE_BYTES: usize = 1 << 30;

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
                .map(|backend| Backend::Cuda(Box::new(backend)))?
        };
        let counters = Arc::new(Counters::default());
        let (limit, free_calls, classes) = match &backend {
            // Half the device's memory, so other processes and the driver keep the rest.
            Backend::Cuda(b) => (b.total_memory()? / 2, b.free_calls(), Classes::Rounded),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => (EMULATED_CACHE_BYTES, 1, Classes::Exact),
        };
        let cache = Arc::new(BufferCache::new(counters.clone(), limit, free_calls));
        Ok(GpuDevice {
            inner: Arc::new(DeviceInner {
                backend,
                id,
                counters,
                cache,
                classes,
                precision: AtomicU8::new(Precision::Ieee.code()),
                launch_log: LaunchLog::default(),
                tile_counters: TileCounters::default(),
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

    /// Whether the device runs the `mma.sync` / `cp.async` kernels (compute capability 8.0 or
    /// newer, and the emulated GPU).
    pub fn has_tensor_cores(&self) -> bool {
        self.is_emulated() || arch_number(&self.arch()).is_some_and(|a| a >= 80)
    }

    /// The precision of the device's f32 matrix products ([`Precision::Ieee`] until set),
    /// shared by every handle to the device.
    pub fn matmul_precision(&self) -> Precision {
        Precision::from_code(self.inner.precision.load(Ordering::Relaxed))
    }

    /// Sets the precision of the device's f32 matrix products for the rest of the process (or
    /// until set again). The tensor-core modes need compute capability 8.0 or newer
    /// ([`KernelError::PrecisionUnsupported`] otherwise); the emulated GPU runs every mode.
    pub fn set_matmul_precision(&self, precision: Precision) -> Result<(), KernelError> {
        if precision.uses_tensor_cores() && !self.has_tensor_cores() {
            return Err(KernelError::PrecisionUnsupported {
                precision,
                device: self.label(),
                arch: self.arch(),
            });
        }
        self.inner
            .precision
            .store(precision.code(), Ordering::Relaxed);
        Ok(())
    }

    /// Multiprocessors of the GPU (132 for the emulated GPU, which models an H100 / H200).
    pub fn sm_count(&self) -> u32 {
        match &self.inner.backend {
            Backend::Cuda(b) => b.sm_count(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => EMULATED_SM_COUNT,
        }
    }

    /// Starts recording this device's launches (emptying an earlier record).
    pub fn start_launch_log(&self) {
        self.inner.launch_log.start();
    }

    /// The launches recorded since [`GpuDevice::start_launch_log`] (at most 65 536), and stops
    /// recording. Empty when recording was not started.
    pub fn take_launch_log(&self) -> Vec<LaunchRecord> {
        self.inner.launch_log.take()
    }

    /// At least `count` zeroed `unsigned` arrival counters for a split-K GEMM launch
    /// (`tile_counters` of `kernels/matmul.cu`: one per block tile and batch index). The device
    /// keeps one such buffer: it is allocated and zeroed on the first request (with room for at
    /// least one counter per SM) and again only for a request larger than it, and every
    /// completed launch leaves its counters at 0, so later requests cost no driver call. Launches
    /// using it must be ordered one after another (they are: one stream per device).
    pub fn gemm_tile_counters(&self, count: usize) -> Result<Arc<GpuBuffer>, KernelError> {
        let floor = usize::try_from(self.sm_count()).unwrap_or(usize::MAX);
        self.inner.tile_counters.get(self, count, floor)
    }

    /// Forgets the kept split-K counters, so the next [`GpuDevice::gemm_tile_counters`] makes
    /// zeroed ones: for after a GEMM launch failed part-way, which may have left some non-zero.
    pub fn discard_gemm_tile_counters(&self) {
        self.inner.tile_counters.discard();
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

    /// Frees the buffers the device keeps for reuse (dropped buffers are kept, up to half the
    /// memory of a real GPU, and reused by later allocations of the same size class); returns
    /// how many bytes that released. Allocations do this themselves before failing for lack of
    /// memory.
    pub fn release_cached(&self) -> usize {
        self.inner.cache.release()
    }

    /// Bytes of dropped buffers the device keeps for reuse.
    pub fn cached_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    /// Memory for a `bytes`-byte buffer, with its size class: a kept buffer of that class, else
    /// a new allocation (after freeing the kept buffers, if the first attempt runs out of
    /// memory). Uninitialised: what an earlier buffer held on a real GPU, [`GARBAGE`] bytes
    /// (NaN) on the emulated one.
    ///
    /// [`GARBAGE`]: crate::buffer::GARBAGE
    fn memory(&self, bytes: usize) -> Result<(usize, BufferMem), KernelError> {
        let class = self
            .inner
            .classes
            .of(bytes)
            .ok_or(KernelError::OutOfMemory { bytes })?;
        if let Some(mem) = self.inner.cache.take(class) {
            self.count().reuse();
            #[cfg(feature = "emulator")]
            if let (Backend::Emulated(e), BufferMem::Host(h)) = (&self.inner.backend, &mem) {
                // Launches still queued may read this memory (asynchronous mode): they run
                // first, as a real GPU's stream orders them before the next use.
                e.synchronize()?;
                h.fill(crate::buffer::GARBAGE);
            }
            return Ok((class, mem));
        }
        let mem = match self.allocate(class) {
            Err(KernelError::OutOfMemory { .. }) => {
                self.inner.cache.release();
                self.allocate(class)
            }
            other => other,
        }
        .map_err(|e| match e {
            KernelError::OutOfMemory { .. } => KernelError::OutOfMemory { bytes },
            e => e,
        })?;
        self.count().allocation(class);
        Ok((class, mem))
    }

    fn allocate(&self, class: usize) -> Result<BufferMem, KernelError> {
        Ok(match &self.inner.backend {
            Backend::Cuda(b) => BufferMem::Cuda(b.alloc(class)?),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => BufferMem::Host(HostAlloc::uninit(class)?),
        })
    }

    fn buffer(&self, bytes: usize, class: usize, mem: BufferMem) -> GpuBuffer {
        GpuBuffer::new(self.id(), bytes, class, mem, self.inner.cache.clone())
    }

    /// Allocates `bytes` uninitialised bytes, for a kernel to write every byte of before any
    /// is read: on a real GPU they hold whatever an earlier buffer left, on the emulated GPU
    /// bytes `0xff` (NaN in both float types), so a kernel that reads what it did not write
    /// gives NaN in tests. No driver call when a kept buffer of its size class is reused.
    pub fn alloc(&self, bytes: usize) -> Result<GpuBuffer, KernelError> {
        let (class, mem) = self.memory(bytes)?;
        Ok(self.buffer(bytes, class, mem))
    }

    /// Allocates `bytes` zeroed bytes (an uninitialised buffer and one memset), for kernels
    /// that accumulate into their output.
    pub fn alloc_zeros(&self, bytes: usize) -> Result<GpuBuffer, KernelError> {
        let (class, mut mem) = self.memory(bytes)?;
        if bytes > 0 {
            match (&self.inner.backend, &mut mem) {
                (Backend::Cuda(b), BufferMem::Cuda(m)) => b.zero(m, bytes)?,
                #[cfg(feature = "emulator")]
                (Backend::Emulated(_), BufferMem::Host(h)) => h.fill(0),
                #[cfg(feature = "emulator")]
                _ => return Err(self.mismatch_kind()),
            }
            self.count().memset();
        }
        Ok(self.buffer(bytes, class, mem))
    }

    /// Copies `bytes` from the host into a new buffer.
    pub fn upload(&self, bytes: &[u8]) -> Result<GpuBuffer, KernelError> {
        let (class, mut mem) = self.memory(bytes.len())?;
        if !bytes.is_empty() {
            match (&self.inner.backend, &mut mem) {
                (Backend::Cuda(b), BufferMem::Cuda(m)) => b.write(m, bytes)?,
                #[cfg(feature = "emulator")]
                (Backend::Emulated(e), BufferMem::Host(h)) => {
                    if h.len() < bytes.len() {
                        return Err(KernelError::SizeMismatch {
                            buffer_bytes: h.len(),
                            host_bytes: bytes.len(),
                        });
                    }
                    e.write(h, bytes)
                }
                #[cfg(feature = "emulator")]
                _ => return Err(self.mismatch_kind()),
            }
            self.count().copy(bytes.len());
        }
        Ok(self.buffer(bytes.len(), class, mem))
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
            (Backend::Emulated(e), BufferMem::Host(h)) => e.download(h, out),
            #[cfg(feature = "emulator")]
            _ => Err(self.mismatch(buf)),
        }
    }

    /// Runs `launch`. Its arguments must match the kernel's C parameters (documented in
    /// `kernels/*.cu`); the emulated GPU checks their count and types. Asynchronous on a real
    /// GPU (ordered on the device's stream); synchronous when emulated, unless
    /// `CURVATURE_EMU_ASYNC=1` queues it until the next synchronize or copy to the host.
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

    /// [`GpuDevice::launch_testing`] with `shared_bytes` of dynamic shared memory per block.
    #[doc(hidden)]
    pub fn launch_testing_shared(
        &self,
        kernel: &str,
        (grid, block): (Dim3, Dim3),
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        self.launch_module(ModuleKey::Testing, kernel, grid, block, shared_bytes, args)
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
                KernelArg::Struct(s) => {
                    for buf in s.buffers() {
                        self.check_owner(buf)?;
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
        self.inner.launch_log.record(kernel, grid, block, args);
        match &self.inner.backend {
            Backend::Cuda(b) => b.launch(key, kernel, grid, block, shared_bytes, args),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.launch(key, kernel, grid, block, shared_bytes, args),
        }?;
        if sync_after_each_launch() {
            // A fault is otherwise reported by whichever later call waits on the GPU.
            self.synchronize().map_err(|e| KernelError::Launch {
                kernel: kernel.escape_default().to_string(),
                reason: format!(
                    "failed when run (CURVATURE_CUDA_SYNC=1): grid {grid:?}, block {block:?}, \
                     {shared_bytes} bytes of dynamic shared memory, arguments {args:?}: {e}"
                ),
            })?;
        }
        Ok(())
    }

    /// Waits for all queued work (on the emulated GPU: runs the launches queued in its
    /// asynchronous mode, `CURVATURE_EMU_ASYNC=1`).
    pub fn synchronize(&self) -> Result<(), KernelError> {
        self.count().sync();
        match &self.inner.backend {
            Backend::Cuda(b) => b.synchronize(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.synchronize(),
        }
    }

    fn check_owner(&self, buf: &GpuBuffer) -> Result<(), KernelError> {
        if buf.owner() == self.id() {
            Ok(())
        } else {
            Err(self.mismatch(buf))
        }
    }

    /// Memory of the other backend's kind (never made by this device's own allocations).
    #[cfg(feature = "emulator")]
    fn mismatch_kind(&self) -> KernelError {
        KernelError::DeviceMismatch {
            device: self.label(),
            buffer_device: "the other kind of GPU".to_string(),
        }
    }

    fn mismatch(&self, buf: &GpuBuffer) -> KernelError {
        KernelError::DeviceMismatch {
            device: self.label(),
            buffer_device: buf.owner().to_string(),
        }
    }
}

/// Whether `CURVATURE_CUDA_SYNC=1` asks for a synchronize after every launch, so an
/// asynchronous fault is reported by the launch that caused it, naming the kernel and its
/// arguments (a debugging aid: it serialises the GPU).
fn sync_after_each_launch() -> bool {
    static SYNC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SYNC.get_or_init(|| std::env::var("CURVATURE_CUDA_SYNC").is_ok_and(|v| v == "1"))
}
