//! `curvature analyze --curvature ggn|fisher|empirical-fisher`, the estimators' error bars and
//! `--per-layer`, end to end through the built binary: the Gauss–Newton matrix of a linear
//! model with MSE against its closed form (where it equals the Hessian), of a nonlinear MLP
//! against Jᵀ·H̃·J from a finite-difference Jacobian, the empirical Fisher against the
//! per-sample gradients written out by hand, the Monte-Carlo Fisher's rank, the per-block
//! traces against the golden Hessian's blocks, and the one-line refusal of every bad value.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{assert_refused, curvature, data, run_bounded, ModelFile};
use curvature::hessian::symmetric_eigenvalues;
use curvature::nn::Module;
use curvature::tape::Tape;
use curvature::tensor::{DType, Device, Tensor};

/// A results file: its f64 tensors by name and its metadata.
struct Results {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    metadata: BTreeMap<String, String>,
}

impl Results {
    fn read(path: &Path) -> Results {
        let (tensors, metadata) = common::read_f64_file(path);
        Results { tensors, metadata }
    }

    fn get(&self, name: &str) -> &[f64] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("missing tensor {name}; have {:?}", self.names()))
            .1
    }

    fn scalar(&self, name: &str) -> f64 {
        let values = self.get(name);
        assert_eq!(values.len(), 1, "{name} is one value");
        values[0]
    }

    fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("missing metadata {key}"))
    }
}

/// Runs `analyze model --device cpu --out dir/out.safetensors extra…`; returns the summary and
/// the results.
fn analyze(model: &Path, dir: &Path, extra: &[&str]) -> (String, Results) {
    let out = dir.join("out.safetensors");
    let mut command = curvature(&["analyze"]);
    command
        .arg(model)
        .args(["--device", "cpu", "--out"])
        .arg(&out)
        .args(extra);
    let output = run_bounded(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{extra:?} failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    (stdout, Results::read(&out))
}

/// Writes `file` to `dir/name`.
fn write(dir: &Path, name: &str, file: &ModelFile) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, file.bytes()).expect("written");
    path
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

/// The summary's line for `key` (its first word after the two-space indent).
fn line<'a>(summary: &'a str, key: &str) -> &'a str {
    summary
        .lines()
        .find(|l| l.starts_with("  ") && l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no '{key}' line in:\n{summary}"))
}

/// The linear model f = W·x + b (W `[o, i]`) of a random MLP file with no hidden layer: x, y
/// and its parameters θ = [vec W (row-major); b].
struct Linear {
    inputs: usize,
    outputs: usize,
    samples: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
}

impl Linear {
    fn of(file: &mut ModelFile, inputs: usize, outputs: usize, samples: usize) -> Linear {
        Linear {
            inputs,
            outputs,
            samples,
            x: file.tensor("x").2.clone(),
            y: file.tensor("y").2.clone(),
            w: file.tensor("0.weight").2.clone(),
            b: file.tensor("0.bias").2.clone(),
        }
    }

    fn params(&self) -> usize {
        self.outputs * (self.inputs + 1)
    }

    /// The parameter index of W[o, i], and of b[o] (i = inputs).
    fn index(&self, o: usize, i: usize) -> usize {
        if i < self.inputs {
            o * self.inputs + i
        } else {
            self.outputs * self.inputs + o
        }
    }

    /// [x_s; 1], the input with the bias's one.
    fn input(&self, s: usize, i: usize) -> f64 {
        if i < self.inputs {
            self.x[s * self.inputs + i]
        } else {
            1.0
        }
    }

    /// The Hessian of the MSE mean over n·O values, which is also its GGN (the model is
    /// linear): 2/(n·O) · δ(o, o') · Σ_s x̄_si · x̄_si'.
    fn hessian(&self) -> Vec<f64> {
        let p = self.params();
        let scale = 2.0 / (self.samples * self.outputs) as f64;
        let mut h = vec![0.0; p * p];
        for o in 0..self.outputs {
            for i in 0..=self.inputs {
                for j in 0..=self.inputs {
                    let g: f64 = (0..self.samples)
                        .map(|s| self.input(s, i) * self.input(s, j))
                        .sum();
                    h[self.index(o, i) * p + self.index(o, j)] = scale * g;
                }
            }
        }
        h
    }

