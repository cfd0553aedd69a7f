//! Influence functions (Koh & Liang 2017) on a small classifier: which training points help or
//! hurt the loss on a few test points.
//!
//! A 3-16-3 tanh MLP is fitted by gradient descent to 48 points of three classes, 4 of them
//! given a wrong label. The influence of training point i on test loss t is
//! `I(t, i) = −∇L_tᵀ (H + λI)⁻¹ ∇ℓᵢ`: the first-order change of L_t when point i is
//! up-weighted (positive: up-weighting i raises the test loss, so i is harmful). The four
//! systems `(H + λI)·sₜ = ∇L_t` are solved together by conjugate gradients with one batch of
//! Hessian-vector products per iteration; the result is checked against the exact solve
//! with the dense damped Hessian (a Cholesky factorisation), which is small enough here (P = 115) to form.
//!
//! Run with `cargo run --release --example influence`.

use curvature::hessian::{
    hessian_of, influence, symmetric_eigenvalues, CgOptions, HessianOptions, PreparedHvp,
};
use curvature::nn::{Activation, Loss, Module, Sequential};
use curvature::tape::{grad, GradOptions, Tape};
use curvature::tensor::{DType, Device, Tensor, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Error = Box<dyn std::error::Error>;

/// `n` points in 3 dimensions around three centres (class c around centre c), and their labels;
/// the labels of `flipped` are moved to the next class.
fn dataset(n: usize, seed: u64, flipped: &[usize]) -> Result<(Tensor, Tensor), Error> {
    let centres = [[1.0, 0.0, 0.0], [-0.5, 0.9, 0.0], [-0.5, -0.9, 0.3]];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * 3);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        x.extend(
            centres[class]
                .iter()
                .map(|c| c + rng.random_range(-0.6..0.6)),
        );
        let label = if flipped.contains(&i) {
            (class + 1) % 3
        } else {
            class
        };
        y.push(label as f64);
    }
    Ok((
        Tensor::from_f64s(&x, [n, 3], DType::F64, Device::Cpu)?,
        Tensor::from_f64s(&y, [n], DType::F64, Device::Cpu)?,
    ))
}

/// The cross-entropy loss of `model` on rows `rows` of (x, y) and its gradient `[P]`.
fn loss_gradient(model: &Sequential, x: &Tensor, y: &Tensor) -> Result<(f64, Tensor), Error> {
    let tape = Tape::new();
    let theta = tape.leaf(model.flat_params()?);
    let out = model.forward_flat(&theta, &tape.constant(x.clone()))?;
    let loss = Loss::CrossEntropy.compute(&out, y)?;
    let g = grad(
        std::slice::from_ref(&loss),
        &[theta],
        GradOptions::default(),
    )?;
    Ok((loss.value().to_scalar()?, g[0].value().clone()))
}

/// One gradient per row, `[n, P]`: row i is `∇ℓᵢ`, the gradient of the loss on point i alone.
fn per_point_gradients(model: &Sequential, x: &Tensor, y: &Tensor) -> Result<Tensor, Error> {
    let rows = (0..x.dims()[0])
        .map(|i| Ok(loss_gradient(model, &x.narrow(0, i, 1)?, &y.narrow(0, i, 1)?)?.1))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Tensor::stack(&rows.iter().collect::<Vec<_>>(), 0)?)
}

/// The lower Cholesky factor of `H + λI` (`H` row-major `p × p`), row-major.
fn cholesky(h: &[f64], p: usize, damping: f64) -> Result<Vec<f64>, Error> {
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = h[i * p + j] + if i == j { damping } else { 0.0 };
            s -= (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return Err("H + λI is not positive definite".into());
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    Ok(l)
}

/// `(LLᵀ)⁻¹·b` by forward and back substitution.
fn cholesky_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; p];
    for i in 0..p {
        z[i] = (b[i] - (0..i).map(|k| l[i * p + k] * z[k]).sum::<f64>()) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        x[i] = (z[i] - (i + 1..p).map(|k| l[k * p + i] * x[k]).sum::<f64>()) / l[i * p + i];
    }
    x
}

