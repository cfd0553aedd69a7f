//! Curvature of the seeds' SimpleNet (1-10-10-1 tanh, MSE, P = 141) at the parameters stored in
//! `tests/data/seed_simplenet_tanh_mse.safetensors`: one and many Hessian-vector products, the
//! full Hessian, its trace three ways, the top eigenvalues and a spectral density — all from one
//! prepared operator that records the loss and its gradient once.
//!
//! Run with `cargo run --release --example hessian_walkthrough`.

use std::time::Instant;

use curvature::hessian::{
    hessian_diagonal, hessian_of, probes, spectral_density, top_eigenvalues, trace_hutchinson,
    trace_hutchpp, HessianOptions, LanczosOptions, PreparedHvp, Probe, SlqOptions,
};
use curvature::nn::{ModelFile, Module};
use curvature::tensor::{DType, Device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seed_simplenet_tanh_mse.safetensors"
    );
    let file = ModelFile::load(path, DType::F64, Device::Cpu)?;
    let p = file.model.num_params();
    let start = Instant::now();
    let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y)?;
    println!(
        "SimpleNet: P = {p}, {} samples, loss {:.6}, prepared in {:?} ({} tape nodes)",
        file.x.dims()[0],
        op.value().to_scalar()?,
        start.elapsed(),
        op.recorded_nodes()
    );

    let v = probes(8, p, Probe::Rademacher, 0, DType::F64, Device::Cpu)?;
    let one = op.hvp(&v.narrow(0, 0, 1)?.reshape([p])?)?;
    let start = Instant::now();
    let batch = op.hvp_batch(&v)?;
    println!(
        "hvp: ‖H·v₀‖ = {:.6}; hvp_batch of 8 probes in one sweep: {:?}, row 0 equal: {}",
        one.square()?.sum_all()?.sqrt()?.to_scalar()?,
        start.elapsed(),
        batch.narrow(0, 0, 1)?.reshape([p])?.to_vec::<f64>()? == one.to_vec::<f64>()?
    );

    let start = Instant::now();
    let h = hessian_of(&op, &HessianOptions::default())?;
    let golden = file.tensor("hessian")?;
    let err =
        h.sub(golden)?.abs()?.max_all()?.to_scalar()? / golden.abs()?.max_all()?.to_scalar()?;
    println!(
        "hessian [{p}, {p}] in {:?}; relative error against the JAX golden Hessian: {err:.1e}",
        start.elapsed()
    );

    let exact = hessian_diagonal(&op, &HessianOptions::default())?
        .sum_all()?
        .to_scalar()?;
    let hutchinson = trace_hutchinson(&op, 1000, Probe::Rademacher, 0)?;
    let hutchpp = trace_hutchpp(&op, 90, 0)?;
    println!(
        "trace: exact {exact:.4}, Hutchinson (1000 probes) {hutchinson:.4}, Hutch++ (90 products) {hutchpp:.4}"
    );

    let eig = top_eigenvalues(
        &op,
        &LanczosOptions {
            k: 3,
            tol: 1e-10,
            ..LanczosOptions::default()
        },
    )?;
    println!(
        "top eigenvalues (Lanczos, {} steps, converged {}): {:?}",
        eig.iterations, eig.converged, eig.values
    );

    let slq = spectral_density(
        &op,
        &SlqOptions {
            probes: 4,
            steps: 60,
            sigma: 1.0,
            grid_points: 400,
            ..SlqOptions::default()
        },
    )?;
    let (peak, at) =
        slq.density.iter().zip(&slq.grid).fold(
            (0.0, 0.0),
            |best, (&d, &t)| if d > best.0 { (d, t) } else { best },
        );
    println!(
        "spectral density: grid [{:.2}, {:.2}], highest at λ ≈ {at:.2} (φ = {peak:.3})",
        slq.grid[0],
        slq.grid[slq.grid.len() - 1]
    );
    Ok(())
}
