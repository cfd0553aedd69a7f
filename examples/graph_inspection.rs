//! Inspecting the recorded graph, like PyTorch's `grad_fn.next_functions`: two stacked
//! `Linear(3, 3)` layers, `h1 = x·W1ᵀ + b1` and `h2 = h1·W2ᵀ + b2`, with the weights and
//! biases as leaves. Walking back from `h2`: its node is an `add` of a `matmul` and the leaf
//! `b2`, and that `matmul`'s inputs include the first layer's output node `h1`.
//!
//! Run with `cargo run --release --example graph_inspection`.

use curvature::nn::Linear;
use curvature::tape::{NodeId, NodeInfo, Tape, TapeError, Var};
use curvature::tensor::{DType, Device, Tensor};

/// The two layers' output nodes and the graph recorded behind them.
pub struct GraphRun {
    pub tape: Tape,
    /// Leaves by name: `W1`, `b1`, `W2`, `b2`.
    pub leaves: Vec<(&'static str, NodeId)>,
    pub first_output: NodeInfo,
    pub second_output: NodeInfo,
}

fn node_of(var: &Var) -> curvature::tape::Result<NodeInfo> {
    var.grad_fn().ok_or(TapeError::InvalidArgument {
        op: "graph_inspection walkthrough",
        msg: "a layer output is not recorded on the tape".to_string(),
    })
}

fn matrix(values: &[f64], dims: &[usize]) -> curvature::tape::Result<Tensor> {
    Ok(Tensor::from_f64s(values, dims, DType::F64, Device::Cpu)?)
}

pub fn run() -> curvature::nn::Result<GraphRun> {
    let tape = Tape::new();
    let x = tape.constant(matrix(&[1.0, 2.0, 3.0, -1.0, 0.5, 0.0], &[2, 3])?);
    let w1 = tape.leaf(matrix(
        &[0.1, -0.2, 0.3, 0.4, 0.5, -0.6, -0.7, 0.8, 0.9],
        &[3, 3],
    )?);
    let b1 = tape.leaf(matrix(&[0.01, 0.02, 0.03], &[3])?);
    let w2 = tape.leaf(matrix(
        &[0.2, 0.1, -0.1, -0.3, 0.2, 0.4, 0.5, -0.5, 0.1],
        &[3, 3],
    )?);
    let b2 = tape.leaf(matrix(&[-0.01, 0.0, 0.01], &[3])?);
    let h1 = Linear::apply(&x, &w1, &b1)?;
    let h2 = Linear::apply(&h1, &w2, &b2)?;
    let mut leaves = Vec::new();
    for (name, var) in [("W1", &w1), ("b1", &b1), ("W2", &w2), ("b2", &b2)] {
        leaves.push((name, node_of(var)?.id));
    }
    Ok(GraphRun {
        first_output: node_of(&h1)?,
        second_output: node_of(&h2)?,
        tape,
        leaves,
    })
}

/// Prints the nodes behind `id`, one per line, indented by depth.
fn print_tree(run: &GraphRun, id: NodeId, depth: usize) {
    let Some(info) = run.tape.node_info(id) else {
        return;
    };
    let mut label = String::new();
    if let Some((name, _)) = run.leaves.iter().find(|(_, leaf)| *leaf == id) {
        label = format!("  ({name})");
    } else if id == run.first_output.id {
        label = "  (first layer's output h1)".to_string();
    } else if id == run.second_output.id {
        label = "  (second layer's output h2)".to_string();
    }
    println!("{}node {id}: {}{label}", "  ".repeat(depth), info.op);
    for input in &info.inputs {
        match input {
            Some(next) => print_tree(run, *next, depth + 1),
            None => println!("{}constant", "  ".repeat(depth + 1)),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = run()?;
    println!("every recorded node (id: op ← input nodes):");
    for id in 0..run.tape.len() {
        if let Some(info) = run.tape.node_info(id) {
            let inputs: Vec<String> = info
                .inputs
                .iter()
                .map(|i| i.map_or("const".to_string(), |n| n.to_string()))
                .collect();
            println!("  {id:2}: {:8} ← [{}]", info.op, inputs.join(", "));
        }
    }
    println!("\nthe graph behind h2 (like grad_fn.next_functions, recursively):");
    print_tree(&run, run.second_output.id, 0);
    Ok(())
}
