//! `torch.autograd.functional.vhp` with tuple inputs, and the block Hessian of a function of
//! two tensors:
//!
//! ```text
//! f(x, y) = Σᵢ xᵢ²·yᵢ + yᵢ³                x, y ∈ ℝ³
//! H = [[H_xx, H_xy], [H_yx, H_yy]] = [[diag(2y), diag(2x)], [diag(2x), diag(6y)]]
//! vᵀH for v = (v_x, v_y):  x-block 2y·v_x + 2x·v_y,  y-block 2x·v_x + 6y·v_y
//! ```
//!
//! (H is symmetric, so vᵀH = H·v.) Run with `cargo run --release --example vhp_two_inputs`.

use curvature::hessian::{hessian, hvp, HessianOptions};
use curvature::tape::Var;
use curvature::tensor::{DType, Device, Tensor};

pub const X: [f64; 3] = [1.0, -2.0, 0.5];
pub const Y: [f64; 3] = [3.0, 0.25, -1.0];
pub const VX: [f64; 3] = [1.0, 0.0, 2.0];
pub const VY: [f64; 3] = [0.5, -1.0, 0.0];

/// The function: Σ x²·y + y³.
pub fn f(inputs: &[Var]) -> curvature::tape::Result<Var> {
    let (x, y) = (&inputs[0], &inputs[1]);
    ((x * x * y)? + y * y * y)?.sum_all()
}

/// What the example computes.
pub struct VhpRun {
    /// vᵀH, one block per input: `[x-block, y-block]`, each of shape `[3]`.
    pub vhp: Vec<Tensor>,
    /// The whole Hessian, `[6, 6]`: x's three entries, then y's.
    pub hessian: Tensor,
}

pub fn run() -> curvature::hessian::Result<VhpRun> {
    let vector = |values: &[f64]| Tensor::from_f64s(values, [3], DType::F64, Device::Cpu);
    let inputs = [vector(&X)?, vector(&Y)?];
    let vhp = hvp(f, &inputs, &[vector(&VX)?, vector(&VY)?])?;
    let hessian = hessian(f, &inputs, &HessianOptions::default())?;
    Ok(VhpRun { vhp, hessian })
}

/// The closed forms of the header: the two blocks of vᵀH.
pub fn expected_vhp() -> [Vec<f64>; 2] {
    let x_block = (0..3).map(|i| 2.0 * Y[i] * VX[i] + 2.0 * X[i] * VY[i]);
    let y_block = (0..3).map(|i| 2.0 * X[i] * VX[i] + 6.0 * Y[i] * VY[i]);
    [x_block.collect(), y_block.collect()]
}

/// The closed form of the header: the `[6, 6]` block Hessian, row-major.
pub fn expected_hessian() -> Vec<f64> {
    let mut h = vec![0.0; 36];
    for i in 0..3 {
        h[i * 6 + i] = 2.0 * Y[i]; // H_xx
        h[i * 6 + 3 + i] = 2.0 * X[i]; // H_xy
        h[(3 + i) * 6 + i] = 2.0 * X[i]; // H_yx
        h[(3 + i) * 6 + 3 + i] = 6.0 * Y[i]; // H_yy
    }
    h
}

/// Whether two lists agree to 1e-12.
pub fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-12)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = run()?;
    let [x_block, y_block] = expected_vhp();
    println!("vᵀH, x block: {:?}", run.vhp[0].to_vec::<f64>()?);
    println!("vᵀH, y block: {:?}", run.vhp[1].to_vec::<f64>()?);
    assert!(
        close(&run.vhp[0].to_vec::<f64>()?, &x_block),
        "x block ≠ {x_block:?}"
    );
    assert!(
        close(&run.vhp[1].to_vec::<f64>()?, &y_block),
        "y block ≠ {y_block:?}"
    );
    let h = run.hessian.to_vec::<f64>()?;
    println!("Hessian [[H_xx, H_xy], [H_yx, H_yy]]:");
    for row in h.chunks(6) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:5}")).collect();
        println!("  [{} | {}]", cells[..3].join(" "), cells[3..].join(" "));
    }
    assert!(
        close(&h, &expected_hessian()),
        "the Hessian differs from its closed form"
    );
    Ok(())
}