    /// The empirical Fisher (1/n)·Σ_s g_s·g_sᵀ, g_s the gradient of sample s's own MSE
    /// (1/O)·Σ_o r_so², r = W·x_s + b − y_s: ∂/∂W[o, i] = (2/O)·r_so·x̄_si.
    fn empirical_fisher(&self) -> Vec<f64> {
        let p = self.params();
        let mut f = vec![0.0; p * p];
        for s in 0..self.samples {
            let mut g = vec![0.0; p];
            for o in 0..self.outputs {
                let r = (0..self.inputs)
                    .map(|i| self.w[o * self.inputs + i] * self.x[s * self.inputs + i])
                    .sum::<f64>()
                    + self.b[o]
                    - self.y[s * self.outputs + o];
                for i in 0..=self.inputs {
                    g[self.index(o, i)] = 2.0 / self.outputs as f64 * r * self.input(s, i);
                }
            }
            for a in 0..p {
                for c in 0..p {
                    f[a * p + c] += g[a] * g[c] / self.samples as f64;
                }
            }
        }
        f
    }
}

#[test]
fn ggn_of_a_linear_model_with_mse_is_its_hessian_in_closed_form() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = ModelFile::random_tanh_mlp(&[3, 2], 6);
    let linear = Linear::of(&mut file, 3, 2, 6);
    let model = write(dir.path(), "linear.safetensors", &file);
    let expected = linear.hessian();
    let (summary, ggn) = analyze(&model, dir.path(), &["--curvature", "ggn"]);
    assert!(
        line(&summary, "curvature").contains("Gauss–Newton"),
        "{summary}"
    );
    assert_eq!(ggn.meta("curvature"), "ggn");
    let err = rel_err(ggn.get("ggn"), &expected);
    assert!(err < 1e-12, "GGN differs from the closed form by {err:e}");
    let p = linear.params();
    let trace: f64 = (0..p).map(|i| expected[i * p + i]).sum();
    assert!((ggn.scalar("ggn_trace") - trace).abs() < 1e-12 * trace);
    assert!(
        !ggn.tensors.contains_key("hessian"),
        "the GGN's tensors are named after it"
    );
    // The Hessian run writes the same matrix under its own names.
    let (_, hessian) = analyze(&model, dir.path(), &[]);
    assert_eq!(hessian.meta("curvature"), "hessian");
    assert!(rel_err(hessian.get("hessian"), &expected) < 1e-12);
}

/// J of the golden MLP's output `[n·O]` with respect to θ by central differences in f64.
fn jacobian_by_differences(path: &Path) -> (Vec<f64>, usize, usize) {
    let file = curvature::nn::ModelFile::load(path, DType::F64, Device::Cpu).expect("loads");
    let params = file.model.parameters();
    let sizes: Vec<usize> = params.iter().map(Tensor::elem_count).collect();
    let p: usize = sizes.iter().sum();
    let flat: Vec<Vec<f64>> = params.iter().map(|t| t.to_f64s().expect("f64")).collect();
    let forward = |perturb: Option<(usize, f64)>| -> Vec<f64> {
        let tape = Tape::new();
        let mut offset = 0;
        let vars: Vec<_> = params
            .iter()
            .zip(&flat)
            .map(|(t, values)| {
                let mut values = values.clone();
                if let Some((j, h)) = perturb {
                    if (offset..offset + values.len()).contains(&j) {
                        values[j - offset] += h;
                    }
                }
                offset += values.len();
                let t = Tensor::from_f64s(&values, t.dims(), DType::F64, Device::Cpu)
                    .expect("a tensor");
                tape.constant(t)
            })
            .collect();
        let x = tape.constant(file.x.clone());
        let out = file.model.forward_with(&vars, &x).expect("forward");
        out.value().to_f64s().expect("f64")
    };
    let m = forward(None).len();
    let h = 1e-5;
    let mut j = vec![0.0; m * p];
    for c in 0..p {
        let plus = forward(Some((c, h)));
        let minus = forward(Some((c, -h)));
        for r in 0..m {
            j[r * p + c] = (plus[r] - minus[r]) / (2.0 * h);
        }
    }
    (j, m, p)
}

