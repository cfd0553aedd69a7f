//! The emulated-GPU backend (ARCHITECTURE.md, "The emulated GPU"): kernels/*.cu compiled by the
//! host C++ compiler and run as cooperative fibers by `kernels/emulator/emu_runtime.cpp`,
//! launched through `emu_launch`. Before a launch it checks registers × threads against the
//! SM's register file, with the register counts ptxas reports (when NVRTC is present).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

use crate::buffer::{BufferMem, GpuBuffer, HostAlloc, KernelArg};
use crate::family::{KernelFamily, ModuleKey};
use crate::KernelError;

/// Registers of one SM (H100 / H200), shared by the threads of the blocks it runs.
const SM_REGISTERS: u64 = 65_536;
/// The architecture whose ptxas register counts the emulated GPU enforces.
const REGISTER_ARCH: &str = "sm_90";

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
        nparams: usize,
    ) -> c_int;
    fn emu_synchronize() -> c_int;
    fn emu_error_message() -> *const c_char;
    fn emu_kernel_signature(name: *const c_char) -> *const c_char;
    fn emu_kernel_param_bytes(name: *const c_char, i: usize) -> usize;
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
    host_address(kernel, buf, offset).map(|a| a.to_ne_bytes().to_vec())
}

/// The address `offset` bytes into an emulated buffer.
fn host_address(kernel: &str, buf: &GpuBuffer, offset: usize) -> Result<u64, KernelError> {
    match buf.mem() {
        // `offset ≤ len_bytes` was checked by the device; only the address is computed here.
        BufferMem::Host(h) => Ok((h.as_ptr() as usize + offset) as u64),
        BufferMem::Cuda(_) => Err(KernelError::Launch {
            kernel: kernel.to_string(),
            reason: "a real-GPU buffer passed to the emulated GPU".to_string(),
        }),
    }
}

/// Whether the emulated kernels were compiled with FMA contraction into FMA instructions (the
/// build machine has FMA), as NVRTC contracts `a * b + c` on a GPU.
#[doc(hidden)]
pub fn emulator_contracts_fma() -> bool {
    cfg!(emu_fma)
}

/// The message of the emulator's last failed launch or synchronisation.
fn last_error() -> String {
    // SAFETY: `emu_error_message` returns a pointer to a static NUL-terminated buffer, written
    // only by launches and synchronisations, which the caller's `exec` lock keeps out.
    unsafe { CStr::from_ptr(emu_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Registers per thread of every kernel of `key` (ptxas for sm_90), once per process; `None`
/// when NVRTC is absent (the check is skipped, and a note says so once).
fn register_counts(key: ModuleKey) -> Option<HashMap<String, u32>> {
    type Cache = Mutex<HashMap<&'static str, Option<HashMap<String, u32>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .entry(key.name())
        .or_insert_with(|| {
            if !crate::nvrtc_available() {
                eprintln!(
                    "emulated GPU: register check skipped (libnvrtc not available to report \
                     the kernels' register counts)"
                );
                return None;
            }
            cached_register_counts(key)
        })
        .clone()
}

/// The register counts of `key` from ptxas's log (NVRTC's disk cache keeps the log, so only
/// the first process compiles it).
fn cached_register_counts(key: ModuleKey) -> Option<HashMap<String, u32>> {
    let log = crate::nvrtc::module_cubin_log(key, REGISTER_ARCH).ok()?;
    Some(parse_registers(&log))
}

/// Kernel name → registers per thread from a ptxas `-v` log ("Compiling entry function 'k'",
/// then "Used N registers").
fn parse_registers(log: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().map(str::to_string);
        } else if let (Some(name), Some(rest)) = (&current, line.split("Used ").nth(1)) {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                if rest.contains("registers") {
                    out.insert(name.clone(), n);
                }
            }
        }
    }
    out
}

