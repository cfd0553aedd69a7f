//! Estimates with error bars: Hutchinson's trace and diagonal with the standard error of their
//! probes' sample variance, and Hutch++ with the standard error of its Hutchinson part.

use std::fmt;

use curvature_tensor::Tensor;

use crate::error::invalid;
use crate::operator::{apply, LinearOperator};
use crate::probes::{check_probe_count, Probe, ProbeStream};
use crate::trace::hutchpp_parts;
use crate::{HessianError, HessianOptions, Result};

/// A scalar estimate with its error bar, printed as `value ± std_error` (a precision given to
/// the formatter, as in `{:.3}`, applies to both).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its standard error, `s/√n` for a mean of `n` samples with sample standard deviation `s`
    /// (0 for an exact value).
    pub std_error: f64,
    /// How many operator products it is made of (for Hutchinson, the probes).
    pub samples: usize,
}

impl Estimate {
    /// An exact value: standard error 0, computed from `samples` operator products.
    pub fn exact(value: f64, samples: usize) -> Estimate {
        Estimate {
            value,
            std_error: 0.0,
            samples,
        }
    }

    /// The mean `x̄ = (1/n) Σ xᵢ` of `samples` with its standard error
    /// `√(Σ (xᵢ − x̄)² / (n − 1)) / √n` (Welford's one-pass update). At least two samples.
    pub fn from_samples(samples: &[f64]) -> Result<Estimate> {
        let mut stats = Welford::default();
        for &x in samples {
            stats.push(x);
        }
        stats.estimate("Estimate::from_samples")
    }

    /// `std_error / |value|`, infinite for a zero value with a non-zero error (0 when both are 0).
    pub fn relative_error(&self) -> f64 {
        if self.std_error == 0.0 {
            0.0
        } else {
            self.std_error / self.value.abs()
        }
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(p) => write!(f, "{:.p$} ± {:.p$}", self.value, self.std_error),
            None => write!(f, "{} ± {}", self.value, self.std_error),
        }
    }
}

/// An estimate of a diagonal with a standard error per entry.
#[derive(Debug, Clone)]
pub struct DiagonalEstimate {
    /// The estimated diagonal `[dim]`, on the operator's device.
    pub values: Tensor,
    /// The standard error of each entry `[dim]`, on the same device.
    pub std_errors: Tensor,
    /// How many probes the estimate is made of.
    pub samples: usize,
}

impl fmt::Display for DiagonalEstimate {
    /// `[v₀ ± e₀, v₁ ± e₁, …]`, the first 8 entries then `…` (the values are read back from
    /// the device; a failed read is a formatting error).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let n = self.values.elem_count().min(SHOWN);
        let head = |t: &Tensor| {
            t.narrow(0, 0, n)
                .and_then(|t| t.to_f64s())
                .map_err(|_| fmt::Error)
        };
        let (values, errors) = (head(&self.values)?, head(&self.std_errors)?);
        write!(f, "[")?;
        for (i, (v, e)) in values.iter().zip(&errors).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            let entry = Estimate {
                value: *v,
                std_error: *e,
                samples: self.samples,
            };
            fmt::Display::fmt(&entry, f)?;
        }
        if self.values.elem_count() > SHOWN {
            write!(f, ", …")?;
        }
        write!(f, "]")
    }
}

/// Welford's running mean and sum of squared deviations.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Welford {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Welford {
    pub(crate) fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The mean and its standard error; an error below two samples.
    pub(crate) fn estimate(&self, op: &'static str) -> Result<Estimate> {
        if self.n < 2 {
            return Err(invalid(
                op,
                format!("a standard error needs at least 2 samples, got {}", self.n),
            ));
        }
        let n = self.n as f64;
        let variance = (self.m2 / (n - 1.0)).max(0.0);
        Ok(Estimate {
            value: self.mean,
            std_error: (variance / n).sqrt(),
            samples: self.n,
        })
    }
}

/// Errors unless at least two probes were asked for (a sample variance needs two).
fn check_two(op: &'static str, probes: usize) -> Result<()> {
    if probes == 1 {
        return Err(invalid(
            op,
            "a standard error needs at least 2 probes, got 1",
        ));
    }
    Ok(())
}

