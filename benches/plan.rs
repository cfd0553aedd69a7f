//! Criterion benches of compiled plans against the op-by-op replay, on the CPU, f32: a batch
//! of K Hessian-vector products through `PreparedHvp` for the generic functions Rosenbrock
//! (P = 100 000, K = 16), softmax regression (784 × 10, n = 1024, K = 32) and the residual tanh
//! MLP (128 wide, n = 512, K = 32), and for the standard MLP workloads seed (K = 141) and mid
//! (K = 8 here, so the whole run stays near a minute) through the tape — the hand-fused MLP
//! sweep switched off — with the fused sweep (`MlpHvp`) as the third line. The op-by-op lines
//! switch plans off with `PreparedHvp::with_plan(false)`.
//! Run: `cargo bench --bench plan`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use curvature::generic_functions::GenericFunction;
use curvature::hessian::{probes, LinearOperator, MlpHvp, PreparedHvp, Probe};
use curvature::nn::Module;
use curvature::tensor::{DType, Device, Tensor};
use curvature::workloads;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The two engines of the tape: the compiled plan and the op-by-op replay.
const ENGINES: [(&str, bool); 2] = [("plan", true), ("op-by-op", false)];

/// K of the mid workload in these benches (its standard K is 64).
const MID_K: usize = 8;

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
}

/// Times `operator.apply_batch(batch)` as `name`.
fn time_batch(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    operator: &dyn LinearOperator,
    batch: &Tensor,
) {
    group.bench_function(name, |b| {
        b.iter(|| operator.apply_batch(batch).expect("batch of products"))
    });
}

fn bench_generic_functions(c: &mut Criterion) {
    curvature::allocator::retain_freed_memory();
    let functions = [
        GenericFunction::Rosenbrock,
        GenericFunction::SoftmaxRegression,
        GenericFunction::ResidualMlp,
    ];
    for function in functions {
        let sizes = function.benchmark_sizes();
        let problem = function
            .build(sizes, DType::F32, Device::Cpu)
            .expect("function builds");
        let batch = problem.probes(sizes.k).expect("probes");
        let mut group = c.benchmark_group(format!("cpu/f32/{}/k{}", function.name(), sizes.k));
        configure(&mut group);
        for (engine, plans) in ENGINES {
            let operator = problem
                .prepare()
                .expect("prepared operator")
                .with_plan(plans);
            time_batch(&mut group, engine, &operator, &batch);
        }
        group.finish();
    }
}

fn bench_mlp_workloads(c: &mut Criterion) {
    curvature::allocator::retain_freed_memory();
    for name in ["seed", "mid"] {
        let workload = workloads::by_name(name).expect("standard workload");
        let k = if name == "mid" { MID_K } else { workload.k };
        let problem = workload
            .build(DType::F32, Device::Cpu)
            .expect("workload builds");
        let batch = probes(
            k,
            problem.model.num_params(),
            Probe::Gaussian,
            7,
            DType::F32,
            Device::Cpu,
        )
        .expect("probes");
        let mut group = c.benchmark_group(format!("cpu/f32/{name}/k{k}"));
        configure(&mut group);
        for (engine, plans) in ENGINES {
            let operator =
                PreparedHvp::for_model(&problem.model, problem.loss, &problem.x, &problem.y)
                    .expect("prepared operator")
                    .with_plan(plans);
            time_batch(&mut group, engine, &operator, &batch);
        }
        let fused = MlpHvp::new(&problem.model, problem.loss, &problem.x, &problem.y)
            .expect("fused operator");
        time_batch(&mut group, "fused-sweep", &fused, &batch);
        group.finish();
    }
}

criterion_group!(benches, bench_generic_functions, bench_mlp_workloads);
criterion_main!(benches);