/// Registers a block of `threads` threads takes: whole warps, each allocated in units of 256.
fn block_registers(regs_per_thread: u32, threads: u64) -> u64 {
    let per_warp = (u64::from(regs_per_thread) * 32).div_ceil(256) * 256;
    threads.div_ceil(32) * per_warp
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

    /// Runs the queued launches (asynchronous mode); their first error.
    pub(crate) fn synchronize(&self) -> Result<(), KernelError> {
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        self.synchronize_locked()
    }

    fn synchronize_locked(&self) -> Result<(), KernelError> {
        // SAFETY: no preconditions; runs launches whose argument slots the emulator copied and
        // whose buffers are still allocated (freeing a buffer runs the queue first).
        match unsafe { emu_synchronize() } {
            0 => Ok(()),
            _ => {
                let message = last_error();
                let kernel = message
                    .split('`')
                    .nth(1)
                    .unwrap_or("queued kernel")
                    .to_string();
                Err(KernelError::Launch {
                    kernel,
                    reason: message,
                })
            }
        }
    }

    /// `out.len()` equals the buffer's logical size, which is ≤ its allocation (checked by the
    /// caller). Runs the queued launches first.
    pub(crate) fn download(&self, mem: &HostAlloc, out: &mut [u8]) -> Result<(), KernelError> {
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        self.synchronize_locked()?;
        // SAFETY: the allocation holds at least `out.len()` bytes; no kernel runs while the
        // `exec` lock is held, so nothing writes the source during the copy.
        unsafe { std::ptr::copy_nonoverlapping(mem.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch(
        &self,
        key: ModuleKey,
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
        // One 8-byte aligned block per argument: an 8-byte slot, or a by-value struct's bytes.
        let mut slots: Vec<Vec<u64>> = Vec::with_capacity(args.len());
        for (i, (arg, want)) in args.iter().zip(&expected).enumerate() {
            let (code, bytes): (&str, Vec<u8>) = match arg {
                KernelArg::Struct(s) => (
                    "struct",
                    s.resolve(|buf, offset| host_address(kernel, buf, offset))?,
                ),
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
            if code == "struct" {
                // SAFETY: `i` is below the signature's parameter count (checked above), and
                // `c_name` names a compiled kernel, whose size table has an entry for each.
                let size = unsafe { emu_kernel_param_bytes(c_name.as_ptr(), i) };
                if size != bytes.len() {
                    return Err(fail(format!(
                        "argument {i} is a {}-byte struct, the kernel's is {size} bytes",
                        bytes.len()
                    )));
                }
            }
            let mut words = vec![0u64; bytes.len().div_ceil(8).max(1)];
            for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                *word = u64::from_ne_bytes(w);
            }
            slots.push(words);
        }
        let threads = u64::from(block.0) * u64::from(block.1) * u64::from(block.2);
        if let Some(regs) = register_counts(key).and_then(|m| m.get(kernel).copied()) {
            let needed = block_registers(regs, threads);
            if needed > SM_REGISTERS {
                return Err(fail(format!(
                    "too many resources requested: {threads} threads × {regs} registers \
                     ({needed} allocated) exceed the SM's {SM_REGISTERS} registers \
                     ({REGISTER_ARCH})"
                )));
            }
        }
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s.as_mut_ptr() as *mut c_void)
            .collect();
        let _guard = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `params[i]` points at an 8-byte aligned block holding argument i in the
        // C type the generated wrapper reads (types checked against the kernel's signature
        // above, a struct's size against the kernel's; a scalar occupies the first bytes). Buffer pointers are live host
        // allocations of this device. The emulator runs the kernel before returning, or (async
        // mode) copies the slots and runs it before any buffer is freed; the `exec` lock keeps
        // copies out while kernels run.
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
                params.len(),
            )
        };
        match rc {
            0 => Ok(()),
            2 => Err(fail(format!(
                "invalid launch configuration: {}",
                last_error()
            ))),
            _ => Err(fail(last_error())),
        }
    }
}
