//! The Lanczos recurrence with full reorthogonalisation, for L independent start vectors run in
//! lockstep (each step is one `[L, dim]` operator batch). Everything per step stays on the
//! device; the coefficients come back to the host only when the caller flushes them.

use curvature_tensor::{DType, Tensor};

use crate::operator::{apply, LinearOperator};
use crate::Result;

/// A coefficient `β ≤ BREAKDOWN · ε · scale` ends a recurrence: its Krylov space is invariant.
const BREAKDOWN: f64 = 1e3;

/// The machine epsilon of `dtype`.
pub(crate) fn epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f32::EPSILON as f64,
        DType::F64 => f64::EPSILON,
    }
}

/// Whether `beta` signals an invariant Krylov space, relative to the operator scale seen so far.
pub(crate) fn is_breakdown(beta: f64, scale: f64, dtype: DType) -> bool {
    beta.is_nan() || beta <= BREAKDOWN * epsilon(dtype) * scale
}

/// Host coefficients `(α[step][l], β[step][l])` of L recurrences.
pub(crate) type Coefficients = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// L Lanczos recurrences: `basis` `[L, r, dim]` holds `q₀ … q_{r−1}`, the last row being the
/// vector the next step expands; `αⱼ = qⱼ·H·qⱼ` and `βⱼ = ‖wⱼ‖` where `wⱼ` is `H·qⱼ`
/// orthogonalised twice (classical Gram–Schmidt, twice) against every basis row.
pub(crate) struct Krylov {
    basis: Tensor,
    alphas: Vec<Tensor>,
    betas: Vec<Tensor>,
}

impl Krylov {
    /// Starts one recurrence per row of `start` (`[L, dim]`), normalising the rows.
    pub(crate) fn new(start: &Tensor) -> Result<Krylov> {
        let norms = start.square()?.sum(&[1], true)?.sqrt()?;
        Ok(Krylov {
            basis: start.div(&norms)?.unsqueeze(1)?,
            alphas: Vec::new(),
            betas: Vec::new(),
        })
    }

    fn dims(&self) -> (usize, usize, usize) {
        let d = self.basis.dims();
        (d[0], d[1], d[2])
    }

    /// One step of every recurrence: one operator batch of L rows.
    pub(crate) fn step<O: LinearOperator + ?Sized>(&mut self, op: &O) -> Result<()> {
        let (l, r, dim) = self.dims();
        let q = self.basis.narrow(1, r - 1, 1)?;
        let mut w = apply(op, &q.reshape([l, dim])?)?.reshape([l, 1, dim])?;
        self.alphas.push(w.mul(&q)?.sum(&[1, 2], false)?);
        w = self.orthogonalise(&w)?;
        let beta = w.square()?.sum(&[1, 2], true)?.sqrt()?;
        self.basis = Tensor::cat(&[&self.basis, &w.div(&beta)?], 1)?;
        self.betas.push(beta.reshape([l])?);
        Ok(())
    }

    /// `w − B·(Bᵀ·w)`, twice, for `w` `[L, 1, dim]` against every basis row.
    fn orthogonalise(&self, w: &Tensor) -> Result<Tensor> {
        let bt = self.basis.t()?;
        let mut w = w.clone();
        for _ in 0..2 {
            w = w.sub(&w.matmul(&bt)?.matmul(&self.basis)?)?;
        }
        Ok(w)
    }

    /// The coefficients of the steps since the last flush, per step and recurrence:
    /// `(α[step][l], β[step][l])`; one transfer to the host.
    pub(crate) fn flush(&mut self) -> Result<Coefficients> {
        if self.alphas.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let l = self.dims().0;
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

    /// The first `rows` basis rows, `[L, rows, dim]`.
    pub(crate) fn basis(&self, rows: usize) -> Result<Tensor> {
        Ok(self.basis.narrow(1, 0, rows)?)
    }

    /// Keeps the first `rows` basis rows (dropping the vectors a breakdown made meaningless).
    pub(crate) fn truncate(&mut self, rows: usize) -> Result<()> {
        self.basis = self.basis(rows)?;
        Ok(())
    }

    /// Continues a single recurrence (L = 1) with `v` (`[1, dim]`) orthogonalised against the
    /// basis and normalised; `false` when nothing of `v` is left (the space is exhausted).
    pub(crate) fn restart(&mut self, v: &Tensor) -> Result<bool> {
        let (_, _, dim) = self.dims();
        let v = v.reshape([1, 1, dim])?;
        let norm_in = v.square()?.sum_all()?.sqrt()?.to_scalar()?;
        let w = self.orthogonalise(&v)?;
        let norm = w.square()?.sum_all()?.sqrt()?;
        if is_breakdown(norm.to_scalar()?, norm_in, v.dtype()) {
            return Ok(false);
        }
        self.basis = Tensor::cat(&[&self.basis, &w.div(&norm)?], 1)?;
        Ok(true)
    }
}
