//! The `curvature` command line: `bench` (the main job, also what `curvature` with no
//! subcommand runs) and `analyze MODEL.safetensors`. Errors are one line on stderr and exit
//! code 2.

mod analyze;
mod bench_command;
mod cli;
mod output;
mod plot;
mod progress;
mod report;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

/// A caching allocator: batched HVPs allocate and free large buffers op after op, which the
/// system allocator would return to the kernel and fault in again every time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Bench(args)) => bench_command::run(args),
        Some(Command::Analyze(args)) => report::run(args),
        None => bench_command::run(&cli.bench),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", one_line(&message));
            ExitCode::from(2)
        }
    }
}

/// The message on one line: line breaks of nested errors become spaces.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