fn main() -> Result<(), Error> {
    let flipped = [5, 17, 30, 44];
    let (x, y) = dataset(48, 1, &flipped)?;
    let (xt, yt) = dataset(4, 2, &[])?;
    let mut model = Sequential::mlp(
        &[3, 16, 3],
        &[Activation::new(UnaryOp::Tanh)],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )?;
    for _ in 0..1500 {
        let (_, g) = loss_gradient(&model, &x, &y)?;
        let theta = model.flat_params()?.sub(&g.mul_scalar(0.5)?)?;
        let parts: Vec<Tensor> = model
            .split_flat(&theta)?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        model.set_parameters(&parts)?;
    }
    let (train_loss, _) = loss_gradient(&model, &x, &y)?;
    let (test_loss, _) = loss_gradient(&model, &xt, &yt)?;
    let p = model.num_params();
    println!("P = {p}, training loss {train_loss:.4}, test loss {test_loss:.4}");

    let op = PreparedHvp::for_model(&model, Loss::CrossEntropy, &x, &y)?;
    let h = hessian_of(&op, &HessianOptions::default())?.to_f64s()?;
    let eigenvalues = symmetric_eigenvalues(p, &h)?;
    let (smallest, largest) = (eigenvalues[0], eigenvalues[p - 1]);
    let damping = 0.01 * largest + (-smallest).max(0.0);
    println!("Hessian eigenvalues in [{smallest:.3e}, {largest:.3e}], damping λ = {damping:.3e}");

    let train = per_point_gradients(&model, &x, &y)?;
    let test = per_point_gradients(&model, &xt, &yt)?;
    let options = CgOptions {
        damping,
        tolerance: 1e-10,
        max_iterations: 1000,
        preconditioner: None,
    };
    let result = influence(&op, &test, &train, &options)?;
    println!(
        "block CG: {:?} iterations per test point, final relative residuals {:?}",
        result.solve.iterations,
        result
            .solve
            .residuals
            .iter()
            .map(|r| format!("{:.1e}", r.last().copied().unwrap_or(0.0)))
            .collect::<Vec<_>>()
    );

    // The exact answer: H + λI = LLᵀ (Cholesky on the host), sₜ = L⁻ᵀL⁻¹∇L_t.
    let l = cholesky(&h, p, damping)?;
    let (gt, gn) = (test.to_f64s()?, train.to_f64s()?);
    let exact: Vec<f64> = (0..4)
        .flat_map(|t| {
            let s = cholesky_solve(&l, p, &gt[t * p..(t + 1) * p]);
            gn.chunks(p)
                .map(|g| -g.iter().zip(&s).map(|(a, b)| a * b).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect();
    let scores = result.scores.to_f64s()?;
    let error = (0..4 * 48)
        .map(|k| (scores[k] - exact[k]).abs())
        .fold(0.0, f64::max);
    let scale = exact.iter().map(|v| v.abs()).fold(0.0, f64::max);
    println!("max |CG − exact solve| = {error:.2e} (largest score {scale:.2e})");

    // Total influence on the four test losses: the most harmful training points first.
    let mut total: Vec<(usize, f64)> = (0..48)
        .map(|i| (i, (0..4).map(|t| scores[t * 48 + i]).sum()))
        .collect();
    total.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("most harmful training points (mislabelled: {flipped:?}):");
    for &(i, s) in &total[..6] {
        let mark = if flipped.contains(&i) {
            "  mislabelled"
        } else {
            ""
        };
        println!("  point {i:2}: influence {s:+.4e}{mark}");
    }
    println!("most helpful:");
    for &(i, s) in total.iter().rev().take(3) {
        println!("  point {i:2}: influence {s:+.4e}");
    }
    Ok(())
}
