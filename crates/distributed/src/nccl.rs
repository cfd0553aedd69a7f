//! The NCCL back end: one process per GPU, collectives by NCCL (through cudarc, which loads
//! `libnccl` and the CUDA driver at run time, so building needs neither). The NCCL unique id
//! that joins the ranks is made by rank 0 and shared by an MPI broadcast
//! ([`Nccl::over_mpi`]) or through a file every rank can read ([`Nccl::through_file`]).
//!
//! Data path: a tensor's values are staged through a device buffer of this back end's own CUDA
//! stream (host → device, the NCCL collective, device → host) and returned as a tensor on the
//! caller's device. A rank that fails prints its rank and error and ends its process (through
//! `MPI_Abort` when the group was joined over MPI, which ends every rank); NCCL itself cannot
//! release peers blocked in a collective.

use std::ffi::c_char;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};
use curvature_tensor::{DType, Element, Shape, Tensor};

use crate::collective::Collective;
use crate::error::{CollectiveError, CollectiveResult};
use crate::mpi::{Mpi, ABORT_STATUS};

/// The bytes of a NCCL unique id.
const ID_BYTES: usize = 128;

/// How long [`Nccl::through_file`] waits for rank 0's id file.
const ID_FILE_WAIT: Duration = Duration::from_secs(120);

/// Whether NCCL can run here: `libnccl` and the CUDA driver load and a GPU is present. The
/// back end's constructors check this first (cudarc panics when a library it needs is absent).
pub fn nccl_available() -> bool {
    // SAFETY: these only try to open the libraries (dlopen), calling nothing in them.
    let libraries =
        unsafe { cudarc::nccl::sys::is_culib_present() && cudarc::driver::sys::is_culib_present() };
    libraries && CudaContext::device_count().is_ok_and(|n| n > 0)
}

/// A rank of a NCCL group on one GPU.
pub struct Nccl {
    /// The communicator and its stream; NCCL calls of one communicator are serialised.
    comm: Mutex<Comm>,
    stream: Arc<CudaStream>,
    rank: usize,
    size: usize,
    /// The MPI job the group was joined over, which ends every rank on a failure.
    mpi: Option<Arc<Mpi>>,
}

// SAFETY: a NCCL communicator may be used from any thread as long as its calls are not
// concurrent; every use of `comm` holds its mutex. The stream is `Send + Sync` already.
unsafe impl Send for Nccl {}
// SAFETY: as for `Send`: shared references reach the communicator only through the mutex.
unsafe impl Sync for Nccl {}

/// An error of the NCCL back end that is not a collective's (setting the group up).
fn unavailable(reason: impl Into<String>) -> CollectiveError {
    CollectiveError::Unavailable {
        backend: "nccl",
        reason: reason.into(),
    }
}

impl Nccl {
    /// Joins the MPI job's ranks into a NCCL group, rank r on GPU `ordinal` (usually the rank's
    /// local index on its machine): rank 0 makes the unique id, an MPI broadcast shares it.
    pub fn over_mpi(mpi: Arc<Mpi>, ordinal: usize) -> CollectiveResult<Nccl> {
        if !nccl_available() {
            return Err(unavailable("libnccl, the CUDA driver or a GPU is missing"));
        }
        let mut bytes = [0u8; ID_BYTES];
        if mpi.rank() == 0 {
            bytes =
                id_bytes(&Id::new().map_err(|e| unavailable(format!("ncclGetUniqueId: {e:?}")))?);
        }
        mpi.broadcast_bytes(&mut bytes, 0)
            .map_err(|e| unavailable(format!("sharing the NCCL id over MPI: {e}")))?;
        let (rank, size) = (mpi.rank(), mpi.size());
        Nccl::join(ordinal, rank, size, bytes, Some(mpi))
    }

