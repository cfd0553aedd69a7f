//! Batched cotangents on the CPU and on `Device::Cuda`: on every golden model, the loss, the
//! gradient and one `vjp` of the gradient graph with V `[K, P]` equal the golden values (f64 to
//! 1e-10, f32 to 1e-4) and K separate vjps (1e-12), and on CUDA the CPU's results (1e-12); plus
//! exact zeros for linear functions and unused inputs.

mod common;

use common::{golden_files, relative_error};
use curvature_nn::{ModelFile, Module};
use curvature_tape::{grad, vjp, GradOptions, Result, Tape, TapeError, Var};
use curvature_tensor::{DType, Device, Tensor};

// ---------------------------------------------------------------------------------------------
// Golden models

/// The loss, the gradient (recorded with `create_graph`) and the batched HVPs `vjp(∇L, V)` of a
/// model file, and the gradient graph's tape and leaf for further vjps.
struct LossGradHvps {
    tape: Tape,
    theta: Var,
    grad: Var,
    values: [Vec<f64>; 3],
}

fn loss_grad_hvps(file: &ModelFile) -> curvature_nn::Result<LossGradHvps> {
    let tape = Tape::new();
    let theta = tape.leaf(file.model.flat_params()?);
    let p = theta.value().elem_count();
    let loss = file.loss_of(&theta)?;
    let g = grad(
        std::slice::from_ref(&loss),
        std::slice::from_ref(&theta),
        GradOptions::create_graph(),
    )?
    .remove(0);
    assert_eq!(g.dims(), &[p]);
    let v = file.tensor("V")?.clone();
    let k = v.dims()[0];
    assert_eq!(v.dims(), &[k, p]);
    let hv = vjp(
        std::slice::from_ref(&g),
        &[tape.constant(v)],
        std::slice::from_ref(&theta),
        false,
    )?
    .remove(0);
    assert_eq!(hv.dims(), &[k, p], "batched vjp shape");
    assert_eq!(hv.device(), theta.device(), "results stay on the device");
    let values = [
        loss.value().to_f64s()?,
        g.value().to_f64s()?,
        hv.value().to_f64s()?,
    ];
    Ok(LossGradHvps {
        tape,
        theta,
        grad: g,
        values,
    })
}

/// The largest relative difference between row i of the batched HVPs and the vjp of the
/// gradient with V[i] alone, over all rows.
fn batched_vs_separate(
    file: &ModelFile,
    ours: &LossGradHvps,
    name: &str,
) -> curvature_nn::Result<f64> {
    let v = file.tensor("V")?;
    let (k, p) = (v.dims()[0], v.dims()[1]);
    let batched = &ours.values[2];
    let mut worst_row = 0.0f64;
    for i in 0..k {
        let row = v.narrow(0, i, 1)?.reshape([p])?;
        let single = vjp(
            std::slice::from_ref(&ours.grad),
            &[ours.tape.constant(row)],
            std::slice::from_ref(&ours.theta),
            false,
        )?
        .remove(0);
        assert_eq!(single.dims(), &[p], "{name}: single vjp shape");
        let single = single.value().to_f64s()?;
        let scale = single.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let diff = single
            .iter()
            .zip(&batched[i * p..(i + 1) * p])
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        let rel = diff / scale;
        worst_row = worst_row.max(rel);
        assert!(
            rel <= 1e-12,
            "{name}: batched row {i} differs from its own vjp by {rel:e}"
        );
    }
    Ok(worst_row)
}

