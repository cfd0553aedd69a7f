//! Curvature per parameter tensor or per layer — trace, top eigenvalue and diagonal statistics
//! of each diagonal block of the Hessian — and the choice between a dense Hessian and an
//! estimate.

use curvature_nn::Module;
use curvature_tensor::DType;

use crate::error::invalid;
use crate::estimate::{diagonal_and_trace, Estimate};
use crate::lanczos::{top_eigenvalues, LanczosOptions, RitzEstimate};
use crate::operator::LinearOperator;
use crate::restrict::{parameter_blocks, ParameterBlock, Restricted};
use crate::{hessian_diagonal, HessianOptions, Result};

/// How [`per_layer_curvature`] groups the parameters into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One block per parameter tensor (`0.weight`, `0.bias`, …).
    Tensor,
    /// One block per layer: the parameters sharing the name's prefix before its last `.`
    /// (`0.weight` and `0.bias` form `0`; a name without a dot belongs to the block `""`, the
    /// root module's own parameters).
    Layer,
}

/// Options of [`per_layer_curvature`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerLayerOptions {
    pub grouping: Grouping,
    /// Blocks of at most this many coordinates get their exact diagonal (and trace) from
    /// `size` products; larger ones Hutchinson's estimates.
    pub exact_limit: usize,
    /// Rademacher probes of the Hutchinson estimates (at least 2).
    pub probes: usize,
    /// Seed of the probes (the Lanczos start vector uses `lanczos.seed`).
    pub seed: u64,
    /// The top eigenvalue's Lanczos options (`k` is taken as 1).
    pub lanczos: LanczosOptions,
    /// Chunking of the exact diagonals.
    pub memory: HessianOptions,
}

impl Default for PerLayerOptions {
    /// Per tensor; exact up to 256 coordinates; 64 probes, seed 0; Lanczos with at most 100
    /// steps and tolerance 1e-6.
    fn default() -> Self {
        PerLayerOptions {
            grouping: Grouping::Tensor,
            exact_limit: 256,
            probes: 64,
            seed: 0,
            lanczos: LanczosOptions {
                max_iter: 100,
                tol: 1e-6,
                ..LanczosOptions::default()
            },
            memory: HessianOptions::default(),
        }
    }
}

/// The curvature of one diagonal block `S·H·Sᵀ` of the Hessian.
#[derive(Debug, Clone)]
pub struct BlockCurvature {
    /// The block's name: the parameter's, or the layer prefix.
    pub name: String,
    /// The parameters it holds, in order.
    pub parameters: Vec<String>,
    /// Its number of coordinates p.
    pub size: usize,
    /// Whether the diagonal (and so the trace) is exact.
    pub exact: bool,
    /// `tr(S·H·Sᵀ)`: exact (error 0, `p` products) or Hutchinson's with its standard error.
    pub trace: Estimate,
    /// The largest eigenvalue (by [`LanczosOptions::which`]) with its residual.
    pub top_eigenvalue: RitzEstimate,
    /// `tr / p`, the mean of the diagonal, with the trace's error divided by p.
    pub diagonal_mean: Estimate,
    /// `max |Hᵢᵢ|` over the block's diagonal (exact or estimated).
    pub diagonal_max_abs: f64,
}

/// For each block of `model`'s parameters (per tensor or per layer, [`Grouping`]), the
/// restriction of `op` (an operator over all of θ, `dim = Σ` parameter sizes) to the block
/// ([`Restricted`]) and its curvature: the exact diagonal when `p ≤ exact_limit`, else
/// Hutchinson's diagonal and trace from the same `probes` Rademacher probes (trace error
/// `s/√n` of the per-probe `vᵢ·H·vᵢ`); the top eigenvalue by Lanczos with its residual
/// `‖H·y − θ·y‖`. Products: per block `min(p, …)` for the diagonal (p exact, else `probes`)
/// plus the Lanczos steps.
pub fn per_layer_curvature<O: LinearOperator + ?Sized, M: Module + ?Sized>(
    op: &O,
    model: &M,
    options: &PerLayerOptions,
) -> Result<Vec<BlockCurvature>> {
    const OP: &str = "per_layer_curvature";
    if options.probes < 2 {
        return Err(invalid(
            OP,
            format!(
                "a standard error needs at least 2 probes, got {}",
                options.probes
            ),
        ));
    }
    let blocks = parameter_blocks(model)?;
    let total = blocks.last().map_or(0, |b| b.offset + b.len);
    if total != op.dim() {
        return Err(invalid(
            OP,
            format!(
                "the model has {total} parameters but the operator has dimension {}",
                op.dim()
            ),
        ));
    }
    let mut groups: Vec<(String, Vec<ParameterBlock>)> = Vec::new();
    for block in blocks.into_iter().filter(|b| b.len > 0) {
        let key = match options.grouping {
            Grouping::Tensor => block.name.clone(),
            Grouping::Layer => block
                .name
                .rsplit_once('.')
                .map_or(String::new(), |(prefix, _)| prefix.to_string()),
        };
        match groups.iter_mut().find(|(name, _)| *name == key) {
            Some((_, members)) => members.push(block),
            None => groups.push((key, vec![block])),
        }
    }
    groups
        .into_iter()
        .map(|(name, members)| block_curvature(op, name, &members, options))
        .collect()
}