/// Hutchinson's trace `tr H ≈ x̄ = (1/n) Σ xᵢ`, `xᵢ = vᵢ·H·vᵢ`, with its standard error
/// `s/√n`, `s² = Σ (xᵢ − x̄)² / (n − 1)`. The probes are those of
/// [`trace_hutchinson`](crate::trace_hutchinson) with the same arguments (row i of
/// [`probes`](crate::probes)`(n, dim, kind, seed, …)`), so the value is its estimate; the
/// per-probe values (one scalar per probe) come back to the host. At least 2 and at most
/// [`MAX_PROBES`](crate::MAX_PROBES) probes. With [`Probe::Basis`] the count must be a
/// multiple of dim, and the trace is then exact (standard error 0).
pub fn trace_hutchinson_estimate<O: LinearOperator + ?Sized>(
    op: &O,
    probes: usize,
    kind: Probe,
    seed: u64,
) -> Result<Estimate> {
    if op.dtype().is_half() {
        return trace_hutchinson_estimate(
            &crate::InF32::new(op) as &dyn LinearOperator,
            probes,
            kind,
            seed,
        );
    }
    const OP: &str = "trace_hutchinson_estimate";
    check_probe_count(OP, op.dim(), probes)?;
    if kind == Probe::Basis {
        // Whole cycles of scaled basis vectors give the trace exactly; part of a cycle is a
        // deterministic partial sum with no sampling error to report.
        if probes % op.dim() != 0 {
            return Err(invalid(
                OP,
                format!(
                    "basis probes are exact only in whole cycles of dim = {} vectors, got {probes}",
                    op.dim()
                ),
            ));
        }
        let value = crate::trace::trace_hutchinson(op, probes, kind, seed)?;
        return Ok(Estimate::exact(value, probes));
    }
    check_two(OP, probes)?;
    let mut stats = Welford::default();
    for_each_chunk(OP, op, probes, kind, seed, |v, hv| {
        for x in v.mul(hv)?.sum(&[1], false)?.to_f64s()? {
            stats.push(x);
        }
        Ok(())
    })?;
    stats.estimate(OP)
}

/// Hutchinson's diagonal `diag H ≈ (1/n) Σ vᵢ ⊙ H·vᵢ` with Rademacher probes (those of
/// [`hessian_diagonal_hutchinson`](crate::hessian_diagonal_hutchinson) with the same seed), and
/// the standard error of each entry `j`, `sⱼ/√n` with `sⱼ² = Σᵢ (xᵢⱼ − x̄ⱼ)² / (n − 1)`,
/// `xᵢⱼ = vᵢⱼ·(H·vᵢ)ⱼ`. Means and squared deviations are merged chunk by chunk on the device
/// (Chan, Golub, LeVeque's pairwise update), so no cancellation of `Σ x²− n·x̄²` occurs. At
/// least 2 and at most [`MAX_PROBES`](crate::MAX_PROBES) probes.
pub fn hessian_diagonal_hutchinson_estimate<O: LinearOperator + ?Sized>(
    op: &O,
    probes: usize,
    seed: u64,
) -> Result<DiagonalEstimate> {
    let (diagonal, _) = diagonal_and_trace(
        "hessian_diagonal_hutchinson_estimate",
        op,
        probes,
        seed,
        false,
    )?;
    Ok(diagonal)
}

