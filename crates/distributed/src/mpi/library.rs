//! `libmpi` loaded at run time, for either of the two MPI ABIs in use: Open MPI's, whose
//! handles (`MPI_Comm`, `MPI_Datatype`, `MPI_Op`) are addresses of objects the library exports
//! (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`), and MPICH's (also Intel MPI's and MVAPICH's),
//! whose handles are `int` constants fixed by its `mpi.h`. Nothing here is needed at build time,
//! so the crate builds and runs without MPI; only a run that asks for MPI loads it.

use std::ffi::{c_char, c_int, c_void};

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use super::MpiError;

/// `MPI_SUCCESS` (0 in both ABIs).
pub(super) const MPI_SUCCESS: c_int = 0;

/// `MPI_THREAD_SERIALIZED` (2 in both ABIs: Open MPI's enum `SINGLE, FUNNELED, SERIALIZED,
/// MULTIPLE`, MPICH's `#define MPI_THREAD_SERIALIZED 2`).
pub(super) const MPI_THREAD_SERIALIZED: c_int = 2;

/// MPICH's handles (`mpi.h` of MPICH 4.0: `MPI_COMM_WORLD ((MPI_Comm)0x44000000)`, …).
mod mpich {
    use std::ffi::c_int;
    pub const COMM_WORLD: c_int = 0x4400_0000;
    pub const DOUBLE: c_int = 0x4c00_080b;
    pub const FLOAT: c_int = 0x4c00_040a;
    pub const BYTE: c_int = 0x4c00_010d;
    pub const SUM: c_int = 0x5800_0003;
}

/// The library names tried, in order, when `CURVATURE_MPI_LIB` does not name one: Open MPI
/// (`libmpi.so.40`), MPICH (`libmpi.so.12`, `libmpich.so.12`), then the unversioned names.
const CANDIDATES: [&str; 5] = [
    "libmpi.so.40",
    "libmpi.so.12",
    "libmpich.so.12",
    "libmpi.so",
    "libmpich.so",
];

/// The environment variable naming the MPI library to load instead of the candidates.
pub const MPI_LIBRARY_VAR: &str = "CURVATURE_MPI_LIB";

/// The MPI functions used, with the ABI's handle type `H`.
pub(super) struct Functions<H> {
    pub init_thread:
        unsafe extern "C" fn(*mut c_int, *mut *mut *mut c_char, c_int, *mut c_int) -> c_int,
    pub initialized: unsafe extern "C" fn(*mut c_int) -> c_int,
    pub finalized: unsafe extern "C" fn(*mut c_int) -> c_int,
    pub finalize: unsafe extern "C" fn() -> c_int,
    pub comm_rank: unsafe extern "C" fn(H, *mut c_int) -> c_int,
    pub comm_size: unsafe extern "C" fn(H, *mut c_int) -> c_int,
    pub allreduce: unsafe extern "C" fn(*const c_void, *mut c_void, c_int, H, H, H) -> c_int,
    pub bcast: unsafe extern "C" fn(*mut c_void, c_int, H, c_int, H) -> c_int,
    pub barrier: unsafe extern "C" fn(H) -> c_int,
    pub reduce_scatter_block:
        unsafe extern "C" fn(*const c_void, *mut c_void, c_int, H, H, H) -> c_int,
    pub allgather: unsafe extern "C" fn(*const c_void, c_int, H, *mut c_void, c_int, H, H) -> c_int,
    pub abort: unsafe extern "C" fn(H, c_int) -> c_int,
    /// `MPI_COMM_WORLD`.
    pub world: H,
    /// `MPI_DOUBLE`, `MPI_FLOAT`, `MPI_BYTE`.
    pub double: H,
    pub float: H,
    pub byte: H,
    /// `MPI_SUM`.
    pub sum: H,
    /// `MPI_IN_PLACE`, as an address (Open MPI `(void *) 1`, MPICH `(void *) -1`).
    pub in_place: usize,
}

/// The loaded library's functions, in its ABI.
pub(super) enum Abi {
    /// Handles are pointers to the library's predefined objects.
    OpenMpi(Functions<*mut c_void>),
    /// Handles are `int` constants.
    Mpich(Functions<c_int>),
}

/// An element type MPI reduces or moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Datatype {
    F64,
    F32,
    Byte,
}

/// The loaded MPI library: the `dlopen` handle (kept open for the process's life, since MPI
/// cannot be loaded twice) and its functions.
pub(super) struct MpiLibrary {
    pub abi: Abi,
    /// Which file was loaded, for messages.
    pub name: String,
    _library: Library,
}

// SAFETY: the handles are addresses of (Open MPI) or integers naming (MPICH) MPI's predefined
// objects, which are immutable and live as long as the library, which this value keeps open;
// the function pointers are plain code addresses. Every call through them is serialised by the
// owner (`Mpi` holds a mutex), as MPI_THREAD_SERIALIZED requires.
unsafe impl Send for MpiLibrary {}
// SAFETY: as for `Send`: shared references only read the handles and function pointers.
unsafe impl Sync for MpiLibrary {}

