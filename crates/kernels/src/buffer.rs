//! Device memory and launch arguments, shared by both backends: [`GpuBuffer`] (a cudarc
//! allocation on a real GPU, a guarded host allocation on the emulated one) and [`KernelArg`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use cudarc::driver::CudaSlice;

use crate::counters::Counters;

#[cfg(feature = "emulator")]
pub(crate) use host::HostAlloc;

/// A real GPU's allocation.
pub(crate) type CudaBuffer = CudaSlice<u8>;

/// Which device of the process owns a buffer: there is one device per (kind, ordinal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DeviceId {
    /// The emulated GPU rather than a real one.
    pub(crate) emulated: bool,
    /// The ordinal the device was opened with.
    pub(crate) ordinal: usize,
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.emulated {
            write!(f, "emulated GPU #{}", self.ordinal)
        } else {
            write!(f, "CUDA device #{}", self.ordinal)
        }
    }
}

/// The memory behind a buffer, in the owning backend's form.
pub(crate) enum BufferMem {
    Cuda(CudaBuffer),
    #[cfg(feature = "emulator")]
    Host(HostAlloc),
}

/// Device memory: a cudarc allocation on a real GPU, a 16-byte aligned host allocation on the
/// emulated one. Freed on drop.
pub struct GpuBuffer {
    owner: DeviceId,
    len: usize,
    /// Taken only in `drop`.
    mem: ManuallyDrop<BufferMem>,
    counters: Arc<Counters>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        // SAFETY: `mem` is taken exactly once, here, and never used afterwards.
        let mem = unsafe { ManuallyDrop::take(&mut self.mem) };
        drop(mem);
        self.counters.free(1);
    }
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBuffer({} bytes on {})", self.len, self.owner)
    }
}

impl GpuBuffer {
    pub(crate) fn new(
        owner: DeviceId,
        len: usize,
        mem: BufferMem,
        counters: Arc<Counters>,
    ) -> GpuBuffer {
        GpuBuffer {
            owner,
            len,
            mem: ManuallyDrop::new(mem),
            counters,
        }
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// The device owning the buffer.
    pub(crate) fn owner(&self) -> DeviceId {
        self.owner
    }

    /// The backend's memory.
    pub(crate) fn mem(&self) -> &BufferMem {
        &self.mem
    }
}

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

#[cfg(feature = "emulator")]
mod host {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::ffi::c_void;
    use std::ptr::NonNull;

    use crate::KernelError;

    extern "C" {
        fn emu_alloc(bytes: usize) -> *mut c_void;
        fn emu_free(p: *mut c_void, bytes: usize);
    }

    /// Device memory of the emulated GPU: zero-initialised, 16-byte aligned, and followed by an
    /// inaccessible guard page (see `kernels/emulator/emu_memory.cpp`), so an out-of-bounds
    /// access by a kernel faults at once, with the kernel named on stderr, instead of
    /// corrupting memory. When no more mappings can be made (the kernel's map-count limit), it
    /// falls back to an unguarded heap block. Kernels write through its raw pointer, so no Rust
    /// reference to its bytes is held across a launch.
    pub(crate) struct HostAlloc {
        ptr: NonNull<u8>,
        bytes: usize,
        /// `Some` for the unguarded heap fallback.
        heap: Option<Layout>,
    }

    // SAFETY: `HostAlloc` uniquely owns its block; all access goes through the owning device,
    // which serialises launches and copies with its `exec` mutex.
    unsafe impl Send for HostAlloc {}
    // SAFETY: as above; shared references only hand out the raw pointer.
    unsafe impl Sync for HostAlloc {}

    /// Alignment of emulated allocations (like cudaMalloc's, at least 16 bytes).
    const ALIGN: usize = 16;

    impl HostAlloc {
        pub(crate) fn zeroed(bytes: usize) -> Result<HostAlloc, KernelError> {
            // SAFETY: `emu_alloc` has no preconditions; it returns null or a fresh zeroed
            // mapping of at least `bytes` bytes.
            let raw = unsafe { emu_alloc(bytes) };
            if let Some(ptr) = NonNull::new(raw as *mut u8) {
                return Ok(HostAlloc {
                    ptr,
                    bytes,
                    heap: None,
                });
            }
            let layout = Layout::from_size_align(bytes.max(ALIGN), ALIGN)
                .map_err(|_| KernelError::OutOfMemory { bytes })?;
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { alloc_zeroed(layout) };
            let ptr = NonNull::new(raw).ok_or(KernelError::OutOfMemory { bytes })?;
            Ok(HostAlloc {
                ptr,
                bytes,
                heap: Some(layout),
            })
        }

        pub(crate) fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }
    }

    impl Drop for HostAlloc {
        fn drop(&mut self) {
            match self.heap {
                // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed exactly once, here.
                Some(layout) => unsafe { dealloc(self.ptr.as_ptr(), layout) },
                // SAFETY: `ptr` came from `emu_alloc(self.bytes)` and is freed exactly once, here.
                None => unsafe { emu_free(self.ptr.as_ptr() as *mut c_void, self.bytes) },
            }
        }
    }
}
