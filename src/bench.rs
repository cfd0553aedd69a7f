//! The main job: batched Hessian-vector product throughput on the standard workloads.

use std::time::Instant;

use curvature_hessian::{probes, HessianError, LinearOperator, ModelHvp, Probe};
use curvature_tensor::{DType, Device, GpuCounters, Precision};

use crate::workloads::Workload;

/// The most timed repetitions per measurement (`--runs`).
pub const MAX_RUNS: u32 = 10_000;

/// What `curvature bench` measures.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub device: Device,
    pub dtype: DType,
    pub workloads: Vec<Workload>,
    /// Timed repetitions per measurement (the median is reported), 1 to [`MAX_RUNS`].
    pub runs: usize,
}

/// One workload's measurements.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub workload: Workload,
    pub device: Device,
    pub dtype: DType,
    /// The precision of the device's f32 matrix products during the run.
    pub precision: Precision,
    /// Which route the batch took ([`ModelHvp::engine`]).
    pub engine: &'static str,
    /// Median time of one batch of K HVPs through the prepared operator.
    pub hvp_batch_ms: f64,
    /// Median time of one batch including recording the loss and its gradient graph.
    pub hvp_batch_cold_ms: f64,
    /// Median time of a single HVP through the prepared operator.
    pub single_hvp_ms: f64,
    /// The GPU work of the timed batches of K HVPs (after warm-up), on a CUDA device.
    pub gpu_counters: Option<BatchCounters>,
}

/// The GPU work of `batches` timed batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounters {
    /// Everything the timed batches did, together.
    pub total: GpuCounters,
    /// How many batches.
    pub batches: u64,
}

impl BatchCounters {
    /// `count` (a field of `total`) per batch.
    pub fn per_batch(&self, count: u64) -> f64 {
        count as f64 / self.batches.max(1) as f64
    }

    /// The per-batch counts as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let t = &self.total;
        serde_json::json!({
            "launches": self.per_batch(t.launches),
            "allocations": self.per_batch(t.allocations),
            "memsets": self.per_batch(t.memsets),
            "bytes_allocated": self.per_batch(t.bytes_allocated),
            "copies": self.per_batch(t.copies),
            "syncs": self.per_batch(t.syncs),
            "driver_calls": self.per_batch(t.driver_calls),
        })
    }
}

impl BenchResult {
    pub fn hvp_per_s(&self) -> f64 {
        self.workload.k as f64 / (self.hvp_batch_ms / 1e3)
    }

    /// Achieved GFLOP/s of the batch, by the cost model.
    pub fn gflops(&self) -> f64 {
        self.workload.hvp_batch_flops() / (self.hvp_batch_ms / 1e3) / 1e9
    }

    /// One JSON object (a line of `--json` output); `gpu_counters` (per timed batch) on a
    /// CUDA device.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "workload": self.workload.name,
            "device": self.device.to_string(),
            "dtype": self.dtype.as_str(),
            "precision": self.precision.name(),
            "engine": self.engine,
            "k": self.workload.k,
            "params": self.workload.params(),
            "samples": self.workload.samples,
            "hvp_batch_ms": self.hvp_batch_ms,
            "hvp_batch_cold_ms": self.hvp_batch_cold_ms,
            "hvp_per_s": self.hvp_per_s(),
            "single_hvp_ms": self.single_hvp_ms,
            "gflops": self.gflops(),
            "kernels": crate::KERNELS_FINGERPRINT,
        });
        if let Some(counters) = &self.gpu_counters {
            json["gpu_counters"] = counters.to_json();
        }
        json
    }
}

