//! One distributed batch of a standard workload's K Hessian-vector products, timed on the
//! ranks of an MPI job: each rank takes its contiguous shard of the samples, applies its local
//! Hessian to the same `[K, P]` batch and the MPI all-reduce sums the results. Rank 0 prints
//! one JSON line: the ranks, the median batch time of `RUNS` runs (after a barrier each) and
//! how long the all-reduce of the `[K, P]` result alone takes. Outside MPI it runs as one rank.
//!
//!     cargo build --release --example mpi_ranks_timing
//!     target/release/examples/mpi_ranks_timing mid f32 3
//!     mpirun -np 2 target/release/examples/mpi_ranks_timing mid f32 3

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use curvature::distributed::mpi::{launched_by_mpi, Mpi};
use curvature::distributed::{
    Collective, DistributedError, DistributedOperator, Fingerprint, InProcess, Reduction, Shard,
};
use curvature::hessian::{probes, LinearOperator, ModelHvp, Probe};
use curvature::tensor::{DType, Device};
use curvature::workloads::by_name;

type Failure = Box<dyn Error + Send + Sync>;

/// The median of `times` (sorted in place).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times the workload `name` on the ranks of `group`; rank 0 prints the result.
fn time_on(
    group: Arc<dyn Collective>,
    name: &str,
    dtype: DType,
    runs: usize,
) -> Result<(), Failure> {
    let workload = by_name(name).ok_or_else(|| format!("no workload {name}"))?;
    let problem = workload.build(dtype, Device::Cpu)?;
    let shard = Shard::of(group.as_ref(), workload.samples)?;
    let (x, y) = (shard.select(&problem.x)?, shard.select(&problem.y)?);
    let local = ModelHvp::new(&problem.model, problem.loss, &x, &y)?;
    let fingerprint = Fingerprint::of_model(&problem.model, std::slice::from_ref(&x), &y)?;
    let reduction = Reduction::of_loss(problem.loss);
    let operator = DistributedOperator::new(local, group.clone(), shard, reduction, &fingerprint)?;
    let batch = probes(
        workload.k,
        operator.dim(),
        Probe::Gaussian,
        7,
        dtype,
        Device::Cpu,
    )?;
    operator.apply_batch(&batch)?;
    let (mut batches, mut reduces) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        group.barrier()?;
        let start = Instant::now();
        operator.apply_batch(&batch)?;
        batches.push(start.elapsed().as_secs_f64() * 1e3);
        group.barrier()?;
        let start = Instant::now();
        group.all_reduce_sum(&batch)?;
        reduces.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if group.rank() == 0 {
        println!(
            "{{\"workload\": \"{name}\", \"dtype\": \"{}\", \"backend\": \"{}\", \"ranks\": {}, \
             \"k\": {}, \"params\": {}, \"hvp_batch_ms\": {:.1}, \"all_reduce_ms\": {:.1}}}",
            dtype.as_str(),
            group.backend(),
            group.size(),
            workload.k,
            operator.dim(),
            median(&mut batches),
            median(&mut reduces)
        );
    }
    Ok(())
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("mid", String::as_str);
    let dtype: DType = args.get(2).map_or("f32", String::as_str).parse()?;
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    if runs == 0 {
        return Err("runs must be at least 1".into());
    }
    if launched_by_mpi() {
        let mpi: Arc<dyn Collective> = Arc::new(Mpi::init()?);
        if let Err(e) = time_on(mpi.clone(), name, dtype, runs) {
            mpi.abort(&e.to_string());
        }
        return Ok(());
    }
    InProcess::run(1, |solo| {
        time_on(Arc::new(solo), name, dtype, runs).map_err(|e| DistributedError::InvalidArgument {
            op: "mpi_ranks_timing",
            rank: 0,
            message: e.to_string(),
        })
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}
