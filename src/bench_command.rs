//! `curvature bench` (also `curvature` with no subcommand): the batched-HVP benchmark of the
//! library's `bench` module, as a table or one JSON object per workload.

use curvature::bench::{run_workload, table_header, table_row, BenchConfig};
use curvature::tensor::Device;
use curvature::workloads::{self, Workload};

use crate::cli::BenchArgs;
use crate::progress::Step;

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let device = args.device.select()?;
    let config = BenchConfig {
        device,
        dtype: args.dtype,
        workloads: select_workloads(&args.workloads, device)?,
        runs: args.runs,
    };
    if !args.json {
        println!(
            "curvature bench: batched Hessian-vector products, device {}, dtype {}, median of {} runs",
            curvature::device_description(device),
            config.dtype,
            config.runs
        );
        println!("{}", table_header());
    }
    for workload in &config.workloads {
        let result = {
            let _step = Step::spinner(format!("measuring {}", workload.name));
            run_workload(workload, &config).map_err(|e| e.to_string())?
        };
        if args.json {
            println!("{}", result.to_json());
        } else {
            println!("{}", table_row(&result));
        }
    }
    Ok(())
}

fn select_workloads(names: &[String], device: Device) -> Result<Vec<Workload>, String> {
    if names.is_empty() {
        let fits = |w: &Workload| device.is_cuda() || w.name != "large";
        return Ok(workloads::standard().into_iter().filter(fits).collect());
    }
    names
        .iter()
        .map(|name| {
            workloads::by_name(name)
                .ok_or_else(|| format!("unknown workload '{name}' (expected seed, mid or large)"))
        })
        .collect()
}
