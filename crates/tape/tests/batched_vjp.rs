//! Batched cotangents on the golden models: one `vjp` of the gradient graph with V `[K, P]`
//! equals K separate vjps and the golden Hessian-vector products; plus exact zeros for linear
//! functions and unused inputs.

mod common;

use common::{golden_files, relative_error};
use curvature_nn::ModelFile;
use curvature_tape::{grad, vjp, GradOptions, Result, Tape, TapeError, Var};
use curvature_tensor::{DType, Device, Tensor};

#[test]
fn batched_hvp_equals_separate_vjps_and_golden_cpu() -> curvature_nn::Result<()> {
    for path in golden_files() {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = ModelFile::load(&path, DType::F64, Device::Cpu)?;
        let tape = Tape::new();
        let theta = tape.leaf(file.model.flat_params()?);
        let p = theta.value().elem_count();

        let loss = file.loss_of(&theta)?;
        let loss_err = relative_error(&loss.value().to_f64s()?, &file.tensor("loss")?.to_f64s()?);
        assert!(
            loss_err <= 1e-10,
            "{name}: loss relative error {loss_err:e}"
        );

        let g = grad(
            &[loss],
            std::slice::from_ref(&theta),
            GradOptions::create_graph(),
        )?
        .remove(0);
        assert_eq!(g.dims(), &[p]);
        let grad_err = relative_error(&g.value().to_f64s()?, &file.tensor("grad")?.to_f64s()?);
        assert!(
            grad_err <= 1e-10,
            "{name}: grad relative error {grad_err:e}"
        );

        let v = file.tensor("V")?.clone();
        let k = v.dims()[0];
        assert_eq!(v.dims(), &[k, p]);
        let batched = vjp(
            std::slice::from_ref(&g),
            &[tape.constant(v.clone())],
            std::slice::from_ref(&theta),
            false,
        )?
        .remove(0);
        assert_eq!(batched.dims(), &[k, p], "{name}: batched vjp shape");
        let batched = batched.value().to_f64s()?;

        let mut worst_row = 0.0f64;
        for i in 0..k {
            let row = v.narrow(0, i, 1)?.reshape([p])?;
            let single = vjp(
                std::slice::from_ref(&g),
                &[tape.constant(row)],
                std::slice::from_ref(&theta),
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

        let hvp_err = relative_error(&batched, &file.tensor("hvps")?.to_f64s()?);
        assert!(hvp_err <= 1e-10, "{name}: hvps relative error {hvp_err:e}");
        eprintln!(
            "{name}: P = {p}, K = {k}; loss {loss_err:.1e}, grad {grad_err:.1e}, \
             hvps {hvp_err:.1e} vs golden; batched vs separate {worst_row:.1e}"
        );
    }
    Ok(())
}

fn matrix(dims: [usize; 2], seed: f64) -> Result<Tensor> {
    let n = dims[0] * dims[1];
    let data: Vec<f64> = (0..n).map(|i| (seed * (i as f64 + 1.0)).sin()).collect();
    Ok(Tensor::from_f64s(&data, dims, DType::F64, Device::Cpu)?)
}

#[test]
fn linear_function_has_exact_zero_second_derivative_cpu() -> Result<()> {
    // f(X) = Σ X (the notebook's objective): ∇f = ones, ∇² f = 0.
    let tape = Tape::new();
    let x = tape.leaf(matrix([3, 4], 0.7)?);
    let f = x.sum_all()?;
    let g = grad(&[f], std::slice::from_ref(&x), GradOptions::create_graph())?.remove(0);
    assert_eq!(g.value().to_vec::<f64>()?, vec![1.0; 12]);
    let v = tape.constant(matrix([3, 4], 1.3)?);
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
    let probes = tape.constant(Tensor::ones([2, 3, 4], DType::F64, Device::Cpu)?);
    let hv = vjp(&[g], &[probes], std::slice::from_ref(&x), false)?.remove(0);
    assert_eq!(hv.dims(), &[2, 3, 4]);
    assert_eq!(hv.value().to_vec::<f64>()?, vec![0.0; 24]);
    Ok(())
}

#[test]
fn unused_input_gives_zeros_or_error_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(matrix([2, 3], 0.4)?);
    let unused = tape.leaf(matrix([3, 2], 0.9)?);
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
