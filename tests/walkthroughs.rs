//! The seeds' walkthroughs (the programs in `examples/`) with their values asserted against
//! independent references, and the loss and gradient of every golden model in `tests/data`.

// Each example's computation is shared with its program; the programs' `main`s are not
// called from here.
#[allow(dead_code)]
#[path = "../examples/chain_rule.rs"]
mod chain_rule;
#[allow(dead_code)]
#[path = "../examples/graph_inspection.rs"]
mod graph_inspection;
#[allow(dead_code)]
#[path = "../examples/linear_sigmoid_vhp.rs"]
mod linear_sigmoid_vhp;
#[allow(dead_code)]
#[path = "../examples/retain_graph.rs"]
mod retain_graph;
#[allow(dead_code)]
#[path = "../examples/simple_grad.rs"]
mod simple_grad;
#[allow(dead_code)]
#[path = "../examples/simple_net.rs"]
mod simple_net;

#[allow(dead_code)]
#[path = "../examples/vhp_two_inputs.rs"]
mod vhp_two_inputs;

use curvature::nn::{ModelFile, Module};
use curvature::tape::{grad, GradOptions, Tape, TapeError};
use curvature::tensor::{DType, Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `2·(eye(4, 5) + 1)`: 4 on the diagonal, 2 elsewhere, scaled by `times`.
fn retain_graph_expected(times: f64) -> Vec<f64> {
    (0..20)
        .map(|k| if k / 5 == k % 5 { 4.0 } else { 2.0 } * times)
        .collect()
}

#[test]
fn retain_graph_accumulates_zeroes_and_refuses_a_freed_graph_cpu() -> TestResult {
    let run = retain_graph::run()?;
    assert_eq!(run.first.dims(), [4, 5]);
    assert_eq!(run.first.to_f64s()?, retain_graph_expected(1.0));
    assert_eq!(run.second.to_f64s()?, retain_graph_expected(2.0));
    assert_eq!(run.after_zero_grad.to_f64s()?, retain_graph_expected(1.0));
    assert_eq!(run.without_retain.to_f64s()?, retain_graph_expected(2.0));
    assert!(
        matches!(run.backward_twice, TapeError::BackwardTwice { .. }),
        "expected BackwardTwice, got {:?}",
        run.backward_twice
    );
    let message = run.backward_twice.to_string();
    assert!(message.contains("second time"), "{message}");
    assert!(message.contains("retain_graph"), "{message}");
    Ok(())
}

#[test]
fn chain_rule_gradient_matches_the_seed_values_cpu() -> TestResult {
    let run = chain_rule::run()?;
    // Analytic, at x = y = 1: H = sin1·cos1, G = e,
    // ∂F/∂x = 3H²·3cos²1·√G + H³·e/(2√G),  ∂F/∂y = 3H²·(−2sin²1)·√G + H³/(2√G).
    let (s, c, e) = (1f64.sin(), 1f64.cos(), 1f64.exp());
    let h = s * c;
    let dx = 3.0 * h * h * 3.0 * c * c * e.sqrt() + h.powi(3) * e / (2.0 * e.sqrt());
    let dy = 3.0 * h * h * (-2.0 * s * s) * e.sqrt() + h.powi(3) / (2.0 * e.sqrt());
    assert!((dx - 0.9728684287087229).abs() < 1e-12);
    assert!((dy + 1.419366770452894).abs() < 1e-12);
    assert_eq!(run.df_dx.len(), 10);
    assert_eq!(run.df_dy.len(), 10);
    for (gx, gy) in run.df_dx.iter().zip(&run.df_dy) {
        assert!((gx - 0.9728684287087229).abs() < 1e-12, "dF/dx = {gx}");
        assert!((gy + 1.419366770452894).abs() < 1e-12, "dF/dy = {gy}");
    }
    for f in &run.f {
        assert!((f - h.powi(3) * e.sqrt()).abs() < 1e-15, "F = {f}");
    }
    Ok(())
}

#[test]
fn simple_grad_is_exact_cpu() -> TestResult {
    let run = simple_grad::run()?;
    assert_eq!(run.q, vec![3.0 * 8.0 - 36.0, 3.0 * 27.0 - 16.0]);
    assert_eq!(run.a_grad, vec![36.0, 81.0]);
    assert_eq!(run.b_grad, vec![-12.0, -8.0]);
    Ok(())
}

#[test]
fn graph_inspection_links_the_second_layer_to_the_first_cpu() -> TestResult {
    let run = graph_inspection::run()?;
    let leaf = |name: &str| run.leaves.iter().find(|(n, _)| *n == name).map(|l| l.1);
    let first = &run.first_output;
    let second = &run.second_output;
    assert_eq!(first.op, "add");
    assert_eq!(second.op, "add");
    assert_eq!(second.inputs.len(), 2);
    assert_eq!(second.inputs[1], leaf("b2"));
    let matmul_id = second.inputs[0].ok_or("the second add's first input is untracked")?;
    let matmul = run.tape.node_info(matmul_id).ok_or("no matmul node")?;
    assert_eq!(matmul.op, "matmul");
    assert_eq!(matmul.inputs[0], Some(first.id));
    // x·Wᵀ is one product with a transpose flag: W2 itself is the matmul's second input.
    assert_eq!(matmul.inputs[1], leaf("W2"));
    assert_eq!(run.tape.node_info(first.id), Some(first.clone()));
    let first_matmul = run.tape.node_info(first.inputs[0].ok_or("untracked")?);
    let first_matmul = first_matmul.ok_or("no first matmul node")?;
    assert_eq!(first_matmul.op, "matmul");
    assert_eq!(first_matmul.inputs[0], None, "x is a constant");
    assert_eq!(first.inputs[1], leaf("b1"));
    for name in ["W1", "b1", "W2", "b2"] {
        let id = leaf(name).ok_or("missing leaf")?;
        assert_eq!(run.tape.node_info(id).map(|i| i.op), Some("leaf"));
    }
    Ok(())
}

#[test]
fn simple_net_gradient_descent_fits_the_curve_cpu() -> TestResult {
    let (x, y) = simple_net::data()?;
    let (xs, ys) = (x.to_f64s()?, y.to_f64s()?);
    assert_eq!((xs[0], xs[999]), (-10.0, 10.0));
    for (x, y) in xs.iter().zip(&ys).step_by(97) {
        let target = 2.0 * x + 3.0 + 3.0 * x.sin() * x.abs().sqrt() + (x + 3.0).cos();
        assert!((y - target).abs() < 1e-12);
    }
    let trajectory = simple_net::run()?;
    let epochs: Vec<usize> = trajectory.iter().map(|(e, _)| *e).collect();
    assert_eq!(epochs, vec![0, 200, 400, 600, 800, 1000]);
    let (start, end) = (trajectory[0].1, trajectory[5].1);
    assert!(start.is_finite() && end.is_finite());
    assert!(
        end < 0.25 * start,
        "loss went from {start} to {end}: {trajectory:?}"
    );
    Ok(())
}

/// max |ours − golden| / max |golden|.
fn relative_error(ours: &Tensor, golden: &Tensor) -> Result<f64, Box<dyn std::error::Error>> {
    let (ours, golden) = (ours.to_f64s()?, golden.to_f64s()?);
    assert_eq!(ours.len(), golden.len());
    let scale = golden.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&golden)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    Ok(diff / scale)
}

