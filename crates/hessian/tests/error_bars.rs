//! Error bars of the estimators, XTrace/XDiag, the restriction to parameter blocks and the
//! per-layer report, against dense matrices and direct computations written here.

mod common;

use common::{load, Diagonal};
use curvature_hessian::{
    dense_plan, glob_match, hessian_diagonal_hutchinson, hessian_diagonal_hutchinson_estimate,
    hessian_diagonal_xdiag, hessian_of, parameter_blocks, per_layer_curvature, probes,
    select_blocks, spectral_density, symmetric_eigenvalues, top_eigenvalues, trace_hutchinson,
    trace_hutchinson_estimate, trace_hutchpp, trace_hutchpp_estimate, trace_xtrace,
    DiagonalEstimate, Estimate, Grouping, HessianError, HessianOptions, LanczosOptions,
    LinearOperator, PerLayerOptions, PreparedHvp, Probe, Restricted, SlqOptions,
};
use curvature_nn::Module;
use curvature_tensor::{DType, Device, Tensor};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A dense symmetric matrix as an operator: `V·A`.
struct Dense {
    a: Tensor,
}

impl Dense {
    fn new(a: &DMatrix<f64>, device: Device) -> Dense {
        let n = a.nrows();
        let rows: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |j| a[(i, j)]))
            .collect();
        Dense {
            a: Tensor::from_f64s(&rows, [n, n], DType::F64, device).unwrap(),
        }
    }
}

impl LinearOperator for Dense {
    fn dim(&self) -> usize {
        self.a.dims()[0]
    }
    fn dtype(&self) -> DType {
        self.a.dtype()
    }
    fn device(&self) -> Device {
        self.a.device()
    }
    fn apply_batch(&self, v: &Tensor) -> curvature_hessian::Result<Tensor> {
        Ok(v.matmul(&self.a)?)
    }
}

/// A symmetric n × n matrix with standard normal entries (scaled by 1/√n) plus `shift`·I.
fn symmetric(n: usize, shift: f64, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = DMatrix::from_fn(n, n, |_, _| {
        rng.sample::<f64, _>(rand_distr::StandardNormal)
    });
    (&g + g.transpose()) * (0.5 / (n as f64).sqrt()) + DMatrix::identity(n, n) * shift
}

/// `B·Bᵀ` with B an n × r Gaussian matrix: symmetric, positive semidefinite, rank r.
fn low_rank(n: usize, r: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let b = DMatrix::from_fn(n, r, |_, _| {
        rng.sample::<f64, _>(rand_distr::StandardNormal)
    });
    &b * b.transpose()
}

/// The probes of the library's stream as columns of an n × m matrix.
fn probe_columns(m: usize, n: usize, kind: Probe, seed: u64) -> DMatrix<f64> {
    let v = probes(m, n, kind, seed, DType::F64, Device::Cpu)
        .unwrap()
        .to_f64s()
        .unwrap();
    DMatrix::from_fn(n, m, |i, j| v[j * n + i])
}

/// Mean and standard error `sd/√n` of the samples, written out.
fn mean_and_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// An orthonormal basis of the columns of `y` (thin QR), dropping none (full column rank).
fn orth(y: &DMatrix<f64>) -> DMatrix<f64> {
    y.clone().qr().q()
}

// ---------------------------------------------------------------- Hutchinson and Hutch++

fn hutchinson_standard_error_is_the_probe_sample_sd(device: Device) {
    let n = 12;
    let a = symmetric(n, 0.3, 1);
    let op = Dense::new(&a, device);
    let count = 30;
    let est = trace_hutchinson_estimate(&op, count, Probe::Rademacher, 7).unwrap();
    let v = probe_columns(count, n, Probe::Rademacher, 7);
    let x: Vec<f64> = (0..count)
        .map(|i| v.column(i).dot(&(&a * v.column(i))))
        .collect();
    let (mean, se) = mean_and_se(&x);
    assert!(close(est.value, mean, 1e-12), "{} vs {mean}", est.value);
    assert!(close(est.std_error, se, 1e-10), "{} vs {se}", est.std_error);
    assert_eq!(est.samples, count);
    let plain = trace_hutchinson(&op, count, Probe::Rademacher, 7).unwrap();
    assert!(close(est.value, plain, 1e-12));
}

