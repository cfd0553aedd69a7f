//! `curvature analyze`: the curvature of a model — loss, gradient,
//! diagonal and trace, top eigenvalues, spectral density and, when P is small enough or
//! `--full` is given, the whole matrix with all its eigenvalues — of the Hessian or, with
//! `--curvature`, of the Gauss–Newton matrix or a Fisher. Every number comes from the hessian
//! crate's operators ([`ModelHvp`](curvature::hessian::ModelHvp),
//! [`Ggn`](curvature::hessian::Ggn)); this module only chooses exact or estimated
//! methods by size and gathers the results, each estimate with its error bar. Before anything
//! large is loaded or computed, the memory of every step is planned ([`plan`]) and a run that
//! cannot fit is refused.
//!
//! A model file and an ONNX graph with its data file are both read into one [`Problem`]
//! ([`open`] then [`Opened::load`]); the operator, loss and gradient are built from it in
//! [`objective`](crate::ranks::objective), and nothing after that knows the model's format.

mod onnx;
mod plan;
mod problem;

use std::path::Path;

use curvature::hessian::{
    dense_plan, hessian_diagonal_hutchinson_estimate, hessian_diagonal_xdiag, hessian_of,
    kfac_block_errors, per_layer_curvature, spectral_density, top_eigenvalues,
    trace_hutchinson_estimate, trace_hutchpp_estimate, trace_xtrace, BlockCurvature, Curvature,
    DensePlan, Estimate, Grouping, HessianError, HessianOptions, Kfac, KfacBlockError,
    LanczosOptions, LinearOperator, PerLayerOptions, Probe, SlqOptions, SpectralDensity, Which,
    MAX_SIGMA, MIN_SIGMA,
};
use curvature::nn::{ModelFileError, ModelLayout, NnError};
use curvature::tensor::{DType, Device};

use crate::cli::{AnalyzeArgs, CurvatureChoice, DiagonalEstimator, PerLayerChoice, TraceEstimator};
use crate::progress::Step;
use crate::ranks::{agreed, objective, Group, Objective, Stop};
pub use plan::{readable, Plan};
pub use problem::{layout_json, ModelKind, Problem};

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
    /// From the dense matrix (P products) and a symmetric eigensolver.
    Exact,
    /// Hutchinson's estimator (the diagonal's or the trace's).
    Hutchinson,
    /// Hutch++ trace estimator.
    HutchPlusPlus,
    /// XTrace, the exchangeable trace estimator.
    XTrace,
    /// XDiag, the exchangeable diagonal estimator.
    XDiag,
    /// Lanczos with full reorthogonalisation.
    Lanczos { iterations: usize, converged: bool },
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Hutchinson => "hutchinson",
            Method::HutchPlusPlus => "hutch++",
            Method::XTrace => "xtrace",
            Method::XDiag => "xdiag",
            Method::Lanczos { .. } => "lanczos",
        }
    }
}

/// The names of the curvature matrix a run analyses.
impl CurvatureChoice {
    /// As `--curvature` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CurvatureChoice::Hessian => "hessian",
            CurvatureChoice::Ggn => "ggn",
            CurvatureChoice::Fisher => "fisher",
            CurvatureChoice::EmpiricalFisher => "empirical-fisher",
        }
    }

    /// The prefix of its tensors in the results file (`hessian_diag`, `ggn_diag`, …).
    pub fn prefix(self) -> &'static str {
        match self {
            CurvatureChoice::Hessian => "hessian",
            CurvatureChoice::Ggn => "ggn",
            CurvatureChoice::Fisher => "fisher",
            CurvatureChoice::EmpiricalFisher => "empirical_fisher",
        }
    }

    /// Its name in sentences.
    pub fn title(self) -> &'static str {
        match self {
            CurvatureChoice::Hessian => "Hessian",
            CurvatureChoice::Ggn => "GGN",
            CurvatureChoice::Fisher => "Fisher",
            CurvatureChoice::EmpiricalFisher => "empirical Fisher",
        }
    }
}

/// The per-block curvature of `--per-layer`, and KFAC's errors with `--kfac`.
pub struct PerLayer {
    pub grouping: PerLayerChoice,
    pub blocks: Vec<BlockCurvature>,
    pub kfac: Option<Vec<KfacBlockError>>,
}

