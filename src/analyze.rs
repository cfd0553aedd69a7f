//! `curvature analyze`: the curvature of a model stored as safetensors — loss, gradient,
//! Hessian diagonal and trace, top eigenvalues, spectral density and, when P is small enough or
//! `--full` is given, the whole Hessian with all its eigenvalues. Every number comes from the
//! hessian crate's operator [`ModelHvp`]; this module only chooses exact or estimated
//! methods by size and gathers the results. Before anything large is loaded or computed, the
//! memory of every step is planned ([`plan`]) and a run that cannot fit is refused.

mod plan;

use std::path::Path;

use curvature::hessian::{
    hessian_diagonal_hutchinson, hessian_of, spectral_density, top_eigenvalues, trace_hutchpp,
    HessianError, HessianOptions, LanczosOptions, LinearOperator, ModelHvp, Probe, SlqOptions,
    SpectralDensity, Which, MAX_SIGMA, MIN_SIGMA,
};
use curvature::nn::{ModelFile, ModelFileError, ModelLayout, NnError};
use curvature::tensor::{DType, Device};

use crate::cli::AnalyzeArgs;
use crate::progress::Step;
pub use plan::{readable, Plan};

/// Up to this many parameters the Hessian is formed densely (P products) and the diagonal,
/// trace and eigenvalues are exact; beyond it they are estimated unless `--full` is given.
pub const DENSE_LIMIT: usize = 1024;

/// Lanczos steps per probe of the spectral density (capped at P).
const SLQ_STEPS: usize = 80;

/// Points of the density grid.
const GRID_POINTS: usize = 1000;

/// The most Lanczos steps for the top eigenvalues.
const LANCZOS_MAX_ITER: usize = 300;

/// How a quantity was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// From the dense Hessian (P products) and a symmetric eigensolver.
    Exact,
    /// Hutchinson's diagonal estimator.
    Hutchinson,
    /// Hutch++ trace estimator.
    HutchPlusPlus,
    /// Lanczos with full reorthogonalisation.
    Lanczos { iterations: usize, converged: bool },
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Hutchinson => "hutchinson",
            Method::HutchPlusPlus => "hutch++",
            Method::Lanczos { .. } => "lanczos",
        }
    }
}

/// Everything `analyze` computes.
pub struct Analysis {
    pub model: ModelFile,
    pub device: Device,
    pub dtype: DType,
    pub params: usize,
    pub samples: usize,
    pub loss: f64,
    /// `[P]` on the host, in f64.
    pub grad: Vec<f64>,
    /// The dense Hessian `[P, P]` (row-major), when formed.
    pub hessian: Option<Vec<f64>>,
    /// All eigenvalues, ascending, when the Hessian was formed.
    pub eigenvalues: Option<Vec<f64>>,
    pub diagonal: Vec<f64>,
    pub diagonal_method: Method,
    pub trace: f64,
    pub trace_method: Method,
    /// The largest eigenvalues, descending.
    pub top: Vec<f64>,
    pub top_method: Method,
    pub density: SpectralDensity,
    pub sigma: f64,
    /// The memory plan the run was checked against.
    pub memory: Plan,
}

/// The memory-relevant settings of a run.
fn settings(args: &AnalyzeArgs) -> plan::Settings {
    plan::Settings {
        dtype: args.dtype,
        full: args.full,
        dense_limit: DENSE_LIMIT,
        writes_file: args.out.is_some(),
        probes: args.probes as usize,
        top_k: args.top_k as usize,
        lanczos_max_iter: LANCZOS_MAX_ITER,
        slq: slq_options(args, 0.0, 0),
    }
}

/// The spectral density's options for this run (σ and the steps filled in by the caller).
fn slq_options(args: &AnalyzeArgs, sigma: f64, steps: usize) -> SlqOptions {
    SlqOptions {
        probes: args.probes as usize,
        probe: Probe::Rademacher,
        steps: if steps == 0 { SLQ_STEPS } else { steps },
        seed: args.seed,
        grid_points: GRID_POINTS,
        sigma,
    }
}

