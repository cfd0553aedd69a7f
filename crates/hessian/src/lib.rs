//! # curvature-hessian
//!
//! Second-order quantities on the curvature tape, for any scalar function of one or several
//! tensors or for any `nn` model ([`curvature_nn::Module`], with one input or several) with a
//! built-in loss and targets or any closure of its output:
//!
//! - products: [`hvp`], [`hvp_batch`] (K vectors in one double-backward sweep);
//! - dense matrices: [`hessian`] (a block matrix over several inputs), [`hessian_of`] any
//!   operator, [`output_hessian`] (every element of a non-scalar output), [`model_hessian`],
//!   [`loss_hessian`] / [`loss_hessian_with`], [`per_sample_hessian`] /
//!   [`per_sample_hessian_with`] — all assembled from operator batches over chunks
//!   of identity rows whose size a memory budget fixes ([`HessianOptions`]);
//! - diagonals: [`hessian_diagonal`] (exact), [`hessian_diagonal_hutchinson`];
//! - summaries: [`trace_hutchinson`], [`trace_hutchpp`], [`top_eigenvalues`] (Lanczos with full
//!   reorthogonalisation), [`spectral_density`] (stochastic Lanczos quadrature);
//! - estimates with error bars ([`Estimate`], [`DiagonalEstimate`], printed `value ± error`):
//!   [`trace_hutchinson_estimate`], [`hessian_diagonal_hutchinson_estimate`],
//!   [`trace_hutchpp_estimate`], the exchangeable [`trace_xtrace`] and
//!   [`hessian_diagonal_xdiag`], Lanczos' Ritz values with their residuals
//!   ([`Eigen::estimates`]);
//! - blocks: [`Restricted`] restricts any operator to a subset of coordinates (parameters
//!   chosen by a glob over [`parameter_blocks`]), [`per_layer_curvature`] reports each
//!   block's trace, top eigenvalue and diagonal, and [`dense_plan`] says when the dense
//!   Hessian is cheaper than an estimate;
//! - Gauss–Newton and Fisher curvature: [`Ggn`], the operator `Jᵀ H̃ J` of a model with the
//!   loss's output Hessian (the GGN), a seeded Monte-Carlo Fisher or the empirical Fisher
//!   ([`Curvature`], losses [`OutputLoss`]), with its exact diagonal ([`Ggn::diagonal`]);
//!   [`Kfac`] (Kronecker factors `G ⊗ A` of `Linear` layers), its damped inverse
//!   [`KfacInverse`] and [`kfac_block_errors`] against the exact blocks;
//! - solves with damped curvature `(C + λI)·X = B`: [`solve_cg`] (K right-hand sides, one
//!   operator batch per iteration, optional preconditioner such as [`DiagonalPreconditioner`]),
//!   [`solve_lissa`] (the Neumann series), and [`influence`] scores built on them;
//! - derivatives with respect to a model's input: per-sample [`input_hessian`],
//!   [`input_laplacian`] and [`input_laplacian_hutchinson`], and their `…_of` forms on tape
//!   variables, which stay differentiable (a physics-informed loss's parameter gradient).
//!
//! Everything goes through the [`LinearOperator`] trait (`apply_batch` of `[K, dim]` rows).
//! [`MlpHvp`] computes a model's products by a fused forward-over-reverse sweep written for MLPs
//! on the CPU, and [`ModelHvp`] takes it when it applies and [`PreparedHvp`] otherwise.
//! [`PreparedHvp`] is the Hessian of a function recorded once — its value and differentiable
//! gradient stay on a tape — so every further batch costs one sweep and records nothing.
//! Random probes come from a seeded ChaCha8 generator on the host ([`probes`]), so every device
//! sees the same vectors. Only tensor ops touch vectors of length dim; results are tensors on the
//! inputs' device. Small dense problems (the Lanczos tridiagonal, the Hutch++ Gram matrix, the
//! eigenvalues of a dense Hessian: [`symmetric_eigenvalues`]) are solved on the host in f64
//! with `nalgebra`.
//!
//! ```
//! use curvature_hessian::{hessian, hvp, top_eigenvalues, HessianOptions, LanczosOptions, PreparedHvp};
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_hessian::Result<()> {
//! // f(x) = Σ xᵢ³ has Hessian diag(6x).
//! let x = Tensor::from_f64s(&[1.0, -2.0, 3.0], [3], DType::F64, Device::Cpu)?;
//! let cube = |v: &[curvature_tape::Var]| v[0].powf(3.0)?.sum_all();
//! let ones = x.ones_like()?;
//! let hv = hvp(cube, &[x.clone()], &[ones])?;
//! assert_eq!(hv[0].to_vec::<f64>()?, vec![6.0, -12.0, 18.0]);
//!
//! let h = hessian(cube, &[x.clone()], &HessianOptions::default())?;
//! assert_eq!(h.dims(), &[3, 3]);
//!
//! let op = PreparedHvp::new(cube, &[x])?; // recorded once, reused by every estimator
//! let top = top_eigenvalues(&op, &LanczosOptions { k: 2, ..Default::default() })?;
//! assert!((top.values[0] - 18.0).abs() < 1e-9 && (top.values[1] - 6.0).abs() < 1e-9);
//! # Ok(())
//! # }
//! ```

mod alloc;
mod assemble;
mod density;
mod error;
mod estimate;
mod functional;
mod ggn;
mod input;
mod kfac;
mod krylov;
mod lanczos;
mod linalg;
mod mlp;
mod model;
mod model_hvp;
mod operator;
mod per_layer;
mod plans;
mod probes;
mod restrict;
mod solve;
mod trace;
mod xtrace;

pub use assemble::{hessian_diagonal, hessian_of, HessianOptions};
pub use density::{
    spectral_density, spectral_density_with, SlqOptions, SpectralDensity, GRID_MARGIN_SIGMAS,
    MAX_GRID_POINTS, MAX_SIGMA, MIN_SIGMA,
};
pub use error::{HessianError, Result};
pub use estimate::{
    hessian_diagonal_hutchinson_estimate, trace_hutchinson_estimate, trace_hutchpp_estimate,
    DiagonalEstimate, Estimate,
};
pub use functional::{hessian, hvp, hvp_batch, output_hessian};
pub use ggn::{Curvature, Ggn, GgnOptions, IntoOutputLoss, OutputLoss};
pub use input::{
    input_hessian, input_hessian_of, input_laplacian, input_laplacian_hutchinson,
    input_laplacian_hutchinson_of, input_laplacian_of,
};
pub use kfac::{kfac_block_errors, Kfac, KfacBlockError, KfacInverse, KfacLayer};
pub use krylov::MAX_KRYLOV_STEPS;
pub use lanczos::{top_eigenvalues, Eigen, LanczosOptions, RitzEstimate, Which};
pub use linalg::symmetric_eigenvalues;
pub use mlp::{MlpHvp, MlpMemory, MlpStrategy};
pub use model::{
    loss_hessian, loss_hessian_with, model_hessian, per_sample_hessian, per_sample_hessian_with,
    ModelInputs,
};
pub use model_hvp::ModelHvp;
pub use operator::{apply, LinearOperator, PreparedHvp};
pub use per_layer::{
    dense_plan, per_layer_curvature, BlockCurvature, DensePlan, Grouping, PerLayerOptions,
};
pub use probes::{probes, Probe, MAX_PROBES};
pub use restrict::{glob_match, parameter_blocks, select_blocks, ParameterBlock, Restricted};
pub use solve::{
    influence, solve_cg, solve_lissa, CgOptions, Damped, DiagonalPreconditioner, Influence,
    LissaOptions, Solution, MAX_SOLVE_ITERATIONS,
};
pub use trace::{hessian_diagonal_hutchinson, trace_hutchinson, trace_hutchpp};
pub use xtrace::{hessian_diagonal_xdiag, trace_xtrace};