impl MpiLibrary {
    /// Loads `CURVATURE_MPI_LIB` or the first candidate that opens, with `RTLD_NOW |
    /// RTLD_GLOBAL` (Open MPI's components, loaded later by the library itself, resolve their
    /// symbols against it), and resolves every function and handle.
    pub fn load() -> Result<MpiLibrary, MpiError> {
        let names: Vec<String> = match std::env::var(MPI_LIBRARY_VAR) {
            Ok(name) if !name.is_empty() => vec![name],
            _ => CANDIDATES.iter().map(|s| s.to_string()).collect(),
        };
        MpiLibrary::load_from(&names)
    }

    /// Loads the first of `names` that opens (see [`MpiLibrary::load`]).
    pub fn load_from(names: &[String]) -> Result<MpiLibrary, MpiError> {
        let mut failures = Vec::new();
        for name in names {
            // SAFETY: opening an MPI library runs its initialisers, which only set up its own
            // state; nothing else in this process defines MPI's symbols.
            match unsafe { Library::open(Some(name.as_str()), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(library) => return MpiLibrary::resolve(library, name),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(MpiError::NotFound {
            tried: failures.join("; "),
        })
    }

    /// Resolves the functions and handles of `library` (the file `name`).
    fn resolve(library: Library, name: &str) -> Result<MpiLibrary, MpiError> {
        let missing = |symbol: &str, e: libloading::Error| MpiError::Symbol {
            library: name.to_string(),
            symbol: symbol.to_string(),
            reason: e.to_string(),
        };
        macro_rules! function {
            ($symbol:literal) => {{
                // SAFETY: the symbol is the MPI standard's C function of that name, and the
                // field it is stored in has the standard's C signature for this ABI's handles.
                let f = unsafe { library.get($symbol.as_bytes()) };
                *f.map_err(|e| missing($symbol, e))?
            }};
        }
        macro_rules! object {
            ($symbol:literal) => {{
                // SAFETY: the symbol is one of Open MPI's predefined objects; only its address
                // is taken (it is the handle), the object is never read here.
                let o = unsafe { library.get::<*mut c_void>($symbol.as_bytes()) };
                o.map_err(|e| missing($symbol, e))?.into_raw()
            }};
        }
        // SAFETY: looking a symbol up does not call it; only its presence is tested.
        let open_mpi = unsafe { library.get::<*mut c_void>(b"ompi_mpi_comm_world") }.is_ok();
        let abi = if open_mpi {
            Abi::OpenMpi(Functions {
                init_thread: function!("MPI_Init_thread"),
                initialized: function!("MPI_Initialized"),
                finalized: function!("MPI_Finalized"),
                finalize: function!("MPI_Finalize"),
                comm_rank: function!("MPI_Comm_rank"),
                comm_size: function!("MPI_Comm_size"),
                allreduce: function!("MPI_Allreduce"),
                bcast: function!("MPI_Bcast"),
                barrier: function!("MPI_Barrier"),
                reduce_scatter_block: function!("MPI_Reduce_scatter_block"),
                allgather: function!("MPI_Allgather"),
                abort: function!("MPI_Abort"),
                world: object!("ompi_mpi_comm_world"),
                double: object!("ompi_mpi_double"),
                float: object!("ompi_mpi_float"),
                byte: object!("ompi_mpi_byte"),
                sum: object!("ompi_mpi_op_sum"),
                in_place: 1,
            })
        } else {
            Abi::Mpich(Functions {
                init_thread: function!("MPI_Init_thread"),
                initialized: function!("MPI_Initialized"),
                finalized: function!("MPI_Finalized"),
                finalize: function!("MPI_Finalize"),
                comm_rank: function!("MPI_Comm_rank"),
                comm_size: function!("MPI_Comm_size"),
                allreduce: function!("MPI_Allreduce"),
                bcast: function!("MPI_Bcast"),
                barrier: function!("MPI_Barrier"),
                reduce_scatter_block: function!("MPI_Reduce_scatter_block"),
                allgather: function!("MPI_Allgather"),
                abort: function!("MPI_Abort"),
                world: mpich::COMM_WORLD,
                double: mpich::DOUBLE,
                float: mpich::FLOAT,
                byte: mpich::BYTE,
                sum: mpich::SUM,
                in_place: usize::MAX,
            })
        };
        Ok(MpiLibrary {
            abi,
            name: name.to_string(),
            _library: library,
        })
    }

    /// Which ABI the library speaks.
    pub fn abi_name(&self) -> &'static str {
        match self.abi {
            Abi::OpenMpi(_) => "Open MPI",
            Abi::Mpich(_) => "MPICH",
        }
    }
}

impl<H: Copy> Functions<H> {
    /// The handle of `datatype`.
    pub fn datatype(&self, datatype: Datatype) -> H {
        match datatype {
            Datatype::F64 => self.double,
            Datatype::F32 => self.float,
            Datatype::Byte => self.byte,
        }
    }
}

/// Runs `$body` with `$f` bound to the library's [`Functions`], whichever its ABI.
macro_rules! with_functions {
    ($library:expr, $f:ident => $body:expr) => {
        match &$library.abi {
            $crate::mpi::library::Abi::OpenMpi($f) => $body,
            $crate::mpi::library::Abi::Mpich($f) => $body,
        }
    };
}
pub(super) use with_functions;