/// Everything `analyze` computes.
pub struct Analysis {
    pub problem: Problem,
    pub device: Device,
    pub dtype: DType,
    pub curvature: CurvatureChoice,
    pub params: usize,
    pub samples: usize,
    pub loss: f64,
    /// `[P]` on the host, in f64.
    pub grad: Vec<f64>,
    /// The dense matrix `[P, P]` (row-major), when formed.
    pub hessian: Option<Vec<f64>>,
    /// All eigenvalues, ascending, when the matrix was formed.
    pub eigenvalues: Option<Vec<f64>>,
    pub diagonal: Vec<f64>,
    /// The standard error of each diagonal entry (0 when exact).
    pub diagonal_std_error: Vec<f64>,
    pub diagonal_method: Method,
    /// Operator products of the diagonal's estimate (0 when exact).
    pub diagonal_products: usize,
    /// The trace with its standard error (0 when exact) and its operator products.
    pub trace: Estimate,
    pub trace_method: Method,
    /// The largest eigenvalues, descending.
    pub top: Vec<f64>,
    /// Lanczos' residual norm ‖H·y − θ·y‖ of each (0 when exact).
    pub top_residuals: Vec<f64>,
    pub top_method: Method,
    pub density: SpectralDensity,
    /// The trace read from the density's probes: P · Σᵢ wᵢθᵢ per probe, their mean and its
    /// standard error.
    pub density_trace: Estimate,
    pub sigma: f64,
    /// The memory plan the run was checked against.
    pub memory: Plan,
    /// With `--per-layer`.
    pub per_layer: Option<PerLayer>,
    /// When the estimates were used although the dense matrix fits and costs no more products.
    pub full_suggestion: Option<DensePlan>,
}

/// The memory-relevant settings of a run.
fn settings(args: &AnalyzeArgs) -> plan::Settings {
    plan::Settings {
        dtype: args.dtype,
        full: args.full,
        fused: args.curvature == CurvatureChoice::Hessian,
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

/// The memory plan of the run for a model of `sizes`, checked against the memory available
/// before anything large is loaded.
fn plan_memory(args: &AnalyzeArgs, sizes: &plan::Sizes) -> Result<Plan, String> {
    let available = plan::available_memory(args.memory_limit);
    let plan =
        plan::plan(sizes, &settings(args), available).map_err(|e| located(&args.model, e))?;
    plan.check()?;
    Ok(plan)
}

/// Whether the whole run, with `--full`, fits the memory available.
fn full_run_fits(args: &AnalyzeArgs, sizes: &plan::Sizes) -> bool {
    let available = plan::available_memory(args.memory_limit);
    let full = plan::Settings {
        full: true,
        ..settings(args)
    };
    plan::plan(sizes, &full, available).is_ok_and(|p| p.check().is_ok())
}

/// A model opened and checked but not yet loaded: a model file's header, or an imported ONNX
/// graph and its data file's header.
pub enum Opened {
    File(ModelLayout),
    Onnx(onnx::OnnxSource),
}

/// Opens the model `args` names (an ONNX graph when its name ends in `.onnx`) and checks it
/// without reading the data. `--data`, `--loss` and `--params` belong to ONNX graphs, and
/// `--kfac` to model files (KFAC needs a `Sequential` of layers).
pub fn open(args: &AnalyzeArgs, device: Device) -> Result<Opened, String> {
    if onnx::is_onnx(&args.model) {
        if args.kfac {
            return Err(format!(
                "--kfac needs a Sequential of Linear (or Conv2d) layers, which {} (an ONNX \
                 graph) is not",
                args.model.display()
            ));
        }
        return onnx::open(args, args.dtype, device).map(Opened::Onnx);
    }
    let onnx_only = [
        ("--data", args.data.is_some()),
        ("--loss", args.loss.is_some()),
        ("--params", !args.params.is_empty()),
    ];
    if let Some((flag, _)) = onnx_only.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} applies to ONNX models (.onnx); {} is a model file, which holds its data, \
             loss and parameters itself",
            args.model.display()
        ));
    }
    let layout = ModelLayout::open(&args.model).map_err(|e| open_error(&args.model, e))?;
    if layout.samples() == 0 {
        return Err(located(&args.model, "tensor 'x' has no samples"));
    }
    Ok(Opened::File(layout))
}

impl Opened {
    /// The sizes the memory plan reads.
    pub fn sizes(&self) -> plan::Sizes {
        match self {
            Opened::File(layout) => plan::Sizes::from_layout(layout),
            Opened::Onnx(source) => source.sizes(),
        }
    }

