//! `curvature analyze` end to end: the built binary on every golden file, each written tensor
//! matched to the golden float64 values (max|ours − golden| / max|golden| ≤ 1e-10 in f64,
//! 1e-4 in f32), the SVG plot checked as XML against the written density, and the
//! estimators' path on a model too large for the dense Hessian checked against `--full`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{data, ModelFile};

const GOLDEN: [&str; 4] = [
    "seed_simplenet_tanh_mse",
    "seed_linear_sigmoid_sumsq",
    "mlp_4_6_5_3_tanh_sigmoid_mse",
    "mlp_5_8_4_tanh_xent",
];

const TOL: f64 = 1e-10;

fn curvature(args: &[&str]) -> Output {
    Command::new(common::curvature_bin())
        .args(args)
        .output()
        .expect("the curvature binary runs")
}

fn run_ok(args: &[&str]) -> String {
    let out = curvature(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A file's f64 tensors: name → (shape, values).
struct Tensors(std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)>);

impl Tensors {
    fn read(path: &Path) -> Tensors {
        Tensors(common::read_f64_file(path).0)
    }

    fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("missing tensor {name}"))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// max|a − b| / max|b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn analyze_matches_golden_f64_cpu() {
    matches_golden("f64", TOL);
}

/// In f32 the bar is 1e-4 on the same measure (the golden README's suggestion); the file
/// still holds float64.
#[test]
fn analyze_matches_golden_f32_cpu() {
    matches_golden("f32", 1e-4);
}

fn matches_golden(dtype: &str, tol: f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in GOLDEN {
        let out = dir.path().join(format!("{name}.out.safetensors"));
        let stdout = run_ok(&[
            "analyze",
            data(name).to_str().expect("utf-8 path"),
            "--device",
            "cpu",
            "--dtype",
            dtype,
            "--top-k",
            "3",
            "--out",
            out.to_str().expect("utf-8 path"),
        ]);
        assert!(
            stdout.contains("loss") && stdout.contains("top 3"),
            "{stdout}"
        );
        let ours = Tensors::read(&out);
        let golden = Tensors::read(&data(name));
        for tensor in [
            "loss",
            "grad",
            "hessian",
            "hessian_diag",
            "hessian_trace",
            "hessian_eigvals",
        ] {
            let (shape, values) = ours.get(tensor);
            let (gshape, gvalues) = golden.get(tensor);
            assert_eq!(shape, gshape, "{name}: shape of {tensor}");
            let err = rel_err(values, gvalues);
            assert!(err <= tol, "{name} {dtype}: {tensor} differs by {err:e}");
        }
        let (_, eigvals) = golden.get("hessian_eigvals");
        let expected: Vec<f64> = eigvals.iter().rev().take(3).copied().collect();
        let (shape, top) = ours.get("top_eigenvalues");
        assert_eq!(shape, &vec![3], "{name}: top_eigenvalues is [k]");
        let err = rel_err(top, &expected);
        assert!(
            err <= tol,
            "{name} {dtype}: top eigenvalues differ by {err:e}"
        );

        let (gshape, grid) = ours.get("spectral_density_grid");
        let (dshape, density) = ours.get("spectral_density");
        assert_eq!(gshape, dshape);
        assert!(grid.windows(2).all(|w| w[0] < w[1]), "{name}: grid ascends");
        let integral: f64 = grid
            .windows(2)
            .zip(density.windows(2))
            .map(|(t, d)| (t[1] - t[0]) * (d[0] + d[1]) / 2.0)
            .sum();
        assert!(
            (integral - 1.0).abs() < 1e-3,
            "{name}: density integrates to {integral}"
        );
        let (lo, hi) = (eigvals[0], eigvals[eigvals.len() - 1]);
        assert!(
            grid[0] <= lo && grid[grid.len() - 1] >= hi,
            "{name}: grid covers the spectrum"
        );
    }
}