/// Loss, gradient and batched HVPs of every golden model equal the golden values (f64 to 1e-10,
/// f32 to 1e-4); in f64 each batched row equals its own vjp (1e-12), and on CUDA every value
/// equals the CPU's (1e-12).
fn golden_loss_grad_and_batched_hvps(device: Device) -> curvature_nn::Result<()> {
    for path in golden_files() {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reference = ModelFile::load(&path, DType::F64, Device::Cpu)?;
        let golden = [
            reference.tensor("loss")?.to_f64s()?,
            reference.tensor("grad")?.to_f64s()?,
            reference.tensor("hvps")?.to_f64s()?,
        ];
        let cpu = if device == Device::Cpu {
            None
        } else {
            Some(loss_grad_hvps(&reference)?.values)
        };
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            let file = ModelFile::load(&path, dtype, device)?;
            assert_eq!(file.x.device(), device);
            let ours = loss_grad_hvps(&file)?;
            let mut errors = [0.0; 3];
            for (what, i) in [("loss", 0), ("grad", 1), ("hvps", 2)] {
                errors[i] = relative_error(&ours.values[i], &golden[i]);
                let err = errors[i];
                assert!(err <= tol, "{name} {dtype} {what}: {err:e} vs golden");
                if let (DType::F64, Some(cpu)) = (dtype, &cpu) {
                    let err = relative_error(&ours.values[i], &cpu[i]);
                    assert!(err <= 1e-12, "{name} {what}: {err:e} vs CPU");
                }
            }
            if dtype == DType::F64 {
                let worst_row = batched_vs_separate(&file, &ours, &name)?;
                let [loss_err, grad_err, hvp_err] = errors;
                eprintln!(
                    "{name} on {device}: loss {loss_err:.1e}, grad {grad_err:.1e}, \
                     hvps {hvp_err:.1e} vs golden; batched vs separate {worst_row:.1e}"
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Exact zeros

fn matrix(dims: [usize; 2], seed: f64, device: Device) -> Result<Tensor> {
    let n = dims[0] * dims[1];
    let data: Vec<f64> = (0..n).map(|i| (seed * (i as f64 + 1.0)).sin()).collect();
    Ok(Tensor::from_f64s(&data, dims, DType::F64, device)?)
}

/// f(X) = Σ X: ∇f is exactly ones and ∇²f exactly zero, by `grad` and by a batched vjp.
fn linear_function_has_exact_zero_second_derivative(device: Device) -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(matrix([3, 4], 0.7, device)?);
    let f = x.sum_all()?;
    let g = grad(&[f], std::slice::from_ref(&x), GradOptions::create_graph())?.remove(0);
    assert_eq!(g.value().to_vec::<f64>()?, vec![1.0; 12]);
    let v = tape.constant(matrix([3, 4], 1.3, device)?);
    let gv = g.mul(&v)?.sum_all()?;
    let h = grad(
        &[gv],
        std::slice::from_ref(&x),
        GradOptions {
            allow_unused: true,
            ..GradOptions::default()
        },
    )?
    .remove(0);
    assert_eq!(h.dims(), &[3, 4]);
    assert_eq!(h.value().to_vec::<f64>()?, vec![0.0; 12]);
    // The same through a batched vjp of the gradient: K zero HVPs.
    let probes = tape.constant(Tensor::ones([2, 3, 4], DType::F64, device)?);
    let hv = vjp(&[g], &[probes], std::slice::from_ref(&x), false)?.remove(0);
    assert_eq!(hv.dims(), &[2, 3, 4]);
    assert_eq!(hv.device(), device);
    assert_eq!(hv.value().to_vec::<f64>()?, vec![0.0; 24]);
    Ok(())
}

/// An input the output does not depend on gets exact zeros with `allow_unused` (first and
/// second order), and a `NotInGraph` error naming it without.
fn unused_input_gives_zeros_or_error(device: Device) -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(matrix([2, 3], 0.4, device)?);
    let unused = tape.leaf(matrix([3, 2], 0.9, device)?);
    let f = || -> Result<Var> { x.tanh()?.square()?.sum_all() };
    let wrt = [x.clone(), unused.clone()];

    let grads = grad(
        &[f()?],
        &wrt,
        GradOptions {
            allow_unused: true,
            ..GradOptions::default()
        },
    )?;
    assert_eq!(grads[1].dims(), &[3, 2]);
    assert_eq!(grads[1].value().to_vec::<f64>()?, vec![0.0; 6]);
    // d/dx Σ tanh²x = 2 tanh x (1 − tanh² x).
    let expected: Vec<f64> = x
        .value()
        .to_vec::<f64>()?
        .iter()
        .map(|v| 2.0 * v.tanh() * (1.0 - v.tanh() * v.tanh()))
        .collect();
    for (a, b) in grads[0].value().to_vec::<f64>()?.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }

    let err = grad(&[f()?], &wrt, GradOptions::default()).expect_err("an unused input");
    assert!(
        matches!(err, TapeError::NotInGraph { index: 1, .. }),
        "{err:?}"
    );

    // Second order: the unused input's Hessian blocks are zero too.
    let g = grad(
        &[f()?],
        std::slice::from_ref(&x),
        GradOptions::create_graph(),
    )?
    .remove(0);
    let h = grad(
        &[g.sum_all()?],
        &wrt,
        GradOptions {
            allow_unused: true,
            retain_graph: Some(true),
            ..GradOptions::default()
        },
    )?;
    assert_eq!(h[1].value().to_vec::<f64>()?, vec![0.0; 6]);
    let err = grad(&[g.sum_all()?], &wrt, GradOptions::default()).expect_err("unused");
    assert!(
        matches!(err, TapeError::NotInGraph { index: 1, .. }),
        "{err:?}"
    );
    Ok(())
}

device_tests! {
    golden_loss_grad_and_batched_hvps,
    linear_function_has_exact_zero_second_derivative,
    unused_input_gives_zeros_or_error,
}
