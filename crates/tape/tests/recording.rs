//! What the tape records: nothing for a plain backward pass, one node per recorded op.

use curvature_tape::{grad, GradOptions, Result, Tape};
use curvature_tensor::{DType, Device, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64, Device::Cpu).unwrap()
}

#[test]
fn backward_without_create_graph_records_nothing_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(t(&[0.5, -1.0, 2.0], &[3]));
    let loss = x.tanh()?.mul(&x)?.sum_all()?;
    let recorded = tape.len();
    let g = grad(
        std::slice::from_ref(&loss),
        std::slice::from_ref(&x),
        GradOptions {
            retain_graph: Some(true),
            ..Default::default()
        },
    )?;
    assert_eq!(
        tape.len(),
        recorded,
        "a plain backward pass must not record"
    );
    assert!(!g[0].requires_grad());
    let g = grad(&[loss], &[x], GradOptions::create_graph())?;
    assert!(
        tape.len() > recorded,
        "create_graph records the backward pass"
    );
    assert!(g[0].requires_grad());
    Ok(())
}

#[test]
fn recording_an_op_adds_exactly_one_node_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0; 1000], &[10, 100]));
    let before = tape.len();
    let y = x.exp()?;
    assert_eq!(tape.len(), before + 1);
    let _ = y.mul(&x)?.sum(&[1], false)?;
    assert_eq!(tape.len(), before + 3);
    // Ops on constants only are not recorded.
    let c = tape.constant(t(&[1.0; 4], &[4]));
    let _ = c.exp()?.add(&c)?;
    assert_eq!(tape.len(), before + 3);
    Ok(())
}
