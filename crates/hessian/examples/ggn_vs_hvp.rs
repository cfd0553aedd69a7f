//! Times one batch of GGN products against one batch of Hessian-vector products on a golden
//! model (both through the tape, and the Hessian also by `ModelHvp`'s fastest route), printing
//! the median of several runs. Usage:
//! `cargo run --release -p curvature-hessian --example ggn_vs_hvp [model] [K] [repeats]`
//! with `model` a file stem of `tests/data` (default `mlp_5_8_4_tanh_xent`).

use std::time::Instant;

use curvature_hessian::{
    probes, Curvature, Ggn, LinearOperator, ModelHvp, PreparedHvp, Probe, Result,
};
use curvature_nn::ModelFile;
use curvature_tensor::{DType, Device};

fn median_ms(op: &dyn LinearOperator, v: &curvature_tensor::Tensor, repeats: usize) -> Result<f64> {
    op.apply_batch(v)?; // warm-up
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        op.apply_batch(v)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("mlp_5_8_4_tanh_xent", String::as_str);
    let k: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let repeats: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        .max(1);
    let path = format!(
        "{}/../../tests/data/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = ModelFile::load(&path, DType::F64, Device::Cpu)?;
    let start = Instant::now();
    let ggn = Ggn::new(&file.model, file.loss, &file.x, &file.y, Curvature::Ggn)?;
    let ggn_setup = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let tape = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y)?;
    let hvp_setup = start.elapsed().as_secs_f64() * 1e3;
    let fastest = ModelHvp::new(&file.model, file.loss, &file.x, &file.y)?;
    let v = probes(k, ggn.dim(), Probe::Gaussian, 0, DType::F64, Device::Cpu)?;
    println!(
        "{name}: P = {}, n = {}, K = {k}, median of {repeats}",
        ggn.dim(),
        ggn.samples()
    );
    println!(
        "  GGN batch (tape: J V, Jᵀ W)  {:9.3} ms  (setup {ggn_setup:.3} ms)",
        median_ms(&ggn, &v, repeats)?
    );
    println!(
        "  HVP batch (tape, 1 sweep)    {:9.3} ms  (setup {hvp_setup:.3} ms)",
        median_ms(&tape, &v, repeats)?
    );
    println!(
        "  HVP batch ({:<12})      {:9.3} ms",
        fastest.engine(k),
        median_ms(&fastest, &v, repeats)?
    );
    Ok(())
}
