//! The MPI back end: one process per rank, started by `mpirun` (Open MPI) or `mpiexec`
//! (MPICH), over the system's `libmpi` loaded at run time (`library.rs`), so building needs no
//! MPI and a machine without it gets [`MpiError::NotFound`] only when MPI is asked for.
//!
//! Collectives move host buffers: a tensor on a GPU is copied to the host, reduced by MPI and
//! copied back to its device. Every MPI call is serialised by a mutex (the library is
//! initialised with `MPI_THREAD_SERIALIZED`). A rank that fails calls [`Collective::abort`](crate::Collective::abort),
//! which prints its rank and error and ends every process of the job with `MPI_Abort` (exit
//! status 2): MPI has no other way to release ranks blocked in a collective.

mod collective;
pub(crate) mod library;

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use library::{with_functions, Datatype, MpiLibrary, MPI_SUCCESS, MPI_THREAD_SERIALIZED};

pub use library::MPI_LIBRARY_VAR;

/// The exit status of a job ended by a failed rank (the command line's status for errors).
pub const ABORT_STATUS: i32 = 2;

/// Set once MPI has been initialised in this process (it cannot be initialised twice).
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// What loading or calling MPI can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MpiError {
    /// No MPI library could be opened.
    #[error(
        "libmpi not found (install Open MPI or MPICH, or name the library in \
         {MPI_LIBRARY_VAR}): {tried}"
    )]
    NotFound { tried: String },
    /// The library lacks a function or object of the MPI standard.
    #[error("{library} has no symbol {symbol}: {reason}")]
    Symbol {
        library: String,
        symbol: String,
        reason: String,
    },
    /// MPI was already initialised in this process.
    #[error("MPI is already initialised in this process")]
    AlreadyInitialised,
    /// The library does not provide the thread level the back end needs.
    #[error("{library} provides MPI thread level {provided}, below MPI_THREAD_SERIALIZED")]
    ThreadLevel { library: String, provided: c_int },
    /// An MPI function returned an error code.
    #[error("{function} returned error code {code}")]
    Call { function: &'static str, code: c_int },
    /// A broadcast's root is not a rank of the job.
    #[error("root {root} is not a rank of the {size} ranks")]
    InvalidRoot { root: usize, size: usize },
    /// The buffers of a collective do not have the lengths it needs.
    #[error("{function}: a buffer of {send} elements cannot give {recv} on each of {size} ranks")]
    Lengths {
        function: &'static str,
        send: usize,
        recv: usize,
        size: usize,
    },
    /// A buffer has more elements than an MPI count (`int`) holds.
    #[error("{function}: {count} elements exceed MPI's count limit {}", c_int::MAX)]
    CountTooLarge {
        function: &'static str,
        count: usize,
    },
}

/// This process's rank in the MPI job that started it, as the launcher tells it before MPI is
/// initialised (Open MPI's `OMPI_COMM_WORLD_RANK`, MPICH's `PMI_RANK`, PMIx's `PMIX_RANK`);
/// `None` outside a launcher.
pub fn launcher_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
}

/// Whether this process was started by an MPI launcher: `mpirun` of Open MPI sets
/// `OMPI_COMM_WORLD_SIZE`, MPICH's Hydra `PMI_SIZE`, PMIx launchers `PMIX_RANK`.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|var| std::env::var_os(var).is_some())
}

/// MPI, initialised for this process: the job's `MPI_COMM_WORLD`, this process's rank in it
/// and its size. Dropping it finalises MPI.
pub struct Mpi {
    library: MpiLibrary,
    lock: Mutex<()>,
    rank: usize,
    size: usize,
}

/// An element type MPI moves: f32 and f64 (reduced), and bytes (moved).
trait MpiElement: Copy + Default {
    const DATATYPE: Datatype;
}

impl MpiElement for f64 {
    const DATATYPE: Datatype = Datatype::F64;
}

impl MpiElement for f32 {
    const DATATYPE: Datatype = Datatype::F32;
}

impl MpiElement for u8 {
    const DATATYPE: Datatype = Datatype::Byte;
}

/// `count` as an MPI count.
fn mpi_count(function: &'static str, count: usize) -> Result<c_int, MpiError> {
    c_int::try_from(count).map_err(|_| MpiError::CountTooLarge { function, count })
}

/// An MPI return code as a result.
fn check(function: &'static str, code: c_int) -> Result<(), MpiError> {
    if code == MPI_SUCCESS {
        Ok(())
    } else {
        Err(MpiError::Call { function, code })
    }
}

/// The largest number of elements one call moves (MPI counts are `int`).
const CHUNK: usize = c_int::MAX as usize;