/// The memory plan of the run for the model `layout` describes, checked against the memory
/// available before anything is loaded.
fn plan_memory(args: &AnalyzeArgs, layout: &ModelLayout) -> Result<Plan, String> {
    let sizes = plan::Sizes::from_layout(layout);
    let available = plan::available_memory(args.memory_limit);
    let plan =
        plan::plan(&sizes, &settings(args), available).map_err(|e| located(&args.model, e))?;
    plan.check()?;
    Ok(plan)
}

/// Loads the model (the shared loader checks every tensor and the metadata) and analyses it.
pub fn analyze(args: &AnalyzeArgs, device: Device) -> Result<Analysis, String> {
    let layout = ModelLayout::open(&args.model).map_err(|e| open_error(&args.model, e))?;
    let samples = layout.samples();
    if samples == 0 {
        return Err(located(&args.model, "tensor 'x' has no samples"));
    }
    let memory = plan_memory(args, &layout)?;
    let model = {
        let _step = Step::spinner(format!("loading {}", args.model.display()));
        layout
            .load(args.dtype, device)
            .map_err(|e| located(&args.model, e))?
    };
    let op = {
        let _step = Step::spinner("computing the loss and its gradient");
        ModelHvp::new(&model.model, model.loss, &model.x, &model.y).map_err(|e| e.to_string())?
    };
    let params = op.dim();
    let loss = op.value().map_err(|e| e.to_string())?;
    let grad = op
        .gradient()
        .and_then(|g| Ok(g.to_f64s()?))
        .map_err(|e| e.to_string())?;
    if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return Err(located(
            &args.model,
            format!("the loss ({loss}) or its gradient is not finite at these parameters"),
        ));
    }
    let probes = args.probes as usize;
    let k = (args.top_k as usize).min(params);
    let numeric = |e: curvature::hessian::HessianError| e.to_string();

    let dense = if args.full || params <= DENSE_LIMIT {
        let step = Step::products("Hessian (P columns)", params as u64);
        let h = {
            let h = hessian_of(&step.track(&op), &HessianOptions::default()).map_err(numeric)?;
            h.to_f64s().map_err(|e| e.to_string())?
        };
        if h.iter().any(|v| !v.is_finite()) {
            return Err(located(
                &args.model,
                "the Hessian is not finite at these parameters",
            ));
        }
        Some(h)
    } else {
        None
    };
    let eigenvalues = match &dense {
        Some(h) => {
            let _step = Step::spinner("eigenvalues of the dense Hessian");
            Some(symmetric_eigenvalues(params, h)?)
        }
        None => None,
    };

    let (diagonal, diagonal_method, trace, trace_method) = match &dense {
        Some(h) => {
            let diagonal: Vec<f64> = (0..params).map(|i| h[i * params + i]).collect();
            let trace = diagonal.iter().sum();
            (diagonal, Method::Exact, trace, Method::Exact)
        }
        None => {
            let step = Step::products("diagonal (Hutchinson)", probes as u64);
            let diagonal = hessian_diagonal_hutchinson(&step.track(&op), probes, args.seed)
                .and_then(|d| Ok(d.to_f64s()?))
                .map_err(numeric)?;
            drop(step);
            // A sketch beyond P directions adds nothing (P of them make the trace exact).
            let matvecs = 3 * probes.clamp(1, params);
            let step = Step::products("trace (Hutch++)", matvecs as u64);
            let trace = trace_hutchpp(&step.track(&op), matvecs, args.seed).map_err(numeric)?;
            (diagonal, Method::Hutchinson, trace, Method::HutchPlusPlus)
        }
    };

    let (top, top_method) = match &eigenvalues {
        Some(all) => (all.iter().rev().take(k).copied().collect(), Method::Exact),
        None => {
            let limit = LANCZOS_MAX_ITER.max(k).min(params);
            let step = Step::products("top eigenvalues (Lanczos)", limit as u64);
            let options = LanczosOptions {
                k,
                which: Which::Largest,
                tol: if args.dtype == DType::F32 { 1e-5 } else { 1e-8 },
                max_iter: limit,
                eigenvectors: false,
                seed: args.seed,
            };
            let eig = top_eigenvalues(&step.track(&op), &options).map_err(numeric)?;
            let method = Method::Lanczos {
                iterations: eig.iterations,
                converged: eig.converged,
            };
            (eig.values, method)
        }
    };

    let sigma = args
        .sigma
        .unwrap_or_else(|| default_sigma(eigenvalues.as_deref(), &top));
    let steps = SLQ_STEPS.min(params);
    let density = {
        let step = Step::products("spectral density (SLQ)", (probes * steps) as u64);
        let options = slq_options(args, sigma, steps);
        spectral_density(&step.track(&op), &options).map_err(numeric)?
    };

    Ok(Analysis {
        device,
        dtype: args.dtype,
        params,
        samples,
        loss,
        grad,
        hessian: dense,
        eigenvalues,
        diagonal,
        diagonal_method,
        trace,
        trace_method,
        top,
        top_method,
        density,
        sigma,
        memory,
        model,
    })
}