/// The diagonal estimate of [`hessian_diagonal_hutchinson_estimate`] and, when `trace` is set,
/// the trace estimate of the same probes (`xᵢ = vᵢ·H·vᵢ`, the row sums of the diagonal terms).
pub(crate) fn diagonal_and_trace<O: LinearOperator + ?Sized>(
    op_name: &'static str,
    op: &O,
    probes: usize,
    seed: u64,
    trace: bool,
) -> Result<(DiagonalEstimate, Option<Estimate>)> {
    if op.dtype().is_half() {
        return diagonal_and_trace(
            op_name,
            &crate::InF32::new(op) as &dyn LinearOperator,
            probes,
            seed,
            trace,
        );
    }
    check_probe_count(op_name, op.dim(), probes)?;
    check_two(op_name, probes)?;
    let mut stats = Welford::default();
    // (count, mean, m2) of the terms so far.
    let mut merged: Option<(usize, Tensor, Tensor)> = None;
    for_each_chunk(op_name, op, probes, Probe::Rademacher, seed, |v, hv| {
        let terms = v.mul(hv)?;
        if trace {
            for x in terms.sum(&[1], false)?.to_f64s()? {
                stats.push(x);
            }
        }
        let nb = terms.dims()[0];
        let mean_b = terms.mean(&[0], false)?;
        let m2_b = terms.sub(&mean_b)?.square()?.sum(&[0], false)?;
        merged = Some(match merged.take() {
            None => (nb, mean_b, m2_b),
            Some((na, mean_a, m2_a)) => {
                let n = na + nb;
                let delta = mean_b.sub(&mean_a)?;
                let mean = mean_a.add(&delta.mul_scalar(nb as f64 / n as f64)?)?;
                let cross = delta
                    .square()?
                    .mul_scalar(na as f64 * nb as f64 / n as f64)?;
                (n, mean, m2_a.add(&m2_b)?.add(&cross)?)
            }
        });
        Ok(())
    })?;
    let (n, mean, m2) = merged.ok_or(HessianError::EmptyBatch { op: op_name })?;
    let nf = n as f64;
    let std_errors = m2.div_scalar((nf - 1.0) * nf)?.sqrt()?;
    let diagonal = DiagonalEstimate {
        values: mean,
        std_errors,
        samples: n,
    };
    let trace = if trace {
        Some(stats.estimate(op_name)?)
    } else {
        None
    };
    Ok((diagonal, trace))
}

/// Calls `body(V, V·H)` for the probes in chunks of [`HessianOptions::chunk_rows`] rows.
fn for_each_chunk<O: LinearOperator + ?Sized>(
    name: &'static str,
    op: &O,
    probes: usize,
    kind: Probe,
    seed: u64,
    mut body: impl FnMut(&Tensor, &Tensor) -> Result<()>,
) -> Result<()> {
    let rows = HessianOptions::default().chunk_rows(op.dim(), op.dtype());
    let mut stream = ProbeStream::new(name, kind, seed, op.dim(), op.dtype(), op.device());
    for start in (0..probes).step_by(rows) {
        let v = stream.next(rows.min(probes - start))?;
        let hv = apply(op, &v)?;
        body(&v, &hv)?;
    }
    Ok(())
}

/// Hutch++ ([`trace_hutchpp`](crate::trace_hutchpp), same budget, seed and value) with its
/// standard error. Given the sketch `Q`, the estimate is `tr(QᵀHQ)` (exact) plus the mean of
/// `n = matvecs − 2k` Hutchinson terms `xᵢ = gᵢᵀ(I − QQᵀ)H(I − QQᵀ)gᵢ`, which are independent
/// given `Q`; the error is that part's standard error `s/√n`, `s² = Σ (xᵢ − x̄)² / (n − 1)`
/// (Meyer, Musco, Musco, Woodruff 2021, Algorithm 1: the variance of Hutch++ is that of
/// Hutchinson on the deflated matrix `(I − QQᵀ)H(I − QQᵀ)`, at most `2‖·‖_F² / n` for
/// Gaussian or Rademacher probes, their Lemma 2). Needs `n ≥ 2`: a budget of at least 4.
pub fn trace_hutchpp_estimate<O: LinearOperator + ?Sized>(
    op: &O,
    matvecs: usize,
    seed: u64,
) -> Result<Estimate> {
    if op.dtype().is_half() {
        return trace_hutchpp_estimate(
            &crate::InF32::new(op) as &dyn LinearOperator,
            matvecs,
            seed,
        );
    }
    const OP: &str = "trace_hutchpp_estimate";
    let (top, terms) = hutchpp_parts(OP, op, matvecs, seed)?;
    let mut stats = Welford::default();
    for x in terms.to_f64s()? {
        stats.push(x);
    }
    let tail = stats.estimate(OP)?;
    Ok(Estimate {
        value: top + tail.value,
        std_error: tail.std_error,
        samples: matvecs,
    })
}