impl Mpi {
    /// Loads `libmpi`, initialises MPI (`MPI_Init_thread`, `MPI_THREAD_SERIALIZED`) and reads
    /// this process's rank and the job's size. Once per process: a second call is
    /// [`MpiError::AlreadyInitialised`].
    pub fn init() -> Result<Mpi, MpiError> {
        Mpi::init_with(MpiLibrary::load()?)
    }

    /// [`Mpi::init`] with the MPI library at `path` (a file name the dynamic loader searches
    /// for, or a path).
    pub fn init_from(path: &str) -> Result<Mpi, MpiError> {
        Mpi::init_with(MpiLibrary::load_from(&[path.to_string()])?)
    }

    /// Initialises MPI from the loaded `library`.
    fn init_with(library: MpiLibrary) -> Result<Mpi, MpiError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(MpiError::AlreadyInitialised);
        }
        let (rank, size) = with_functions!(library, f => {
            let mut flag: c_int = 0;
            // SAFETY: MPI_Initialized may be called at any time; it writes one int.
            check("MPI_Initialized", unsafe { (f.initialized)(&mut flag) })?;
            if flag != 0 {
                return Err(MpiError::AlreadyInitialised);
            }
            let mut provided: c_int = 0;
            // SAFETY: null argc/argv are allowed by the standard; `provided` is a valid int.
            let code = unsafe {
                (f.init_thread)(
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    MPI_THREAD_SERIALIZED,
                    &mut provided,
                )
            };
            check("MPI_Init_thread", code)?;
            if provided < MPI_THREAD_SERIALIZED {
                return Err(MpiError::ThreadLevel {
                    library: library.name.clone(),
                    provided,
                });
            }
            let (mut rank, mut size): (c_int, c_int) = (0, 0);
            // SAFETY: MPI is initialised; `world` is MPI_COMM_WORLD; each call writes one int.
            check("MPI_Comm_rank", unsafe { (f.comm_rank)(f.world, &mut rank) })?;
            // SAFETY: as above.
            check("MPI_Comm_size", unsafe { (f.comm_size)(f.world, &mut size) })?;
            (rank, size)
        });
        let invalid = |function| MpiError::Call { function, code: -1 };
        let rank = usize::try_from(rank).map_err(|_| invalid("MPI_Comm_rank"))?;
        let size = usize::try_from(size).map_err(|_| invalid("MPI_Comm_size"))?;
        if size == 0 || rank >= size {
            return Err(invalid("MPI_Comm_size"));
        }
        Ok(Mpi {
            library,
            lock: Mutex::new(()),
            rank,
            size,
        })
    }

    /// Which MPI was loaded: the ABI and the library file.
    pub fn library(&self) -> String {
        format!("{} ({})", self.library.abi_name(), self.library.name)
    }

    /// This process's rank in `MPI_COMM_WORLD`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes of the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Holds the lock serialising MPI calls (a poisoned lock still serialises).
    fn serialised(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`MpiError::Lengths`] for buffers of `send` and `recv` elements.
    fn lengths(&self, function: &'static str, send: usize, recv: usize) -> MpiError {
        MpiError::Lengths {
            function,
            send,
            recv,
            size: self.size,
        }
    }

    /// `MPI_Allreduce` with `MPI_SUM`: the elementwise sum over ranks of `values`, in place.
    fn all_reduce_sum<T: MpiElement>(&self, values: &mut [T]) -> Result<(), MpiError> {
        let _guard = self.serialised();
        for chunk in values.chunks_mut(CHUNK) {
            let count = mpi_count("MPI_Allreduce", chunk.len())?;
            let code = with_functions!(self.library, f => {
                // SAFETY: MPI_IN_PLACE as the send buffer reduces `chunk` in place; `chunk`
                // holds `count` elements of the datatype passed; every rank calls with the
                // same count and datatype.
                unsafe {
                    (f.allreduce)(
                        std::ptr::without_provenance::<c_void>(f.in_place),
                        chunk.as_mut_ptr().cast::<c_void>(),
                        count,
                        f.datatype(T::DATATYPE),
                        f.sum,
                        f.world,
                    )
                }
            });
            check("MPI_Allreduce", code)?;
        }
        Ok(())
    }

    /// `MPI_Bcast`: rank `root`'s `values` into every rank's `values`.
    fn broadcast<T: MpiElement>(&self, values: &mut [T], root: usize) -> Result<(), MpiError> {
        if root >= self.size {
            return Err(MpiError::InvalidRoot {
                root,
                size: self.size,
            });
        }
        let root = mpi_count("MPI_Bcast", root)?;
        let _guard = self.serialised();
        for chunk in values.chunks_mut(CHUNK) {
            let count = mpi_count("MPI_Bcast", chunk.len())?;
            let code = with_functions!(self.library, f => {
                // SAFETY: `chunk` holds `count` elements of the datatype passed; `root` is a
                // rank of the communicator (checked by the caller).
                unsafe {
                    (f.bcast)(
                        chunk.as_mut_ptr().cast::<c_void>(),
                        count,
                        f.datatype(T::DATATYPE),
                        root,
                        f.world,
                    )
                }
            });
            check("MPI_Bcast", code)?;
        }
        Ok(())
    }

    /// `MPI_Bcast` of bytes: rank `root`'s `bytes` into every rank's (the same length on every
    /// rank), e.g. to share a NCCL unique id.
    pub fn broadcast_bytes(&self, bytes: &mut [u8], root: usize) -> Result<(), MpiError> {
        self.broadcast(bytes, root)
    }

    /// `MPI_Barrier` on `MPI_COMM_WORLD`.
    pub fn barrier(&self) -> Result<(), MpiError> {
        let _guard = self.serialised();
        // SAFETY: MPI is initialised and `world` is MPI_COMM_WORLD.
        let code = with_functions!(self.library, f => unsafe { (f.barrier)(f.world) });
        check("MPI_Barrier", code)
    }

    /// `MPI_Reduce_scatter_block` with `MPI_SUM`: `send` holds `size · recv.len()` elements;
    /// this rank gets block `rank` of their sum over ranks.
    fn reduce_scatter_sum<T: MpiElement>(
        &self,
        send: &[T],
        recv: &mut [T],
    ) -> Result<(), MpiError> {
        let function = "MPI_Reduce_scatter_block";
        let count = mpi_count(function, recv.len())?;
        mpi_count(function, send.len())?;
        if Some(send.len()) != recv.len().checked_mul(self.size) {
            return Err(self.lengths(function, send.len(), recv.len()));
        }
        let _guard = self.serialised();
        let code = with_functions!(self.library, f => {
            // SAFETY: `send` holds size · count elements and `recv` count elements of the
            // datatype passed (checked above); they do not overlap.
            unsafe {
                (f.reduce_scatter_block)(
                    send.as_ptr().cast::<c_void>(),
                    recv.as_mut_ptr().cast::<c_void>(),
                    count,
                    f.datatype(T::DATATYPE),
                    f.sum,
                    f.world,
                )
            }
        });
        check(function, code)
    }

    /// `MPI_Allgather`: every rank's `send` (the same length on every rank) into `recv`
    /// (`size · send.len()` elements) in rank order.
    fn all_gather<T: MpiElement>(&self, send: &[T], recv: &mut [T]) -> Result<(), MpiError> {
        let function = "MPI_Allgather";
        let count = mpi_count(function, send.len())?;
        mpi_count(function, recv.len())?;
        if Some(recv.len()) != send.len().checked_mul(self.size) {
            return Err(self.lengths(function, recv.len(), send.len()));
        }
        let _guard = self.serialised();
        let code = with_functions!(self.library, f => {
            let datatype = f.datatype(T::DATATYPE);
            // SAFETY: `send` holds `count` elements and `recv` size · count (checked above),
            // of the datatype passed; they do not overlap.
            unsafe {
                (f.allgather)(
                    send.as_ptr().cast::<c_void>(),
                    count,
                    datatype,
                    recv.as_mut_ptr().cast::<c_void>(),
                    count,
                    datatype,
                    f.world,
                )
            }
        });
        check(function, code)
    }

    /// Prints `error: rank N: message` on stderr (the rank named once, in one write) and ends every process of the job with
    /// `MPI_Abort(MPI_COMM_WORLD, 2)`.
    pub fn abort(&self, message: &str) -> ! {
        crate::error::report_on_rank(self.rank, message);
        // Not through the lock: another thread of this rank may hold it inside a collective
        // that only this abort can end.
        // SAFETY: MPI is initialised and `world` is MPI_COMM_WORLD; MPI_Abort may be called
        // from any thread and does not return when it succeeds.
        with_functions!(self.library, f => unsafe { (f.abort)(f.world, ABORT_STATUS) });
        std::process::exit(ABORT_STATUS)
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        let _guard = self.serialised();
        with_functions!(self.library, f => {
            let mut finalized: c_int = 0;
            // SAFETY: MPI_Finalized may be called at any time; it writes one int.
            let code = unsafe { (f.finalized)(&mut finalized) };
            if code == MPI_SUCCESS && finalized == 0 {
                // SAFETY: MPI is initialised, not yet finalised, and no other call is in
                // flight (the lock is held).
                unsafe { (f.finalize)() };
            }
        });
    }
}