    /// The number of samples.
    pub fn samples(&self) -> usize {
        match self {
            Opened::File(layout) => layout.samples(),
            Opened::Onnx(source) => source.samples(),
        }
    }

    /// Reads the model's tensors and the data in `dtype` on `device`.
    pub fn load(self, args: &AnalyzeArgs, device: Device) -> Result<Problem, String> {
        let _step = Step::spinner(format!("loading {}", args.model.display()));
        match self {
            Opened::File(layout) => {
                let file = layout
                    .load(args.dtype, device)
                    .map_err(|e| located(&args.model, e))?;
                Problem::from_model_file(file)
            }
            Opened::Onnx(source) => source.load(args.dtype, device),
        }
    }
}

/// Opens and loads the model and its data (every tensor and the metadata checked), plans the
/// run's memory, and analyses the model. With a `group`, this rank's shard of the samples gives the operators, reduced over the
/// group's ranks (the same results on every rank).
pub fn analyze(
    args: &AnalyzeArgs,
    device: Device,
    group: Option<&Group>,
) -> Result<Analysis, Stop> {
    // What precedes the split is the same on every rank: agreed on, so that an error every
    // rank meets is reported once.
    let prepared = agreed(group, prepare(args, device))?;
    run_prepared(args, device, group, prepared).map_err(Stop::Here)
}

/// The model and its data loaded and checked, and the run's memory planned.
struct Prepared {
    samples: usize,
    memory: Plan,
    full_fits: bool,
    problem: Problem,
}

/// Opens, checks and loads the model and its data, and plans the run's memory.
fn prepare(args: &AnalyzeArgs, device: Device) -> Result<Prepared, String> {
    if args.kfac && args.curvature == CurvatureChoice::Hessian {
        return Err(
            "--kfac approximates a Gauss–Newton or Fisher matrix: give --curvature ggn, fisher \
             or empirical-fisher"
                .to_string(),
        );
    }
    let opened = open(args, device)?;
    let samples = opened.samples();
    let sizes = opened.sizes();
    let memory = plan_memory(args, &sizes)?;
    if args.kfac && !args.full && sizes.params > DENSE_LIMIT as u128 {
        return Err(format!(
            "--kfac compares each layer with its exact block, formed like the dense matrix: it \
             runs when P ≤ {DENSE_LIMIT} (this model has {}) or with --full",
            sizes.params
        ));
    }
    let full_fits = !args.full && full_run_fits(args, &sizes);
    let problem = opened.load(args, device)?;
    Ok(Prepared {
        samples,
        memory,
        full_fits,
        problem,
    })
}

