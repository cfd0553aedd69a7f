//! `curvature analyze`: checks the destinations, runs the analysis, writes the results file
//! and the plot (staged, then renamed into place together only once everything has succeeded)
//! and prints a readable summary.

use std::collections::BTreeMap;
use std::path::Path;

use crate::analyze::{analyze, norm, output_tensors, Analysis, Method};
use crate::cli::AnalyzeArgs;
use crate::console::{print, Failure};
use crate::output::{check_destinations, commit, Staged};
use crate::plot::spectrum_svg;
use crate::results_file::safetensors_bytes;

pub fn run(args: &AnalyzeArgs) -> Result<(), Failure> {
    let mut outputs = Vec::new();
    if let Some(path) = &args.out {
        outputs.push(("--out", path.as_path()));
    }
    if let Some(path) = &args.plot {
        outputs.push(("--plot", path.as_path()));
    }
    // Before any work: a bad destination is found in a second, not after the analysis.
    check_destinations(&args.model, &outputs)?;
    let device = args.device.select()?;
    let analysis = analyze(args, device)?;
    let tensors = output_tensors(&analysis);
    let mut contents: Vec<(&Path, Vec<u8>)> = Vec::new();
    if let Some(path) = &args.out {
        contents.push((
            path,
            safetensors_bytes(&tensors, &metadata(args, &analysis))?,
        ));
    }
    if let Some(path) = &args.plot {
        let title = format!("Hessian spectrum of {}", file_name(&args.model));
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

/// The results file's metadata: the model's own keys, how it ran, and how each quantity was
/// obtained, in key order (the same run gives the same bytes).
fn metadata(args: &AnalyzeArgs, a: &Analysis) -> BTreeMap<String, String> {
    let m = &a.model;
    let activations: Vec<&str> = m.activations.iter().map(|x| x.name()).collect();
    let strings = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
    // The model as its file describes it: the MLP form's keys, or the `layers` list.
    let model: Vec<(&str, String)> = if m.widths.is_empty() {
        let layers: Vec<serde_json::Value> = m.layers.iter().map(|l| l.to_json()).collect();
        vec![("layers", serde_json::to_string(&layers).unwrap_or_default())]
    } else {
        vec![
            (
                "widths",
                serde_json::to_string(&m.widths).unwrap_or_default(),
            ),
            ("activations", strings(&activations)),
            (
                "final_activation",
                m.final_activation.map_or("None", |x| x.name()).to_string(),
            ),
        ]
    };
    let entries = [
        ("source", file_name(&args.model)),
        ("loss", m.loss.name().to_string()),
        ("params", a.params.to_string()),
        ("samples", a.samples.to_string()),
        ("dtype", a.dtype.as_str().to_string()),
        ("device", a.device.to_string()),
        ("seed", args.seed.to_string()),
        ("probes", args.probes.to_string()),
        ("hessian_diag_method", a.diagonal_method.name().to_string()),
        ("hessian_trace_method", a.trace_method.name().to_string()),
        ("top_eigenvalues_method", a.top_method.name().to_string()),
        ("spectral_density_sigma", format!("{:e}", a.sigma)),
    ];
    model
        .into_iter()
        .chain(entries)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The model in words: the MLP's widths and activations, or the layer types in order.
fn model_line(a: &Analysis) -> String {
    let m = &a.model;
    let shape = if m.widths.is_empty() {
        let types: Vec<&str> = m.layers.iter().map(|l| l.type_name()).collect();
        format!("Sequential({})", types.join(" → "))
    } else {
        let widths: Vec<String> = m.widths.iter().map(usize::to_string).collect();
        let activations: Vec<&str> = m.activations.iter().map(|x| x.name()).collect();
        format!(
            "MLP {} ({}{})",
            widths.join("-"),
            if activations.is_empty() {
                "no hidden layers".to_string()
            } else {
                activations.join(", ")
            },
            m.final_activation
                .map_or(String::new(), |x| format!(", final {}", x.name())),
        )
    };
    format!(
        "{shape}, loss {}, {} samples, P = {}",
        m.loss.name(),
        a.samples,
        a.params
    )
}

fn summary(args: &AnalyzeArgs, a: &Analysis) -> String {
    let p = a.params;
    let mut s = format!("curvature analyze: {}\n", args.model.display());
    let mut line = |key: &str, value: String| s.push_str(&format!("  {key:<13} {value}\n"));
    line("model", model_line(a));
    line(
        "run on",
        format!("{}, {}", curvature::device_description(a.device), a.dtype),
    );
    line("loss", format!("{:.12e}", a.loss));
    let gmax = a.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    line(
        "gradient",
        format!("‖g‖ = {:.6e}, max |gᵢ| = {gmax:.6e}", norm(&a.grad)),
    );
    if a.hessian.is_some() {
        line("Hessian", format!("dense {p} × {p} (exact, from {p} HVPs)"));
    }
    line(
        "trace",
        format!("{:.10e} ({})", a.trace, method(a.trace_method)),
    );
    let (dmin, dmax) = range(&a.diagonal);
    line(
        "diagonal",
        format!(
            "min {dmin:.6e}, max {dmax:.6e} ({})",
            method(a.diagonal_method)
        ),
    );
    if let Some(all) = &a.eigenvalues {
        let (lo, hi) = range(all);
        let negative = all.iter().filter(|&&v| v < 0.0).count();
        line(
            "eigenvalues",
            format!("min {lo:.6e}, max {hi:.6e}, {negative} of {p} negative"),
        );
    }
    let top: Vec<String> = a.top.iter().map(|v| format!("{v:.6e}")).collect();
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
            "SLQ, {} probes, σ = {:.3e}, {} points on [{:.4e}, {:.4e}]",
            a.density.nodes.len(),
            a.sigma,
            grid.len(),
            grid.first().copied().unwrap_or(0.0),
            grid.last().copied().unwrap_or(0.0)
        ),
    );
    s
}

fn method(m: Method) -> String {
    match m {
        Method::Exact => "exact".to_string(),
        Method::Hutchinson => "Hutchinson estimate".to_string(),
        Method::HutchPlusPlus => "Hutch++ estimate".to_string(),
        Method::Lanczos {
            iterations,
            converged,
        } => format!(
            "Lanczos, {iterations} steps, {}",
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