/// Runs one workload. `config.runs` must be 1 to [`MAX_RUNS`].
pub fn run_workload(
    workload: &Workload,
    config: &BenchConfig,
) -> curvature_hessian::Result<BenchResult> {
    if config.runs == 0 || config.runs > MAX_RUNS as usize {
        return Err(HessianError::InvalidArgument {
            op: "run_workload",
            msg: format!("runs is {}, expected 1 to {MAX_RUNS}", config.runs),
        });
    }
    crate::allocator::retain_freed_memory();
    let problem = workload.build(config.dtype, config.device)?;
    let prepare = || ModelHvp::new(&problem.model, problem.loss, &problem.x, &problem.y);
    let operator = prepare()?;
    let engine = operator.engine(workload.k);
    let dim = operator.dim();
    let batch = probes(
        workload.k,
        dim,
        Probe::Gaussian,
        7,
        config.dtype,
        config.device,
    )?;
    let single = batch.narrow(0, 0, 1)?;
    let device = config.device;
    // The median time of the timed runs (after two warm-up runs when `warm_up`: a tape
    // operator's first batch of a size traces and compiles its plan, the second is the plan's
    // first run, which settles the device's buffer cache), and the GPU work they did.
    let time = |warm_up: bool, f: &dyn Fn() -> curvature_hessian::Result<()>| {
        if warm_up {
            for _ in 0..2 {
                f().and_then(|()| Ok(device.synchronize()?))?;
            }
        }
        let before = device.gpu_counters()?;
        let mut times = Vec::with_capacity(config.runs);
        for _ in 0..config.runs {
            let start = Instant::now();
            f().and_then(|()| Ok(device.synchronize()?))?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let after = device.gpu_counters()?;
        let counters = before.zip(after).map(|(before, after)| BatchCounters {
            total: after.since(&before),
            batches: config.runs as u64,
        });
        curvature_hessian::Result::Ok((median(&mut times), counters))
    };
    let (hvp_batch_ms, gpu_counters) = time(true, &|| operator.apply_batch(&batch).map(drop))?;
    let (single_hvp_ms, _) = time(true, &|| operator.apply_batch(&single).map(drop))?;
    // The batch above warmed everything the cold runs use.
    let (hvp_batch_cold_ms, _) = time(false, &|| prepare()?.apply_batch(&batch).map(drop))?;
    Ok(BenchResult {
        workload: workload.clone(),
        device: config.device,
        dtype: config.dtype,
        precision: config.device.matmul_precision()?,
        engine,
        hvp_batch_ms,
        hvp_batch_cold_ms,
        single_hvp_ms,
        gpu_counters,
    })
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

/// The header of the human-readable table; on a CUDA device it ends with the launches and
/// allocations per batch.
pub fn table_header(device: Device) -> String {
    let header = format!(
        "{:<8} {:<12} {:>9} {:>5} {:>12} {:>13} {:>10} {:>10} {:>9}",
        "workload", "engine", "P", "K", "K HVPs ms", "+ primal ms", "HVP/s", "1 HVP ms", "GFLOP/s"
    );
    if device.is_cuda() {
        format!("{header} {:>9} {:>7}", "launches", "allocs")
    } else {
        header
    }
}

/// One row of the human-readable table.
pub fn table_row(r: &BenchResult) -> String {
    let row = format!(
        "{:<8} {:<12} {:>9} {:>5} {:>12.3} {:>13.3} {:>10.0} {:>10.3} {:>9.2}",
        r.workload.name,
        r.engine,
        r.workload.params(),
        r.workload.k,
        r.hvp_batch_ms,
        r.hvp_batch_cold_ms,
        r.hvp_per_s(),
        r.single_hvp_ms,
        r.gflops()
    );
    match &r.gpu_counters {
        Some(c) => format!(
            "{row} {:>9.0} {:>7.0}",
            c.per_batch(c.total.launches),
            c.per_batch(c.total.allocations)
        ),
        None => row,
    }
}

/// The workload's line of the table's preamble: what it computes and how often it is timed.
pub fn workload_line(workload: &Workload, runs: usize) -> String {
    format!(
        "  {:<5} {}; P = {} parameters, K = {} directions; median of {runs} {}",
        format!("{}:", workload.name),
        workload.description(),
        workload.params(),
        workload.k,
        if runs == 1 { "run" } else { "runs" }
    )
}

/// What the table's columns mean, printed under it; on a CUDA device also the counters.
pub fn table_legend(device: Device) -> String {
    let mut legend = String::from(
        "K HVPs ms: one batch of K Hessian-vector products through the prepared operator (loss and\n\
         gradient recorded once, reused); + primal ms: the same batch with that preparation redone\n\
         each time (what a function recomputing the forward pass pays); 1 HVP ms: a single product;\n\
         HVP/s: K / (K HVPs ms); GFLOP/s: the cost model's 6 forward-pass products per direction\n\
         divided by K HVPs ms; engine: fused-narrow / fused-wide (the MLP sweep) or tape.",
    );
    if device.is_cuda() {
        legend.push_str(
            "\nlaunches, allocs: kernel launches and allocations per batch after warm-up.",
        );
    }
    legend
}
