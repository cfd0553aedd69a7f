//! Random probe vectors, drawn on the host from a seeded ChaCha8 generator and uploaded, so
//! every device (and every batch size) sees exactly the same vectors for the same seed.

use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

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
    /// (scaled so that, like the random kinds, E[vvᵀ] = I over a cycle): deterministic, the
    /// seed is unused. `dim` of them make Hutchinson's trace and SLQ's moments exact.
    Basis,
}

/// A seeded stream of probe rows: row r of the stream is the same whether it is drawn in one
/// batch or many.
pub(crate) struct ProbeStream {
    rng: ChaCha8Rng,
    kind: Probe,
    dim: usize,
    dtype: DType,
    device: Device,
    /// Rows drawn so far (the next basis vector for [`Probe::Basis`]).
    drawn: usize,
}

impl ProbeStream {
    pub(crate) fn new(kind: Probe, seed: u64, dim: usize, dtype: DType, device: Device) -> Self {
        ProbeStream {
            rng: ChaCha8Rng::seed_from_u64(seed),
            kind,
            dim,
            dtype,
            device,
            drawn: 0,
        }
    }

    /// The next `rows` probes as host values, row-major.
    pub(crate) fn next_host(&mut self, rows: usize) -> Vec<f64> {
        let n = rows * self.dim;
        let first = self.drawn;
        self.drawn += rows;
        match self.kind {
            Probe::Rademacher => (0..n)
                .map(|_| if self.rng.random::<bool>() { 1.0 } else { -1.0 })
                .collect(),
            Probe::Gaussian => (0..n).map(|_| self.rng.sample(StandardNormal)).collect(),
            Probe::Basis => {
                let mut data = vec![0.0; n];
                let scale = (self.dim as f64).sqrt();
                for r in 0..rows {
                    data[r * self.dim + (first + r) % self.dim] = scale;
                }
                data
            }
        }
    }

    /// The next `rows` probes as a `[rows, dim]` tensor.
    pub(crate) fn next(&mut self, rows: usize) -> Result<Tensor> {
        let data = self.next_host(rows);
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
/// one standard normal per entry), then uploaded to `device`.
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
    ProbeStream::new(kind, seed, dim, dtype, device).next(n)
}
