//! Gradient accumulation and `retain_graph`, as in PyTorch:
//!
//! ```text
//! inp = eye(4, 5) (a leaf);  out = ((inp + 1)²)ᵀ
//! out.backward(ones, retain_graph = true)   → inp.grad = 2·(inp + 1): 4 on the diagonal, 2 elsewhere
//! out.backward(ones, retain_graph = true)   → accumulated: 8 / 4
//! inp.zero_grad(); out.backward(...)         → 4 / 2 again
//! out.backward(ones) without retain_graph   → frees the graph's saved values
//! out.backward(ones) once more              → BackwardTwice error
//! ```
//!
//! Run with `cargo run --release --example retain_graph`.

use curvature::tape::{Tape, TapeError, Var};
use curvature::tensor::{DType, Device, Tensor};

/// What the walkthrough observes, step by step.
pub struct RetainGraphRun {
    /// `inp.grad` after the first backward.
    pub first: Tensor,
    /// After the second (accumulating) backward.
    pub second: Tensor,
    /// After `zero_grad` and a third backward.
    pub after_zero_grad: Tensor,
    /// After a fourth backward that does not retain the graph.
    pub without_retain: Tensor,
    /// The error of the backward that follows it.
    pub backward_twice: TapeError,
}

fn leaf_grad(inp: &Var) -> curvature::tape::Result<Tensor> {
    inp.grad().ok_or(TapeError::InvalidArgument {
        op: "retain_graph walkthrough",
        msg: "the leaf received no gradient".to_string(),
    })
}

pub fn run() -> curvature::tape::Result<RetainGraphRun> {
    let tape = Tape::new();
    let inp = tape.leaf(Tensor::eye(4, 5, DType::F64, Device::Cpu)?);
    let out = inp.add_scalar(1.0)?.square()?.t()?;
    let ones = out.value().ones_like()?;

    out.backward_with(Some(ones.clone()), true)?;
    let first = leaf_grad(&inp)?;
    out.backward_with(Some(ones.clone()), true)?;
    let second = leaf_grad(&inp)?;
    inp.zero_grad();
    out.backward_with(Some(ones.clone()), true)?;
    let after_zero_grad = leaf_grad(&inp)?;
    out.backward_with(Some(ones.clone()), false)?;
    let without_retain = leaf_grad(&inp)?;
    let backward_twice = match out.backward_with(Some(ones), false) {
        Err(e) => e,
        Ok(()) => {
            return Err(TapeError::InvalidArgument {
                op: "retain_graph walkthrough",
                msg: "a backward through a freed graph succeeded".to_string(),
            })
        }
    };
    Ok(RetainGraphRun {
        first,
        second,
        after_zero_grad,
        without_retain,
        backward_twice,
    })
}

fn print_matrix(title: &str, t: &Tensor) -> curvature::tape::Result<()> {
    println!("{title}");
    let cols = t.dims()[1];
    for row in t.to_f64s()?.chunks(cols) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:4}")).collect();
        println!("  [{}]", cells.join(" "));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = run()?;
    print_matrix("first backward (retain_graph = true):", &run.first)?;
    print_matrix("second backward, accumulated:", &run.second)?;
    print_matrix(
        "after zero_grad and a third backward:",
        &run.after_zero_grad,
    )?;
    print_matrix(
        "a fourth backward without retain_graph, accumulated:",
        &run.without_retain,
    )?;
    println!("a fifth backward fails:\n  {}", run.backward_twice);
    Ok(())
}
