//! Random probe vectors, drawn on the host from a seeded ChaCha8 generator and uploaded, so
//! every device (and every batch size) sees exactly the same vectors for the same seed.

use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::alloc;
use crate::error::invalid;
use crate::{HessianError, Result};

/// The distribution of a probe vector's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// ±1 with equal probability (the lowest-variance choice for Hutchinson).
    Rademacher,
    /// Standard normal.
    Gaussian,
    /// The scaled standard basis vectors √dim·e₀, √dim·e₁, … in order, cycling after `dim`
    /// (scaled so that, like the random kinds, E\[vvᵀ\] = I over a cycle): deterministic, the
    /// seed is unused. `dim` of them make Hutchinson's trace and SLQ's moments exact.
    Basis,
}

/// The most random probes one estimator call takes (Hutchinson's trace and diagonal, SLQ):
/// 2³² − 1, far beyond any useful count (the standard error has shrunk by 2¹⁶ there), so that a
/// count such as `usize::MAX` is an error rather than a loop that never ends.
pub const MAX_PROBES: usize = u32::MAX as usize;

/// Errors unless `probes` is in `1..=MAX_PROBES` and the operator has at least one dimension.
pub(crate) fn check_probe_count(op: &'static str, dim: usize, probes: usize) -> Result<()> {
    if probes == 0 {
        return Err(HessianError::EmptyBatch { op });
    }
    if probes > MAX_PROBES {
        return Err(HessianError::TooLarge {
            op,
            what: "the number of probes",
            value: probes,
            limit: MAX_PROBES,
        });
    }
    if dim == 0 {
        return Err(invalid(op, "the operator has dimension 0"));
    }
    Ok(())
}

/// A seeded stream of probe rows: row r of the stream is the same whether it is drawn in one
/// batch or many.
pub(crate) struct ProbeStream {
    /// The public function drawing the probes, named in errors.
    op: &'static str,
    rng: ChaCha8Rng,
    kind: Probe,
    dim: usize,
    dtype: DType,
    device: Device,
    /// The index of the next basis vector for [`Probe::Basis`] (rows drawn so far, modulo dim).
    next_basis: usize,
}

impl ProbeStream {
    pub(crate) fn new(
        op: &'static str,
        kind: Probe,
        seed: u64,
        dim: usize,
        dtype: DType,
        device: Device,
    ) -> Self {
        ProbeStream {
            op,
            rng: ChaCha8Rng::seed_from_u64(seed),
            kind,
            dim,
            dtype,
            device,
            next_basis: 0,
        }
    }

    /// The next `rows` probes as host values, row-major; the `rows × dim` buffer is sized
    /// with checked arithmetic and allocated fallibly.
    pub(crate) fn next_host(&mut self, rows: usize) -> Result<Vec<f64>> {
        let n = alloc::product(self.op, "the probe block rows × dim", &[rows, self.dim])?;
        let mut data = alloc::with_capacity(self.op, "the probe block rows × dim", n)?;
        match self.kind {
            Probe::Rademacher => {
                data.extend((0..n).map(|_| if self.rng.random::<bool>() { 1.0 } else { -1.0 }))
            }
            Probe::Gaussian => {
                data.extend((0..n).map(|_| self.rng.sample::<f64, _>(StandardNormal)))
            }
            Probe::Basis if self.dim > 0 => {
                data.resize(n, 0.0);
                let scale = (self.dim as f64).sqrt();
                for row in data.chunks_exact_mut(self.dim) {
                    row[self.next_basis] = scale;
                    self.next_basis = (self.next_basis + 1) % self.dim;
                }
            }
            Probe::Basis => {}
        }
        Ok(data)
    }

    /// The next `rows` probes as a `[rows, dim]` tensor.
    pub(crate) fn next(&mut self, rows: usize) -> Result<Tensor> {
        let data = self.next_host(rows)?;
        Ok(Tensor::from_f64s(
            &data,
            [rows, self.dim],
            self.dtype,
            self.device,
        )?)
    }
}

/// `n` probe vectors of length `dim` as an `[n, dim]` tensor: entries drawn row by row from
/// `ChaCha8Rng::seed_from_u64(seed)` on the host (Rademacher: one `bool` per entry; Gaussian:
/// one standard normal per entry), then uploaded to `device`. An `n × dim` that overflows or
/// cannot be allocated is an error.
pub fn probes(
    n: usize,
    dim: usize,
    kind: Probe,
    seed: u64,
    dtype: DType,
    device: Device,
) -> Result<Tensor> {
    if n == 0 {
        return Err(HessianError::EmptyBatch { op: "probes" });
    }
    if dim == 0 {
        return Err(invalid("probes", "vectors of length 0 were asked for"));
    }
    ProbeStream::new("probes", kind, seed, dim, dtype, device).next(n)
}
