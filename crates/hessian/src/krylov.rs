//! The Lanczos recurrence with full reorthogonalisation, for L independent start vectors run in
//! lockstep (each step is one `[L, dim]` operator batch). Everything per step stays on the
//! device; the coefficients come back to the host only when the caller flushes them.
//!
//! The basis is never copied as a whole: tensors are immutable, so its vectors are kept as
//! they come and gathered [`BLOCK_ROWS`] at a time into blocks, each vector copied exactly
//! once. A basis of r vectors therefore holds `L · r · dim` elements plus at most one block in
//! transit, which [`elements`] counts for the memory plans of Lanczos and SLQ.

use curvature_tensor::{DType, Tensor};

use crate::alloc;
use crate::error::invalid;
use crate::operator::{apply, LinearOperator};
use crate::{HessianError, Result};

/// A coefficient `β ≤ BREAKDOWN · ε · scale` ends a recurrence: its Krylov space is invariant.
const BREAKDOWN: f64 = 1e3;

/// Basis vectors gathered into one block (one matrix product each in the reorthogonalisation).
pub(crate) const BLOCK_ROWS: usize = 8;

/// `[L, dim]` temporaries of one step besides the basis: the product, its projection, the
/// partial sums of the reorthogonalisation and the normalised new vector.
const STEP_ROWS: usize = 6;

/// The most Lanczos steps one recurrence may take (SLQ's `steps`, Lanczos' `max_iter`, both
/// after capping at dim). The host solves an m × m tridiagonal eigenproblem in O(m³) — for
/// Lanczos every few steps — so beyond a few thousand steps the host work, not the operator,
/// dominates; the bound turns a count such as `usize::MAX` into an error.
pub const MAX_KRYLOV_STEPS: usize = 4096;

/// The machine epsilon of `dtype`.
pub(crate) fn epsilon(dtype: DType) -> f64 {
    dtype.epsilon()
}

/// Whether `beta` signals an invariant Krylov space, relative to the operator scale seen so far.
pub(crate) fn is_breakdown(beta: f64, scale: f64, dtype: DType) -> bool {
    beta.is_nan() || beta <= BREAKDOWN * epsilon(dtype) * scale
}

/// Elements the recurrences of `l` start vectors hold at their peak with a basis of `rows`
/// vectors of length `dim`: the basis, one block being gathered and one step's temporaries.
pub(crate) fn elements(op: &'static str, l: usize, rows: usize, dim: usize) -> Result<usize> {
    let per_vector = alloc::sum(op, "the Krylov basis", &[rows, BLOCK_ROWS, STEP_ROWS])?;
    alloc::product(op, "the Krylov basis", &[l, per_vector, dim])
}

/// Host bytes of the `m × m` tridiagonal eigenproblem: the matrix, the solver's working copy,
/// its eigenvectors and their sorted copy.
pub(crate) fn tridiagonal_bytes(op: &'static str, m: usize) -> Result<usize> {
    alloc::product(op, "the tridiagonal eigenproblem", &[4, m, m, 8])
}

/// Host coefficients `(α[step][l], β[step][l])` of L recurrences.
pub(crate) type Coefficients = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// L Lanczos recurrences: the basis `q₀ … q_{r−1}` (`[L, ·, dim]` parts, in order), the last
/// vector being the one the next step expands; `αⱼ = qⱼ·H·qⱼ` and `βⱼ = ‖wⱼ‖` where `wⱼ` is
/// `H·qⱼ` orthogonalised twice (classical Gram–Schmidt, twice) against every basis vector.
pub(crate) struct Krylov {
    /// Gathered blocks `[L, b, dim]` (b = [`BLOCK_ROWS`], or fewer after a truncation).
    blocks: Vec<Tensor>,
    /// The vectors since the last block, `[L, 1, dim]` each.
    pending: Vec<Tensor>,
    alphas: Vec<Tensor>,
    betas: Vec<Tensor>,
    l: usize,
    dim: usize,
}

impl Krylov {
    /// Starts one recurrence per row of `start` (`[L, dim]`), normalising the rows.
    pub(crate) fn new(start: &Tensor) -> Result<Krylov> {
        let (l, dim) = (start.dims()[0], start.dims()[1]);
        let norms = start.square()?.sum(&[1], true)?.sqrt()?;
        Ok(Krylov {
            blocks: Vec::new(),
            pending: vec![start.div(&norms)?.unsqueeze(1)?],
            alphas: Vec::new(),
            betas: Vec::new(),
            l,
            dim,
        })
    }

    /// The basis parts in order.
    fn parts(&self) -> impl Iterator<Item = &Tensor> {
        self.blocks.iter().chain(&self.pending)
    }

    /// The last basis vector, `[L, 1, dim]`.
    fn last(&self) -> Result<Tensor> {
        let part = self
            .pending
            .last()
            .or(self.blocks.last())
            .ok_or_else(empty)?;
        let b = part.dims()[1];
        Ok(if b == 1 {
            part.clone()
        } else {
            part.narrow(1, b - 1, 1)?
        })
    }

