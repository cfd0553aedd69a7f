//! `curvature bench` (also `curvature` with no subcommand): the batched-HVP benchmark of the
//! library's `bench` module, as a table or one JSON object per workload.

use curvature::bench::{run_workload, table_header, table_row, BenchConfig};
use curvature::nn::shown;
use curvature::tensor::Device;
use curvature::workloads::{self, Workload};

use crate::cli::BenchArgs;
use crate::console::{print, Failure};
use crate::progress::Step;

pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let device = args.device.select()?;
    let config = BenchConfig {
        device,
        dtype: args.dtype,
        workloads: select_workloads(&args.workloads, device, args.allow_large)?,
        runs: args.runs as usize,
    };
    if !args.json {
        print(&format!(
            "curvature bench: batched Hessian-vector products, device {}, dtype {}, median of {} {}\n{}\n",
            curvature::device_description(device),
            config.dtype,
            config.runs,
            if config.runs == 1 { "run" } else { "runs" },
            table_header(device)
        ))?;
    }
    for workload in &config.workloads {
        let result = {
            let _step = Step::spinner(format!("measuring {}", workload.name));
            run_workload(workload, &config).map_err(|e| e.to_string())?
        };
        let line = if args.json {
            result.to_json().to_string()
        } else {
            table_row(&result)
        };
        print(&format!("{line}\n"))?;
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
