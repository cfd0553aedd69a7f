//! Device memory and launch arguments, shared by both backends: [`GpuBuffer`] (a cudarc
//! allocation on a real GPU, a guarded host allocation on the emulated one) and [`KernelArg`].
//! A dropped buffer's memory goes back to its device's cache (`cache`), through [`Recycle`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use cudarc::driver::CudaSlice;

use crate::KernelError;

#[cfg(feature = "emulator")]
pub(crate) use host::{HostAlloc, GARBAGE};

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

/// Where a dropped buffer's memory goes: its device's cache of free buffers.
pub(crate) trait Recycle: Send + Sync {
    /// Takes back `mem`, an allocation of size class `class` (bytes).
    fn recycle(&self, class: usize, mem: BufferMem);
}

/// Device memory: a cudarc allocation on a real GPU, a 16-byte aligned host allocation on the
/// emulated one. On drop its memory returns to the device's cache of free buffers, to be
/// reused by the next allocation of its size class.
pub struct GpuBuffer {
    owner: DeviceId,
    len: usize,
    /// The size class of the allocation (at least `len` bytes).
    class: usize,
    /// Taken only in `drop`.
    mem: ManuallyDrop<BufferMem>,
    home: Arc<dyn Recycle>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        // SAFETY: `mem` is taken exactly once, here, and never used afterwards.
        let mem = unsafe { ManuallyDrop::take(&mut self.mem) };
        self.home.recycle(self.class, mem);
    }
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBuffer({} bytes on {})", self.len, self.owner)
    }
}

impl GpuBuffer {
    /// `len` bytes of `mem`, an allocation of size class `class`, returned to `home` on drop.
    pub(crate) fn new(
        owner: DeviceId,
        len: usize,
        class: usize,
        mem: BufferMem,
        home: Arc<dyn Recycle>,
    ) -> GpuBuffer {
        GpuBuffer {
            owner,
            len,
            class,
            mem: ManuallyDrop::new(mem),
            home,
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
    /// A struct passed by value (`struct name` in the kernel's signature), with the device
    /// addresses of buffers written into it at launch.
    Struct(&'a StructArg<'a>),
}

/// The bytes of a struct a kernel takes by value (its C layout, written by the caller), and the
/// buffers whose device addresses the runtime writes into it at launch: on a real GPU their
/// device pointers, on the emulated GPU their host addresses. A launch copies the bytes as
/// kernel parameters, so no upload precedes it.
///
/// ```
/// use curvature_kernels::{GpuDevice, StructArg};
///
/// # fn main() -> Result<(), curvature_kernels::KernelError> {
/// let Ok(dev) = GpuDevice::new(0).or_else(|_| GpuDevice::emulated()) else {
///     return Ok(());
/// };
/// let buf = dev.alloc_zeros(16)?;
/// let mut arg = StructArg::new(vec![0; 24])?;
/// arg.set_pointer(8, &buf, 4)?; // bytes 8..16 hold the address of byte 4 of `buf`
/// assert_eq!(arg.bytes().len(), 24);
/// assert!(arg.set_pointer(20, &buf, 0).is_err()); // past the end
/// assert!(StructArg::new(vec![0; StructArg::MAX_BYTES + 1]).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StructArg<'a> {
    bytes: Vec<u8>,
    pointers: Vec<StructPointer<'a>>,
}

/// A device address written into a [`StructArg`] at launch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StructPointer<'a> {
    /// Where in the struct's bytes the 8-byte address goes.
    pub(crate) at: usize,
    /// The buffer addressed.
    pub(crate) buffer: &'a GpuBuffer,
    /// Bytes into the buffer (at most its length).
    pub(crate) offset: usize,
}

impl<'a> StructArg<'a> {
    /// The most bytes of kernel parameters CUDA accepts on every architecture (4 KiB).
    pub const MAX_BYTES: usize = 4096;

