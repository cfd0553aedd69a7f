//! `curvature analyze`: checks the destinations, runs the analysis, writes the results file
//! and the plot (staged, then renamed into place together only once everything has succeeded)
//! and prints a readable summary, every estimate as `value ± error` and every exact quantity
//! said to be exact.

use std::collections::BTreeMap;
use std::path::Path;

use curvature::distributed::mpi::launcher_rank;
use curvature::hessian::Estimate;

use crate::analyze::{layout_json, norm, output_tensors, Analysis, Method, ModelKind};
use crate::cli::AnalyzeArgs;
use crate::console::{print, Failure};
use crate::output::{check_destinations, commit, Staged};
use crate::plot::spectrum_svg;
use crate::ranks::analyze_on_ranks;
use crate::results_file::safetensors_bytes;

pub fn run(args: &AnalyzeArgs) -> Result<(), Failure> {
    let mut outputs = Vec::new();
    if let Some(path) = &args.out {
        outputs.push(("--out", path.as_path()));
    }
    if let Some(path) = &args.plot {
        outputs.push(("--plot", path.as_path()));
    }
    // Before any work: a bad destination is found in a second, not after the analysis. Under
    // MPI only rank 0 writes, so only it checks (and reports once); its exit ends the job.
    let mut inputs = vec![("model file", args.model.as_path())];
    if let Some(data) = &args.data {
        inputs.push(("data file", data.as_path()));
    }
    if launcher_rank().unwrap_or(0) == 0 {
        check_destinations(&inputs, &outputs)?;
    }
    let device = args.device.select_with_precision(args.precision)?;
    let Some(analysis) = analyze_on_ranks(args, device)? else {
        // A rank of an MPI job other than 0: rank 0 writes and prints.
        return Ok(());
    };
    let tensors = output_tensors(&analysis);
    let mut contents: Vec<(&Path, Vec<u8>)> = Vec::new();
    if let Some(path) = &args.out {
        contents.push((
            path,
            safetensors_bytes(&tensors, &metadata(args, &analysis))?,
        ));
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} spectrum of {}",
            analysis.curvature.title(),
            file_name(&args.model)
        );
        let svg = spectrum_svg(&title, &analysis.density, &analysis.top)?;
        contents.push((path, svg.into_bytes()));
    }
    let staged = contents
        .iter()
        .map(|(path, bytes)| Staged::new(path, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    commit(staged)?;
    let mut text = summary(args, &analysis);
    if let Some(path) = &args.out {
        let names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
        text.push_str(&format!(
            "wrote {} ({})\n",
            path.display(),
            names.join(", ")
        ));
    }
    if let Some(path) = &args.plot {
        text.push_str(&format!("wrote {}\n", path.display()));
    }
    print(&text)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// The results file's metadata: the model's own keys, its parameter layout, how it ran, and
/// how each quantity was obtained, in key order (the same run gives the same bytes).
fn metadata(args: &AnalyzeArgs, a: &Analysis) -> BTreeMap<String, String> {
    let p = &a.problem;
    let strings = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
    // The model as its file describes it: the MLP form's keys, the `layers` list, or the
    // ONNX graph's inputs and op types.
    let mut model: Vec<(&str, String)> = match &p.kind {
        ModelKind::File {
            widths,
            activations,
            final_activation,
            layers,
        } => {
            if widths.is_empty() {
                let layers: Vec<serde_json::Value> = layers.iter().map(|l| l.to_json()).collect();
                vec![("layers", serde_json::to_string(&layers).unwrap_or_default())]
            } else {
                let activations: Vec<&str> = activations.iter().map(|x| x.name()).collect();
                vec![
                    ("widths", serde_json::to_string(widths).unwrap_or_default()),
                    ("activations", strings(&activations)),
                    (
                        "final_activation",
                        final_activation.map_or("None", |x| x.name()).to_string(),
                    ),
                ]
            }
        }
        ModelKind::Onnx { inputs, ops, .. } => {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
            vec![
                ("format", "onnx".to_string()),
                ("onnx_inputs", strings(&inputs)),
                ("onnx_ops", strings(&ops)),
            ]
        }
    };
    model.push(("parameters", layout_json(&p.parameters)));
    if let Some(data) = &args.data {
        model.push(("data", file_name(data)));
    }
    let mut entries = vec![
        ("source", file_name(&args.model)),
        ("curvature", a.curvature.name().to_string()),
        ("loss", p.loss.name().to_string()),
        ("params", a.params.to_string()),
        ("samples", a.samples.to_string()),
        ("dtype", a.dtype.as_str().to_string()),
        ("precision", args.precision.name().to_string()),
        ("device", a.device.to_string()),
        ("seed", args.seed.to_string()),
        ("probes", args.probes.to_string()),
        ("hessian_diag_method", a.diagonal_method.name().to_string()),
        ("hessian_trace_method", a.trace_method.name().to_string()),
        ("top_eigenvalues_method", a.top_method.name().to_string()),
        ("spectral_density_sigma", format!("{:e}", a.sigma)),
        ("spectral_density_probes", a.density.probes.to_string()),
        ("spectral_density_steps", a.density.steps.to_string()),
    ];
    if a.curvature == crate::cli::CurvatureChoice::Fisher {
        entries.push(("fisher_samples", args.fisher_samples.to_string()));
    }
    if let Some(per_layer) = &a.per_layer {
        let names: Vec<&str> = per_layer.blocks.iter().map(|b| b.name.as_str()).collect();
        let exact: Vec<bool> = per_layer.blocks.iter().map(|b| b.exact).collect();
        let grouping = match per_layer.grouping {
            crate::cli::PerLayerChoice::Tensor => "tensor",
            crate::cli::PerLayerChoice::Layer => "layer",
        };
        entries.push(("per_layer_grouping", grouping.to_string()));
        entries.push(("per_layer_blocks", strings(&names)));
        entries.push((
            "per_layer_exact",
            serde_json::to_string(&exact).unwrap_or_default(),
        ));
        if let Some(kfac) = &per_layer.kfac {
            let layers: Vec<&str> = kfac.iter().map(|e| e.name.as_str()).collect();
            entries.push(("kfac_layers", strings(&layers)));
        }
    }
    model
        .into_iter()
        .chain(entries)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The model in words: the MLP's widths and activations, the layer types in order, or the
/// ONNX graph's op types.
fn model_line(a: &Analysis) -> String {
    let p = &a.problem;
    let shape = match &p.kind {
        ModelKind::File {
            widths,
            activations,
            final_activation,
            layers,
        } => {
            if widths.is_empty() {
                let types: Vec<&str> = layers.iter().map(|l| l.type_name()).collect();
                format!("Sequential({})", types.join(" → "))
            } else {
                let widths: Vec<String> = widths.iter().map(usize::to_string).collect();
                let activations: Vec<&str> = activations.iter().map(|x| x.name()).collect();
                format!(
                    "MLP {} ({}{})",
                    widths.join("-"),
                    if activations.is_empty() {
                        "no hidden layers".to_string()
                    } else {
                        activations.join(", ")
                    },
                    final_activation.map_or(String::new(), |x| format!(", final {}", x.name())),
                )
            }
        }
        ModelKind::Onnx { inputs, nodes, ops } => format!(
            "ONNX graph of {nodes} nodes ({}), input{} {}, {} parameter tensors",
            ops.join(", "),
            if inputs.len() == 1 { "" } else { "s" },
            inputs.join(", "),
            p.parameters.len()
        ),
    };
    format!(
        "{shape}, loss {}, {} samples, P = {}",
        p.loss.name(),
        a.samples,
        a.params
    )
}

fn summary(args: &AnalyzeArgs, a: &Analysis) -> String {
    let p = a.params;
    let title = a.curvature.title();
    let mut s = format!("curvature analyze: {}\n", args.model.display());
    let mut line = |key: &str, value: String| s.push_str(&format!("  {key:<13} {value}\n"));
    line("model", model_line(a));
    line(
        "run on",
        format!("{}, {}", curvature::device_description(a.device), a.dtype),
    );
    line("curvature", curvature_line(args, a));
    line("loss", format!("{:.12e} (exact)", a.loss));
    let gmax = a.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    line(
        "gradient",
        format!("‖g‖ = {:.6e}, max |gᵢ| = {gmax:.6e} (exact)", norm(&a.grad)),
    );
    if a.hessian.is_some() {
        line(title, format!("dense {p} × {p} (exact, from {p} products)"));
    }
    line("trace", trace_line(a));
    line("diagonal", diagonal_line(a));
    if let Some(all) = &a.eigenvalues {
        let (lo, hi) = range(all);
        let negative = all.iter().filter(|&&v| v < 0.0).count();
        line(
            "eigenvalues",
            format!("min {lo:.6e}, max {hi:.6e}, {negative} of {p} negative (exact)"),
        );
    }
    let top: Vec<String> = match a.top_method {
        Method::Exact => a.top.iter().map(|v| format!("{v:.6e}")).collect(),
        _ => a
            .top
            .iter()
            .zip(&a.top_residuals)
            .map(|(v, r)| format!("{v:.6e} ± {r:.1e}"))
            .collect(),
    };
    line(
        &format!("top {}", a.top.len()),
        format!("{} ({})", top.join(", "), method(a.top_method)),
    );
    let peak = a.memory.peak();
    line(
        "memory",
        format!(
            "planned peak {} ({}), {} available ({})",
            crate::analyze::readable(peak.bytes),
            peak.name,
            crate::analyze::readable(a.memory.available),
            a.memory.source
        ),
    );
    let grid = &a.density.grid;
    line(
        "density",
        format!(
            "SLQ estimate, {} probes × {} Lanczos steps, σ = {:.3e}, {} points on [{:.4e}, {:.4e}]; \
             its trace {}",
            a.density.probes,
            a.density.steps,
            a.sigma,
            grid.len(),
            grid.first().copied().unwrap_or(0.0),
            grid.last().copied().unwrap_or(0.0),
            estimate(a.density_trace)
        ),
    );
    if let Some(plan) = &a.full_suggestion {
        line(
            "note",
            format!(
                "the dense {title} fits in memory ({}) and takes {} products, no more than the \
                 {} these estimates took: --full computes every quantity exactly",
                crate::analyze::readable(plan.bytes),
                plan.dim,
                plan.estimate_products
            ),
        );
    }
    if let Some(per_layer) = &a.per_layer {
        s.push_str(&per_layer_table(a, per_layer));
    }
    s
}

/// The curvature line: which matrix, and how its random parts were drawn.
fn curvature_line(args: &AnalyzeArgs, a: &Analysis) -> String {
    use crate::cli::CurvatureChoice;
    match a.curvature {
        CurvatureChoice::Hessian => "Hessian ∇²L".to_string(),
        CurvatureChoice::Ggn => "generalised Gauss–Newton Jᵀ·∇²_f L·J".to_string(),
        CurvatureChoice::Fisher => format!(
            "Monte-Carlo Fisher, {} target{} per sample drawn with seed {}",
            args.fisher_samples,
            if args.fisher_samples == 1 { "" } else { "s" },
            args.seed
        ),
        CurvatureChoice::EmpiricalFisher => "empirical Fisher (1/n)·Σᵢ ∇ℓᵢ∇ℓᵢᵀ".to_string(),
    }
}

/// `value ± error` with ten significant digits of the value.
fn estimate(e: Estimate) -> String {
    format!("{:.10e} ± {:.2e}", e.value, e.std_error)
}

fn trace_line(a: &Analysis) -> String {
    match a.trace_method {
        Method::Exact => format!("{:.10e} (exact)", a.trace.value),
        m => format!(
            "{} ({}, {} products)",
            estimate(a.trace),
            method(m),
            a.trace.samples
        ),
    }
}

/// The diagonal's smallest and largest entries, each with its standard error when estimated.
fn diagonal_line(a: &Analysis) -> String {
    let (lo, hi) = extremes(&a.diagonal);
    let d = &a.diagonal;
    match a.diagonal_method {
        Method::Exact => format!("min {:.6e}, max {:.6e} (exact)", d[lo], d[hi]),
        m => {
            let e = &a.diagonal_std_error;
            let rms = (e.iter().map(|v| v * v).sum::<f64>() / e.len().max(1) as f64).sqrt();
            format!(
                "min {:.6e} ± {:.1e}, max {:.6e} ± {:.1e}, rms standard error {rms:.2e} ({}, {} products)",
                d[lo], e[lo], d[hi], e[hi],
                method(m),
                a.diagonal_products
            )
        }
    }
}

/// The indices of the smallest and largest values (0 for an empty slice).
fn extremes(values: &[f64]) -> (usize, usize) {
    let mut lo = 0;
    let mut hi = 0;
    for (i, v) in values.iter().enumerate() {
        if *v < values[lo] {
            lo = i;
        }
        if *v > values[hi] {
            hi = i;
        }
    }
    (lo, hi)
}

/// The `--per-layer` table: each block's size, trace, top eigenvalue (± its residual), mean
/// and largest absolute diagonal entry; then KFAC's relative error per layer with `--kfac`.
fn per_layer_table(a: &Analysis, per_layer: &crate::analyze::PerLayer) -> String {
    let by = match per_layer.grouping {
        crate::cli::PerLayerChoice::Tensor => "parameter tensor",
        crate::cli::PerLayerChoice::Layer => "layer",
    };
    let mut s = format!("  per {by} ({} diagonal blocks):\n", a.curvature.title());
    let width = per_layer
        .blocks
        .iter()
        .map(|b| b.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    s.push_str(&format!(
        "    {:<width$} {:>8}  {:<30} {:<30} {:<30} {:>12}\n",
        "block", "size", "trace", "top eigenvalue", "diagonal mean", "max |diag|"
    ));
    for b in &per_layer.blocks {
        let how = if b.exact { "exact" } else { "Hutchinson" };
        let name = if b.name.is_empty() { "(root)" } else { &b.name };
        let trace = if b.exact {
            format!("{:.6e} ({how})", b.trace.value)
        } else {
            format!("{:.6e} ± {:.1e}", b.trace.value, b.trace.std_error)
        };
        let mean = if b.exact {
            format!("{:.6e} ({how})", b.diagonal_mean.value)
        } else {
            format!(
                "{:.6e} ± {:.1e}",
                b.diagonal_mean.value, b.diagonal_mean.std_error
            )
        };
        s.push_str(&format!(
            "    {name:<width$} {:>8}  {trace:<30} {:<30} {mean:<30} {:>12.4e}\n",
            b.size,
            format!(
                "{:.6e} ± {:.1e}",
                b.top_eigenvalue.value, b.top_eigenvalue.residual
            ),
            b.diagonal_max_abs
        ));
    }
    let total: f64 = per_layer.blocks.iter().map(|b| b.trace.value).sum();
    s.push_str(&format!(
        "    the blocks' traces sum to {total:.10e}; top eigenvalues are Lanczos estimates ± their residual\n"
    ));
    if let Some(kfac) = &per_layer.kfac {
        let errors: Vec<String> = kfac
            .iter()
            .map(|e| format!("{} {:.3e}", e.name, e.relative_frobenius))
            .collect();
        s.push_str(&format!(
            "  KFAC relative error ‖G⊗A − B‖_F/‖B‖_F per layer (exact): {}\n",
            errors.join(", ")
        ));
    }
    s
}

fn method(m: Method) -> String {
    match m {
        Method::Exact => "exact".to_string(),
        Method::Hutchinson => "Hutchinson estimate".to_string(),
        Method::HutchPlusPlus => "Hutch++ estimate".to_string(),
        Method::XTrace => "XTrace estimate".to_string(),
        Method::XDiag => "XDiag estimate".to_string(),
        Method::Lanczos {
            iterations,
            converged,
        } => format!(
            "Lanczos estimates ± residual, {iterations} steps, {}",
            if converged {
                "converged"
            } else {
                "NOT converged"
            }
        ),
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}