fn diagonal_standard_errors_are_per_entry_sample_sds(device: Device) {
    let n = 10;
    let a = symmetric(n, 0.0, 2);
    let op = Dense::new(&a, device);
    // More probes than one chunk (chunk_rows ≤ dim = 10) so the chunk merging is exercised.
    let count = 37;
    let est = hessian_diagonal_hutchinson_estimate(&op, count, 3).unwrap();
    let v = probe_columns(count, n, Probe::Rademacher, 3);
    let values = est.values.to_f64s().unwrap();
    let errors = est.std_errors.to_f64s().unwrap();
    for j in 0..n {
        let x: Vec<f64> = (0..count)
            .map(|i| v[(j, i)] * (&a * v.column(i))[j])
            .collect();
        let (mean, se) = mean_and_se(&x);
        assert!(
            close(values[j], mean, 1e-12),
            "entry {j}: {} vs {mean}",
            values[j]
        );
        assert!(
            close(errors[j], se, 1e-10),
            "entry {j}: {} vs {se}",
            errors[j]
        );
    }
    let plain = hessian_diagonal_hutchinson(&op, count, 3)
        .unwrap()
        .to_f64s()
        .unwrap();
    for (p, v) in plain.iter().zip(&values) {
        assert!(close(*p, *v, 1e-12));
    }
}

#[test]
fn hutchpp_standard_error_is_that_of_its_deflated_hutchinson_part() {
    let n = 20;
    let a = symmetric(n, 0.5, 4);
    let op = Dense::new(&a, Device::Cpu);
    let budget = 30; // sketch 10, then 10 Hutchinson probes
    let (sketch, rest) = (10, 10);
    let est = trace_hutchpp_estimate(&op, budget, 11).unwrap();
    let all = probe_columns(sketch + rest, n, Probe::Rademacher, 11);
    let q = orth(&(&a * all.columns(0, sketch)));
    let top = (q.transpose() * &a * &q).trace();
    let deflate = DMatrix::identity(n, n) - &q * q.transpose();
    let b = &deflate * &a * &deflate;
    let x: Vec<f64> = (sketch..sketch + rest)
        .map(|i| all.column(i).dot(&(&b * all.column(i))))
        .collect();
    let (mean, se) = mean_and_se(&x);
    assert!(
        close(est.value, top + mean, 1e-10),
        "{} vs {}",
        est.value,
        top + mean
    );
    assert!(close(est.std_error, se, 1e-8), "{} vs {se}", est.std_error);
    let plain = trace_hutchpp(&op, budget, 11).unwrap();
    assert!(close(est.value, plain, 1e-12));
}

#[test]
fn two_standard_errors_cover_the_true_trace_in_90_to_98_percent_of_200_seeds() {
    let n = 60;
    let a = symmetric(n, 0.2, 5);
    let op = Dense::new(&a, Device::Cpu);
    let truth = a.trace();
    let covered = (0..200u64)
        .filter(|&seed| {
            let e = trace_hutchinson_estimate(&op, 40, Probe::Rademacher, seed).unwrap();
            (e.value - truth).abs() <= 2.0 * e.std_error
        })
        .count();
    println!("±2 SE covered the trace in {covered} of 200 seeds");
    assert!((180..=196).contains(&covered), "{covered} of 200");
}

// ---------------------------------------------------------------- XTrace and XDiag

/// XTrace's and XDiag's samples computed literally: for each i, `Q₍ᵢ₎ = orth(A·Ω₋ᵢ)`.
fn leave_one_out_reference(
    a: &DMatrix<f64>,
    omega: &DMatrix<f64>,
) -> (Vec<f64>, Vec<DVector<f64>>) {
    let (n, m) = omega.shape();
    let y = a * omega;
    let mut traces = Vec::new();
    let mut diagonals = Vec::new();
    for i in 0..m {
        let others: Vec<usize> = (0..m).filter(|&j| j != i).collect();
        let q = orth(&y.select_columns(&others));
        let p = &q * q.transpose();
        let complement = DMatrix::identity(n, n) - &p;
        let w = omega.column(i);
        let x = &complement * w;
        traces.push((q.transpose() * a * &q).trace() + x.dot(&(a * &x)));
        let pa = &p * a;
        let corr = &complement * a * w;
        diagonals.push(DVector::from_fn(n, |j, _| pa[(j, j)] + w[j] * corr[j]));
    }
    (traces, diagonals)
}

