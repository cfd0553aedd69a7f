//! Times batches of K Hessian-vector products of one generic benchmark function
//! (`curvature::generic_functions`) through `PreparedHvp` and prints one JSON line: function,
//! P, K, dtype, device, engine (`plan` when the batches replayed a compiled plan, `op-by-op`
//! with `--engine op-by-op`, `CURVATURE_PLAN=0`, or a sweep plans cannot compile), the median
//! batch time, the median time of recording the function and its gradient, the process's peak
//! resident memory, and the plan's steps, fused steps, pool and peak bytes.
//! `benches/compare_jax_generic.py` drives it.
//!
//! Run: `cargo run --release --example generic_hvp -- --function rosenbrock --dtype f32`
//! (`--runs N` timed batches after `--warmup W`, `--k K` instead of the function's K,
//! `--engine op-by-op` to switch plans off,
//! `--device cuda` for the GPU, `--dump FILE` writes the first batch's products to a
//! safetensors file as `hvp`, `[K, P]`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use curvature::generic_functions::{GenericFunction, Sizes};
use curvature::hessian::LinearOperator;
use curvature::tensor::plan::PlanStep;
use curvature::tensor::{io, DType, Device};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The most timed batches.
const MAX_RUNS: u32 = 10_000;

#[derive(Parser, Debug)]
#[command(about = "Times batched Hessian-vector products of a generic benchmark function")]
struct Args {
    /// rosenbrock, softmax_regression, residual_mlp, layernorm_mlp, logsumexp_loss or pinn.
    #[arg(long)]
    function: String,
    /// f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Directions per batch (default: the function's benchmark K).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    k: Option<u32>,
    /// Timed batches; the median is reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS as i64))]
    runs: u32,
    /// Untimed batches before the timed ones.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    warmup: u32,
    /// plan (compiled plans, unless `CURVATURE_PLAN=0`) or op-by-op.
    #[arg(long, default_value = "plan")]
    engine: String,
    /// Writes the products of the probes to this safetensors file (tensor `hvp`, `[K, P]`).
    #[arg(long)]
    dump: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    curvature::allocator::retain_freed_memory();
    let function = GenericFunction::by_name(&args.function)?;
    let dtype = match args.dtype.as_str() {
        "f32" => DType::F32,
        "f64" => DType::F64,
        other => return Err(format!("--dtype must be f32 or f64, got {other:?}").into()),
    };
    let device = match args.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::cuda(0)?,
        other => return Err(format!("--device must be cpu or cuda, got {other:?}").into()),
    };
    let sizes = Sizes {
        k: args.k.map_or(function.benchmark_sizes().k, |k| k as usize),
        ..function.benchmark_sizes()
    };
    let plans = match args.engine.as_str() {
        "plan" => true,
        "op-by-op" => false,
        other => return Err(format!("--engine must be plan or op-by-op, got {other:?}").into()),
    };
    let problem = function.build(sizes, dtype, device)?;
    let batch = problem.probes(sizes.k)?;

    let operator = problem.prepare()?.with_plan(plans);
    let first = operator.apply_batch(&batch)?;
    device.synchronize()?;
    let plan = operator.compiled_plan(sizes.k);
    if let Some(path) = &args.dump {
        let host = first.to_device(Device::Cpu)?;
        io::save(path, &[("hvp", &host)])?;
    }
    for _ in 0..args.warmup {
        operator.apply_batch(&batch)?;
        device.synchronize()?;
    }
    let mut batch_ms = Vec::with_capacity(args.runs as usize);
    let mut prepare_ms = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let start = Instant::now();
        operator.apply_batch(&batch)?;
        device.synchronize()?;
        batch_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let prepared = problem.prepare()?;
        device.synchronize()?;
        prepare_ms.push(start.elapsed().as_secs_f64() * 1e3);
        drop(prepared);
    }
    let line = serde_json::json!({
        "function": function.name(),
        "p": operator.dim(),
        "k": sizes.k,
        "dtype": dtype.as_str(),
        "device": device.to_string(),
        "engine": if plan.is_some() { "plan" } else { "op-by-op" },
        "runs": args.runs,
        "ms": median(&mut batch_ms),
        "min_ms": batch_ms.iter().copied().fold(f64::INFINITY, f64::min),
        "prepare_ms": median(&mut prepare_ms),
        "peak_rss_mib": peak_rss_mib(),
        "plan_steps": plan.as_ref().map(|p| p.steps().len()),
        "fused_steps": plan.as_ref().map(|p| {
            p.steps().iter().filter(|s| matches!(s, PlanStep::Fused(_))).count()
        }),
        "plan_pool_bytes": plan.as_ref().map(|p| p.pool_bytes()),
        "plan_peak_bytes": plan.as_ref().map(|p| p.peak_bytes()),
    });
    println!("{line}");
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`) in MiB, where the system
/// reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