fn golden_files() -> Result<Vec<std::path::PathBuf>, Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn check_golden_loss_and_grad(dtype: DType, tolerance: f64) -> TestResult {
    let files = golden_files()?;
    assert!(files.len() >= 4, "golden files missing: {files:?}");
    for path in files {
        let mf = ModelFile::load(&path, dtype, Device::Cpu)?;
        let tape = Tape::new();
        let theta = tape.leaf(mf.model.flat_params()?);
        let loss = mf.loss_of(&theta)?;
        let grads = grad(
            std::slice::from_ref(&loss),
            &[theta],
            GradOptions::default(),
        )?;
        let loss_error = relative_error(loss.value(), mf.tensor("loss")?)?;
        let grad_error = relative_error(grads[0].value(), mf.tensor("grad")?)?;
        let name = path.display();
        println!("{name} ({dtype:?}): loss error {loss_error:.1e}, grad error {grad_error:.1e}");
        assert!(loss_error <= tolerance, "{name}: loss error {loss_error:e}");
        assert!(grad_error <= tolerance, "{name}: grad error {grad_error:e}");
    }
    Ok(())
}

#[test]
fn golden_loss_and_grad_match_f64_cpu() -> TestResult {
    check_golden_loss_and_grad(DType::F64, 1e-10)
}

#[test]
fn golden_loss_and_grad_match_f32_cpu() -> TestResult {
    check_golden_loss_and_grad(DType::F32, 1e-4)
}

#[test]
fn vhp_of_two_inputs_gives_both_blocks_and_the_block_hessian_cpu() -> TestResult {
    let run = vhp_two_inputs::run()?;
    let [x_block, y_block] = vhp_two_inputs::expected_vhp();
    assert_eq!(run.vhp.len(), 2);
    assert!(vhp_two_inputs::close(&run.vhp[0].to_f64s()?, &x_block));
    assert!(vhp_two_inputs::close(&run.vhp[1].to_f64s()?, &y_block));
    assert_eq!(run.hessian.dims(), [6, 6]);
    let h = run.hessian.to_f64s()?;
    assert!(
        vhp_two_inputs::close(&h, &vhp_two_inputs::expected_hessian()),
        "{h:?}"
    );
    Ok(())
}

#[test]
fn linear_sigmoid_vhp_has_exact_zeros_and_the_closed_form_cpu() -> TestResult {
    use linear_sigmoid_vhp::{expected, problem, run, I};
    let p = problem()?;
    let vhp = run(&p)?;
    let (gw, gb) = (vhp[0].to_f64s()?, vhp[1].to_f64s()?);
    let [ew, eb] = expected(&p)?;
    for (got, want) in gw.iter().zip(&ew).chain(gb.iter().zip(&eb)) {
        assert!(
            (got - want).abs() <= 1e-12,
            "{gw:?} {gb:?} vs {ew:?} {eb:?}"
        );
    }
    // Output 1 has a zero direction and output 2 a zero weight in the objective.
    assert!(
        gw[I..].iter().chain(&gb[1..]).all(|&g| g == 0.0),
        "{gw:?} {gb:?}"
    );
    assert!(
        gw[..I].iter().all(|&g| g != 0.0) && gb[0] != 0.0,
        "{gw:?} {gb:?}"
    );
    Ok(())
}
