//! hesse's MimoModel as a curvature `Module`: parameters A and B `[2, 2]`, two inputs x and y
//! `[2, 2]`, output `hstack(tr(AᵀA)·x, tr(BᵀB)·y)` `[2, 4]`. Once the module is defined, the
//! Hessian of every output with respect to (A, B) is one call, `[2, 4, 8, 8]`; a loss of the
//! output (here a closure) has a `[8, 8]` Hessian, split back into named blocks.
//!
//! Run with `cargo run --release --example mimo_model`.

use curvature::hessian::{loss_hessian_with, model_hessian};
use curvature::nn::{check_param_count, Module, NnError, Objective};
use curvature::tape::Var;
use curvature::tensor::{DType, Device, Tensor};

/// out = hstack(tr(AᵀA)·x, tr(BᵀB)·y).
#[derive(Debug, Clone)]
struct MimoModel {
    a: Tensor,
    b: Tensor,
}

impl Module for MimoModel {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("A".into(), self.a.clone()), ("B".into(), self.b.clone())]
    }

    /// The model takes two inputs; called with one, it says so.
    fn forward_with(&self, _: &[Var], _: &Var) -> curvature::nn::Result<Var> {
        Err(NnError::InputCount {
            module: "MimoModel",
            expected: 2,
            got: 1,
        })
    }

    fn num_inputs(&self) -> usize {
        2
    }

    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> curvature::nn::Result<Var> {
        check_param_count("MimoModel", params, 2)?;
        let [x, y] = inputs else {
            return Err(NnError::InputCount {
                module: "MimoModel",
                expected: 2,
                got: inputs.len(),
            });
        };
        let (a, b) = (&params[0], &params[1]);
        let ta = a.t()?.matmul(a)?.trace()?;
        let tb = b.t()?.matmul(b)?.trace()?;
        Ok(Var::cat(&[&x.mul(&ta)?, &y.mul(&tb)?], 1)?)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dtype, device) = (DType::F64, Device::Cpu);
    let model = MimoModel {
        a: Tensor::from_f64s(&[0.3, -1.0, 2.0, 0.7], [2, 2], dtype, device)?,
        b: Tensor::from_f64s(&[-0.4, 1.5, 0.2, -2.2], [2, 2], dtype, device)?,
    };
    let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 4.0], [2, 2], dtype, device)?;
    let y = x.neg()?;

    let h = model_hessian(&model, &[x.clone(), y.clone()])?;
    println!("model Hessian: {:?}", h.dims());
    // ∂²out[0, 1]/∂A∂A = 2·x[0, 1]·I₄, and no B block.
    let block = h.narrow(0, 0, 1)?.narrow(1, 1, 1)?.reshape([8, 8])?;
    println!("∂²out[0, 1]/∂θ² diagonal: {:?}", diagonal(&block)?);

    let sum_sq = |out: &Var| -> curvature::nn::Result<Var> { Ok(out.square()?.sum_all()?) };
    let h = loss_hessian_with(&model, &[x, y], Objective::Closure(&sum_sq))?;
    for (name, rows) in model.split_flat(&h)? {
        println!("rows of {name}: {:?}", rows.dims());
    }
    Ok(())
}

/// The diagonal of a square `[n, n]` matrix.
fn diagonal(m: &Tensor) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let n = m.dims()[0];
    let values = m.to_f64s()?;
    Ok((0..n).map(|i| values[i * n + i]).collect())
}
