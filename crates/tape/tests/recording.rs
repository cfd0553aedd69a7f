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

/// x [2, 3] a leaf, c [3] a constant: x ⊙ c (6) and its sum (1) are recorded; exp(c) (3) is
/// computed on the tape unrecorded. The leaf and the constant themselves are not computed.
#[test]
fn the_tape_counts_the_elements_it_computes_and_records_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]));
    let c = tape.constant(t(&[0.5, -1.0, 2.0], &[3]));
    assert_eq!((tape.computed_elements(), tape.recorded_elements()), (0, 0));
    let total = x.mul(&c)?.sum_all()?;
    let e = c.exp()?;
    assert_eq!(tape.computed_elements(), 6 + 1 + 3);
    assert_eq!(tape.recorded_elements(), 6 + 1);
    assert!(total.requires_grad() && !e.requires_grad());
    Ok(())
}

/// With the count limited to 12, a second x ⊙ c (6 more than 7) is refused naming the op,
/// and still counted; removing the limit lets it run.
#[test]
fn an_op_past_the_computed_limit_is_an_error_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]));
    let c = tape.constant(t(&[0.5, -1.0, 2.0], &[3]));
    tape.limit_computed_elements(Some(12));
    x.mul(&c)?.sum_all()?;
    let error = x.mul(&c).expect_err("past the limit").to_string();
    assert!(error.starts_with("mul: "), "{error}");
    assert!(error.contains("past the limit of 12"), "{error}");
    assert_eq!(tape.computed_elements(), 13);
    assert_eq!(tape.recorded_elements(), 7);
    tape.limit_computed_elements(None);
    x.mul(&c)?;
    assert_eq!(tape.computed_elements(), 19);
    Ok(())
}