    /// A struct of `bytes` (at most [`StructArg::MAX_BYTES`], a multiple of 8) with no
    /// pointers yet.
    pub fn new(bytes: Vec<u8>) -> Result<StructArg<'a>, KernelError> {
        if bytes.len() > Self::MAX_BYTES || bytes.len() % 8 != 0 || bytes.is_empty() {
            return Err(KernelError::InvalidStruct {
                reason: format!(
                    "{} bytes: a struct argument holds 8 to {} bytes, a multiple of 8",
                    bytes.len(),
                    Self::MAX_BYTES
                ),
            });
        }
        Ok(StructArg {
            bytes,
            pointers: Vec::new(),
        })
    }

    /// Writes, at launch, the device address `offset` bytes into `buffer` into bytes
    /// `at..at + 8` (8-byte aligned, inside the struct; `offset ≤ buffer.len_bytes()`).
    pub fn set_pointer(
        &mut self,
        at: usize,
        buffer: &'a GpuBuffer,
        offset: usize,
    ) -> Result<(), KernelError> {
        let fits = at % 8 == 0 && at.checked_add(8).is_some_and(|end| end <= self.bytes.len());
        if !fits {
            return Err(KernelError::InvalidStruct {
                reason: format!(
                    "a pointer at byte {at} of a {}-byte struct (it needs 8 aligned bytes)",
                    self.bytes.len()
                ),
            });
        }
        if offset > buffer.len_bytes() {
            return Err(KernelError::InvalidStruct {
                reason: format!(
                    "offset {offset} is past the end of a {}-byte buffer",
                    buffer.len_bytes()
                ),
            });
        }
        self.pointers.retain(|p| p.at != at);
        self.pointers.push(StructPointer { at, buffer, offset });
        Ok(())
    }

    /// The struct's bytes as the caller wrote them (the pointers are written at launch).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes with every pointer written: `address(buffer, offset)` gives the address.
    pub(crate) fn resolve<E>(
        &self,
        mut address: impl FnMut(&GpuBuffer, usize) -> Result<u64, E>,
    ) -> Result<Vec<u8>, E> {
        let mut bytes = self.bytes.clone();
        for p in &self.pointers {
            let value = address(p.buffer, p.offset)?;
            bytes[p.at..p.at + 8].copy_from_slice(&value.to_ne_bytes());
        }
        Ok(bytes)
    }

    /// The buffers the struct points into.
    pub(crate) fn buffers(&self) -> impl Iterator<Item = &'a GpuBuffer> + '_ {
        self.pointers.iter().map(|p| p.buffer)
    }
}

#[cfg(feature = "emulator")]
mod host {
    use std::alloc::{alloc, dealloc, Layout};
    use std::ffi::c_void;
    use std::ptr::NonNull;

    use crate::KernelError;

    extern "C" {
        fn emu_alloc(bytes: usize) -> *mut c_void;
        fn emu_free(p: *mut c_void, bytes: usize);
    }

    /// The byte uninitialised emulated memory is filled with: every `float` and `double` made
    /// of it is a NaN, so a kernel that reads an output it did not write gives NaN.
    pub(crate) const GARBAGE: u8 = 0xff;

    /// Device memory of the emulated GPU: filled with [`GARBAGE`], 16-byte aligned, and followed by an
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
        /// `bytes` bytes filled with [`GARBAGE`].
        pub(crate) fn uninit(bytes: usize) -> Result<HostAlloc, KernelError> {
            // SAFETY: `emu_alloc` has no preconditions; it returns null or a fresh mapping of
            // at least `bytes` bytes.
            let raw = unsafe { emu_alloc(bytes) };
            let mem = match NonNull::new(raw as *mut u8) {
                Some(ptr) => HostAlloc {
                    ptr,
                    bytes,
                    heap: None,
                },
                None => {
                    let layout = Layout::from_size_align(bytes.max(ALIGN), ALIGN)
                        .map_err(|_| KernelError::OutOfMemory { bytes })?;
                    // SAFETY: `layout` has a non-zero size.
                    let raw = unsafe { alloc(layout) };
                    let ptr = NonNull::new(raw).ok_or(KernelError::OutOfMemory { bytes })?;
                    HostAlloc {
                        ptr,
                        bytes,
                        heap: Some(layout),
                    }
                }
            };
            mem.fill(GARBAGE);
            Ok(mem)
        }

        /// Sets every byte to `byte`. The caller owns the allocation alone (fresh, or taken
        /// from the cache), so no kernel can be using it.
        pub(crate) fn fill(&self, byte: u8) {
            // SAFETY: the block holds `self.bytes` writable bytes, and nothing else refers to
            // them (see above).
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr(), byte, self.bytes) };
        }

        /// Size in bytes.
        pub(crate) fn len(&self) -> usize {
            self.bytes
        }

        pub(crate) fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }
    }

    impl Drop for HostAlloc {
        fn drop(&mut self) {
            match self.heap {
                // SAFETY: `ptr` came from `alloc(layout)` and is freed exactly once, here.
                Some(layout) => unsafe { dealloc(self.ptr.as_ptr(), layout) },
                // SAFETY: `ptr` came from `emu_alloc(self.bytes)` and is freed exactly once, here.
                None => unsafe { emu_free(self.ptr.as_ptr() as *mut c_void, self.bytes) },
            }
        }
    }
}