fn block_curvature<O: LinearOperator + ?Sized>(
    op: &O,
    name: String,
    members: &[ParameterBlock],
    options: &PerLayerOptions,
) -> Result<BlockCurvature> {
    let block = Restricted::from_blocks(op, members)?;
    let size = block.dim();
    let exact = size <= options.exact_limit;
    let (trace, diagonal_max_abs) = if exact {
        let diagonal = hessian_diagonal(&block, &options.memory)?;
        let max = diagonal.abs()?.max_all()?.to_scalar()?;
        (Estimate::exact(diagonal.sum_all()?.to_scalar()?, size), max)
    } else {
        let (diagonal, trace) = diagonal_and_trace(
            "per_layer_curvature",
            &block,
            options.probes,
            options.seed,
            true,
        )?;
        let trace = trace.ok_or_else(|| invalid("per_layer_curvature", "no trace estimate"))?;
        (trace, diagonal.values.abs()?.max_all()?.to_scalar()?)
    };
    let eigen = top_eigenvalues(
        &block,
        &LanczosOptions {
            k: 1,
            ..options.lanczos
        },
    )?;
    let top_eigenvalue = eigen
        .estimates()
        .first()
        .copied()
        .ok_or_else(|| invalid("per_layer_curvature", "Lanczos returned no eigenvalue"))?;
    let p = size as f64;
    Ok(BlockCurvature {
        name,
        parameters: members.iter().map(|b| b.name.clone()).collect(),
        size,
        exact,
        diagonal_mean: Estimate {
            value: trace.value / p,
            std_error: trace.std_error / p,
            samples: trace.samples,
        },
        trace,
        top_eigenvalue,
        diagonal_max_abs,
    })
}

/// Whether the dense Hessian is the better choice for a quantity whose estimate costs
/// `estimate_products` operator products, from [`dense_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DensePlan {
    /// The dimension P: the dense Hessian costs P products.
    pub dim: usize,
    /// Bytes of the dense `P × P` Hessian in the dtype, `P²·size` (as u128: it may exceed
    /// usize).
    pub bytes: u128,
    /// The products the estimate asked for.
    pub estimate_products: usize,
    /// `bytes ≤` the memory budget.
    pub fits: bool,
    /// `P ≤ estimate_products`: the exact answer costs no more products than the estimate.
    pub cheaper: bool,
}

impl DensePlan {
    /// Both: the dense Hessian fits and costs no more products, so it should be computed
    /// instead of the estimate.
    pub fn recommended(&self) -> bool {
        self.fits && self.cheaper
    }
}

/// Compares the dense `P × P` Hessian (P products, `P²·dtype.size_in_bytes()` bytes) with an
/// estimate costing `estimate_products` products under a memory budget of
/// `memory_budget_bytes` (e.g. probes × steps of SLQ, the probes of Hutchinson, the Lanczos
/// steps). P = 0 is an error.
pub fn dense_plan(
    dim: usize,
    dtype: DType,
    estimate_products: usize,
    memory_budget_bytes: usize,
) -> Result<DensePlan> {
    if dim == 0 {
        return Err(invalid("dense_plan", "the dimension is 0"));
    }
    let bytes = (dim as u128) * (dim as u128) * dtype.size_in_bytes() as u128;
    Ok(DensePlan {
        dim,
        bytes,
        estimate_products,
        fits: bytes <= memory_budget_bytes as u128,
        cheaper: dim <= estimate_products,
    })
}
