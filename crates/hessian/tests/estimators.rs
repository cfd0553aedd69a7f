//! Trace, diagonal, eigenvalue and spectral-density estimators against the golden Hessians.

mod common;

use common::{dot, load, matvec, Diagonal, Recorded, GOLDEN};
use curvature_hessian::{
    hessian_diagonal_hutchinson, probes, spectral_density, spectral_density_with, top_eigenvalues,
    trace_hutchinson, trace_hutchpp, HessianOptions, LanczosOptions, PreparedHvp, Probe,
    SlqOptions, Which, MAX_SIGMA, MIN_SIGMA,
};
use curvature_nn::Module;
use curvature_tensor::{DType, Device, Tensor};

fn prepared(name: &str) -> (Vec<f64>, usize, PreparedHvp) {
    let file = load(name);
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
    let h = file.tensor("hessian").unwrap().to_f64s().unwrap();
    (h, file.model.num_params(), op)
}

fn trace(h: &[f64], p: usize) -> f64 {
    (0..p).map(|i| h[i * p + i]).sum()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let n = t.dims()[1];
    t.to_f64s()
        .unwrap()
        .chunks(n)
        .map(<[f64]>::to_vec)
        .collect()
}

#[test]
fn hutchinson_ten_thousand_rademacher_probes_on_the_seed_model_cpu() {
    let (h, p, op) = prepared("seed_simplenet_tanh_mse");
    let n = 10_000;
    let estimate = trace_hutchinson(&op, n, Probe::Rademacher, 0).unwrap();
    // The same probes through the golden Hessian: the estimator computes exactly this mean.
    let v = probes(n, p, Probe::Rademacher, 0, DType::F64, Device::Cpu).unwrap();
    let reference: f64 = rows(&v)
        .iter()
        .map(|r| dot(r, &matvec(&h, p, r)))
        .sum::<f64>()
        / n as f64;
    assert!(
        (estimate - reference).abs() <= 1e-10 * reference.abs(),
        "{estimate} vs {reference}"
    );
    // Statistically: Rademacher Hutchinson has variance 2·Σ_{i≠j} Hᵢⱼ² / n exactly.
    let exact = trace(&h, p);
    let off: f64 =
        h.iter().map(|x| x * x).sum::<f64>() - (0..p).map(|i| h[i * p + i].powi(2)).sum::<f64>();
    let sigma = (2.0 * off / n as f64).sqrt();
    let rel = (estimate - exact).abs() / exact.abs();
    println!(
        "trace {exact}, Hutchinson {estimate} ({:.2}%), σ = {sigma} ({:.2}% of |trace|)",
        100.0 * rel,
        100.0 * sigma / exact.abs()
    );
    assert!(
        (estimate - exact).abs() <= 4.0 * sigma,
        "{estimate} vs {exact}, σ = {sigma}"
    );
}

#[test]
fn hutchpp_has_lower_mean_error_than_hutchinson_at_equal_budget_cpu() {
    let (h, p, op) = prepared("seed_simplenet_tanh_mse");
    let exact = trace(&h, p);
    let budget = 60;
    let (mut pp, mut plain) = (0.0, 0.0);
    for seed in 0..20 {
        pp += (trace_hutchpp(&op, budget, seed).unwrap() - exact).abs() / 20.0;
        plain +=
            (trace_hutchinson(&op, budget, Probe::Rademacher, seed).unwrap() - exact).abs() / 20.0;
    }
    println!("budget {budget}: mean |error| Hutch++ {pp}, Hutchinson {plain} (trace {exact})");
    assert!(pp < plain, "Hutch++ {pp} vs Hutchinson {plain}");
}

#[test]
fn hutchpp_is_exact_when_the_sketch_covers_the_range_cpu() {
    // seed_linear_sigmoid_sumsq has a rank-2 Hessian (P = 8): a sketch of 3 spans its range.
    let (h, p, op) = prepared("seed_linear_sigmoid_sumsq");
    let exact = trace(&h, p);
    for seed in 0..5 {
        let estimate = trace_hutchpp(&op, 9, seed).unwrap();
        assert!(
            (estimate - exact).abs() <= 1e-10 * exact.abs(),
            "{estimate} vs {exact}"
        );
    }
}

