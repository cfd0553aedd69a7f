//! The chain rule through a composite function of two inputs:
//!
//! ```text
//! H(x, y) = sin(x³)·cos(y²),   G(x, y) = eˣ + ln y,   F = H³·√G
//! ```
//!
//! at x = y = ones(10); the gradient of ΣF is the same in every entry,
//! ∂F/∂x = 0.9728684287087229 and ∂F/∂y = −1.419366770452894.
//!
//! Run with `cargo run --release --example chain_rule`.

use curvature::tape::{grad, GradOptions, Tape};
use curvature::tensor::{DType, Device, Tensor};

/// F(x, y) and its gradient, entry by entry.
pub struct ChainRuleRun {
    pub f: Vec<f64>,
    pub df_dx: Vec<f64>,
    pub df_dy: Vec<f64>,
}

pub fn run() -> curvature::tape::Result<ChainRuleRun> {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::ones([10], DType::F64, Device::Cpu)?);
    let y = tape.leaf(Tensor::ones([10], DType::F64, Device::Cpu)?);
    let h = x.powf(3.0)?.sin()?.mul(&y.square()?.cos()?)?;
    let g = x.exp()?.add(&y.log()?)?;
    let f = h.powf(3.0)?.mul(&g.sqrt()?)?;
    let grads = grad(&[f.sum_all()?], &[x, y], GradOptions::default())?;
    Ok(ChainRuleRun {
        f: f.value().to_f64s()?,
        df_dx: grads[0].value().to_f64s()?,
        df_dy: grads[1].value().to_f64s()?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = run()?;
    println!("H = sin(x³)·cos(y²), G = exp(x) + log(y), F = H³·√G at x = y = 1 (10 entries)");
    println!("F      = {:?}", run.f);
    println!("dF/dx  = {:?}", run.df_dx);
    println!("dF/dy  = {:?}", run.df_dy);
    Ok(())
}
