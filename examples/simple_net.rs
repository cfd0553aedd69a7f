//! Fitting the seeds' SimpleNet: a 1-10-10-1 tanh MLP trained by plain gradient descent on
//!
//! ```text
//! x = linspace(−10, 10, 1000),   y = 2x + 3 + 3·sin(x)·√|x| + cos(x + 3)
//! ```
//!
//! with the MSE loss, 1000 epochs at learning rate 0.01. Each epoch records on a fresh tape
//! (nodes live as long as their tape), takes the gradient with `create_graph` as the seed
//! did, and updates the parameters with tensor ops: θ ← θ − lr·g.
//!
//! Run with `cargo run --release --example simple_net`.

use curvature::nn::{mse, Activation, Module, Sequential};
use curvature::tape::{grad, GradOptions, Tape, Var};
use curvature::tensor::{DType, Device, Tensor};

pub const EPOCHS: usize = 1000;
pub const LEARNING_RATE: f64 = 0.01;
pub const REPORT_EVERY: usize = 200;
pub const SEED: u64 = 0;

/// The data: `x` and the target `y`, both `[1000, 1]`.
pub fn data() -> curvature::tape::Result<(Tensor, Tensor)> {
    let x = Tensor::linspace(-10.0, 10.0, 1000, DType::F64, Device::Cpu)?.reshape([1000, 1])?;
    let wave = x.sin()?.mul(&x.abs()?.sqrt()?)?.mul_scalar(3.0)?;
    let y = x
        .affine(2.0, 3.0)?
        .add(&wave)?
        .add(&x.add_scalar(3.0)?.cos()?)?;
    Ok((x, y))
}

/// The loss at epoch 0 and every `REPORT_EVERY` epochs up to and including `EPOCHS`
/// (the loss at epoch `e` is measured before the `e`-th update).
pub fn run() -> curvature::nn::Result<Vec<(usize, f64)>> {
    let (x, y) = data()?;
    let mut model = Sequential::mlp(
        &[1, 10, 10, 1],
        &[Activation::Tanh, Activation::Tanh],
        None,
        DType::F64,
        Device::Cpu,
        SEED,
    )?;
    let mut trajectory = Vec::new();
    for epoch in 0..=EPOCHS {
        let tape = Tape::new();
        let params: Vec<Var> = model
            .parameters()
            .into_iter()
            .map(|p| tape.leaf(p))
            .collect();
        let output = model.forward_with(&params, &tape.constant(x.clone()))?;
        let loss = mse(&output, &tape.constant(y.clone()))?;
        if epoch % REPORT_EVERY == 0 {
            trajectory.push((epoch, loss.value().to_scalar()?));
        }
        if epoch == EPOCHS {
            break;
        }
        let options = GradOptions {
            create_graph: true,
            ..GradOptions::default()
        };
        let grads = grad(&[loss], &params, options)?;
        let updated = params
            .iter()
            .zip(&grads)
            .map(|(p, g)| p.value().sub(&g.value().mul_scalar(LEARNING_RATE)?))
            .collect::<curvature::tensor::Result<Vec<_>>>()?;
        model.set_parameters(&updated)?;
    }
    Ok(trajectory)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("SimpleNet 1-10-10-1 tanh, MSE, gradient descent at lr {LEARNING_RATE}");
    let start = std::time::Instant::now();
    for (epoch, loss) in run()? {
        println!("epoch {epoch:4}: loss {loss:.4}");
    }
    println!("{EPOCHS} epochs in {:.2?}", start.elapsed());
    Ok(())
}