#[test]
fn ggn_of_an_mlp_is_jt_scaled_j_from_finite_differences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let (j, m, p) = jacobian_by_differences(&path);
    // MSE over all m = n·O outputs: ∇²_f L = 2/m · I, so GGN = 2/m · JᵀJ.
    let mut expected = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            expected[a * p + b] =
                2.0 / m as f64 * (0..m).map(|r| j[r * p + a] * j[r * p + b]).sum::<f64>();
        }
    }
    let (summary, ggn) = analyze(&path, dir.path(), &["--curvature", "ggn"]);
    let err = rel_err(ggn.get("ggn"), &expected);
    assert!(err < 1e-7, "GGN differs from Jᵀ(2/m)J by {err:e}");
    let trace: f64 = (0..p).map(|i| expected[i * p + i]).sum();
    assert!((ggn.scalar("ggn_trace") - trace).abs() < 1e-7 * trace);
    assert!(line(&summary, "trace").contains("(exact)"), "{summary}");
    // Positive semi-definite, unlike this model's Hessian.
    let eig = ggn.get("ggn_eigvals");
    assert!(
        eig[0] > -1e-12 * eig[p - 1],
        "smallest eigenvalue {}",
        eig[0]
    );
    let (_, hessian) = analyze(&path, dir.path(), &[]);
    assert!(hessian.get("hessian_eigvals")[0] < -1e-6);
}

#[test]
fn empirical_fisher_is_the_mean_outer_product_of_per_sample_gradients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = ModelFile::random_tanh_mlp(&[3, 2], 5);
    let linear = Linear::of(&mut file, 3, 2, 5);
    let model = write(dir.path(), "linear.safetensors", &file);
    let (summary, fisher) = analyze(&model, dir.path(), &["--curvature", "empirical-fisher"]);
    assert_eq!(fisher.meta("curvature"), "empirical-fisher");
    assert!(line(&summary, "curvature").contains("empirical Fisher"));
    let err = rel_err(fisher.get("empirical_fisher"), &linear.empirical_fisher());
    assert!(err < 1e-12, "empirical Fisher differs by {err:e}");
}

/// The Monte-Carlo Fisher of MSE with M targets per sample has rank at most n·M (each
/// sample's output curvature is a sum of M outer products), is positive semi-definite, is
/// drawn from --seed, and is recorded as such.
#[test]
fn monte_carlo_fisher_has_rank_n_times_samples_and_follows_the_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // P = 3·(4 + 1) = 15; the GGN's rank is 3·min(5, n) = 12 with n = 4 samples.
    let file = ModelFile::random_tanh_mlp(&[4, 3], 4);
    let model = write(dir.path(), "linear.safetensors", &file);
    let rank = |eig: &[f64]| {
        let top = eig.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        eig.iter().filter(|v| v.abs() > 1e-10 * top).count()
    };
    let (_, ggn) = analyze(&model, dir.path(), &["--curvature", "ggn"]);
    assert_eq!(rank(ggn.get("ggn_eigvals")), 12);
    for (m, expected_rank) in [(1u32, 4usize), (2, 8)] {
        let samples = m.to_string();
        let (summary, fisher) = analyze(
            &model,
            dir.path(),
            &["--curvature", "fisher", "--fisher-samples", &samples],
        );
        assert_eq!(fisher.meta("curvature"), "fisher");
        assert_eq!(fisher.meta("fisher_samples"), samples);
        assert!(line(&summary, "curvature").contains("Monte-Carlo Fisher"));
        let eig = fisher.get("fisher_eigvals");
        assert_eq!(rank(eig), expected_rank, "M = {m}: {eig:?}");
        assert!(eig[0] > -1e-10 * eig[eig.len() - 1]);
    }
    let (_, seed0) = analyze(&model, dir.path(), &["--curvature", "fisher"]);
    let (_, again) = analyze(&model, dir.path(), &["--curvature", "fisher"]);
    let (_, seed1) = analyze(
        &model,
        dir.path(),
        &["--curvature", "fisher", "--seed", "1"],
    );
    assert_eq!(seed0.get("fisher"), again.get("fisher"));
    assert!(rel_err(seed0.get("fisher"), seed1.get("fisher")) > 1e-3);
}

