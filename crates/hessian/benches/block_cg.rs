//! Conjugate gradients with K right-hand sides advancing together (one operator batch of the
//! active columns per iteration) against K separate single-column solves, on the damped loss
//! Hessian of an MLP, same tolerance. Both compute the same iterates; the batch amortises each
//! sweep over K vectors. `apply_k8` / `apply_1x8` time the operator alone, one batch of K rows
//! against K batches of one row, for comparison with the solves.
//! Run: `cargo bench -p curvature-hessian --bench block_cg`.

use criterion::{criterion_group, criterion_main, Criterion};
use curvature_hessian::{
    probes, solve_cg, CgOptions, HessianError, LinearOperator, ModelHvp, PreparedHvp, Probe,
};
use curvature_nn::{Activation, Loss, Sequential};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

const K: usize = 8;

/// A damping for which CG succeeds on every right-hand side: start at `initial` and take the
/// solver's suggestion after each indefinite direction it meets.
fn working_damping(op: &dyn LinearOperator, b: &Tensor, initial: f64) -> f64 {
    let mut damping = initial;
    loop {
        let options = CgOptions {
            damping,
            tolerance: 1e-6,
            max_iterations: 500,
            preconditioner: None,
        };
        match solve_cg(op, b, &options) {
            Ok(_) => return damping,
            Err(HessianError::IndefiniteCurvature {
                suggested_damping, ..
            }) => damping = suggested_damping,
            Err(e) => panic!("solve failed: {e}"),
        }
    }
}

fn bench_block_cg(c: &mut Criterion) {
    let (n, widths) = (512, [32, 64, 10]);
    let model = Sequential::mlp(
        &widths,
        &[Activation::new(UnaryOp::Tanh)],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )
    .expect("model");
    let x = probes(
        1,
        n * widths[0],
        Probe::Gaussian,
        1,
        DType::F64,
        Device::Cpu,
    )
    .and_then(|t| Ok(t.reshape([n, widths[0]])?))
    .expect("inputs");
    let y = probes(
        1,
        n * widths[2],
        Probe::Gaussian,
        2,
        DType::F64,
        Device::Cpu,
    )
    .and_then(|t| Ok(t.reshape([n, widths[2]])?))
    .expect("targets");
    let tape = PreparedHvp::for_model(&model, Loss::Mse, &x, &y).expect("operator");
    let fused = ModelHvp::new(&model, Loss::Mse, &x, &y).expect("operator");
    let p = tape.dim();
    let b = probes(K, p, Probe::Gaussian, 3, DType::F64, Device::Cpu).expect("right-hand sides");
    let damping = working_damping(&tape, &b, 1e-3);
    let options = CgOptions {
        damping,
        tolerance: 1e-6,
        max_iterations: 500,
        preconditioner: None,
    };
    let operators: [(&str, &dyn LinearOperator); 2] = [("tape", &tape), ("fused", &fused)];
    for (name, op) in operators {
        let solution = solve_cg(op, &b, &options).expect("solve");
        eprintln!(
            "{name}: P = {p}, λ = {damping:.3e}, iterations per column {:?}",
            solution.iterations
        );
        let mut group = c.benchmark_group(format!("block_cg/{name}/P{p}"));
        group.sample_size(10);
        group.bench_function(format!("block_k{K}"), |bench| {
            bench.iter(|| solve_cg(op, &b, &options).expect("solve"))
        });
        group.bench_function(format!("single_x{K}"), |bench| {
            bench.iter(|| {
                for k in 0..K {
                    solve_cg(op, &b.narrow(0, k, 1).expect("row"), &options).expect("solve");
                }
            })
        });
        // The operator alone: one batch of K rows against K batches of one row.
        group.bench_function(format!("apply_k{K}"), |bench| {
            bench.iter(|| curvature_hessian::apply(op, &b).expect("apply"))
        });
        group.bench_function(format!("apply_1x{K}"), |bench| {
            bench.iter(|| {
                for k in 0..K {
                    curvature_hessian::apply(op, &b.narrow(0, k, 1).expect("row")).expect("apply");
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_block_cg);
criterion_main!(benches);
