//! Run-time compilation with NVRTC: PTX for loading, CUBIN + ptxas log for resource checks.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result, sys};

use crate::disk_cache::{self, CachedOutput, DiskCache};
use crate::error::panic_message;
use crate::family::{KernelFamily, ModuleKey};
use crate::KernelError;

/// Whether libnvrtc can be loaded. cudarc panics on first use when it cannot, so every NVRTC
/// entry point of this crate checks this first.
pub fn nvrtc_available() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names; it does not
    // call into the library and has no preconditions.
    unsafe { sys::is_culib_present() }
}

/// The architectures NVRTC can compile for, as `major·10 + minor` (e.g. 90 for `sm_90`).
pub fn supported_archs() -> Result<Vec<u32>, KernelError> {
    nvrtc_version()?; // loads libnvrtc or explains why it cannot
    let mut count = 0;
    // SAFETY: libnvrtc is loaded and `count` is a valid out-pointer for the call.
    unsafe { sys::nvrtcGetNumSupportedArchs(&mut count) }.result()?;
    let mut archs = vec![0; usize::try_from(count).unwrap_or(0)];
    // SAFETY: `archs` holds exactly the `count` entries NVRTC reported.
    unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }.result()?;
    Ok(archs
        .into_iter()
        .filter_map(|a| u32::try_from(a).ok())
        .collect())
}

/// Compiles `family` to PTX for `arch` (e.g. `"sm_90"`), cached per process and (family, arch).
pub fn compile_ptx(family: KernelFamily, arch: &str) -> Result<String, KernelError> {
    compile_module_ptx(ModuleKey::Family(family), arch).map(|p| p.to_string())
}

/// Compiles `family` to CUBIN (SASS) for the real architecture `arch`, cached per process.
pub fn compile_cubin(family: KernelFamily, arch: &str) -> Result<Vec<u8>, KernelError> {
    compile_module_cubin(ModuleKey::Family(family), arch).map(|c| c.to_vec())
}

/// Every kernel `family` defines, as NVRTC compiles it for `arch`: the `.entry` points of its
/// PTX, in source order.
pub fn compiled_kernel_names(family: KernelFamily, arch: &str) -> Result<Vec<String>, KernelError> {
    let ptx = compile_module_ptx(ModuleKey::Family(family), arch)?;
    Ok(ptx_entry_names(&ptx))
}

/// The names of the `.entry` points of a PTX module (`.visible .entry name(`).
pub fn ptx_entry_names(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|line| line.split(".entry ").nth(1))
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Compiles an arbitrary CUDA source to PTX (not cached). `name` labels errors.
pub fn compile_source(name: &str, source: &str, arch: &str) -> Result<String, KernelError> {
    let out = compile(name, source, arch, Output::Ptx)?;
    Ok(image_to_string(out.image))
}

/// Compiles `family` to CUBIN for `arch` with `--ptxas-options=-v` and returns the program log,
/// which holds ptxas's register, stack and spill report for every kernel.
pub fn compile_cubin_log(family: KernelFamily, arch: &str) -> Result<String, KernelError> {
    let out = compile(family.name(), &family.source(), arch, Output::CubinVerbose)?;
    Ok(out.log)
}

/// The ptxas `-v` log of module `key` compiled to CUBIN for `arch` (the emulated GPU's
/// register check).
#[cfg(feature = "emulator")]
pub(crate) fn module_cubin_log(key: ModuleKey, arch: &str) -> Result<String, KernelError> {
    Ok(compile(key.name(), &key.source(), arch, Output::CubinVerbose)?.log)
}

type ImageCache = Mutex<HashMap<(ModuleKey, String, bool), Arc<[u8]>>>;

/// PTX of a module for `arch`, compiled once per process.
pub(crate) fn compile_module_ptx(key: ModuleKey, arch: &str) -> Result<Arc<str>, KernelError> {
    let image = cached_image(key, arch, Output::Ptx)?;
    Ok(Arc::from(String::from_utf8_lossy(&image).into_owned()))
}

/// CUBIN (SASS for the real architecture `arch`) of a module, compiled once per process.
/// Loading SASS needs no driver JIT, so it also works when NVRTC is newer than the driver,
/// which cannot JIT newer PTX (CUDA minor-version compatibility covers SASS only).
pub(crate) fn compile_module_cubin(key: ModuleKey, arch: &str) -> Result<Arc<[u8]>, KernelError> {
    cached_image(key, arch, Output::Cubin)
}

