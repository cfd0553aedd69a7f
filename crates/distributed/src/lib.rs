//! # curvature-distributed
//!
//! Data-parallel curvature across ranks: each rank holds a contiguous shard of the samples,
//! applies its local operator (a Hessian, a GGN or any
//! [`LinearOperator`](curvature_hessian::LinearOperator)) to the same batch of vectors, and one
//! all-reduce sums the weighted results, so every estimator of `curvature-hessian` runs unchanged
//! and gives the same answer on every rank.
//!
//! - [`Collective`]: all-reduce, broadcast, barrier, reduce-scatter, all-gather and failure
//!   propagation, over [`Tensor`](curvature_tensor::Tensor)s;
//! - back ends: [`InProcess`] (ranks as threads of one process), [`mpi::Mpi`] (processes
//!   started by `mpirun`, over the system's MPI loaded at run time), `nccl::Nccl` (feature
//!   `nccl`: one process per GPU, over NCCL loaded at run time);
//! - [`Shard`]: the contiguous split of N samples over R ranks;
//! - [`DistributedOperator`]: the sum over ranks of weighted local operators, with the loss
//!   value and gradient reduced the same way, after a [`Fingerprint`] check that every rank
//!   holds the same model and data layout.

mod collective;
mod error;
mod fingerprint;
mod in_process;
#[cfg(unix)]
pub mod mpi;
#[cfg(all(unix, feature = "nccl"))]
pub mod nccl;
mod operator;
mod shard;

pub use collective::Collective;
pub use error::{
    on_rank, report_on_rank, CollectiveError, CollectiveResult, DistributedError, DistributedResult,
};
pub use fingerprint::Fingerprint;
pub use in_process::{InProcess, RunError, MAX_IN_PROCESS_RANKS};
pub use operator::DistributedOperator;
pub use shard::{Reduction, Shard};