#[test]
fn hutchpp_with_a_budget_beyond_three_times_dim_is_exact_cpu() {
    // The sketch stops at P directions, which span the whole space: the trace is exact up to
    // the directions the orthonormalisation drops as numerically null, whatever the rest of
    // the budget.
    let (h, p, op) = prepared("mlp_4_6_5_3_tanh_sigmoid_mse");
    let exact = trace(&h, p);
    for budget in [3 * p, 3 * p + 1, 5 * p + 7] {
        let estimate = trace_hutchpp(&op, budget, 1).unwrap();
        assert!(
            (estimate - exact).abs() <= 1e-6 * exact.abs().max(1.0),
            "budget {budget}: {estimate} vs {exact}"
        );
    }
}

#[test]
fn hutchinson_diagonal_is_the_probe_mean_of_v_times_hv_cpu() {
    for name in GOLDEN {
        let (h, p, op) = prepared(name);
        let n = 300;
        let diag = hessian_diagonal_hutchinson(&op, n, 5)
            .unwrap()
            .to_f64s()
            .unwrap();
        let v = probes(n, p, Probe::Rademacher, 5, DType::F64, Device::Cpu).unwrap();
        let mut want = vec![0.0; p];
        for r in rows(&v) {
            let hv = matvec(&h, p, &r);
            for i in 0..p {
                want[i] += r[i] * hv[i] / n as f64;
            }
        }
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (ours, want) in diag.iter().zip(&want) {
            assert!(
                (ours - want).abs() <= 1e-10 * scale,
                "{name}: {ours} vs {want}"
            );
        }
    }
}