/// A `layers` file: the GGN is positive semi-definite and its trace is its diagonal's sum.
#[test]
fn ggn_of_a_layers_file_is_positive_semidefinite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = data("layers/gelu_layernorm_mlp");
    let (_, ggn) = analyze(&path, dir.path(), &["--curvature", "ggn", "--top-k", "2"]);
    let eig = ggn.get("ggn_eigvals");
    assert!(eig[0] > -1e-10 * eig[eig.len() - 1], "{}", eig[0]);
    let diag: f64 = ggn.get("ggn_diag").iter().sum();
    assert!((ggn.scalar("ggn_trace") - diag).abs() <= 1e-12 * diag.abs());
    assert!(ggn.meta("layers").contains("LayerNorm"));
}

/// The golden MLP's Hessian (from the file's own reference tensor) restricted to coordinates
/// `range`.
fn golden_block(h: &[f64], p: usize, range: std::ops::Range<usize>) -> (usize, Vec<f64>) {
    let n = range.len();
    let mut block = Vec::with_capacity(n * n);
    for i in range.clone() {
        for j in range.clone() {
            block.push(h[i * p + j]);
        }
    }
    (n, block)
}

#[test]
fn per_layer_blocks_match_the_golden_hessian_and_sum_to_the_trace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let golden = Results::read(&path);
    let h = golden.get("hessian");
    let p = 83;
    for (grouping, sizes) in [
        ("--per-layer", vec![24, 6, 30, 5, 15, 3]),
        ("--per-layer=layer", vec![30, 35, 18]),
    ] {
        let (summary, results) = analyze(&path, dir.path(), &[grouping]);
        let written: Vec<usize> = results
            .get("per_layer_size")
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(written, sizes);
        let traces = results.get("per_layer_trace");
        let total: f64 = traces.iter().sum();
        let trace = results.scalar("hessian_trace");
        assert!(
            (total - trace).abs() < 1e-12 * trace.abs(),
            "{total} vs {trace}"
        );
        assert!(results
            .get("per_layer_trace_std_error")
            .iter()
            .all(|&e| e == 0.0));
        let mut offset = 0;
        for (b, &size) in sizes.iter().enumerate() {
            let (n, block) = golden_block(h, p, offset..offset + size);
            let block_trace: f64 = (0..n).map(|i| block[i * n + i]).sum();
            assert!((traces[b] - block_trace).abs() < 1e-10 * block_trace.abs().max(1e-3));
            let eig = symmetric_eigenvalues(n, &block).expect("eigenvalues");
            let top = results.get("per_layer_top_eigenvalue")[b];
            let residual = results.get("per_layer_top_eigenvalue_residual")[b];
            assert!(
                (top - eig[n - 1]).abs() < 1e-6 * eig[n - 1].abs().max(1e-6) + residual,
                "block {b}: Lanczos {top} vs {}",
                eig[n - 1]
            );
            offset += size;
        }
        assert!(summary.contains("the blocks' traces sum to"), "{summary}");
        assert!(results.meta("per_layer_blocks").starts_with("[\"0"));
    }
}

/// With a linear last layer and MSE every sample's output curvature is the same multiple of
/// I, so KFAC is exact on that layer's block; the hidden layers' blocks it only approximates.
#[test]
fn kfac_error_per_layer_is_zero_on_the_last_layer_of_an_mse_mlp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let (summary, results) = analyze(
        &path,
        dir.path(),
        &["--curvature", "ggn", "--per-layer=layer", "--kfac"],
    );
    assert_eq!(results.meta("kfac_layers"), r#"["0","2","4"]"#);
    let errors = results.get("kfac_relative_error");
    assert!(errors[2] < 1e-12, "last layer {}", errors[2]);
    assert!(errors[0] > 1e-3 && errors[1] > 1e-3, "{errors:?}");
    assert!(summary.contains("KFAC relative error"), "{summary}");
}

