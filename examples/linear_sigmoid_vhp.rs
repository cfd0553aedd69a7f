//! A vector-Hessian product with respect to the parameters of a `Linear` layer followed by a
//! sigmoid, under a linear objective of the output (PyTorch users meet this as
//! `torch.autograd.functional.vhp` over `model.parameters()`):
//!
//! ```text
//! z = x·Wᵀ + b,  out = σ(z),  L(W, b) = Σₙ Σₒ cₒ·outₙₒ          x: [N, I], W: [O, I], b: [O]
//! vᵀH for v = (V, u):  (vᵀH)_Wₒ = Σₙ cₒ·σ''(zₙₒ)·(xₙ·Vₒ + uₒ)·xₙ,  (vᵀH)_bₒ = Σₙ cₒ·σ''(zₙₒ)·(xₙ·Vₒ + uₒ)
//! σ'' = σ(1 − σ)(1 − 2σ)
//! ```
//!
//! Output o's parameters meet only through cₒ·outₙₒ, so the rows of v that are zero give rows
//! of vᵀH that are exactly zero, and an output with cₒ = 0 gets exact zeros too; the product
//! is still computed without error. Run with `cargo run --release --example linear_sigmoid_vhp`.

use curvature::hessian::hvp;
use curvature::nn::Linear;
use curvature::tape::Var;
use curvature::tensor::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Samples, inputs and outputs.
pub const N: usize = 4;
pub const I: usize = 3;
pub const O: usize = 3;
/// The objective's weights: the last output does not count.
pub const C: [f64; O] = [1.0, -2.0, 0.0];

/// The inputs, the layer and the direction: v is nonzero in rows 0 and 2 of W and b.
pub struct Problem {
    pub x: Tensor,
    pub layer: Linear,
    pub v: [Tensor; 2],
}

/// The error type of the example's steps.
pub type Error = Box<dyn std::error::Error>;

pub fn problem() -> Result<Problem, Error> {
    let cpu = Device::Cpu;
    let x = Tensor::from_fn([N, I], DType::F64, cpu, |k| {
        ((k * 7 % 11) as f64 - 5.0) / 4.0
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let layer = Linear::new(I, O, DType::F64, cpu, &mut rng)?;
    let vw = [0.5, -1.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0, -0.5];
    let v = [
        Tensor::from_f64s(&vw, [O, I], DType::F64, cpu)?,
        Tensor::from_f64s(&[1.0, 0.0, -1.0], [O], DType::F64, cpu)?,
    ];
    Ok(Problem { x, layer, v })
}

/// vᵀH of L at the layer's parameters: `[W-block [O, I], b-block [O]]`.
pub fn run(p: &Problem) -> curvature::hessian::Result<Vec<Tensor>> {
    let objective = |params: &[Var]| -> curvature::nn::Result<Var> {
        let (weight, bias) = (&params[0], &params[1]);
        let x = weight.constant(p.x.clone());
        let c = Tensor::from_f64s(&C, [O], DType::F64, Device::Cpu)?;
        let out = Linear::apply(&x, weight, bias)?.sigmoid()?;
        Ok((&out * &c)?.sum_all()?)
    };
    let params = [p.layer.weight.clone(), p.layer.bias.clone()];
    hvp(objective, &params, &p.v)
}

/// The closed form of the header, by loops over samples and outputs.
pub fn expected(p: &Problem) -> Result<[Vec<f64>; 2], Error> {
    let (x, w, b) = (
        p.x.to_vec::<f64>()?,
        p.layer.weight.to_vec::<f64>()?,
        p.layer.bias.to_vec::<f64>()?,
    );
    let (vw, vb) = (p.v[0].to_vec::<f64>()?, p.v[1].to_vec::<f64>()?);
    let (mut gw, mut gb) = (vec![0.0; O * I], vec![0.0; O]);
    for n in 0..N {
        for o in 0..O {
            let dot = |m: &[f64]| (0..I).map(|i| x[n * I + i] * m[o * I + i]).sum::<f64>();
            let s = 1.0 / (1.0 + (-(dot(&w) + b[o])).exp());
            let scale = C[o] * s * (1.0 - s) * (1.0 - 2.0 * s) * (dot(&vw) + vb[o]);
            for i in 0..I {
                gw[o * I + i] += scale * x[n * I + i];
            }
            gb[o] += scale;
        }
    }
    Ok([gw, gb])
}

fn main() -> Result<(), Error> {
    let p = problem()?;
    let vhp = run(&p)?;
    let (gw, gb) = (vhp[0].to_vec::<f64>()?, vhp[1].to_vec::<f64>()?);
    for (o, row) in gw.chunks(I).enumerate() {
        println!("vᵀH for W row {o}: {row:?}, for b[{o}]: {}", gb[o]);
    }
    // Row 1 of v is zero and C[2] is zero: exact zeros.
    assert!(gw[I..].iter().all(|&g| g == 0.0) && gb[1..].iter().all(|&g| g == 0.0));
    let [ew, eb] = expected(&p)?;
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-12);
    assert!(
        close(&gw, &ew) && close(&gb, &eb),
        "expected {ew:?} and {eb:?}"
    );
    println!("equal to the closed form Σₙ cₒ·σ''(zₙₒ)·(xₙ·Vₒ + uₒ)·(xₙ, 1)");
    Ok(())
}
