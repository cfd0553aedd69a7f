//! The `curvature` command line: `bench` (the main job, also what `curvature` with no
//! subcommand runs), `gemm` (one matrix product timed) and `analyze MODEL.safetensors` (or `analyze MODEL.onnx --data DATA
//! --loss LOSS`). Exit codes: 0 on success (and when the
//! reader of standard output goes away), 2 for every error, reported as one line `error: ...`
//! on stderr, and 128 + the signal's number when interrupted (130 for SIGINT, 143 for
//! SIGTERM), with no temporary file left behind.

mod analyze;
mod bench_command;
mod cli;
mod console;
mod gemm_command;
mod output;
mod plot;
mod progress;
mod ranks;
mod report;
mod results_file;
mod signals;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use console::Failure;

/// A caching allocator: batched HVPs allocate and free large buffers op after op, which the
/// system allocator would return to the kernel and fault in again every time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // First, while this is the only thread: every later thread inherits the blocked signals.
    if let Err(message) = signals::install() {
        console::report(&message);
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    let result = match &cli.command {
        Some(Command::Bench(args)) => bench_command::run(args),
        Some(Command::Analyze(args)) => report::run(args),
        Some(Command::Gemm(args)) => gemm_command::run(args),
        None => bench_command::run(&cli.bench),
    };
    match result {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            console::report(&message);
            ExitCode::from(2)
        }
    }
}

/// `--help` and `--version` print as clap writes them (exit 0); a usage error is one line like
/// every other error (exit 2): clap's first paragraph, and where to look.
fn usage(e: clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or_default();
    let message = first.strip_prefix("error:").unwrap_or(first);
    console::report(&format!("{} (see --help)", message.trim()));
    ExitCode::from(2)
}
