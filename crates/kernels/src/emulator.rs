//! The emulated-GPU backend (ARCHITECTURE.md, "The emulated GPU"): kernels/*.cu compiled by the
//! host C++ compiler and run as cooperative fibers by `kernels/emulator/emu_runtime.cpp`,
//! launched through `emu_launch`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

use crate::buffer::{BufferMem, GpuBuffer, HostAlloc, KernelArg};
use crate::family::KernelFamily;
use crate::KernelError;

extern "C" {
    fn emu_launch(
        name: *const c_char,
        gx: u32,
        gy: u32,
        gz: u32,
        bx: u32,
        by: u32,
        bz: u32,
        shared_bytes: u32,
        params: *mut *mut c_void,
    ) -> c_int;
    fn emu_kernel_signature(name: *const c_char) -> *const c_char;
    fn emu_kernel_name(module: *const c_char, i: usize) -> *const c_char;
}

/// Every kernel `family` defines, as compiled into the emulated GPU (found by the build
/// script in the preprocessed source: every `extern "C" __global__ void`).
/// In source order.
pub fn emulated_kernel_names(family: KernelFamily) -> Vec<String> {
    let Ok(module) = CString::new(family.name()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for i in 0.. {
        // SAFETY: `module` is NUL-terminated; `emu_kernel_name` reads the static,
        // null-terminated generated tables and returns either null or a pointer to a static
        // NUL-terminated string literal.
        let p = unsafe { emu_kernel_name(module.as_ptr(), i) };
        if p.is_null() {
            break;
        }
        // SAFETY: non-null results point at static NUL-terminated literals (see above).
        names.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
    }
    names
}

/// The address `offset` bytes into an emulated buffer, as kernel-argument bytes.
fn host_ptr(kernel: &str, buf: &GpuBuffer, offset: usize) -> Result<Vec<u8>, KernelError> {
    match buf.mem() {
        // `offset ≤ len_bytes` was checked by the device; only the address is computed here.
        BufferMem::Host(h) => Ok((h.as_ptr() as usize + offset).to_ne_bytes().to_vec()),
        BufferMem::Cuda(_) => Err(KernelError::Launch {
            kernel: kernel.to_string(),
            reason: "a real-GPU buffer passed to the emulated GPU".to_string(),
        }),
    }
}

pub(crate) struct EmuBackend {
    /// Serialises launches and copies, like one CUDA stream.
    exec: Mutex<()>,
}

impl EmuBackend {
    pub(crate) fn new() -> EmuBackend {
        EmuBackend {
            exec: Mutex::new(()),
        }
    }

    /// Copies `bytes` to the start of `mem`, which holds at least as many.
    pub(crate) fn write(&self, mem: &HostAlloc, bytes: &[u8]) {
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `mem` holds at least `bytes.len()` bytes (checked by the caller) and is owned
        // by the caller alone, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr(), bytes.len()) };
    }

    /// `out.len()` equals the buffer's logical size, which is ≤ its allocation (checked by the
    /// caller).
    pub(crate) fn download(&self, mem: &HostAlloc, out: &mut [u8]) {
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the allocation holds at least `out.len()` bytes; no kernel runs while the
        // `exec` lock is held, so nothing writes the source during the copy.
        unsafe { std::ptr::copy_nonoverlapping(mem.as_ptr(), out.as_mut_ptr(), out.len()) };
    }

    pub(crate) fn launch(
        &self,
        kernel: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &[KernelArg],
    ) -> Result<(), KernelError> {
        let fail = |reason: String| KernelError::Launch {
            kernel: kernel.to_string(),
            reason,
        };
        let c_name = CString::new(kernel).map_err(|_| fail("name contains a NUL byte".into()))?;
        // SAFETY: `c_name` is NUL-terminated; the result is null or a static string literal.
        let sig = unsafe { emu_kernel_signature(c_name.as_ptr()) };
        if sig.is_null() {
            return Err(fail("no such kernel in the emulated GPU".into()));
        }
        // SAFETY: non-null signatures are static NUL-terminated literals.
        let sig = unsafe { CStr::from_ptr(sig) }
            .to_string_lossy()
            .into_owned();
        let expected: Vec<&str> = sig.split(',').filter(|s| !s.is_empty()).collect();
        if expected.len() != args.len() {
            return Err(fail(format!(
                "{} arguments given, the kernel takes {} ({sig})",
                args.len(),
                expected.len()
            )));
        }
        let mut slots = vec![0u64; args.len()];
        for (i, (arg, want)) in args.iter().zip(&expected).enumerate() {
            let (code, bytes): (&str, Vec<u8>) = match arg {
                KernelArg::Buffer(buf) => ("ptr", host_ptr(kernel, buf, 0)?),
                KernelArg::BufferAt(buf, offset) => ("ptr", host_ptr(kernel, buf, *offset)?),
                KernelArg::I32(v) => ("i32", v.to_ne_bytes().to_vec()),
                KernelArg::U32(v) => ("u32", v.to_ne_bytes().to_vec()),
                KernelArg::I64(v) => ("i64", v.to_ne_bytes().to_vec()),
                KernelArg::U64(v) => ("u64", v.to_ne_bytes().to_vec()),
                KernelArg::F32(v) => ("f32", v.to_ne_bytes().to_vec()),
                KernelArg::F64(v) => ("f64", v.to_ne_bytes().to_vec()),
            };
            if code != *want {
                return Err(fail(format!(
                    "argument {i} is {code}, the kernel expects {want} ({sig})"
                )));
            }
            let mut slot = [0u8; 8];
            slot[..bytes.len()].copy_from_slice(&bytes);
            slots[i] = u64::from_ne_bytes(slot);
        }
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `params[i]` points at an 8-byte aligned slot holding argument i in the
        // C type the generated wrapper reads (types checked against the kernel's signature
        // above; the value occupies the slot's first bytes). Buffer pointers are live host
        // allocations of this device. The call is synchronous, so slots and buffers outlive it;
        // the `exec` lock keeps copies out while kernels run.
        let rc = unsafe {
            emu_launch(
                c_name.as_ptr(),
                grid.0,
                grid.1,
                grid.2,
                block.0,
                block.1,
                block.2,
                shared_bytes,
                params.as_mut_ptr(),
            )
        };
        match rc {
            0 => Ok(()),
            1 => Err(fail("no such kernel in the emulated GPU".into())),
            2 => Err(fail(format!(
                "invalid launch configuration: grid {grid:?}, block {block:?}, {shared_bytes} \
                 bytes of shared memory"
            ))),
            3 => Err(fail(
                "barrier deadlock: threads wait at barriers that can never complete".into(),
            )),
            4 => Err(fail(
                "the emulator ran out of memory for fiber stacks or threads".into(),
            )),
            other => Err(fail(format!("emulator returned status {other}"))),
        }
    }
}
