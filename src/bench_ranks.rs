//! `curvature bench --ranks R`: the batched-HVP benchmark split over R in-process ranks, each
//! with a contiguous shard of the samples, against the same measurement on one rank.

use std::sync::Arc;
use std::time::Instant;

use curvature_distributed::{
    Collective, CollectiveError, DistributedError, DistributedOperator, Fingerprint, InProcess,
    Reduction, RunError, Shard, MAX_IN_PROCESS_RANKS,
};
use curvature_hessian::{probes, HessianError, LinearOperator, ModelHvp, Probe};
use curvature_tensor::{DType, Device};

use crate::bench::{BenchConfig, MAX_RUNS};
use crate::workloads::Workload;

/// One workload measured on one rank and on R ranks.
#[derive(Debug, Clone)]
pub struct RanksResult {
    /// The workload measured.
    pub workload: Workload,
    /// The device every rank computed on.
    pub device: Device,
    /// The element type.
    pub dtype: DType,
    /// The number of ranks of the split run.
    pub ranks: usize,
    /// The route rank 0's local batch took on R ranks ([`ModelHvp::engine`]).
    pub engine: &'static str,
    /// Median time of one distributed batch of K HVPs on one rank.
    pub one_rank_ms: f64,
    /// Median time of one distributed batch of K HVPs on R ranks (the local products and the
    /// all-reduce of the `[K, P]` result), as rank 0 measures it.
    pub ranks_ms: f64,
}

impl RanksResult {
    /// K / (R-rank batch time).
    pub fn hvp_per_s(&self) -> f64 {
        self.workload.k as f64 / (self.ranks_ms / 1e3)
    }

    /// One-rank time / R-rank time.
    pub fn speedup(&self) -> f64 {
        self.one_rank_ms / self.ranks_ms
    }

    /// Speedup / R: 1 when R ranks are R times as fast as one.
    pub fn efficiency(&self) -> f64 {
        self.speedup() / self.ranks as f64
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
            "backend": "in-process",
            "ranks": self.ranks,
            "hvp_batch_ms_one_rank": self.one_rank_ms,
            "hvp_batch_ms": self.ranks_ms,
            "hvp_per_s": self.hvp_per_s(),
            "speedup": self.speedup(),
            "efficiency": self.efficiency(),
            "kernels": crate::KERNELS_FINGERPRINT,
        })
    }
}

/// Measures `workload` on one rank and on `ranks` in-process ranks (2 to
/// [`MAX_IN_PROCESS_RANKS`], at most the workload's sample count). `config.runs` must be 1 to
/// [`MAX_RUNS`].
pub fn run_workload_ranks(
    workload: &Workload,
    config: &BenchConfig,
    ranks: usize,
) -> Result<RanksResult, Box<RunError<DistributedError>>> {
    let invalid = |message: String| {
        Box::new(RunError::Setup(CollectiveError::InvalidArgument {
            op: "run_workload_ranks",
            rank: 0,
            message,
        }))
    };
    if config.runs == 0 || config.runs > MAX_RUNS as usize {
        return Err(invalid(format!(
            "runs is {}, expected 1 to {MAX_RUNS}",
            config.runs
        )));
    }
    if !(2..=MAX_IN_PROCESS_RANKS.min(workload.samples)).contains(&ranks) {
        return Err(invalid(format!(
            "ranks is {ranks}, expected 2 to {} for the {} workload's {} samples",
            MAX_IN_PROCESS_RANKS.min(workload.samples),
            workload.name,
            workload.samples
        )));
    }
    crate::allocator::retain_freed_memory();
    let (one_rank_ms, _) = time_on_ranks(workload, config, 1)?;
    let (ranks_ms, engine) = time_on_ranks(workload, config, ranks)?;
    Ok(RanksResult {
        workload: workload.clone(),
        device: config.device,
        dtype: config.dtype,
        ranks,
        engine,
        one_rank_ms,
        ranks_ms,
    })
}

/// Rank 0's median time of one distributed batch on `ranks` ranks, and its engine.
fn time_on_ranks(
    workload: &Workload,
    config: &BenchConfig,
    ranks: usize,
) -> Result<(f64, &'static str), Box<RunError<DistributedError>>> {
    let timings = InProcess::run(
        ranks,
        |collective: InProcess| -> Result<(f64, &'static str), DistributedError> {
            let problem = workload
                .build(config.dtype, config.device)
                .map_err(HessianError::from)?;
            let shard = Shard::of(&collective, workload.samples)?;
            let (x, y) = (shard.select(&problem.x)?, shard.select(&problem.y)?);
            let local = ModelHvp::new(&problem.model, problem.loss, &x, &y)?;
            let engine = local.engine(workload.k);
            let fingerprint = Fingerprint::of_model(&problem.model, std::slice::from_ref(&x), &y)?;
            let handle: Arc<dyn Collective> = Arc::new(collective);
            let operator = DistributedOperator::new(
                local,
                Arc::clone(&handle),
                shard,
                Reduction::of_loss(problem.loss),
                &fingerprint,
            )?;
            let batch = probes(
                workload.k,
                operator.dim(),
                Probe::Gaussian,
                7,
                config.dtype,
                config.device,
            )?;
            let run = || -> Result<(), DistributedError> {
                operator.apply_batch(&batch)?;
                config.device.synchronize()?;
                Ok(())
            };
            run()?;
            let mut times = Vec::with_capacity(config.runs);
            for _ in 0..config.runs {
                handle.barrier()?;
                let start = Instant::now();
                run()?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok((median(&mut times), engine))
        },
    )
    .map_err(Box::new)?;
    timings.into_iter().next().ok_or_else(|| {
        Box::new(RunError::Setup(CollectiveError::InvalidArgument {
            op: "run_workload_ranks",
            rank: 0,
            message: "no rank returned a time".into(),
        }))
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

/// The header of the human-readable table of `bench --ranks`.
pub fn ranks_table_header() -> String {
    format!(
        "{:<8} {:<12} {:>9} {:>5} {:>5} {:>12} {:>12} {:>10} {:>8} {:>10}",
        "workload",
        "engine",
        "P",
        "K",
        "ranks",
        "1 rank ms",
        "R ranks ms",
        "HVP/s",
        "speedup",
        "efficiency"
    )
}

/// One row of the human-readable table of `bench --ranks`.
pub fn ranks_table_row(r: &RanksResult) -> String {
    format!(
        "{:<8} {:<12} {:>9} {:>5} {:>5} {:>12.3} {:>12.3} {:>10.0} {:>8.2} {:>9.0}%",
        r.workload.name,
        r.engine,
        r.workload.params(),
        r.workload.k,
        r.ranks,
        r.one_rank_ms,
        r.ranks_ms,
        r.hvp_per_s(),
        r.speedup(),
        100.0 * r.efficiency()
    )
}

/// What the columns of `bench --ranks` mean.
pub fn ranks_table_legend() -> String {
    String::from(
        "1 rank ms / R ranks ms: one batch of K Hessian-vector products of the loss over all samples,\n\
         on one rank and on R ranks (threads of this process, each with a contiguous shard of the\n\
         samples, the [K, P] results summed by one all-reduce), as rank 0 measures it; HVP/s:\n\
         K / (R ranks ms); speedup: 1 rank ms / R ranks ms; efficiency: speedup / R. The ranks\n\
         share this machine's cores with each other and with the kernels' own threads.",
    )
}
