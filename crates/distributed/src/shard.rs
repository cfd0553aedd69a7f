//! [`Shard`]: the contiguous split of N samples over R ranks, and the weight of a rank's local
//! loss in the global one ([`Reduction`]).

use std::ops::Range;

use curvature_nn::Loss;
use curvature_tensor::Tensor;

use crate::collective::Collective;
use crate::error::{DistributedError, DistributedResult};

/// How a loss combines its samples, which fixes how the ranks' local losses add up to the loss
/// of all N samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// A mean over samples (or over all elements, with the same number per sample): rank r's
    /// local loss, a mean over its `n_r` samples, enters with weight `n_r / N`.
    Mean,
    /// A sum over samples: every local loss enters with weight 1.
    Sum,
}

impl Reduction {
    /// The reduction of a built-in loss: the sum of squares sums, every other loss averages.
    pub fn of_loss(loss: Loss) -> Reduction {
        match loss {
            Loss::SumSq => Reduction::Sum,
            _ => Reduction::Mean,
        }
    }
}

/// Rank `rank`'s part of `total` samples split contiguously over `ranks` ranks: the first
/// `total mod ranks` ranks get `⌈total / ranks⌉` samples, the others `⌊total / ranks⌋`, in
/// rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This rank.
    pub rank: usize,
    /// The number of ranks.
    pub ranks: usize,
    /// The index of this rank's first sample.
    pub start: usize,
    /// This rank's number of samples (at least one).
    pub len: usize,
    /// All ranks' samples together, N.
    pub total: usize,
}

impl Shard {
    /// Rank `rank`'s shard of `total` samples over `ranks` ranks. Errors unless
    /// `rank < ranks` and `total ≥ ranks` (every rank gets at least one sample).
    pub fn contiguous(total: usize, ranks: usize, rank: usize) -> DistributedResult<Shard> {
        let op = "Shard::contiguous";
        if rank >= ranks {
            return Err(DistributedError::InvalidArgument {
                op,
                rank,
                message: format!("rank {rank} is not a rank of a group of {ranks}"),
            });
        }
        if total < ranks {
            return Err(DistributedError::TooFewSamples {
                op,
                samples: total,
                ranks,
            });
        }
        let base = total / ranks;
        let extra = total % ranks;
        Ok(Shard {
            rank,
            ranks,
            start: rank * base + rank.min(extra),
            len: base + usize::from(rank < extra),
            total,
        })
    }

    /// This rank's shard of `total` samples in the group of `collective`.
    pub fn of(collective: &dyn Collective, total: usize) -> DistributedResult<Shard> {
        Shard::contiguous(total, collective.size(), collective.rank())
    }

    /// The indices of this rank's samples.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// The weight of this rank's local loss in the loss of all samples: `len / total` for a
    /// mean, 1 for a sum.
    pub fn weight(&self, reduction: Reduction) -> f64 {
        match reduction {
            Reduction::Mean => self.len as f64 / self.total as f64,
            Reduction::Sum => 1.0,
        }
    }

    /// This rank's rows of `samples`, a tensor whose leading axis holds all `total` samples.
    pub fn select(&self, samples: &Tensor) -> DistributedResult<Tensor> {
        match samples.dims().first() {
            Some(&n) if n == self.total => Ok(samples.narrow(0, self.start, self.len)?),
            _ => Err(DistributedError::InvalidArgument {
                op: "Shard::select",
                rank: self.rank,
                message: format!(
                    "expected a tensor whose leading axis holds the {} samples, got shape {}",
                    self.total,
                    samples.shape()
                ),
            }),
        }
    }
}