fn xtrace_and_xdiag_match_the_leave_one_out_definition(device: Device) {
    let n = 14;
    let a = symmetric(n, 0.1, 6);
    let op = Dense::new(&a, device);
    let (budget, seed) = (12, 21);
    let m = budget / 2;
    for kind in [Probe::Rademacher, Probe::Gaussian] {
        let omega = probe_columns(m, n, kind, seed);
        let (traces, _) = leave_one_out_reference(&a, &omega);
        let (mean, se) = mean_and_se(&traces);
        let est = trace_xtrace(&op, budget, kind, seed).unwrap();
        assert!(
            close(est.value, mean, 1e-9),
            "{kind:?}: {} vs {mean}",
            est.value
        );
        assert!(
            close(est.std_error, se, 1e-8),
            "{kind:?}: {} vs {se}",
            est.std_error
        );
    }
    let omega = probe_columns(m, n, Probe::Rademacher, seed);
    let (_, diagonals) = leave_one_out_reference(&a, &omega);
    let est = hessian_diagonal_xdiag(&op, budget, seed).unwrap();
    let (values, errors) = (
        est.values.to_f64s().unwrap(),
        est.std_errors.to_f64s().unwrap(),
    );
    for j in 0..n {
        let x: Vec<f64> = diagonals.iter().map(|d| d[j]).collect();
        let (mean, se) = mean_and_se(&x);
        assert!(
            close(values[j], mean, 1e-9),
            "entry {j}: {} vs {mean}",
            values[j]
        );
        assert!(
            close(errors[j], se, 1e-8),
            "entry {j}: {} vs {se}",
            errors[j]
        );
    }
}

#[test]
fn xtrace_and_xdiag_are_unbiased_over_seeds() {
    let n = 16;
    let a = symmetric(n, 0.4, 8);
    let op = Dense::new(&a, Device::Cpu);
    let seeds = 300u64;
    let traces: Vec<f64> = (0..seeds)
        .map(|s| trace_xtrace(&op, 8, Probe::Rademacher, s).unwrap().value)
        .collect();
    let (mean, se) = mean_and_se(&traces);
    println!(
        "XTrace over {seeds} seeds: {mean} ± {se}, trace {}",
        a.trace()
    );
    assert!(
        (mean - a.trace()).abs() <= 4.0 * se,
        "{mean} ± {se} vs {}",
        a.trace()
    );
    let diagonals: Vec<Vec<f64>> = (0..seeds)
        .map(|s| {
            hessian_diagonal_xdiag(&op, 8, s)
                .unwrap()
                .values
                .to_f64s()
                .unwrap()
        })
        .collect();
    // Over 16 entries, the largest deviation in units of the seed-mean's standard error.
    let worst = (0..n)
        .map(|j| {
            let x: Vec<f64> = diagonals.iter().map(|d| d[j]).collect();
            let (mean, se) = mean_and_se(&x);
            (mean - a[(j, j)]).abs() / se
        })
        .fold(0.0, f64::max);
    println!("XDiag: worst entry {worst:.2} standard errors from the diagonal");
    assert!(worst <= 4.5, "{worst}");
}

#[test]
fn xtrace_and_xdiag_are_exact_below_the_sketch_rank() {
    let n = 25;
    let a = low_rank(n, 3, 9);
    let op = Dense::new(&a, Device::Cpu);
    for seed in 0..3 {
        let est = trace_xtrace(&op, 10, Probe::Gaussian, seed).unwrap(); // m = 5 > 3 + 1
        assert!(close(est.value, a.trace(), 1e-10), "{est} vs {}", a.trace());
        assert!(est.std_error <= 1e-9 * a.trace(), "{est}");
        let d = hessian_diagonal_xdiag(&op, 10, seed).unwrap();
        for (j, (v, e)) in d
            .values
            .to_f64s()
            .unwrap()
            .iter()
            .zip(d.std_errors.to_f64s().unwrap())
            .enumerate()
        {
            assert!(
                close(*v, a[(j, j)], 1e-10),
                "entry {j}: {v} vs {}",
                a[(j, j)]
            );
            assert!(e <= 1e-9 * a.trace(), "entry {j}: error {e}");
        }
    }
}

