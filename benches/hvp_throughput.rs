//! Criterion benches of the standard workloads on the CPU (and a CUDA GPU when present):
//! the loss gradient, then a single HVP and a batch of K HVPs through each operator — the
//! tape's prepared operator, and on the CPU the fused MLP sweep (`MlpHvp`, which picks its
//! layout per batch size). The device is synchronized inside each timed iteration.
//! Run: `cargo bench --bench hvp_throughput`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use curvature::hessian::{probes, LinearOperator, MlpHvp, PreparedHvp, Probe};
use curvature::nn::Module;
use curvature::tape::{grad, GradOptions, Tape};
use curvature::tensor::{DType, Device};
use curvature::workloads;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_workloads(c: &mut Criterion) {
    curvature::allocator::retain_freed_memory();
    let mut devices = vec![Device::Cpu];
    if let Ok(gpu) = Device::cuda(0) {
        devices.push(gpu);
    }
    for device in devices {
        for name in ["seed", "mid"] {
            let Some(workload) = workloads::by_name(name) else {
                continue;
            };
            for dtype in [DType::F32, DType::F64] {
                let problem = workload.build(dtype, device).expect("workload builds");
                let id = format!("{device}/{name}/{dtype}");
                let mut group = c.benchmark_group(id);
                group.sample_size(if name == "mid" { 10 } else { 30 });
                group.bench_function("gradient", |b| {
                    b.iter(|| {
                        let tape = Tape::new();
                        let theta = tape.leaf(problem.model.flat_params().expect("params"));
                        let x = tape.constant(problem.x.clone());
                        let out = problem.model.forward_flat(&theta, &x).expect("forward");
                        let loss = problem.loss.compute(&out, &problem.y).expect("loss");
                        let g = grad(&[loss], &[theta], GradOptions::default()).expect("grad");
                        device.synchronize().expect("synchronize");
                        g
                    })
                });
                let tape =
                    PreparedHvp::for_model(&problem.model, problem.loss, &problem.x, &problem.y)
                        .expect("prepared operator");
                let mut operators: Vec<(String, Box<dyn LinearOperator>)> =
                    vec![("tape".to_string(), Box::new(tape))];
                if device == Device::Cpu {
                    let fused = MlpHvp::new(&problem.model, problem.loss, &problem.x, &problem.y)
                        .expect("fused operator");
                    operators.push(("fused".to_string(), Box::new(fused)));
                }
                let batch = probes(
                    workload.k,
                    problem.model.num_params(),
                    Probe::Gaussian,
                    7,
                    dtype,
                    device,
                )
                .expect("probes");
                let single = batch.narrow(0, 0, 1).expect("one probe");
                for (engine, op) in &operators {
                    group.bench_function(format!("{engine}/single_hvp"), |b| {
                        b.iter(|| {
                            let hv = op.apply_batch(&single).expect("hvp");
                            device.synchronize().expect("synchronize");
                            hv
                        })
                    });
                    group.bench_function(format!("{engine}/hvp_batch_k{}", workload.k), |b| {
                        b.iter(|| {
                            let hv = op.apply_batch(&batch).expect("hvp batch");
                            device.synchronize().expect("synchronize");
                            hv
                        })
                    });
                }
                group.finish();
            }
        }
    }
}

/// The CPU's matrix-product ceiling: a square product through the same `gemm` crate, with the
/// throughput in FLOP/s (criterion's "elem/s"). The mid workload is bound by this rate.
fn bench_gemm_ceiling(c: &mut Criterion) {
    let n = 1024;
    let mut group = c.benchmark_group("cpu/gemm_ceiling");
    group.sample_size(20);
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    for dtype in [DType::F32, DType::F64] {
        let a = probes(n, n, Probe::Gaussian, 1, dtype, Device::Cpu).expect("a");
        let b = probes(n, n, Probe::Gaussian, 2, dtype, Device::Cpu).expect("b");
        group.bench_function(format!("{dtype}/{n}x{n}x{n}"), |bench| {
            bench.iter(|| a.matmul(&b).expect("matmul"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_workloads, bench_gemm_ceiling);
criterion_main!(benches);
