//! Finite-difference self-checks, like `torch.autograd.gradcheck` / `gradgradcheck`.
//!
//! The analytic Jacobian comes from one batched `vjp` (the identity as a batch of
//! cotangents); the numeric one from central differences in f64.

use curvature_tensor::{DType, Tensor};

use crate::{grad, vjp, GradOptions, Result, Tape, TapeError, Var};

/// Step and tolerances of a check: passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// The outcome of a check: the worst disagreement found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub passed: bool,
    pub max_abs_error: f64,
    /// (input, element of the input, element of the output) of the worst entry.
    pub worst: (usize, usize, usize),
    pub analytic: f64,
    pub numeric: f64,
}

/// A differentiable function of several tensors, recorded on the given tape.
pub trait TapeFn: Fn(&[Var]) -> Result<Var> {}
impl<F: Fn(&[Var]) -> Result<Var>> TapeFn for F {}

/// Compares the Jacobian of `f` at `inputs` (f64) with central finite differences.
pub fn gradcheck(f: impl TapeFn, inputs: &[Tensor], options: CheckOptions) -> Result<CheckReport> {
    check_f64(inputs)?;
    let analytic = analytic_jacobians(&f, inputs)?;
    let mut report = CheckReport {
        passed: true,
        max_abs_error: 0.0,
        worst: (0, 0, 0),
        analytic: 0.0,
        numeric: 0.0,
    };
    for (i, input) in inputs.iter().enumerate() {
        let base = input.to_f64s()?;
        for e in 0..base.len() {
            let column = central_difference(&f, inputs, i, &base, e, options.eps)?;
            for (o, &numeric) in column.iter().enumerate() {
                let value = analytic[i][o * base.len() + e];
                let err = (value - numeric).abs();
                if err > options.atol + options.rtol * numeric.abs() {
                    report.passed = false;
                }
                if err >= report.max_abs_error {
                    report.max_abs_error = err;
                    report.worst = (i, e, o);
                    report.analytic = value;
                    report.numeric = numeric;
                }
            }
        }
    }
    Ok(report)
}

/// Checks second derivatives: the gradient of ⟨f(x), v⟩ (for a fixed random `v`) is checked
/// with [`gradcheck`] as a function of the inputs and of `v`.
pub fn gradgradcheck(
    f: impl TapeFn,
    inputs: &[Tensor],
    options: CheckOptions,
    seed: u64,
) -> Result<CheckReport> {
    check_f64(inputs)?;
    let probe_tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| probe_tape.constant(t.clone()))
        .collect();
    let out_shape = f(&vars)?.shape().clone();
    let v = pseudo_random(out_shape.elem_count(), seed);
    let v = Tensor::from_f64s(&v, out_shape, DType::F64, inputs[0].device())?;
    let n = inputs.len();
    let grad_of_inner = move |all: &[Var]| -> Result<Var> {
        let (xs, cot) = all.split_at(n);
        let out = f(xs)?;
        let grads = grad(
            &[out],
            xs,
            GradOptions {
                create_graph: true,
                grad_outputs: Some(vec![cot[0].clone()]),
                allow_unused: true,
                ..GradOptions::default()
            },
        )?;
        let flat = grads
            .iter()
            .map(|g| g.reshape([g.value().elem_count()]))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Var> = flat.iter().collect();
        Var::cat(&refs, 0)
    };
    let mut all = inputs.to_vec();
    all.push(v);
    gradcheck(grad_of_inner, &all, options)
}

fn check_f64(inputs: &[Tensor]) -> Result<()> {
    if inputs.is_empty() {
        return Err(TapeError::InvalidArgument {
            op: "gradcheck",
            msg: "needs at least one input".to_string(),
        });
    }
    if let Some(t) = inputs.iter().find(|t| t.dtype() != DType::F64) {
        return Err(TapeError::InvalidArgument {
            op: "gradcheck",
            msg: format!(
                "inputs must be f64 for finite differences, got {}",
                t.dtype()
            ),
        });
    }
    Ok(())
}

/// Row-major `[outputs, input elements]` Jacobian per input, from one batched vjp.
fn analytic_jacobians(f: &impl TapeFn, inputs: &[Tensor]) -> Result<Vec<Vec<f64>>> {
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&vars)?;
    let m = out.value().elem_count();
    let mut cot_dims = vec![m];
    cot_dims.extend_from_slice(out.dims());
    let identity = Tensor::eye(m, m, DType::F64, out.device())?.reshape(cot_dims)?;
    let cot = tape.constant(identity);
    vjp(&[out], &[cot], &vars, false)?
        .iter()
        .map(|g| Ok(g.value().to_f64s()?))
        .collect()
}

/// d f / d inputs[i][e] by central differences, one value per output element.
fn central_difference(
    f: &impl TapeFn,
    inputs: &[Tensor],
    i: usize,
    base: &[f64],
    e: usize,
    eps: f64,
) -> Result<Vec<f64>> {
    let eval = |delta: f64| -> Result<Vec<f64>> {
        let mut shifted = base.to_vec();
        shifted[e] += delta;
        let tape = Tape::new();
        let vars: Vec<Var> = inputs
            .iter()
            .enumerate()
            .map(|(j, t)| -> Result<Var> {
                let value = if j == i {
                    Tensor::from_f64s(&shifted, t.shape(), DType::F64, t.device())?
                } else {
                    t.clone()
                };
                // Leaves, not constants: `f` may differentiate its inputs itself (gradgradcheck's
                // function is a gradient), and the gradient of a constant is an unused zero.
                Ok(tape.leaf(value))
            })
            .collect::<Result<_>>()?;
        Ok(f(&vars)?.value().to_f64s()?)
    };
    let plus = eval(eps)?;
    let minus = eval(-eps)?;
    Ok(plus
        .iter()
        .zip(&minus)
        .map(|(p, m)| (p - m) / (2.0 * eps))
        .collect())
}

/// Deterministic values in (−1, 1) (a SplitMix64 stream), for cotangent probes.
fn pseudo_random(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}