#[test]
fn xtrace_handles_more_probes_than_dimensions_a_zero_operator_and_f32() {
    // m = 10 probes in 3 dimensions: the sketch spans everything, the estimate is exact.
    let a = symmetric(3, 1.0, 14);
    let op = Dense::new(&a, Device::Cpu);
    let est = trace_xtrace(&op, 20, Probe::Rademacher, 0).unwrap();
    assert!(
        close(est.value, a.trace(), 1e-10) && est.std_error < 1e-10,
        "{est}"
    );
    let d = hessian_diagonal_xdiag(&op, 20, 0)
        .unwrap()
        .values
        .to_f64s()
        .unwrap();
    for j in 0..3 {
        assert!(
            close(d[j], a[(j, j)], 1e-10),
            "entry {j}: {} vs {}",
            d[j],
            a[(j, j)]
        );
    }
    // H = 0: no sketch at all, every sample is 0.
    let zero = Diagonal::new(&[0.0; 5]);
    let est = trace_xtrace(&zero, 8, Probe::Gaussian, 0).unwrap();
    assert_eq!((est.value, est.std_error), (0.0, 0.0));
    let d = hessian_diagonal_xdiag(&zero, 8, 0).unwrap();
    assert_eq!(d.values.to_f64s().unwrap(), vec![0.0; 5]);
    // In f32, a rank-2 operator is recovered to f32 accuracy.
    let (n, b) = (12, low_rank(12, 2, 15));
    let rows: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| b[(i, j)])
        .collect();
    let op = Dense {
        a: Tensor::from_f64s(&rows, [n, n], DType::F32, Device::Cpu).unwrap(),
    };
    let est = trace_xtrace(&op, 10, Probe::Rademacher, 1).unwrap();
    assert!(close(est.value, b.trace(), 1e-4), "{est} vs {}", b.trace());
    let d = hessian_diagonal_xdiag(&op, 10, 1)
        .unwrap()
        .values
        .to_f64s()
        .unwrap();
    for j in 0..n {
        assert!(
            close(d[j], b[(j, j)], 1e-4),
            "entry {j}: {} vs {}",
            d[j],
            b[(j, j)]
        );
    }
}

#[test]
fn xtrace_beats_hutchinson_on_a_decaying_spectrum_at_equal_budget() {
    // Eigenvalues 1/k² in a random basis: most of the trace is in a few directions.
    let n = 40;
    let q = orth(&symmetric(n, 0.0, 10));
    let d = DMatrix::from_diagonal(&DVector::from_fn(n, |k, _| 1.0 / ((k + 1) as f64).powi(2)));
    let a = &q * d * q.transpose();
    let op = Dense::new(&a, Device::Cpu);
    let (mut x, mut h) = (0.0, 0.0);
    for seed in 0..20 {
        x += (trace_xtrace(&op, 20, Probe::Rademacher, seed)
            .unwrap()
            .value
            - a.trace())
        .abs();
        h += (trace_hutchinson(&op, 20, Probe::Rademacher, seed).unwrap() - a.trace()).abs();
    }
    println!(
        "mean |error| over 20 seeds: XTrace {} Hutchinson {}",
        x / 20.0,
        h / 20.0
    );
    assert!(x < 0.5 * h, "XTrace {x} vs Hutchinson {h}");
}

// ---------------------------------------------------------------- Lanczos residuals

