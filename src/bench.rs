//! The main job: batched Hessian-vector product throughput on the standard workloads.

use std::time::Instant;

use curvature_hessian::{probes, HessianError, LinearOperator, ModelHvp, Probe};
use curvature_tensor::{DType, Device};

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
    /// Which route the batch took ([`ModelHvp::engine`]).
    pub engine: &'static str,
    /// Median time of one batch of K HVPs through the prepared operator.
    pub hvp_batch_ms: f64,
    /// Median time of one batch including recording the loss and its gradient graph.
    pub hvp_batch_cold_ms: f64,
    /// Median time of a single HVP through the prepared operator.
    pub single_hvp_ms: f64,
}

impl BenchResult {
    pub fn hvp_per_s(&self) -> f64 {
        self.workload.k as f64 / (self.hvp_batch_ms / 1e3)
    }

    /// Achieved GFLOP/s of the batch, by the cost model.
    pub fn gflops(&self) -> f64 {
        self.workload.hvp_batch_flops() / (self.hvp_batch_ms / 1e3) / 1e9
    }

    /// One JSON object (a line of `--json` output).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workload": self.workload.name,
            "device": self.device.to_string(),
            "dtype": self.dtype.as_str(),
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
        })
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
    let time = |f: &dyn Fn() -> curvature_hessian::Result<()>| -> curvature_hessian::Result<f64> {
        f().and_then(|()| Ok(config.device.synchronize()?))?;
        let mut times = Vec::with_capacity(config.runs);
        for _ in 0..config.runs {
            let start = Instant::now();
            f().and_then(|()| Ok(config.device.synchronize()?))?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut times))
    };
    let hvp_batch_ms = time(&|| operator.apply_batch(&batch).map(drop))?;
    let single_hvp_ms = time(&|| operator.apply_batch(&single).map(drop))?;
    let hvp_batch_cold_ms = time(&|| prepare()?.apply_batch(&batch).map(drop))?;
    Ok(BenchResult {
        workload: workload.clone(),
        device: config.device,
        dtype: config.dtype,
        engine,
        hvp_batch_ms,
        hvp_batch_cold_ms,
        single_hvp_ms,
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

/// The header of the human-readable table.
pub fn table_header() -> String {
    format!(
        "{:<8} {:<12} {:>9} {:>5} {:>15} {:>15} {:>12} {:>14} {:>9}",
        "workload",
        "engine",
        "params",
        "K",
        "hvp_batch ms",
        "with primal ms",
        "HVP/s",
        "single HVP ms",
        "GFLOP/s"
    )
}

/// One row of the human-readable table.
pub fn table_row(r: &BenchResult) -> String {
    format!(
        "{:<8} {:<12} {:>9} {:>5} {:>15.3} {:>15.3} {:>12.0} {:>14.3} {:>9.2}",
        r.workload.name,
        r.engine,
        r.workload.params(),
        r.workload.k,
        r.hvp_batch_ms,
        r.hvp_batch_cold_ms,
        r.hvp_per_s(),
        r.single_hvp_ms,
        r.gflops()
    )
}
