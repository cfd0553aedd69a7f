//! The real-GPU backend, on cudarc: a context and stream per device, modules loaded from
//! NVRTC's CUBIN (PTX as a fallback) and cached per device.
//!
//! All work of a device is ordered on its one stream, so cudarc's event tracking (an event
//! pair per allocation, a wait and a record per buffer argument of each launch, which only
//! matter between streams) is turned off, and a buffer freed on the stream can be reused by
//! later work on it. The driver's memory pool keeps freed memory instead of returning it to
//! the system at every synchronization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::{CUdevice_attribute, CUmemPool_attribute, CUresult};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, DevicePtr, DeviceRepr, DriverError,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::buffer::{BufferMem, CudaBuffer, GpuBuffer, KernelArg, StructArg};
use crate::family::ModuleKey;
use crate::nvrtc::{
    compile_module_cubin, compile_module_ptx, nvrtc_available, nvrtc_version, supported_archs,
};
use crate::targets::{TargetPlan, Toolchain};
use crate::KernelError;

pub(crate) struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    /// The images this GPU's modules are loaded from.
    targets: TargetPlan,
    name: String,
    /// Whether the device has stream-ordered allocation (memory pools).
    memory_pools: bool,
    /// Multiprocessors of the GPU.
    sm_count: u32,
    modules: Mutex<HashMap<ModuleKey, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(ModuleKey, String), CudaFunction>>,
}

fn driver_present() -> bool {
    // SAFETY: only tries to dlopen libcuda's candidate names; no other precondition.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

fn oom_or(bytes: usize) -> impl Fn(DriverError) -> KernelError {
    move |e| {
        if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            KernelError::OutOfMemory { bytes }
        } else {
            KernelError::Driver(e)
        }
    }
}

/// The cudarc allocation behind a buffer of this (real) device.
fn cuda_slice<'b>(kernel: &str, buf: &'b GpuBuffer) -> Result<&'b CudaBuffer, KernelError> {
    match buf.mem() {
        BufferMem::Cuda(slice) => Ok(slice),
        // Only reachable with the `emulator` feature (host buffers).
        #[allow(unreachable_patterns)]
        _ => Err(KernelError::Launch {
            kernel: kernel.to_string(),
            reason: "an emulated buffer passed to a real GPU".to_string(),
        }),
    }
}

/// Sets the release threshold of the device's default memory pool to its maximum, so memory
/// freed on the stream stays in the pool for the next allocation instead of going back to the
/// system at every synchronization (the default threshold is 0).
fn keep_pool_memory(ctx: &CudaContext) -> Result<(), KernelError> {
    let mut threshold = u64::MAX;
    // SAFETY: `cu_device` is the context's device, which supports memory pools (checked by the
    // caller); the release threshold attribute is a `cuuint64_t`, and `threshold` is one that
    // outlives the call.
    unsafe {
        let pool = cudarc::driver::result::device::get_default_mem_pool(ctx.cu_device())?;
        cudarc::driver::result::mem_pool::set_attribute(
            pool,
            CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )?;
    }
    Ok(())
}