#[test]
fn lanczos_residuals_equal_the_dense_ritz_residual_norms() {
    let n = 40;
    let a = symmetric(n, 0.0, 12);
    let op = Dense::new(&a, Device::Cpu);
    let options = LanczosOptions {
        k: 3,
        max_iter: 12,
        tol: 0.0,
        eigenvectors: true,
        ..Default::default()
    };
    let eig = top_eigenvalues(&op, &options).unwrap();
    let y = eig.vectors.as_ref().unwrap().to_f64s().unwrap();
    for (i, est) in eig.estimates().iter().enumerate() {
        let yi = DVector::from_column_slice(&y[i * n..(i + 1) * n]);
        let r = (&a * &yi - &yi * est.value).norm();
        assert!(
            r > 1e-6,
            "Ritz pair {i} should not have converged in 12 steps"
        );
        assert!(
            close(est.residual, r, 1e-6),
            "pair {i}: {} vs {r}",
            est.residual
        );
        assert_eq!(est.iterations, 12);
    }
    let shown = format!("{:.3}", eig.estimates()[0]);
    assert!(shown.contains(" ± "), "{shown}");
}

// ---------------------------------------------------------------- restriction and globs

fn restriction_is_the_dense_submatrix(device: Device) {
    let n = 9;
    let a = symmetric(n, 0.0, 13);
    let op = Dense::new(&a, device);
    let indices = vec![7, 2, 3, 8];
    let block = Restricted::new(&op, indices.clone()).unwrap();
    let h = hessian_of(&block, &HessianOptions::default())
        .unwrap()
        .to_f64s()
        .unwrap();
    for (r, &i) in indices.iter().enumerate() {
        for (c, &j) in indices.iter().enumerate() {
            assert!(close(h[r * 4 + c], a[(i, j)], 1e-14), "({i}, {j})");
        }
    }
}

#[test]
fn restriction_rejects_bad_coordinates_and_batches() {
    let op = Diagonal::new(&[1.0, 2.0, 3.0]);
    for (indices, needle) in [
        (vec![], "at least one"),
        (vec![0, 3], "outside"),
        (vec![1, 1], "twice"),
    ] {
        let err = Restricted::new(&op, indices).err().unwrap().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let block = Restricted::new(&op, vec![2, 0]).unwrap();
    let wrong = Tensor::zeros([2, 3], DType::F64, Device::Cpu).unwrap();
    assert!(matches!(
        block.apply_batch(&wrong),
        Err(HessianError::VectorLength {
            expected: 2,
            got: 3,
            ..
        })
    ));
}

#[test]
fn globs_match_whole_names_with_star_and_question_mark() {
    for (pattern, name, expected) in [
        ("*", "0.weight", true),
        ("0.*", "0.weight", true),
        ("*.bias", "layers.3.bias", true),
        ("*.bias", "layers.3.bias_hh", false),
        ("?.weight", "0.weight", true),
        ("?.weight", "10.weight", false),
        ("layer*.w*t", "layer2.weight", true),
        ("weight", "0.weight", false),
        ("", "", true),
        ("a*b*c", "abcbc", true),
        ("a*b*c", "abcb", false),
    ] {
        assert_eq!(glob_match(pattern, name), expected, "{pattern} on {name}");
    }
}

#[test]
fn restriction_by_glob_equals_the_golden_hessian_block() {
    let file = load("mlp_4_6_5_3_tanh_sigmoid_mse");
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    let p = file.model.num_params();
    let h = file.tensor("hessian").unwrap().to_f64s().unwrap();
    let blocks = parameter_blocks(&file.model).unwrap();
    let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        blocks.last().map(|b| b.offset + b.len),
        Some(p),
        "{names:?}"
    );
    let block = Restricted::by_glob(&op, &file.model, "*bias").unwrap();
    let expected: Vec<usize> = blocks
        .iter()
        .filter(|b| b.name.ends_with("bias"))
        .flat_map(|b| b.offset..b.offset + b.len)
        .collect();
    assert!(!expected.is_empty(), "{names:?}");
    assert_eq!(block.indices(), expected.as_slice());
    let k = expected.len();
    let sub = hessian_of(&block, &HessianOptions::default())
        .unwrap()
        .to_f64s()
        .unwrap();
    for (r, &i) in expected.iter().enumerate() {
        for (c, &j) in expected.iter().enumerate() {
            assert!(close(sub[r * k + c], h[i * p + j], 1e-10), "({i}, {j})");
        }
    }
    let err = Restricted::by_glob(&op, &file.model, "encoder.*")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"encoder.*\""), "{err}");
    for name in &names {
        assert!(err.contains(name), "{err} lacks {name}");
    }
    let err = select_blocks(&blocks, "nothing").err().unwrap().to_string();
    assert!(err.contains("nothing"), "{err}");
    let small = Diagonal::new(&[1.0; 3]);
    let err = Restricted::by_glob(&small, &file.model, "*")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&format!("{p} parameters")), "{err}");
}