/// A tanh MLP with P = 1049, above the exact limit of 1024.
fn large_model(dir: &Path) -> PathBuf {
    write(
        dir,
        "large.safetensors",
        &ModelFile::random_tanh_mlp(&[2, 32, 28, 1], 8),
    )
}

#[test]
fn every_estimate_has_an_error_bar_and_the_exact_trace_lies_within_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = large_model(dir.path());
    let (_, full) = analyze(
        &model,
        dir.path(),
        &["--full", "--top-k", "1", "--probes", "2"],
    );
    let exact = full.scalar("hessian_trace");
    let exact_diag = full.get("hessian_diag").to_vec();
    for (trace, diag, trace_name, diag_name) in [
        (
            "hutchpp",
            "hutchinson",
            "hessian_trace_hutchpp",
            "hessian_diag_hutchinson",
        ),
        (
            "hutchinson",
            "xdiag",
            "hessian_trace_hutchinson",
            "hessian_diag_xdiag",
        ),
        (
            "xtrace",
            "hutchinson",
            "hessian_trace_xtrace",
            "hessian_diag_hutchinson",
        ),
    ] {
        let (summary, results) = analyze(
            &model,
            dir.path(),
            &[
                "--top-k",
                "2",
                "--probes",
                "10",
                "--trace-estimator",
                trace,
                "--diagonal-estimator",
                diag,
            ],
        );
        for key in ["trace", "diagonal", "top", "density"] {
            assert!(line(&summary, key).contains(" ± "), "{key}: {summary}");
        }
        let value = results.scalar(trace_name);
        let error = results.scalar("hessian_trace_std_error");
        assert!(error > 0.0, "{trace}: an error bar");
        assert!(
            (value - exact).abs() < 4.0 * error,
            "{trace}: {value} ± {error} vs exact {exact}"
        );
        let d = results.get(diag_name);
        let e = results.get("hessian_diag_std_error");
        assert_eq!(e.len(), 1049);
        // Most entries within 3 standard errors of the exact diagonal.
        let within = (0..d.len())
            .filter(|&i| (d[i] - exact_diag[i]).abs() <= 3.0 * e[i] + 1e-12)
            .count();
        assert!(
            within > d.len() * 9 / 10,
            "{diag}: {within} of {} within 3σ",
            d.len()
        );
        let top = results.get("top_eigenvalues");
        let residual = results.get("top_eigenvalues_residual");
        let all = full.get("hessian_eigvals");
        assert!((top[0] - all[all.len() - 1]).abs() <= residual[0] + 1e-8 * top[0].abs());
        assert_eq!(results.meta("hessian_trace_method"), Method::of(trace));
    }
}

/// The metadata's name of each trace estimator.
struct Method;

impl Method {
    fn of(option: &str) -> &'static str {
        match option {
            "hutchpp" => "hutch++",
            "hutchinson" => "hutchinson",
            _ => "xtrace",
        }
    }
}

#[test]
fn full_is_suggested_only_when_the_dense_matrix_is_cheaper_and_fits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = large_model(dir.path());
    let note = |summary: &str| summary.lines().any(|l| l.trim_start().starts_with("note"));
    // 20 probes: SLQ alone takes 20 × 80 = 1600 products, more than P = 1049.
    let (summary, _) = analyze(&model, dir.path(), &["--top-k", "1"]);
    assert!(note(&summary), "{summary}");
    assert!(line(&summary, "note").contains("--full"));
    // 2 probes: about 2 × 80 + 2 + 6 + the Lanczos steps, fewer than P.
    let (summary, _) = analyze(&model, dir.path(), &["--top-k", "1", "--probes", "2"]);
    assert!(!note(&summary), "{summary}");
    // Exact already: nothing to suggest.
    let (summary, _) = analyze(&data("mlp_4_6_5_3_tanh_sigmoid_mse"), dir.path(), &[]);
    assert!(!note(&summary), "{summary}");
    // P = 3901 and 60 probes: SLQ takes 4800 products, more than P; the dense run's planned
    // 434 MiB do not fit in 0.3 GiB (the estimates' 258 MiB do) but fit in 1 GiB.
    let larger = write(
        dir.path(),
        "larger.safetensors",
        &ModelFile::random_tanh_mlp(&[2, 60, 60, 1], 8),
    );
    let run = |limit: &str| {
        let extra = ["--top-k", "1", "--probes", "60", "--memory-limit", limit];
        analyze(&larger, dir.path(), &extra).0
    };
    assert!(!note(&run("0.3")));
    assert!(note(&run("1")));
}