    /// Joins `size` processes into a NCCL group through the file `id_file`: rank 0 makes the
    /// unique id and writes it there (atomically, by a rename), the others wait for it (up to
    /// two minutes). Rank r uses GPU `ordinal`.
    pub fn through_file(
        id_file: &Path,
        ordinal: usize,
        rank: usize,
        size: usize,
    ) -> CollectiveResult<Nccl> {
        if rank >= size {
            return Err(unavailable(format!("rank {rank} is not a rank of {size}")));
        }
        if !nccl_available() {
            return Err(unavailable("libnccl, the CUDA driver or a GPU is missing"));
        }
        let io = |e: std::io::Error| unavailable(format!("{}: {e}", id_file.display()));
        let bytes = if rank == 0 {
            let bytes =
                id_bytes(&Id::new().map_err(|e| unavailable(format!("ncclGetUniqueId: {e:?}")))?);
            let staging = id_file.with_extension("partial");
            std::fs::write(&staging, bytes).map_err(io)?;
            std::fs::rename(&staging, id_file).map_err(io)?;
            bytes
        } else {
            let start = Instant::now();
            loop {
                match std::fs::read(id_file) {
                    Ok(read) if read.len() == ID_BYTES => {
                        let mut bytes = [0u8; ID_BYTES];
                        bytes.copy_from_slice(&read);
                        break bytes;
                    }
                    Ok(read) => {
                        return Err(unavailable(format!(
                            "{} holds {} bytes, not a NCCL id of {ID_BYTES}",
                            id_file.display(),
                            read.len()
                        )))
                    }
                    Err(_) if start.elapsed() < ID_FILE_WAIT => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => return Err(io(e)),
                }
            }
        };
        Nccl::join(ordinal, rank, size, bytes, None)
    }

    /// Initialises rank `rank` of `size` on GPU `ordinal` with the id `bytes`.
    fn join(
        ordinal: usize,
        rank: usize,
        size: usize,
        bytes: [u8; ID_BYTES],
        mpi: Option<Arc<Mpi>>,
    ) -> CollectiveResult<Nccl> {
        if i32::try_from(size).is_err() {
            return Err(unavailable(format!("{size} ranks exceed NCCL's limit")));
        }
        let context =
            CudaContext::new(ordinal).map_err(|e| unavailable(format!("GPU {ordinal}: {e:?}")))?;
        let stream = context
            .new_stream()
            .map_err(|e| unavailable(format!("a stream on GPU {ordinal}: {e:?}")))?;
        let id = Id::uninit(bytes.map(|b| b as c_char));
        let comm = Comm::from_rank(stream.clone(), rank, size, id)
            .map_err(|e| unavailable(format!("ncclCommInitRank (rank {rank} of {size}): {e:?}")))?;
        Ok(Nccl {
            comm: Mutex::new(comm),
            stream,
            rank,
            size,
            mpi,
        })
    }

    /// A [`CollectiveError::Backend`] for `op`.
    fn failure(&self, op: &'static str, message: impl std::fmt::Debug) -> CollectiveError {
        CollectiveError::Backend {
            backend: "nccl",
            op,
            rank: self.rank,
            message: format!("{message:?}"),
        }
    }

    /// Stages `tensor`'s values on the GPU, runs `collective` into a device buffer of `out_len`
    /// elements and returns them as a tensor of `shape` on `tensor`'s device.
    fn staged<T>(
        &self,
        op: &'static str,
        tensor: &Tensor,
        out_len: usize,
        shape: Shape,
        collective: impl FnOnce(
            &Comm,
            &cudarc::driver::CudaSlice<T>,
            &mut cudarc::driver::CudaSlice<T>,
        ) -> Result<(), cudarc::nccl::result::NcclError>,
    ) -> CollectiveResult<Tensor>
    where
        T: Element
            + cudarc::nccl::NcclType
            + cudarc::driver::DeviceRepr
            + cudarc::driver::ValidAsZeroBits,
    {
        let tensor_error = |source| CollectiveError::Tensor {
            op,
            rank: self.rank,
            source,
        };
        let values = tensor.to_vec::<T>().map_err(tensor_error)?;
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let send = self
            .stream
            .clone_htod(&values)
            .map_err(|e| self.failure(op, e))?;
        let mut recv = self
            .stream
            .alloc_zeros::<T>(out_len)
            .map_err(|e| self.failure(op, e))?;
        collective(&comm, &send, &mut recv).map_err(|e| self.failure(op, e))?;
        let out = self
            .stream
            .clone_dtoh(&recv)
            .map_err(|e| self.failure(op, e))?;
        drop(comm);
        Tensor::from_vec(out, shape, tensor.device()).map_err(tensor_error)
    }

