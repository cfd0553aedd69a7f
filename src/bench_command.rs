//! `curvature bench` (also `curvature` with no subcommand): the batched-HVP benchmark of the
//! library's `bench` module, as a table or one JSON object per workload.

use curvature::bench::{
    run_workload, table_header, table_legend, table_row, workload_line, BenchConfig,
};
use curvature::bench_ranks::{
    ranks_table_header, ranks_table_legend, ranks_table_row, run_workload_ranks,
};
use curvature::nn::shown;
use curvature::tensor::Device;
use curvature::workloads::{self, Workload};

use crate::cli::BenchArgs;
use crate::console::{print, Failure};
use crate::progress::Step;

pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    if curvature::distributed::mpi::launched_by_mpi() {
        // Every process of the job would run the whole benchmark on the same cores; rank 0
        // says so, the others leave without a word.
        if curvature::distributed::mpi::launcher_rank().unwrap_or(0) != 0 {
            crate::ranks::leave_quietly();
        }
        return Err(Failure::Error(
            "bench times this process (--ranks N splits each batch over its threads); under \
             mpirun every process would run the whole benchmark: run `curvature bench --ranks N` \
             in one process, or time the MPI back end with examples/mpi_ranks_timing"
                .to_string(),
        ));
    }
    let device = args.device.select_with_precision(args.precision)?;
    let workloads = select_workloads(&args.workloads, device, args.allow_large)?;
    let runs = |w: &Workload| args.runs.map_or_else(|| w.default_runs(), |n| n as usize);
    if !args.json {
        let mut preamble = format!(
            "curvature bench: K Hessian-vector products of a model's loss with respect to all its P parameters,\n\
             in one batch; device {}, dtype {}, precision {}\n",
            curvature::device_description(device),
            args.dtype,
            args.precision,
        );
        for workload in &workloads {
            preamble.push_str(&workload_line(workload, runs(workload)));
            preamble.push('\n');
        }
        let header = match args.ranks {
            Some(_) => ranks_table_header(),
            None => table_header(device),
        };
        print(&format!("{preamble}\n{header}\n"))?;
    }
    for workload in &workloads {
        let config = BenchConfig {
            device,
            dtype: args.dtype,
            workloads: vec![workload.clone()],
            runs: runs(workload),
        };
        let _step = Step::spinner(format!("measuring {}", workload.name));
        let line = match args.ranks {
            Some(ranks) => {
                let result = run_workload_ranks(workload, &config, ranks as usize)
                    .map_err(|e| e.to_string())?;
                match args.json {
                    true => result.to_json().to_string(),
                    false => ranks_table_row(&result),
                }
            }
            None => {
                let result = run_workload(workload, &config).map_err(|e| e.to_string())?;
                match args.json {
                    true => result.to_json().to_string(),
                    false => table_row(&result),
                }
            }
        };
        drop(_step);
        print(&format!("{line}\n"))?;
    }
    if !args.json {
        let legend = match args.ranks {
            Some(_) => ranks_table_legend(),
            None => table_legend(device),
        };
        print(&format!("\n{legend}\n"))?;
    }
    Ok(())
}

/// The workloads `names` asks for, each once, in the order first named; by default those that
/// fit the device. The large workload runs on a CPU only with `allow_large`.
fn select_workloads(
    names: &[String],
    device: Device,
    allow_large: bool,
) -> Result<Vec<Workload>, String> {
    if names.is_empty() {
        let fits = |w: &Workload| device.is_cuda() || w.name != "large";
        return Ok(workloads::standard().into_iter().filter(fits).collect());
    }
    let mut selected: Vec<Workload> = Vec::new();
    for name in names {
        let workload = workloads::by_name(name).ok_or_else(|| {
            format!(
                "unknown workload '{}' (expected seed, mid or large)",
                shown(name)
            )
        })?;
        if !selected.contains(&workload) {
            selected.push(workload);
        }
    }
    if let Some(large) = selected.iter().find(|w| w.name == "large") {
        if !device.is_cuda() && !allow_large {
            return Err(format!(
                "the large workload (P = {}, {:.1} TFLOP per batch of {} HVPs) takes minutes per measurement on a CPU; pass --allow-large to run it anyway",
                large.params(),
                large.hvp_batch_flops() / 1e12,
                large.k
            ));
        }
    }
    Ok(selected)
}
