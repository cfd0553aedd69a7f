//! The `curvature` command line. With no subcommand it runs `bench`, the main job.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use curvature::bench::{run_workload, table_header, table_row, BenchConfig};
use curvature::tensor::{DType, Device};
use curvature::workloads::{self, Workload};

#[derive(Parser)]
#[command(
    name = "curvature",
    version,
    about = "Second-order derivatives of neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark batched Hessian-vector products on the standard workloads (the default).
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Print one JSON object per workload instead of a table.
    #[arg(long)]
    json: bool,
    /// Element type.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// Comma-separated workloads (seed, mid, large); default: those that fit the device.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Device to run on; `auto` picks a CUDA GPU when one is present.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

/// A caching allocator: batched HVPs allocate and free large buffers op after op, which the
/// system allocator would return to the kernel and fault in again every time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_dtype(s: &str) -> Result<DType, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Bench(args)) => bench(&args),
        None => bench(&cli.bench),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn select_device(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Auto => Ok(Device::cuda_if_available(0)),
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => Device::cuda(0).map_err(|e| e.to_string()),
    }
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

fn bench(args: &BenchArgs) -> Result<(), String> {
    let device = select_device(args.device)?;
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
        let result = run_workload(workload, &config).map_err(|e| e.to_string())?;
        if args.json {
            println!("{}", result.to_json());
        } else {
            println!("{}", table_row(&result));
        }
    }
    Ok(())
}