/// Prefixes an error with the file it is about.
fn located(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// An error opening the model file: located, unless it names the file already (it could not
/// be read at all).
fn open_error(path: &Path, e: NnError) -> String {
    match e {
        NnError::ModelFile(ModelFileError::Io { .. } | ModelFileError::NotRegular { .. }) => {
            e.to_string()
        }
        other => located(path, other),
    }
}

/// All eigenvalues, ascending, of the symmetric part of the row-major `n × n` matrix `h`.
fn symmetric_eigenvalues(n: usize, h: &[f64]) -> Result<Vec<f64>, String> {
    curvature::hessian::symmetric_eigenvalues(n, h).map_err(|e| match e {
        HessianError::NotConverged { .. } => {
            "the symmetric eigensolver did not converge on the Hessian".to_string()
        }
        other => other.to_string(),
    })
}

/// 1% of the spectrum's extent: of all eigenvalues when known, otherwise of the interval from
/// 0 to the largest eigenvalue's magnitude, kept within the σ range the density accepts. A
/// zero spectrum gets σ = 1e-3.
fn default_sigma(eigenvalues: Option<&[f64]>, top: &[f64]) -> f64 {
    let extent = match eigenvalues {
        Some(all) => all.last().unwrap_or(&0.0) - all.first().unwrap_or(&0.0),
        None => top.iter().fold(0.0f64, |m, v| m.max(v.abs())),
    };
    if extent.is_finite() && extent > 0.0 {
        (0.01 * extent).clamp(MIN_SIGMA, MAX_SIGMA)
    } else {
        1e-3
    }
}

/// The Euclidean norm of a vector.
pub fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The tensors `analyze` writes, by name, with their shapes, in f64 (see the README).
pub fn output_tensors(a: &Analysis) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    let p = a.params;
    let mut out = vec![
        ("loss".to_string(), vec![1], vec![a.loss]),
        ("grad".to_string(), vec![p], a.grad.clone()),
    ];
    let (diag_name, trace_name) = match a.diagonal_method {
        Method::Exact => ("hessian_diag", "hessian_trace"),
        _ => ("hessian_diag_hutchinson", "hessian_trace_hutchpp"),
    };
    out.push((diag_name.to_string(), vec![p], a.diagonal.clone()));
    out.push((trace_name.to_string(), vec![1], vec![a.trace]));
    if let Some(h) = &a.hessian {
        out.push(("hessian".to_string(), vec![p, p], h.clone()));
    }
    if let Some(all) = &a.eigenvalues {
        out.push(("hessian_eigvals".to_string(), vec![p], all.clone()));
    }
    out.push((
        "top_eigenvalues".to_string(),
        vec![a.top.len()],
        a.top.clone(),
    ));
    let g = a.density.grid.len();
    out.push((
        "spectral_density_grid".to_string(),
        vec![g],
        a.density.grid.clone(),
    ));
    out.push((
        "spectral_density".to_string(),
        vec![g],
        a.density.density.clone(),
    ));
    out
}
