//! [`Collective`]: the operations a group of ranks performs together, whatever carries them
//! (threads of one process, MPI processes, NCCL on GPUs).

use curvature_tensor::{DType, Device, Tensor};

use crate::error::{CollectiveError, CollectiveResult};

/// A group of `size()` ranks that call the same collectives in the same order, each rank
/// through its own handle.
///
/// Tensors go in and come out: each rank passes its own tensor and gets a new one, on the
/// device of the tensor it passed. A back end moves data where its library needs it (an MPI back
/// end copies device tensors to host buffers and back; a NCCL back end copies host tensors to
/// its GPU), so callers never care which back end runs. Every rank must pass tensors of the same
/// shape and dtype to a collective; a back end that can check this (the in-process one) returns
/// [`CollectiveError::Mismatch`], the others rely on the fingerprint check that
/// [`DistributedOperator::new`](crate::DistributedOperator::new) makes before the first product.
///
/// Failure: a rank that cannot continue calls [`abort`](Collective::abort) with its error.
/// From then on every collective on every rank returns [`CollectiveError::PeerFailed`] naming
/// that rank and message (or, for a back end such as MPI whose only remedy is to end the job,
/// the process ends after printing them); no rank stays blocked in a collective.
pub trait Collective: Send + Sync {
    /// This rank's number, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// The back end's name (`in-process`, `mpi`, `nccl`), for messages.
    fn backend(&self) -> &'static str;

    /// The elementwise sum of every rank's `tensor` (same shape and dtype on every rank),
    /// returned on every rank.
    fn all_reduce_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor>;

    /// Rank `root`'s `tensor`, returned on every rank. Every rank passes a tensor of the same
    /// shape and dtype; only the root's values are read.
    fn broadcast(&self, tensor: &Tensor, root: usize) -> CollectiveResult<Tensor>;

    /// Returns once every rank has entered the barrier.
    fn barrier(&self) -> CollectiveResult<()>;

    /// The sum over ranks of `tensor` (shape `[size()·m, …]` on every rank), of which rank r
    /// gets rows `r·m .. (r+1)·m`, shape `[m, …]`.
    fn reduce_scatter_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor>;

    /// Every rank's `tensor` (shape `[m, …]`, the same on every rank) concatenated along axis 0
    /// in rank order, shape `[size()·m, …]`, returned on every rank.
    fn all_gather(&self, tensor: &Tensor) -> CollectiveResult<Tensor>;

    /// Marks this rank as failed with `message`: every rank's current and later collectives
    /// return [`CollectiveError::PeerFailed`] with this rank's number and the message.
    fn abort(&self, message: &str);

    /// [`all_reduce_sum`](Collective::all_reduce_sum) of host f64 values, in f64.
    fn all_reduce_f64s(&self, values: &[f64]) -> CollectiveResult<Vec<f64>> {
        let op = "all_reduce_f64s";
        let tensor = Tensor::from_f64s(values, [values.len()], DType::F64, Device::Cpu)
            .map_err(|source| self.tensor_error(op, source))?;
        self.all_reduce_sum(&tensor)?
            .to_f64s()
            .map_err(|source| self.tensor_error(op, source))
    }

    /// [`all_gather`](Collective::all_gather) of host f64 values: every rank's values in rank
    /// order, one `Vec` per rank.
    fn all_gather_f64s(&self, values: &[f64]) -> CollectiveResult<Vec<Vec<f64>>> {
        let op = "all_gather_f64s";
        let tensor = Tensor::from_f64s(values, [values.len()], DType::F64, Device::Cpu)
            .map_err(|source| self.tensor_error(op, source))?;
        let all = self
            .all_gather(&tensor)?
            .to_f64s()
            .map_err(|source| self.tensor_error(op, source))?;
        if values.is_empty() {
            return Ok(vec![Vec::new(); self.size()]);
        }
        Ok(all.chunks(values.len()).map(<[f64]>::to_vec).collect())
    }

    /// A [`CollectiveError::Tensor`] for `op` on this rank.
    fn tensor_error(
        &self,
        op: &'static str,
        source: curvature_tensor::TensorError,
    ) -> CollectiveError {
        CollectiveError::Tensor {
            op,
            rank: self.rank(),
            source,
        }
    }
}