#[test]
fn lanczos_eigenvectors_are_unit_residual_free_and_orthogonal_cpu() {
    let (h, p, op) = prepared("mlp_4_6_5_3_tanh_sigmoid_mse");
    let options = LanczosOptions {
        k: 3,
        tol: 1e-10,
        eigenvectors: true,
        seed: 9,
        ..LanczosOptions::default()
    };
    let eig = top_eigenvalues(&op, &options).unwrap();
    let vectors = rows(eig.vectors.as_ref().unwrap());
    let scale = eig.values[0].abs();
    for (i, (y, theta)) in vectors.iter().zip(&eig.values).enumerate() {
        assert_eq!(y.len(), p);
        assert!((dot(y, y) - 1.0).abs() <= 1e-10);
        let residual: f64 = matvec(&h, p, y)
            .iter()
            .zip(y)
            .map(|(hy, y)| (hy - theta * y).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(residual <= 1e-8 * scale, "pair {i}: residual {residual}");
        for z in &vectors[..i] {
            assert!(dot(y, z).abs() <= 1e-8);
        }
    }
}

#[test]
fn lanczos_by_value_and_by_magnitude_on_a_known_spectrum_cpu() {
    let mut d: Vec<f64> = (1..=49).map(|i| i as f64 / 7.0).collect();
    d.push(-100.0);
    let op = Diagonal::new(&d);
    let base = LanczosOptions {
        k: 2,
        tol: 1e-12,
        ..LanczosOptions::default()
    };
    let largest = top_eigenvalues(&op, &base).unwrap();
    assert!(
        (largest.values[0] - 7.0).abs() <= 1e-10 && (largest.values[1] - 48.0 / 7.0).abs() <= 1e-10
    );
    let magnitude = top_eigenvalues(
        &op,
        &LanczosOptions {
            which: Which::LargestMagnitude,
            ..base
        },
    )
    .unwrap();
    assert!(
        (magnitude.values[0] + 100.0).abs() <= 1e-10 && (magnitude.values[1] - 7.0).abs() <= 1e-10
    );
    assert!(largest.converged && magnitude.converged);
}

#[test]
fn slq_density_integrates_to_one_and_its_moments_are_exact_cpu() {
    let (h, p, op) = prepared("seed_simplenet_tanh_mse");
    let file = load("seed_simplenet_tanh_mse");
    let eigvals = file.tensor("hessian_eigvals").unwrap().to_f64s().unwrap();
    let (lo, hi) = (eigvals[0], eigvals[p - 1]);
    let scale = lo.abs().max(hi.abs());
    let options = SlqOptions {
        probes: 6,
        probe: Probe::Rademacher,
        steps: p,
        seed: 4,
        grid_points: 4000,
        sigma: (hi - lo) / 200.0,
    };
    let slq = spectral_density(&op, &options).unwrap();
    assert_eq!(slq.nodes.len(), options.probes);

    // The density integrates to 1 (trapezoid rule on the uniform grid).
    let dx = slq.grid[1] - slq.grid[0];
    let total: f64 = slq
        .density
        .windows(2)
        .map(|w| 0.5 * (w[0] + w[1]) * dx)
        .sum();
    assert!((total - 1.0).abs() <= 1e-6, "∫φ = {total}");

    // Per probe v (row l of `probes`): Σw = 1, Σw·θ = vᵀHv/vᵀv, Σw·θ² = vᵀH²v/vᵀv — the golden
    // Hessian applied to the same vectors.
    let v = probes(
        options.probes,
        p,
        Probe::Rademacher,
        options.seed,
        DType::F64,
        Device::Cpu,
    )
    .unwrap();
    let mut mean = 0.0;
    for (l, r) in rows(&v).iter().enumerate() {
        let (nodes, weights) = (&slq.nodes[l], &slq.weights[l]);
        let hv = matvec(&h, p, r);
        let m0: f64 = weights.iter().sum();
        let m1: f64 = nodes.iter().zip(weights).map(|(t, w)| t * w).sum();
        let m2: f64 = nodes.iter().zip(weights).map(|(t, w)| t * t * w).sum();
        assert!((m0 - 1.0).abs() <= 1e-12, "probe {l}: Σw = {m0}");
        assert!(
            (m1 - dot(r, &hv) / p as f64).abs() <= 1e-8 * scale,
            "probe {l}: {m1}"
        );
        assert!(
            (m2 - dot(&hv, &hv) / p as f64).abs() <= 1e-8 * scale * scale,
            "probe {l}: {m2}"
        );
        // Nodes are Ritz values: inside the spectrum, and with P steps its extremes are found.
        assert!(nodes
            .iter()
            .all(|t| *t >= lo - 1e-8 * scale && *t <= hi + 1e-8 * scale));
        assert!((nodes[nodes.len() - 1] - hi).abs() <= 1e-8 * scale);
        assert!((nodes[0] - lo).abs() <= 1e-8 * scale);
        mean += m1 / options.probes as f64;
    }
    // The mean over probes is Hutchinson's estimate with the same probes, divided by P (it
    // equals trace/P in expectation only).
    let hutchinson =
        trace_hutchinson(&op, options.probes, Probe::Rademacher, options.seed).unwrap();
    assert!((mean - hutchinson / p as f64).abs() <= 1e-10 * scale);
    // And the grid density has that mean too.
    let first: f64 = slq
        .grid
        .windows(2)
        .zip(slq.density.windows(2))
        .map(|(t, d)| 0.5 * (t[0] * d[0] + t[1] * d[1]) * dx)
        .sum();
    assert!(
        (first - mean).abs() <= 1e-6 * scale,
        "∫tφ = {first} vs {mean}"
    );
    println!("SLQ mean {mean}, trace/P {}", trace(&h, p) / p as f64);
}

#[test]
fn slq_with_basis_probes_has_mean_trace_over_p_cpu() {
    // With the P standard basis vectors as probes the moments are exact: the density's mean is
    // Σ_i e_iᵀ H e_i / P = trace / P.
    let (h, p, op) = prepared("mlp_5_8_4_tanh_xent");
    let exact = trace(&h, p) / p as f64;
    let options = SlqOptions {
        probes: p,
        probe: Probe::Basis,
        steps: 12,
        grid_points: 4000,
        ..SlqOptions::default()
    };
    let slq = spectral_density(&op, &options).unwrap();
    let dx = slq.grid[1] - slq.grid[0];
    let trapezoid = |f: &dyn Fn(f64, f64) -> f64| -> f64 {
        slq.grid
            .windows(2)
            .zip(slq.density.windows(2))
            .map(|(t, d)| 0.5 * (f(t[0], d[0]) + f(t[1], d[1])) * dx)
            .sum()
    };
    let total = trapezoid(&|_, d| d);
    assert!((total - 1.0).abs() <= 1e-6, "∫φ = {total}");
    let node_mean: f64 = slq
        .nodes
        .iter()
        .zip(&slq.weights)
        .map(|(n, w)| n.iter().zip(w).map(|(t, w)| t * w).sum::<f64>())
        .sum::<f64>()
        / p as f64;
    let grid_mean = trapezoid(&|t, d| t * d);
    for (what, mean) in [("Σw·θ", node_mean), ("∫t·φ", grid_mean)] {
        assert!(
            (mean - exact).abs() <= 1e-6 * exact.abs(),
            "{what} = {mean}, trace/P = {exact}"
        );
    }
}

#[test]
fn basis_probes_make_hutchinson_exact_cpu() {
    let (h, p, op) = prepared("mlp_4_6_5_3_tanh_sigmoid_mse");
    let estimate = trace_hutchinson(&op, p, Probe::Basis, 0).unwrap();
    let exact = trace(&h, p);
    assert!(
        (estimate - exact).abs() <= 1e-10 * exact.abs(),
        "{estimate} vs {exact}"
    );
}

#[test]
fn lanczos_restarts_find_a_repeated_top_eigenvalue_cpu() {
    // A Krylov space holds one vector per distinct eigenvalue: the first recurrence becomes
    // invariant after 5 steps, and the restarts orthogonal to it find the other copies of 5.
    let d = [5.0, 1.0, 5.0, 2.0, 3.0, 5.0, 4.0];
    let op = Diagonal::new(&d);
    let options = LanczosOptions {
        k: 3,
        tol: 1e-12,
        ..LanczosOptions::default()
    };
    let eig = top_eigenvalues(&op, &options).unwrap();
    for value in &eig.values {
        assert!((value - 5.0).abs() <= 1e-12, "{:?}", eig.values);
    }
    assert!(eig.converged);
    assert_eq!(eig.iterations, 7);
}

#[test]
fn slq_in_probe_blocks_equals_one_block_to_1e_12_cpu() {
    let (h, p, op) = prepared("mlp_4_6_5_3_tanh_sigmoid_mse");
    let base = SlqOptions {
        probes: 7,
        steps: 20,
        seed: 2,
        grid_points: 500,
        sigma: 0.05,
        ..SlqOptions::default()
    };
    let budget = |bytes: usize| HessianOptions {
        memory_budget_bytes: bytes,
        ..HessianOptions::default()
    };
    assert_eq!(base.block_probes(p, DType::F64, &budget(usize::MAX)), 7);
    let reference = spectral_density_with(&op, &base, &budget(usize::MAX)).unwrap();
    let memory_for = |block: usize| {
        (0..)
            .map(|i| budget(i * 1024))
            .find(|m| base.block_probes(p, DType::F64, m) >= block)
            .unwrap()
    };
    let scale = reference
        .nodes
        .iter()
        .flatten()
        .fold(0.0f64, |m, t| m.max(t.abs()));
    let peak = reference.density.iter().fold(0.0f64, |m, d| m.max(*d));
    for block in [1, 2, 3] {
        let memory = memory_for(block);
        assert_eq!(base.block_probes(p, DType::F64, &memory), block);
        let recorded = Recorded::new(&op);
        let slq = spectral_density_with(&recorded, &base, &memory).unwrap();
        // The probes ran in blocks of `block` rows (the last block holds the rest).
        let sizes = recorded.sizes.borrow();
        assert_eq!(sizes.len(), 7usize.div_ceil(block) * 20);
        assert!(
            sizes.iter().all(|&k| k == block || k == 7 % block),
            "{sizes:?}"
        );
        for (what, ours, theirs) in [
            ("nodes", &slq.nodes, &reference.nodes),
            ("weights", &slq.weights, &reference.weights),
        ] {
            for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
                assert!(
                    (a - b).abs() <= 1e-12 * scale.max(1.0),
                    "block {block} {what}: {a} vs {b}"
                );
            }
        }
        assert_eq!(slq.grid.len(), reference.grid.len());
        for (a, b) in slq.density.iter().zip(&reference.density) {
            assert!(
                (a - b).abs() <= 1e-12 * peak,
                "block {block} density: {a} vs {b}"
            );
        }
    }
    // And each probe's first moment is vᵀHv / vᵀv of the dense Hessian (to 1e-10).
    let v = probes(7, p, Probe::Rademacher, 2, DType::F64, Device::Cpu).unwrap();
    for (l, r) in rows(&v).iter().enumerate() {
        let m1: f64 = reference.nodes[l]
            .iter()
            .zip(&reference.weights[l])
            .map(|(t, w)| t * w)
            .sum();
        let want = dot(r, &matvec(&h, p, r)) / dot(r, r);
        assert!(
            (m1 - want).abs() <= 1e-10 * scale,
            "probe {l}: {m1} vs {want}"
        );
    }
}