/// The analysis of a prepared model: its objective (over this rank's shard with a `group`),
/// then every quantity of the curvature.
fn run_prepared(
    args: &AnalyzeArgs,
    device: Device,
    group: Option<&Group>,
    prepared: Prepared,
) -> Result<Analysis, String> {
    let Prepared {
        samples,
        memory,
        full_fits,
        problem,
    } = prepared;
    let Objective { loss, grad, op } = {
        let _step = Step::spinner("computing the loss and its gradient");
        objective(args, &problem, group)?
    };
    let params = op.dim();
    if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return Err(located(
            &args.model,
            format!("the loss ({loss}) or its gradient is not finite at these parameters"),
        ));
    }
    let op = op.as_ref();
    // Before the costly steps, so that a model KFAC does not cover is refused at once.
    let kfac = if args.kfac {
        Some(kfac(args, &problem)?)
    } else {
        None
    };
    let title = args.curvature.title();
    let probes = args.probes as usize;
    let k = (args.top_k as usize).min(params);
    let numeric = |e: HessianError| e.to_string();
    let dense_run = args.full || params <= DENSE_LIMIT;

    let dense = if dense_run {
        let step = Step::products(format!("{title} (P columns)"), params as u64);
        let h = {
            let h = hessian_of(&step.track(op), &HessianOptions::default()).map_err(numeric)?;
            h.to_f64s().map_err(|e| e.to_string())?
        };
        if h.iter().any(|v| !v.is_finite()) {
            return Err(located(
                &args.model,
                format!("the {title} is not finite at these parameters"),
            ));
        }
        Some(h)
    } else {
        None
    };
    let eigenvalues = match &dense {
        Some(h) => {
            let _step = Step::spinner(format!("eigenvalues of the dense {title}"));
            Some(symmetric_eigenvalues(params, h, title)?)
        }
        None => None,
    };

    let mut products = 0usize;
    let (diagonal, diagonal_std_error, diagonal_method, diagonal_products, trace, trace_method) =
        match &dense {
            Some(h) => {
                let diagonal: Vec<f64> = (0..params).map(|i| h[i * params + i]).collect();
                let trace = Estimate::exact(diagonal.iter().sum(), params);
                let zeros = vec![0.0; params];
                (diagonal, zeros, Method::Exact, 0, trace, Method::Exact)
            }
            None => {
                let (diagonal, method) = match args.diagonal_estimator {
                    DiagonalEstimator::Hutchinson => {
                        let step = Step::products("diagonal (Hutchinson)", probes as u64);
                        let d = hessian_diagonal_hutchinson_estimate(
                            &step.track(op),
                            probes,
                            args.seed,
                        );
                        (d.map_err(numeric)?, Method::Hutchinson)
                    }
                    DiagonalEstimator::Xdiag => {
                        let matvecs = 2 * probes;
                        let step = Step::products("diagonal (XDiag)", matvecs as u64);
                        let d = hessian_diagonal_xdiag(&step.track(op), matvecs, args.seed);
                        (d.map_err(numeric)?, Method::XDiag)
                    }
                };
                let diagonal_products = if method == Method::XDiag {
                    2 * probes
                } else {
                    probes
                };
                products += diagonal_products;
                let values = diagonal.values.to_f64s().map_err(|e| e.to_string())?;
                let errors = diagonal.std_errors.to_f64s().map_err(|e| e.to_string())?;
                let (trace, trace_method) = estimate_trace(args, op, params)?;
                products += trace.samples;
                (
                    values,
                    errors,
                    method,
                    diagonal_products,
                    trace,
                    trace_method,
                )
            }
        };

    let (top, top_residuals, top_method) = match &eigenvalues {
        Some(all) => (
            all.iter().rev().take(k).copied().collect(),
            vec![0.0; k],
            Method::Exact,
        ),
        None => {
            let limit = LANCZOS_MAX_ITER.max(k).min(params);
            let step = Step::products("top eigenvalues (Lanczos)", limit as u64);
            let options = LanczosOptions {
                k,
                which: Which::Largest,
                tol: lanczos_tol(args.dtype),
                max_iter: limit,
                eigenvectors: false,
                seed: args.seed,
            };
            let eig = top_eigenvalues(&step.track(op), &options).map_err(numeric)?;
            products += eig.iterations;
            let method = Method::Lanczos {
                iterations: eig.iterations,
                converged: eig.converged,
            };
            (eig.values, eig.residuals, method)
        }
    };

    let sigma = args
        .sigma
        .unwrap_or_else(|| default_sigma(eigenvalues.as_deref(), &top));
    let steps = SLQ_STEPS.min(params);
    let density = {
        let step = Step::products("spectral density (SLQ)", (probes * steps) as u64);
        let options = slq_options(args, sigma, steps);
        spectral_density(&step.track(op), &options).map_err(numeric)?
    };
    products += probes * steps;
    let density_trace = density_trace(&density, params)?;

    let per_layer = match args.per_layer {
        Some(grouping) => Some(per_layer(args, op, &problem, grouping, dense_run, kfac)?),
        None => None,
    };

    let full_suggestion = if dense_run {
        None
    } else {
        let budget = usize::try_from(memory.available).unwrap_or(usize::MAX);
        let plan = dense_plan(params, args.dtype, products, budget).map_err(numeric)?;
        (plan.recommended() && full_fits).then_some(plan)
    };

    Ok(Analysis {
        device,
        dtype: args.dtype,
        curvature: args.curvature,
        params,
        samples,
        loss,
        grad,
        hessian: dense,
        eigenvalues,
        diagonal,
        diagonal_std_error,
        diagonal_method,
        diagonal_products,
        trace,
        trace_method,
        top,
        top_residuals,
        top_method,
        density,
        density_trace,
        sigma,
        memory,
        per_layer,
        full_suggestion,
        problem,
    })
}

