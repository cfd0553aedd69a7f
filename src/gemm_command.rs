//! `curvature gemm`: one matrix product timed ([`curvature::gemm_bench`]), as a line or a JSON
//! object.

use curvature::gemm_bench::{run_gemm, GemmBenchConfig};

use crate::cli::GemmArgs;
use crate::console::{print, Failure};

pub fn run(args: &GemmArgs) -> Result<(), Failure> {
    let device = args.device.select_with_precision(args.precision)?;
    let config = GemmBenchConfig {
        device,
        dtype: args.dtype,
        precision: args.precision,
        m: args.m,
        n: args.n,
        k: args.k,
        batch: args.batch,
        runs: args.runs as usize,
    };
    let result = run_gemm(&config).map_err(|e| e.to_string())?;
    let line = match args.json {
        true => result.to_json().to_string(),
        false => result.to_line(),
    };
    print(&format!("{line}\n"))?;
    Ok(())
}