#[test]
fn density_at_extreme_sigmas_is_finite_and_matches_the_formula_cpu() {
    // diag(1, 2, 3) with the basis probes: probe i's Krylov space is invariant after one step,
    // so it has the single node dᵢ with weight 1, and φ(t) = (1/3) Σᵢ N(t; dᵢ, σ²) exactly.
    let d = [1.0, 2.0, 3.0];
    let op = Diagonal::new(&d);
    for sigma in [MIN_SIGMA, 1e-3, 1.0, MAX_SIGMA] {
        let options = SlqOptions {
            probes: 3,
            probe: Probe::Basis,
            steps: 3,
            grid_points: 5,
            sigma,
            ..SlqOptions::default()
        };
        let slq = spectral_density(&op, &options).unwrap();
        for (i, (nodes, weights)) in slq.nodes.iter().zip(&slq.weights).enumerate() {
            assert_eq!(
                (nodes.as_slice(), weights.as_slice()),
                (&[d[i]][..], &[1.0][..])
            );
        }
        for (&t, &phi) in slq.grid.iter().zip(&slq.density) {
            // Each Gaussian in log space: −z²/2 − ln σ − ln √(2π).
            let want: f64 = d
                .iter()
                .map(|&theta| {
                    let z = (t - theta) / sigma;
                    (-0.5 * z * z - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()).exp()
                })
                .sum::<f64>()
                / 3.0;
            assert!(
                t.is_finite() && phi.is_finite(),
                "σ = {sigma:e}: φ({t}) = {phi}"
            );
            assert!(
                (phi - want).abs() <= 1e-12 * want,
                "σ = {sigma:e}: φ({t}) = {phi:e}, want {want:e}"
            );
        }
    }
    // Nodes at ±1e308: the grid's width overflows f64, its points do not.
    let op = Diagonal::new(&[-1e308, 1e308]);
    let options = SlqOptions {
        probes: 2,
        probe: Probe::Basis,
        steps: 1,
        grid_points: 101,
        sigma: 1.0,
        ..SlqOptions::default()
    };
    let slq = spectral_density(&op, &options).unwrap();
    assert!(slq.grid.iter().all(|t| t.is_finite()));
    assert_eq!((slq.grid[0], slq.grid[100]), (-1e308, 1e308));
    let edge = 0.5 / (2.0 * std::f64::consts::PI).sqrt();
    assert!((slq.density[0] - edge).abs() <= 1e-15 && (slq.density[100] - edge).abs() <= 1e-15);
    assert!(slq.density[1..100].iter().all(|&phi| phi == 0.0));
}
