//! [`DistributedOperator`]: the sum over ranks of each rank's weighted local operator.

use std::sync::Arc;

use curvature_hessian::{HessianError, LinearOperator, ModelHvp};
use curvature_tensor::{DType, Device, Tensor};

use crate::collective::Collective;
use crate::error::{DistributedError, DistributedResult};
use crate::fingerprint::Fingerprint;
use crate::shard::{Reduction, Shard};

/// `V ↦ Σ_r w_r · V·C_r`: each rank's local operator `C_r` (its shard's Hessian, GGN, Fisher or
/// any [`LinearOperator`]) applied to the same `[K, P]` batch, weighted by its share of the loss
/// (`w_r = n_r / N` for a mean, 1 for a sum) and summed over ranks by one all-reduce.
///
/// The result is the operator of the loss over all N samples, identical on every rank, so every
/// estimator (dense Hessians, diagonals, traces, Lanczos, SLQ, CG solves) runs unchanged on
/// every rank and returns the same answer there, provided every rank calls it with the same
/// arguments (the same seeds give the same probes). A local operator that fails aborts the group
/// ([`Collective::abort`]) before returning its error, so no other rank waits for it.
pub struct DistributedOperator<O> {
    local: O,
    collective: Arc<dyn Collective>,
    shard: Shard,
    weight: f64,
}

impl<O: LinearOperator> DistributedOperator<O> {
    /// Wraps this rank's `local` operator of its `shard`. Checks, with collectives every rank
    /// must call, that all ranks agree on `fingerprint` extended with the operator's dimension
    /// and dtype, the sample count and the reduction (see [`Fingerprint::check`]), before any
    /// product.
    pub fn new(
        local: O,
        collective: Arc<dyn Collective>,
        shard: Shard,
        reduction: Reduction,
        fingerprint: &Fingerprint,
    ) -> DistributedResult<DistributedOperator<O>> {
        let op = "DistributedOperator::new";
        if shard.ranks != collective.size() || shard.rank != collective.rank() {
            let message = format!(
                "the shard is rank {} of {}, the collective rank {} of {}",
                shard.rank,
                shard.ranks,
                collective.rank(),
                collective.size()
            );
            collective.abort(&message);
            return Err(DistributedError::InvalidArgument {
                op,
                rank: collective.rank(),
                message,
            });
        }
        fingerprint
            .clone()
            .field("the operator's dimension", local.dim() as u64)
            .dtype("the operator's dtype", local.dtype())
            .field("the number of samples", shard.total as u64)
            .field(
                "the loss's reduction",
                match reduction {
                    Reduction::Mean => 0,
                    Reduction::Sum => 1,
                },
            )
            .check(collective.as_ref())?;
        Ok(DistributedOperator {
            local,
            collective,
            weight: shard.weight(reduction),
            shard,
        })
    }

    /// This rank's local operator.
    pub fn local(&self) -> &O {
        &self.local
    }

    /// This rank's shard of the samples.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The collective the products are reduced over.
    pub fn collective(&self) -> &Arc<dyn Collective> {
        &self.collective
    }

    /// This rank's weight `w_r`.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// `Σ_r w_r · local_r`: the global loss from this rank's local loss value.
    pub fn reduce_value(&self, local: f64) -> DistributedResult<f64> {
        let sum = self.collective.all_reduce_f64s(&[self.weight * local])?;
        sum.first()
            .copied()
            .ok_or_else(|| DistributedError::InvalidArgument {
                op: "DistributedOperator::reduce_value",
                rank: self.collective.rank(),
                message: "the all-reduce returned no value".into(),
            })
    }

    /// `Σ_r w_r · local_r`: the global gradient (or any per-rank tensor of one shape) from this
    /// rank's local one.
    pub fn reduce_tensor(&self, local: &Tensor) -> DistributedResult<Tensor> {
        Ok(self.collective.all_reduce_sum(&self.weighted(local)?)?)
    }

    fn weighted(&self, local: &Tensor) -> curvature_tensor::Result<Tensor> {
        if self.weight == 1.0 {
            Ok(local.clone())
        } else {
            local.mul_scalar(self.weight)
        }
    }

    /// Aborts the group with `error` (so no rank waits for this one) and returns it.
    fn fail<E: std::fmt::Display>(&self, error: E) -> E {
        self.collective.abort(&error.to_string());
        error
    }
}

impl DistributedOperator<ModelHvp> {
    /// The loss over all N samples, on every rank.
    pub fn value(&self) -> DistributedResult<f64> {
        let local = self.local.value().map_err(|e| self.fail(e))?;
        self.reduce_value(local)
    }

    /// The gradient of the loss over all N samples (`[P]`), on every rank.
    pub fn gradient(&self) -> DistributedResult<Tensor> {
        let local = self.local.gradient().map_err(|e| self.fail(e))?;
        self.reduce_tensor(&local)
    }
}

impl<O: LinearOperator> LinearOperator for DistributedOperator<O> {
    fn dim(&self) -> usize {
        self.local.dim()
    }

    fn dtype(&self) -> DType {
        self.local.dtype()
    }

    fn device(&self) -> Device {
        self.local.device()
    }

    fn apply_batch(&self, v: &Tensor) -> curvature_hessian::Result<Tensor> {
        let local = self
            .local
            .apply_batch(v)
            .and_then(|y| Ok(self.weighted(&y)?))
            .map_err(|e| self.fail(e))?;
        self.collective
            .all_reduce_sum(&local)
            .map_err(|e| HessianError::Operator(Box::new(e)))
    }
}