#[test]
fn bad_values_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = data("mlp_4_6_5_3_tanh_sigmoid_mse");
    let model = model.to_str().expect("utf-8 path");
    for (args, expected) in [
        (vec!["--curvature", "foo"], "--curvature"),
        (vec!["--fisher-samples", "0"], "--fisher-samples"),
        (vec!["--probes", "1"], "--probes"),
        (vec!["--trace-estimator", "exact"], "--trace-estimator"),
        (
            vec!["--diagonal-estimator", "xtrace"],
            "--diagonal-estimator",
        ),
        (vec!["--per-layer=block"], "--per-layer"),
        (vec!["--kfac"], "--per-layer"),
        (vec!["--per-layer", "--kfac"], "--curvature ggn"),
    ] {
        let mut command = curvature(&["analyze", model, "--device", "cpu", "--out"]);
        command.arg(dir.path().join("out.safetensors")).args(&args);
        let line = assert_refused(&run_bounded(&mut command));
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(common::listing(dir.path()).is_empty(), "nothing written");
    }
    // KFAC covers Linear and Conv2d layers only: a batch norm's parameters are refused.
    let cnn = data("layers/small_cnn");
    let extra = ["--curvature", "ggn", "--per-layer", "--kfac"];
    let mut command = curvature(&[
        "analyze",
        cnn.to_str().expect("utf-8 path"),
        "--device",
        "cpu",
    ]);
    command.args(extra);
    let line = assert_refused(&run_bounded(&mut command));
    assert!(line.contains("KFAC covers"), "{line}");
    // KFAC's exact blocks need the dense matrix's memory: above P = 1024 only with --full.
    let large = large_model(dir.path());
    let mut command = curvature(&["analyze", large.to_str().expect("utf-8 path")]);
    command.args(extra);
    let line = assert_refused(&run_bounded(&mut command));
    assert!(
        line.contains("P ≤ 1024 (this model has 1049) or with --full"),
        "{line}"
    );
}

/// On CUDA (the emulated GPU when no real one is present) the GGN, its per-tensor blocks and
/// the Monte-Carlo Fisher (whose targets are drawn on the host) equal the CPU's.
#[test]
fn ggn_and_fisher_on_cuda_match_the_cpu_cuda() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let dir = tempfile::tempdir().expect("temp dir");
    // P = 13: the emulated GPU stays quick.
    let file = ModelFile::random_tanh_mlp(&[2, 3, 1], 3);
    let path = write(dir.path(), "small.safetensors", &file);
    for curvature_name in ["ggn", "fisher"] {
        let run = |device_name: &str| {
            let out = dir.path().join(format!("{device_name}.safetensors"));
            let mut command = curvature(&["analyze"]);
            command
                .arg(&path)
                .args(["--device", device_name, "--curvature", curvature_name])
                .args(["--per-layer", "--top-k", "1", "--probes", "2", "--out"])
                .arg(&out);
            if device.is_emulated() {
                command.env("CURVATURE_CUDA", "emulate");
            }
            let output = run_bounded(&mut command);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{device_name}: {stderr}");
            Results::read(&out)
        };
        let (cpu, cuda) = (run("cpu"), run("cuda"));
        assert_eq!(cuda.meta("device"), "cuda:0");
        for name in [curvature_name, "per_layer_trace"] {
            let err = rel_err(cuda.get(name), cpu.get(name));
            assert!(err < 1e-12, "{curvature_name}: {name} differs by {err:e}");
        }
    }
}