/// The points of an SVG `points` attribute.
fn points(attr: &str) -> Vec<(f64, f64)> {
    attr.split_whitespace()
        .filter_map(|p| {
            let (x, y) = p.split_once(',')?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect()
}

#[test]
fn analyze_plot_is_svg_with_density_curve_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "mlp_4_6_5_3_tanh_sigmoid_mse";
    let out = dir.path().join("results.safetensors");
    let svg_path = dir.path().join("spectrum.svg");
    run_ok(&[
        "analyze",
        data(name).to_str().expect("utf-8 path"),
        "--device",
        "cpu",
        "--top-k",
        "4",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--plot",
        svg_path.to_str().expect("utf-8 path"),
    ]);
    let svg = std::fs::read_to_string(&svg_path).expect("the plot was written");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let polylines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .collect();
    let curve = polylines
        .iter()
        .find(|n| n.attribute("stroke") == Some("#0000FF"))
        .expect("a blue density curve");
    let curve = points(curve.attribute("points").expect("points"));
    let results = Tensors::read(&out);
    let (_, grid) = results.get("spectral_density_grid");
    let (_, density) = results.get("spectral_density");
    assert!(curve.len() > grid.len() / 2, "{} points", curve.len());
    assert!(curve.windows(2).all(|w| w[0].0 <= w[1].0), "x ascends");

    // The curve's highest point (smallest SVG y) sits where the written density peaks.
    let peak = density
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| grid[i])
        .expect("a density");
    let (x0, x1) = (curve[0].0, curve[curve.len() - 1].0);
    let top_point = curve
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("points");
    let drawn = (top_point.0 - x0) / (x1 - x0);
    let expected = (peak - grid[0]) / (grid[grid.len() - 1] - grid[0]);
    assert!(
        (drawn - expected).abs() < 0.01,
        "peak drawn at {drawn}, density peaks at {expected}"
    );

    // One red line per top eigenvalue, plus the legend's sample.
    let markers = polylines
        .iter()
        .filter(|n| n.attribute("stroke") == Some("#FF0000"))
        .count();
    assert_eq!(markers, 4 + 1);
    assert!(svg.contains("Hessian spectrum of"));
}

#[test]
fn analyze_large_model_estimates_agree_with_full_cpu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("large.safetensors");
    // P = 1049, above the dense limit of 1024.
    let file = ModelFile::random_tanh_mlp(&[2, 32, 28, 1], 8);
    std::fs::write(&model, file.bytes()).expect("written");
    let model = model.to_str().expect("utf-8 path");
    let estimated = dir.path().join("estimated.safetensors");
    let full = dir.path().join("full.safetensors");
    let common = ["--device", "cpu", "--top-k", "2", "--probes", "10"];
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["analyze", model, "--out", out.to_str().expect("utf-8 path")];
        args.extend(common);
        args.extend(extra);
        run_ok(&args)
    };
    let stdout = run(&estimated, &[]);
    assert!(
        stdout.contains("Hutch++") && stdout.contains("Lanczos"),
        "{stdout}"
    );
    run(&full, &["--full"]);
    let est = Tensors::read(&estimated);
    let exact = Tensors::read(&full);
    assert!(!est.has("hessian") && !est.has("hessian_eigvals") && !est.has("hessian_diag"));
    assert_eq!(exact.get("hessian").0, vec![1049, 1049]);
    assert!(exact.has("hessian_diag") && exact.has("hessian_trace"));

    // Lanczos (estimated run) against the dense symmetric eigensolver (--full).
    let (_, eigvals) = exact.get("hessian_eigvals");
    let dense_top: Vec<f64> = eigvals.iter().rev().take(2).copied().collect();
    let (_, lanczos_top) = est.get("top_eigenvalues");
    let err = rel_err(lanczos_top, &dense_top);
    assert!(err < 1e-6, "Lanczos top eigenvalues differ by {err:e}");

    // Both runs see the same loss and gradient; the trace estimate is in the right range.
    for name in ["loss", "grad"] {
        assert!(
            rel_err(&est.get(name).1, &exact.get(name).1) < 1e-14,
            "{name}"
        );
    }
    let trace = exact.get("hessian_trace").1[0];
    let estimate = est.get("hessian_trace_hutchpp").1[0];
    let spread = eigvals.iter().map(|v| v.abs()).sum::<f64>();
    assert!(
        (estimate - trace).abs() < 0.5 * spread,
        "Hutch++ {estimate} vs exact {trace} (Σ|λ| = {spread})"
    );
    assert_eq!(est.get("hessian_diag_hutchinson").0, vec![1049]);
}

#[test]
fn bench_json_without_subcommand_cpu() {
    let stdout = run_ok(&[
        "--json",
        "--workloads",
        "seed",
        "--runs",
        "1",
        "--device",
        "cpu",
        "--dtype",
        "f64",
    ]);
    let line = stdout.lines().next().expect("one line per workload");
    let json: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(json["workload"], "seed");
    assert_eq!(json["dtype"], "f64");
}
