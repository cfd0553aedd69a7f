//! The smallest gradient: `Q = 3a³ − b²` with `a = [2, 3]`, `b = [6, 4]`. After
//! `Q.sum().backward()`, `a.grad = 9a² = [36, 81]` and `b.grad = −2b = [−12, −8]`.
//!
//! Run with `cargo run --release --example simple_grad`.

use curvature::tape::{Tape, TapeError, Var};
use curvature::tensor::{DType, Device, Tensor};

/// Q and the gradients accumulated on the leaves.
pub struct SimpleGradRun {
    pub q: Vec<f64>,
    pub a_grad: Vec<f64>,
    pub b_grad: Vec<f64>,
}

fn accumulated(leaf: &Var) -> curvature::tape::Result<Vec<f64>> {
    let grad = leaf.grad().ok_or(TapeError::InvalidArgument {
        op: "simple_grad walkthrough",
        msg: "the leaf received no gradient".to_string(),
    })?;
    Ok(grad.to_f64s()?)
}

pub fn run() -> curvature::tape::Result<SimpleGradRun> {
    let tape = Tape::new();
    let a = tape.leaf(Tensor::from_f64s(
        &[2.0, 3.0],
        [2],
        DType::F64,
        Device::Cpu,
    )?);
    let b = tape.leaf(Tensor::from_f64s(
        &[6.0, 4.0],
        [2],
        DType::F64,
        Device::Cpu,
    )?);
    let q = a.powf(3.0)?.mul_scalar(3.0)?.sub(&b.square()?)?;
    q.sum_all()?.backward()?;
    Ok(SimpleGradRun {
        q: q.value().to_f64s()?,
        a_grad: accumulated(&a)?,
        b_grad: accumulated(&b)?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = run()?;
    println!("a = [2, 3], b = [6, 4], Q = 3a³ − b² = {:?}", run.q);
    println!("after Q.sum().backward():");
    println!("  a.grad = 9a² = {:?}", run.a_grad);
    println!("  b.grad = −2b = {:?}", run.b_grad);
    Ok(())
}