fn cached_image(key: ModuleKey, arch: &str, output: Output) -> Result<Arc<[u8]>, KernelError> {
    static CACHE: OnceLock<ImageCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let cache_key = (key, arch.to_string(), output == Output::Cubin);
    if let Some(image) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
    {
        return Ok(image.clone());
    }
    // Compile outside the lock: compilations of different modules may run in parallel.
    let out = compile(key.name(), &key.source(), arch, output)?;
    let image: Arc<[u8]> = match output {
        Output::Ptx => Arc::from(image_to_string(out.image).into_bytes()),
        _ => Arc::from(out.image),
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(cache_key, image.clone());
    Ok(image)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Ptx,
    Cubin,
    CubinVerbose,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Ptx => "ptx",
            Output::Cubin => "cubin",
            Output::CubinVerbose => "cubin with ptxas log",
        }
    }
}

/// NVRTC's version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32), KernelError> {
    if !nvrtc_available() {
        return Err(KernelError::NoNvrtc {
            reason: "libnvrtc could not be loaded".to_string(),
        });
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: libnvrtc is loaded (checked above) and both out-pointers are valid for the call.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result()?;
    Ok((major, minor))
}

/// What a compile produced: the image (PTX or CUBIN) and NVRTC's log.
type Compiled = CachedOutput;

fn image_to_string(image: Vec<u8>) -> String {
    let end = image.iter().position(|&b| b == 0).unwrap_or(image.len());
    String::from_utf8_lossy(&image[..end]).into_owned()
}

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `self.0` was created by `create_program` and is destroyed exactly once, here.
        // A failure to destroy only leaks the program, so the result is ignored.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn compile(name: &str, source: &str, arch: &str, output: Output) -> Result<Compiled, KernelError> {
    // cudarc panics when libnvrtc lacks a symbol it expects (an older NVRTC): an error value.
    std::panic::catch_unwind(|| compile_unguarded(name, source, arch, output)).unwrap_or_else(
        |panic| {
            Err(KernelError::NoNvrtc {
                reason: format!("libnvrtc is unusable: {}", panic_message(&panic)),
            })
        },
    )
}

fn compile_unguarded(
    name: &str,
    source: &str,
    arch: &str,
    output: Output,
) -> Result<Compiled, KernelError> {
    if !nvrtc_available() {
        return Err(KernelError::NoNvrtc {
            reason: "libnvrtc could not be loaded: `pip install nvidia-cuda-nvrtc` and put \
                     site-packages/nvidia/cu13/lib on LD_LIBRARY_PATH, or install the CUDA toolkit"
                .to_string(),
        });
    }
    let compile_error = |log: String| KernelError::Compile {
        family: name.to_string(),
        arch: arch.to_string(),
        log,
    };
    let c_source =
        CString::new(source).map_err(|_| compile_error("source contains a NUL byte".into()))?;
    let c_name = CString::new(format!("{name}.cu"))
        .map_err(|_| compile_error("name contains a NUL byte".into()))?;
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
    ];
    if output == Output::CubinVerbose {
        options.push("--ptxas-options=-v".to_string());
    }
    let cache = DiskCache::from_env();
    let key = disk_cache::key(
        name,
        source,
        arch,
        output.name(),
        &options,
        nvrtc_version()?,
    );
    if let Some(hit) = cache.as_ref().and_then(|cache| cache.load(&key)) {
        return Ok(hit);
    }
    let options: Vec<CString> = options
        .into_iter()
        .map(|o| CString::new(o).map_err(|_| compile_error("option contains a NUL byte".into())))
        .collect::<Result<_, _>>()?;
    let program = Program(result::create_program(&c_source, Some(&c_name))?);
    // SAFETY: `program.0` is a live program created above (destroyed only when `program` drops)
    // and `options` are NUL-terminated strings that outlive the call.
    let compiled = unsafe { result::compile_program(program.0, &options) };
    // SAFETY: as above; the log is read before the program is destroyed.
    let log = unsafe { result::get_program_log(program.0) }
        .map(|raw| c_chars_to_string(&raw))
        .unwrap_or_default();
    if compiled.is_err() {
        return Err(compile_error(log));
    }
    let image = match output {
        // SAFETY: the program compiled successfully and is still alive.
        Output::Ptx => unsafe { result::get_ptx(program.0) }?
            .into_iter()
            .map(|c| c as u8)
            .collect(),
        Output::Cubin | Output::CubinVerbose => get_cubin(&program)?,
    };
    let compiled = Compiled { image, log };
    if let Some(cache) = &cache {
        cache.store(&key, &compiled);
    }
    Ok(compiled)
}

fn get_cubin(program: &Program) -> Result<Vec<u8>, KernelError> {
    let mut size = 0usize;
    // SAFETY: `program.0` is a live, successfully compiled program and `size` is a valid
    // out-pointer for the duration of the call.
    unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) }.result()?;
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` has exactly the `size` bytes NVRTC reported for this program.
    unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr() as *mut c_char) }.result()?;
    Ok(cubin)
}

fn c_chars_to_string(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}