    /// The shape `[rows, rest…]` of `tensor` with its leading axis replaced.
    fn leading(
        &self,
        op: &'static str,
        tensor: &Tensor,
        rows: impl FnOnce(usize) -> Option<usize>,
    ) -> CollectiveResult<Shape> {
        let invalid = |message: String| CollectiveError::InvalidArgument {
            op,
            rank: self.rank,
            message,
        };
        let (&first, rest) = tensor
            .dims()
            .split_first()
            .ok_or_else(|| invalid("a tensor of rank 0 has no leading axis".into()))?;
        let leading = rows(first).ok_or_else(|| {
            invalid(format!(
                "a leading axis of {first} cannot be split or gathered over {} ranks",
                self.size
            ))
        })?;
        let mut dims = vec![leading];
        dims.extend_from_slice(rest);
        Shape::checked(dims).map_err(|source| CollectiveError::Tensor {
            op,
            rank: self.rank,
            source,
        })
    }
}

/// The bytes of a NCCL id.
fn id_bytes(id: &Id) -> [u8; ID_BYTES] {
    id.internal().map(|c| c as u8)
}

/// Runs `$body` with `$t` the element type of `$tensor`.
macro_rules! by_dtype {
    ($tensor:expr, $t:ident => $body:expr) => {
        match $tensor.dtype() {
            DType::F64 => {
                type $t = f64;
                $body
            }
            DType::F32 => {
                type $t = f32;
                $body
            }
            // NCCL moves f32 and f64 here: a 16-bit tensor is an error naming the op and its
            // dtype (`to_vec`'s), never a reinterpretation of its bytes.
            DType::F16 | DType::BF16 => {
                type $t = f32;
                $body
            }
        }
    };
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> &'static str {
        "nccl"
    }

    fn all_reduce_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let n = tensor.elem_count();
        let shape = tensor.shape().clone();
        by_dtype!(tensor, T => self.staged::<T>("all_reduce_sum", tensor, n, shape, |comm, send, recv| {
            comm.all_reduce(send, recv, &ReduceOp::Sum).map(|_| ())
        }))
    }

    fn broadcast(&self, tensor: &Tensor, root: usize) -> CollectiveResult<Tensor> {
        let op = "broadcast";
        let root = i32::try_from(root)
            .ok()
            .filter(|&r| (r as usize) < self.size)
            .ok_or_else(|| CollectiveError::InvalidArgument {
                op,
                rank: self.rank,
                message: format!("root {root} is not a rank of {}", self.size),
            })?;
        let n = tensor.elem_count();
        let shape = tensor.shape().clone();
        by_dtype!(tensor, T => self.staged::<T>(op, tensor, n, shape, |comm, send, recv| {
            comm.broadcast(Some(send), recv, root).map(|_| ())
        }))
    }

    fn barrier(&self) -> CollectiveResult<()> {
        // NCCL has no barrier: an all-reduce of one value, which no rank leaves early.
        let one = Tensor::from_f64s(&[1.0], [1], DType::F32, curvature_tensor::Device::Cpu)
            .map_err(|source| CollectiveError::Tensor {
                op: "barrier",
                rank: self.rank,
                source,
            })?;
        self.all_reduce_sum(&one).map(|_| ())
    }

    fn reduce_scatter_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "reduce_scatter_sum";
        let size = self.size;
        let shape = self.leading(op, tensor, |n| (n % size == 0).then_some(n / size))?;
        let n = shape.elem_count();
        by_dtype!(tensor, T => self.staged::<T>(op, tensor, n, shape, |comm, send, recv| {
            comm.reduce_scatter(send, recv, &ReduceOp::Sum).map(|_| ())
        }))
    }

    fn all_gather(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "all_gather";
        let size = self.size;
        let shape = self.leading(op, tensor, |n| n.checked_mul(size))?;
        let n = shape.elem_count();
        by_dtype!(tensor, T => self.staged::<T>(op, tensor, n, shape, |comm, send, recv| {
            comm.all_gather(send, recv).map(|_| ())
        }))
    }

    fn abort(&self, message: &str) {
        if let Some(mpi) = &self.mpi {
            mpi.abort(message);
        }
        crate::error::report_on_rank(self.rank, message);
        std::process::exit(ABORT_STATUS)
    }
}