/// The trace by the estimator `--trace-estimator` names, with its standard error: Hutchinson
/// (probes products), Hutch++ (3 × probes, at most 3P) or XTrace (2 × probes).
fn estimate_trace(
    args: &AnalyzeArgs,
    op: &dyn LinearOperator,
    params: usize,
) -> Result<(Estimate, Method), String> {
    let probes = args.probes as usize;
    let numeric = |e: HessianError| e.to_string();
    Ok(match args.trace_estimator {
        TraceEstimator::Hutchinson => {
            let step = Step::products("trace (Hutchinson)", probes as u64);
            let t =
                trace_hutchinson_estimate(&step.track(op), probes, Probe::Rademacher, args.seed);
            (t.map_err(numeric)?, Method::Hutchinson)
        }
        TraceEstimator::Hutchpp => {
            // A sketch beyond P directions adds nothing (P of them make the trace exact).
            let matvecs = 3 * probes.min(params);
            let step = Step::products("trace (Hutch++)", matvecs as u64);
            let t = trace_hutchpp_estimate(&step.track(op), matvecs, args.seed);
            (t.map_err(numeric)?, Method::HutchPlusPlus)
        }
        TraceEstimator::Xtrace => {
            let matvecs = 2 * probes;
            let step = Step::products("trace (XTrace)", matvecs as u64);
            let t = trace_xtrace(&step.track(op), matvecs, Probe::Rademacher, args.seed);
            (t.map_err(numeric)?, Method::XTrace)
        }
    })
}

/// The trace the density's probes give: for a Rademacher probe v (vᵀv = P) the quadrature
/// `Σᵢ wᵢθᵢ = vᵀHv / P`, so `P · Σᵢ wᵢθᵢ` is that probe's Hutchinson sample; their mean with
/// its standard error.
fn density_trace(density: &SpectralDensity, params: usize) -> Result<Estimate, String> {
    let samples: Vec<f64> = density
        .nodes
        .iter()
        .zip(&density.weights)
        .map(|(nodes, weights)| {
            params as f64 * nodes.iter().zip(weights).map(|(t, w)| t * w).sum::<f64>()
        })
        .collect();
    Estimate::from_samples(&samples).map_err(|e| e.to_string())
}

/// `--kfac`: the Kronecker factors of the model's layers for the curvature `--curvature`
/// names (an error for a model with parameters outside `Linear` and `Conv2d` layers).
fn kfac(args: &AnalyzeArgs, problem: &Problem) -> Result<Kfac, String> {
    let curvature = Curvature::from_name(
        args.curvature.name(),
        args.fisher_samples as usize,
        args.seed,
    )
    .map_err(|e| e.to_string())?;
    let [x] = problem.inputs.as_slice() else {
        return Err(located(
            &args.model,
            "--kfac needs a model of one input, a Sequential of Linear (or Conv2d) layers",
        ));
    };
    let _step = Step::spinner("the KFAC factors");
    Kfac::new(
        problem.model.as_ref(),
        problem.loss,
        x,
        &problem.y,
        curvature,
    )
    .map_err(|e| located(&args.model, e))
}