// ---------------------------------------------------------------- per-layer report

#[test]
fn per_layer_report_matches_the_golden_blocks() {
    let file = load("mlp_4_6_5_3_tanh_sigmoid_mse");
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    let p = file.model.num_params();
    let h = file.tensor("hessian").unwrap().to_f64s().unwrap();
    let blocks = parameter_blocks(&file.model).unwrap();
    let exact = per_layer_curvature(&op, &file.model, &PerLayerOptions::default()).unwrap();
    assert_eq!(exact.len(), blocks.len());
    for (report, block) in exact.iter().zip(&blocks) {
        assert_eq!(report.name, block.name);
        assert!(report.exact);
        let range = block.offset..block.offset + block.len;
        let trace: f64 = range.clone().map(|i| h[i * p + i]).sum();
        let max = range
            .clone()
            .map(|i| h[i * p + i].abs())
            .fold(0.0, f64::max);
        assert!(
            close(report.trace.value, trace, 1e-10),
            "{}: {}",
            report.name,
            report.trace
        );
        assert_eq!(report.trace.std_error, 0.0);
        assert!(close(
            report.diagonal_mean.value,
            trace / block.len as f64,
            1e-10
        ));
        assert!(close(report.diagonal_max_abs, max, 1e-10));
        let sub: Vec<f64> = range
            .clone()
            .flat_map(|i| range.clone().map(move |j| (i, j)))
            .map(|(i, j)| h[i * p + j])
            .collect();
        let top = *symmetric_eigenvalues(block.len, &sub)
            .unwrap()
            .last()
            .unwrap();
        let e = report.top_eigenvalue;
        assert!(
            (e.value - top).abs() <= e.residual + 1e-8 * (1.0 + top.abs()),
            "{}: {e} vs {top}",
            report.name
        );
    }
    // Per layer, estimated: the weights and biases of a layer form one block; Hutchinson's
    // trace lies within 5 standard errors of the block's trace.
    let layers = per_layer_curvature(
        &op,
        &file.model,
        &PerLayerOptions {
            grouping: Grouping::Layer,
            exact_limit: 0,
            probes: 200,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(layers.len() < blocks.len());
    for report in &layers {
        assert!(!report.exact);
        let members: Vec<_> = blocks
            .iter()
            .filter(|b| report.parameters.contains(&b.name))
            .collect();
        assert_eq!(members.len(), report.parameters.len());
        let trace: f64 = members
            .iter()
            .flat_map(|b| b.offset..b.offset + b.len)
            .map(|i| h[i * p + i])
            .sum();
        let t = report.trace;
        assert!(
            t.std_error > 0.0 && t.samples == 200,
            "{}: {t}",
            report.name
        );
        assert!(
            (t.value - trace).abs() <= 5.0 * t.std_error,
            "{}: {t} vs {trace}",
            report.name
        );
    }
    let err = per_layer_curvature(
        &op,
        &file.model,
        &PerLayerOptions {
            probes: 1,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("at least 2 probes"), "{err}");
}

#[test]
fn dense_plan_compares_bytes_and_products() {
    let plan = dense_plan(1000, DType::F32, 5000, 8 << 20).unwrap();
    assert_eq!(plan.bytes, 4_000_000);
    assert!(plan.fits && plan.cheaper && plan.recommended());
    let plan = dense_plan(1000, DType::F64, 999, 8 << 20).unwrap();
    assert_eq!(plan.bytes, 8_000_000);
    assert!(plan.fits && !plan.cheaper && !plan.recommended());
    let plan = dense_plan(100_000, DType::F64, 1 << 30, 1 << 30).unwrap();
    assert!(!plan.fits && plan.cheaper && !plan.recommended());
    // P² overflows usize on 32-bit targets and 64-bit alike at this size, but not u128.
    let plan = dense_plan(usize::MAX, DType::F64, usize::MAX, usize::MAX).unwrap();
    assert!(!plan.fits);
    assert!(dense_plan(0, DType::F64, 10, 10).is_err());
}

// ---------------------------------------------------------------- errors and printing

#[test]
fn estimators_reject_too_few_samples_and_basis_probes() {
    let op = Diagonal::new(&[1.0, 2.0, 3.0, 4.0]);
    let one = |r: curvature_hessian::Result<Estimate>| r.err().unwrap().to_string();
    assert!(one(trace_hutchinson_estimate(&op, 1, Probe::Rademacher, 0)).contains("at least 2"));
    assert!(matches!(
        trace_hutchinson_estimate(&op, 0, Probe::Rademacher, 0),
        Err(HessianError::EmptyBatch { .. })
    ));
    let diag = |r: curvature_hessian::Result<DiagonalEstimate>| r.err().unwrap().to_string();
    assert!(diag(hessian_diagonal_hutchinson_estimate(&op, 1, 0)).contains("at least 2"));
    assert!(diag(hessian_diagonal_xdiag(&op, 3, 0)).contains("at least 4"));
    assert!(one(trace_xtrace(&op, 3, Probe::Gaussian, 0)).contains("at least 4"));
    assert!(one(trace_xtrace(&op, 8, Probe::Basis, 0)).contains("random probes"));
    // Hutch++ with budget 3: sketch 1, one Hutchinson probe, no variance.
    assert!(one(trace_hutchpp_estimate(&op, 3, 0)).contains("at least 2"));
    assert!(trace_hutchpp_estimate(&op, 4, 0).is_ok());
    assert!(one(trace_hutchpp_estimate(&op, 2, 0)).contains("at least 3"));
    assert!(Estimate::from_samples(&[1.0]).is_err());
    // Basis probes: exact in whole cycles of dim vectors, an error otherwise.
    let exact = trace_hutchinson_estimate(&op, 8, Probe::Basis, 0).unwrap();
    assert_eq!(
        (exact.value, exact.std_error, exact.samples),
        (10.0, 0.0, 8)
    );
    assert!(one(trace_hutchinson_estimate(&op, 6, Probe::Basis, 0)).contains("whole cycles"));
}

#[test]
fn estimates_print_as_value_plus_minus_error() {
    let e = Estimate::from_samples(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    // mean 2.5, sd √(5/3), se √(5/12)
    assert_eq!(e.value, 2.5);
    assert!(close(e.std_error, (5.0f64 / 12.0).sqrt(), 1e-15));
    assert_eq!(format!("{e:.2}"), "2.50 ± 0.65");
    assert_eq!(format!("{}", Estimate::exact(3.0, 7)), "3 ± 0");
    assert!(close(
        e.relative_error(),
        (5.0f64 / 12.0).sqrt() / 2.5,
        1e-15
    ));
    let d = DiagonalEstimate {
        values: Tensor::from_f64s(&[1.0, -2.0], [2], DType::F64, Device::Cpu).unwrap(),
        std_errors: Tensor::from_f64s(&[0.5, 0.25], [2], DType::F64, Device::Cpu).unwrap(),
        samples: 4,
    };
    assert_eq!(format!("{d:.2}"), "[1.00 ± 0.50, -2.00 ± 0.25]");
}

#[test]
fn spectral_density_reports_its_probes_and_steps() {
    let op = Diagonal::new(&(1..=30).map(f64::from).collect::<Vec<_>>());
    let options = SlqOptions {
        probes: 3,
        steps: 50,
        ..Default::default()
    };
    let density = spectral_density(&op, &options).unwrap();
    assert_eq!((density.probes, density.steps), (3, 30));
    assert_eq!(density.nodes.len(), 3);
}

device_tests!(
    hutchinson_standard_error_is_the_probe_sample_sd,
    diagonal_standard_errors_are_per_entry_sample_sds,
    xtrace_and_xdiag_match_the_leave_one_out_definition,
    restriction_is_the_dense_submatrix,
);