impl CudaBackend {
    pub(crate) fn new(ordinal: usize) -> Result<CudaBackend, KernelError> {
        if !driver_present() {
            return Err(KernelError::NoDriver {
                reason: "libcuda (the NVIDIA driver) could not be loaded".to_string(),
            });
        }
        if !nvrtc_available() {
            return Err(KernelError::NoDriver {
                reason: "libnvrtc could not be loaded (kernels are compiled at run time)"
                    .to_string(),
            });
        }
        let no_device = |e: DriverError| KernelError::NoDriver {
            reason: format!("cannot open CUDA device {ordinal}: {e}"),
        };
        let count = CudaContext::device_count().map_err(no_device)?;
        if ordinal >= usize::try_from(count).unwrap_or(0) {
            return Err(KernelError::NoDriver {
                reason: format!("CUDA device {ordinal} requested, {count} present"),
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(no_device)?;
        // SAFETY: before any stream or allocation exists. The device uses one stream only, so
        // no buffer is ever used on two streams: every use, copy and free is ordered on it.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx.compute_capability()?;
        let name = ctx.name()?;
        let toolchain = Toolchain {
            gpu: (major.unsigned_abs(), minor.unsigned_abs()),
            nvrtc_archs: supported_archs()?,
            driver: driver_version()?,
            nvrtc: nvrtc_version().map(|(a, b)| (a.unsigned_abs(), b.unsigned_abs()))?,
        };
        let targets = toolchain.plan(&name)?;
        let memory_pools =
            ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED)? > 0;
        if memory_pools {
            keep_pool_memory(&ctx)?;
        }
        let sm_count = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?
            .max(1)
            .unsigned_abs();
        // A non-default stream, so work can later be captured into CUDA graphs.
        let stream = ctx.new_stream()?;
        Ok(CudaBackend {
            ctx,
            stream,
            arch: format!("sm_{major}{minor}"),
            targets,
            name,
            memory_pools,
            sm_count,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn name(&self) -> String {
        self.name.clone()
    }

    /// The GPU's multiprocessor count.
    pub(crate) fn sm_count(&self) -> u32 {
        self.sm_count
    }

    pub(crate) fn arch(&self) -> &str {
        &self.arch
    }

    /// Driver calls one free takes: `cuMemFreeAsync`, or a synchronization and `cuMemFree`
    /// without memory pools.
    pub(crate) fn free_calls(&self) -> u64 {
        if self.memory_pools {
            1
        } else {
            2
        }
    }

    /// The device's memory in bytes.
    pub(crate) fn total_memory(&self) -> Result<usize, KernelError> {
        // SAFETY: `cu_device` is the device the context was created on.
        Ok(unsafe { cudarc::driver::result::device::total_mem(self.ctx.cu_device()) }?)
    }

    /// `bytes` uninitialised bytes (at least one, so every buffer has a valid device pointer).
    pub(crate) fn alloc(&self, bytes: usize) -> Result<CudaBuffer, KernelError> {
        // SAFETY: `u8` has no invalid bit patterns; kernels write outputs before reading them,
        // and buffers that must start at zero are zeroed by the caller.
        unsafe { self.stream.alloc::<u8>(bytes.max(1)) }.map_err(oom_or(bytes))
    }

    /// Zeroes the first `bytes` bytes of `buf` (at most its length), on the stream.
    pub(crate) fn zero(&self, buf: &mut CudaBuffer, bytes: usize) -> Result<(), KernelError> {
        let mut view = buf.slice_mut(..bytes.min(buf.len()));
        self.stream.memset_zeros(&mut view)?;
        Ok(())
    }

    /// Copies `bytes` to the start of `buf`, on the stream.
    pub(crate) fn write(&self, buf: &mut CudaBuffer, bytes: &[u8]) -> Result<(), KernelError> {
        if bytes.len() > buf.len() {
            return Err(KernelError::SizeMismatch {
                buffer_bytes: buf.len(),
                host_bytes: bytes.len(),
            });
        }
        let mut view = buf.slice_mut(..bytes.len());
        self.stream.memcpy_htod(bytes, &mut view)?;
        Ok(())
    }

    /// `out` is non-empty and exactly the buffer's logical size (checked by the caller).
    pub(crate) fn download(&self, buf: &CudaBuffer, out: &mut [u8]) -> Result<(), KernelError> {
        let view = buf.slice(..out.len());
        self.stream.memcpy_dtoh(&view, out)?;
        self.stream.synchronize()?;
        Ok(())
    }

    pub(crate) fn synchronize(&self) -> Result<(), KernelError> {
        self.stream.synchronize()?;
        Ok(())
    }

    fn module(&self, key: ModuleKey) -> Result<Arc<CudaModule>, KernelError> {
        if let Some(m) = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(m.clone());
        }
        // SASS first (no driver JIT); PTX if there is no SASS or the driver rejects it.
        let mut failures = Vec::new();
        let mut loaded = None;
        if let Some(arch) = &self.targets.cubin {
            match compile_module_cubin(key, arch)
                .and_then(|cubin| Ok(self.ctx.load_module(Ptx::from_binary(cubin.to_vec()))?))
            {
                Ok(module) => loaded = Some(module),
                Err(e) => failures.push(format!("CUBIN for {arch}: {e}")),
            }
        }
        if loaded.is_none() {
            if let Some(arch) = &self.targets.ptx {
                match compile_module_ptx(key, arch)
                    .and_then(|ptx| Ok(self.ctx.load_module(Ptx::from_src(ptx.to_string()))?))
                {
                    Ok(module) => loaded = Some(module),
                    Err(e) => failures.push(format!("PTX for {arch}: {e}")),
                }
            }
        }
        let module = loaded.ok_or_else(|| KernelError::Launch {
            kernel: format!("module `{}`", key.name()),
            reason: format!(
                "no image loads on {} ({}): {}",
                self.name,
                self.arch,
                failures.join("; ")
            ),
        })?;
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        Ok(modules.entry(key).or_insert(module).clone())
    }

    fn function(&self, key: ModuleKey, kernel: &str) -> Result<CudaFunction, KernelError> {
        let fkey = (key, kernel.to_string());
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fkey)
        {
            return Ok(f.clone());
        }
        let module = self.module(key)?;
        let f = module
            .load_function(kernel)
            .map_err(|e| KernelError::Launch {
                kernel: kernel.to_string(),
                reason: format!("not found in module `{}`: {e}", key.name()),
            })?;
        self.functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fkey, f.clone());
        Ok(f)
    }

    pub(crate) fn launch(
        &self,
        key: ModuleKey,
        kernel: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        let func = self.function(key, kernel)?;
        // Scalars are stored first, so the builder can borrow them for the whole launch.
        let mut i32s = Vec::new();
        let mut u32s = Vec::new();
        let mut i64s = Vec::new();
        let mut u64s = Vec::new();
        let mut f32s = Vec::new();
        let mut f64s = Vec::new();
        let mut structs = Vec::new();
        for arg in args {
            match arg {
                KernelArg::Buffer(_) | KernelArg::BufferAt(..) => {}
                KernelArg::Struct(s) => {
                    let bytes = s.resolve(|buf, offset| {
                        let slice = cuda_slice(kernel, buf)?;
                        let (ptr, _sync) = slice.device_ptr(&self.stream);
                        Ok::<u64, KernelError>(ptr + offset as u64)
                    })?;
                    structs.push(ParamBlock::new(&bytes));
                }
                KernelArg::I32(v) => i32s.push(*v),
                KernelArg::U32(v) => u32s.push(*v),
                KernelArg::I64(v) => i64s.push(*v),
                KernelArg::U64(v) => u64s.push(*v),
                KernelArg::F32(v) => f32s.push(*v),
                KernelArg::F64(v) => f64s.push(*v),
            }
        }
        let mut views = Vec::new();
        for arg in args {
            if let KernelArg::BufferAt(buf, offset) = arg {
                views.push(cuda_slice(kernel, buf)?.slice(*offset..));
            }
        }
        let mut builder = self.stream.launch_builder(&func);
        let (mut ni32, mut nu32, mut ni64, mut nu64, mut nf32, mut nf64) = (0, 0, 0, 0, 0, 0);
        let mut nview = 0;
        let mut nstruct = 0;
        for arg in args {
            match arg {
                KernelArg::Buffer(buf) => {
                    builder.arg(cuda_slice(kernel, buf)?);
                }
                KernelArg::BufferAt(..) => {
                    builder.arg(&views[nview]);
                    nview += 1;
                }
                KernelArg::I32(_) => {
                    builder.arg(&i32s[ni32]);
                    ni32 += 1;
                }
                KernelArg::U32(_) => {
                    builder.arg(&u32s[nu32]);
                    nu32 += 1;
                }
                KernelArg::I64(_) => {
                    builder.arg(&i64s[ni64]);
                    ni64 += 1;
                }
                KernelArg::U64(_) => {
                    builder.arg(&u64s[nu64]);
                    nu64 += 1;
                }
                KernelArg::F32(_) => {
                    builder.arg(&f32s[nf32]);
                    nf32 += 1;
                }
                KernelArg::F64(_) => {
                    builder.arg(&f64s[nf64]);
                    nf64 += 1;
                }
                KernelArg::Struct(_) => {
                    builder.arg(&*structs[nstruct]);
                    nstruct += 1;
                }
            }
        }
        let cfg = LaunchConfig {
            grid_dim: grid,
            block_dim: block,
            shared_mem_bytes: shared_bytes,
        };
        // SAFETY: every pushed argument (device pointers of live buffers owned by this
        // context, scalars in the vectors above) outlives the launch call, which copies them.
        // Their number and types follow the kernel's documented C signature, which the caller
        // is responsible for (the emulated GPU checks it in CI); kernels bound their memory
        // accesses by the sizes passed to them.
        unsafe { builder.launch(cfg) }.map_err(|e| KernelError::Launch {
            kernel: kernel.to_string(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

/// The bytes of a struct kernel parameter, in a block as large as any (the driver copies as
/// many bytes as the kernel's parameter has, from the block's start) and aligned like any
/// field of a kernel's struct.
#[repr(C, align(16))]
struct ParamBlock([u8; StructArg::MAX_BYTES]);

impl ParamBlock {
    /// `bytes` (at most `StructArg::MAX_BYTES`, as `StructArg` guarantees) at the block's start.
    fn new(bytes: &[u8]) -> Box<ParamBlock> {
        let mut block = Box::new(ParamBlock([0; StructArg::MAX_BYTES]));
        let n = bytes.len().min(StructArg::MAX_BYTES);
        block.0[..n].copy_from_slice(&bytes[..n]);
        block
    }
}

// SAFETY: a plain byte array with C layout; the driver reads it as the kernel's parameter.
unsafe impl DeviceRepr for ParamBlock {}

/// The CUDA version the driver supports, `(major, minor)` (e.g. `(13, 0)` for a 580 driver).
fn driver_version() -> Result<(u32, u32), KernelError> {
    let mut version = 0;
    // SAFETY: the driver library is loaded (the context was created) and `version` is a valid
    // out-pointer for the call.
    let status = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
    if status != CUresult::CUDA_SUCCESS {
        return Err(KernelError::NoDriver {
            reason: format!("cuDriverGetVersion failed: {status:?}"),
        });
    }
    let version = version.unsigned_abs();
    Ok((version / 1000, version % 1000 / 10))
}