/// `--per-layer`: each block's curvature by [`per_layer_curvature`], exact for blocks of at
/// most `--probes` coordinates (no more products than the estimate), or all of them when the
/// run forms the dense matrix; with `--kfac` (the factors `kfac`), KFAC's error per layer.
fn per_layer(
    args: &AnalyzeArgs,
    op: &dyn LinearOperator,
    problem: &Problem,
    grouping: PerLayerChoice,
    dense_run: bool,
    kfac: Option<Kfac>,
) -> Result<PerLayer, String> {
    let numeric = |e: HessianError| e.to_string();
    let probes = args.probes as usize;
    let defaults = PerLayerOptions::default();
    let options = PerLayerOptions {
        grouping: match grouping {
            PerLayerChoice::Tensor => Grouping::Tensor,
            PerLayerChoice::Layer => Grouping::Layer,
        },
        exact_limit: if dense_run { op.dim() } else { probes },
        probes,
        seed: args.seed,
        lanczos: LanczosOptions {
            seed: args.seed,
            tol: lanczos_tol(args.dtype),
            ..defaults.lanczos
        },
        ..defaults
    };
    let blocks = {
        let _step = Step::spinner("curvature per block");
        per_layer_curvature(op, problem.model.as_ref(), &options).map_err(numeric)?
    };
    let kfac = match kfac {
        Some(kfac) => {
            let _step = Step::spinner("KFAC's error per layer");
            Some(kfac_block_errors(&kfac, op).map_err(numeric)?)
        }
        None => None,
    };
    Ok(PerLayer {
        grouping,
        blocks,
        kfac,
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

/// All eigenvalues, ascending, of the symmetric part of the row-major `n × n` matrix `h`
/// (the `title` matrix).
fn symmetric_eigenvalues(n: usize, h: &[f64], title: &str) -> Result<Vec<f64>, String> {
    curvature::hessian::symmetric_eigenvalues(n, h).map_err(|e| match e {
        HessianError::NotConverged { .. } => {
            format!("the symmetric eigensolver did not converge on the {title}")
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

/// The tensors `analyze` writes, by name, with their shapes, in f64 (see the README). The
/// curvature's tensors carry its prefix (`hessian_diag`, `ggn_diag`, …); every estimate's
/// standard error (0 for an exact quantity) sits beside it.
pub fn output_tensors(a: &Analysis) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    let p = a.params;
    let prefix = a.curvature.prefix();
    let name = |suffix: &str| format!("{prefix}_{suffix}");
    let mut out = vec![
        ("loss".to_string(), vec![1], vec![a.loss]),
        ("grad".to_string(), vec![p], a.grad.clone()),
    ];
    let diag_name = match a.diagonal_method {
        Method::Exact => name("diag"),
        m => name(&format!("diag_{}", m.name())),
    };
    let trace_name = match a.trace_method {
        Method::Exact => name("trace"),
        Method::HutchPlusPlus => name("trace_hutchpp"),
        m => name(&format!("trace_{}", m.name())),
    };
    out.push((diag_name, vec![p], a.diagonal.clone()));
    out.push((
        name("diag_std_error"),
        vec![p],
        a.diagonal_std_error.clone(),
    ));
    out.push((trace_name, vec![1], vec![a.trace.value]));
    out.push((name("trace_std_error"), vec![1], vec![a.trace.std_error]));
    if let Some(h) = &a.hessian {
        out.push((prefix.to_string(), vec![p, p], h.clone()));
    }
    if let Some(all) = &a.eigenvalues {
        out.push((name("eigvals"), vec![p], all.clone()));
    }
    let k = a.top.len();
    out.push(("top_eigenvalues".to_string(), vec![k], a.top.clone()));
    out.push((
        "top_eigenvalues_residual".to_string(),
        vec![k],
        a.top_residuals.clone(),
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
    out.push((
        "spectral_density_trace".to_string(),
        vec![1],
        vec![a.density_trace.value],
    ));
    out.push((
        "spectral_density_trace_std_error".to_string(),
        vec![1],
        vec![a.density_trace.std_error],
    ));
    if let Some(per_layer) = &a.per_layer {
        let b = per_layer.blocks.len();
        let column = |f: &dyn Fn(&BlockCurvature) -> f64| -> Vec<f64> {
            per_layer.blocks.iter().map(f).collect()
        };
        let columns: [(&str, Vec<f64>); 7] = [
            ("per_layer_size", column(&|c| c.size as f64)),
            ("per_layer_trace", column(&|c| c.trace.value)),
            ("per_layer_trace_std_error", column(&|c| c.trace.std_error)),
            (
                "per_layer_top_eigenvalue",
                column(&|c| c.top_eigenvalue.value),
            ),
            (
                "per_layer_top_eigenvalue_residual",
                column(&|c| c.top_eigenvalue.residual),
            ),
            ("per_layer_diag_mean", column(&|c| c.diagonal_mean.value)),
            ("per_layer_diag_max_abs", column(&|c| c.diagonal_max_abs)),
        ];
        for (n, values) in columns {
            out.push((n.to_string(), vec![b], values));
        }
        if let Some(kfac) = &per_layer.kfac {
            out.push((
                "kfac_relative_error".to_string(),
                vec![kfac.len()],
                kfac.iter().map(|e| e.relative_frobenius).collect(),
            ));
        }
    }
    out
}

/// The Lanczos convergence tolerance for an operator of `dtype`: 1e-8 in f64, 1e-5 in f32, and
/// for the 16-bit storage dtypes (whose products carry their rounding, about 1e-3 for f16 and
/// 1e-2 for bf16) the square root of their epsilon.
fn lanczos_tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-8,
        DType::F32 => 1e-5,
        DType::F16 | DType::BF16 => dtype.epsilon().sqrt(),
    }
}