    /// Appends a vector `[L, 1, dim]`, gathering a full block once `BLOCK_ROWS` more are
    /// pending (the newest stays pending, so the next step reads it without a copy).
    fn push(&mut self, v: Tensor) -> Result<()> {
        self.pending.push(v);
        if self.pending.len() > BLOCK_ROWS {
            let block = Tensor::cat(&self.pending[..BLOCK_ROWS].iter().collect::<Vec<_>>(), 1)?;
            self.blocks.push(block);
            self.pending.drain(..BLOCK_ROWS);
        }
        Ok(())
    }

    /// One step of every recurrence: one operator batch of L rows.
    pub(crate) fn step<O: LinearOperator + ?Sized>(&mut self, op: &O) -> Result<()> {
        let (l, dim) = (self.l, self.dim);
        let q = self.last()?;
        let mut w = apply(op, &q.reshape([l, dim])?)?.reshape([l, 1, dim])?;
        self.alphas.push(w.mul(&q)?.sum(&[1, 2], false)?);
        w = self.orthogonalise(&w)?;
        let beta = w.square()?.sum(&[1, 2], true)?.sqrt()?;
        self.push(w.div(&beta)?)?;
        self.betas.push(beta.reshape([l])?);
        Ok(())
    }

    /// `w − B·(Bᵀ·w)`, twice, for `w` `[L, 1, dim]` against every basis vector: the
    /// coefficients of all parts are taken from the same `w` (classical Gram–Schmidt).
    fn orthogonalise(&self, w: &Tensor) -> Result<Tensor> {
        let mut w = w.clone();
        for _ in 0..2 {
            let mut projection: Option<Tensor> = None;
            for part in self.parts() {
                let term = w.matmul_transposed(part, false, true)?.matmul(part)?;
                projection = Some(match projection {
                    Some(sum) => sum.add(&term)?,
                    None => term,
                });
            }
            if let Some(projection) = projection {
                w = w.sub(&projection)?;
            }
        }
        Ok(w)
    }

    /// The coefficients of the steps since the last flush, per step and recurrence:
    /// `(α[step][l], β[step][l])`; one transfer to the host.
    pub(crate) fn flush(&mut self) -> Result<Coefficients> {
        if self.alphas.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let l = self.l;
        let steps = self.alphas.len();
        let mut all: Vec<&Tensor> = self.alphas.iter().collect();
        all.extend(self.betas.iter());
        let host = Tensor::stack(&all, 0)?.to_f64s()?;
        let rows: Vec<Vec<f64>> = host.chunks(l).map(<[f64]>::to_vec).collect();
        self.alphas.clear();
        self.betas.clear();
        let betas = rows[steps..].to_vec();
        let mut alphas = rows;
        alphas.truncate(steps);
        Ok((alphas, betas))
    }

    /// `S · Q` for a single recurrence (L = 1): `s` holds k rows of coefficients over the first
    /// `m` basis vectors (row-major `[k, m]`); the result is `[k, dim]`, formed part by part.
    pub(crate) fn combine(&self, s: &[f64], k: usize, m: usize) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        let mut first = 0;
        for part in self.parts() {
            let b = part.dims()[1].min(m.saturating_sub(first));
            if b == 0 {
                break;
            }
            let columns: Vec<f64> = (0..k)
                .flat_map(|r| s[r * m + first..][..b].iter().copied())
                .collect();
            let coefficients = Tensor::from_f64s(&columns, [k, b], part.dtype(), part.device())?;
            let vectors = part.narrow(1, 0, b)?.reshape([b, self.dim])?;
            let term = coefficients.matmul(&vectors)?;
            sum = Some(match sum {
                Some(total) => total.add(&term)?,
                None => term,
            });
            first += b;
        }
        sum.ok_or_else(empty)
    }

    /// Keeps the first `rows` basis vectors (dropping the vectors a breakdown made
    /// meaningless); at least one is always kept.
    pub(crate) fn truncate(&mut self, rows: usize) -> Result<()> {
        let mut kept = 0;
        for parts in [&mut self.blocks, &mut self.pending] {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts.drain(..) {
                let b = part.dims()[1];
                let keep = b.min(rows.max(1).saturating_sub(kept));
                if keep == b {
                    out.push(part);
                } else if keep > 0 {
                    out.push(part.narrow(1, 0, keep)?);
                }
                kept += keep;
            }
            *parts = out;
        }
        Ok(())
    }

    /// Continues a single recurrence (L = 1) with `v` (`[1, dim]`) orthogonalised against the
    /// basis and normalised; `false` when nothing of `v` is left (the space is exhausted).
    pub(crate) fn restart(&mut self, v: &Tensor) -> Result<bool> {
        let v = v.reshape([1, 1, self.dim])?;
        let norm_in = v.square()?.sum_all()?.sqrt()?.to_scalar()?;
        let w = self.orthogonalise(&v)?;
        let norm = w.square()?.sum_all()?.sqrt()?;
        if is_breakdown(norm.to_scalar()?, norm_in, v.dtype()) {
            return Ok(false);
        }
        self.push(w.div(&norm)?)?;
        Ok(true)
    }
}

/// The error of a basis without vectors (which [`Krylov::new`] and [`Krylov::truncate`] never
/// leave).
fn empty() -> HessianError {
    invalid("Krylov", "the basis holds no vectors")
}
