//! Helpers shared by the lowering tests: the devices every property runs on, one-node graphs
//! built by hand, seeded inputs, running a graph on the tape, and the finite-difference checks.
#![allow(dead_code)]

use std::collections::HashMap;

use curvature_onnx::ir::{Attribute, ElemType, Graph, Node, ValueInfo};
use curvature_onnx::lower::{run, Ctx, IntTensor, Val};
use curvature_onnx::OnnxError;
use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{Tape, TapeError, Var};
use curvature_tensor::{DType, Device, Tensor};

#[path = "../../../tensor/tests/common/devices.rs"]
mod devices;
#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};

/// Graph builders of the elementwise, shape and reduction tests.
pub mod graph;

/// A graph of one node `op_type` reading the graph inputs `inputs` (`""` omits an optional
/// input) and producing the graph outputs `outputs`, under the default-domain `opset`.
pub fn one_node(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<(&str, Attribute)>,
    opset: i64,
) -> Graph {
    let info = |name: &&str| ValueInfo {
        name: name.to_string(),
        elem_type: ElemType::F64,
        dims: None,
    };
    Graph {
        nodes: vec![Node {
            name: format!("the_{}", op_type.to_lowercase()),
            op_type: op_type.to_string(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: attributes
                .into_iter()
                .map(|(n, a)| (n.to_string(), a))
                .collect(),
        }],
        inputs: inputs.iter().filter(|s| !s.is_empty()).map(info).collect(),
        outputs: outputs.iter().filter(|s| !s.is_empty()).map(info).collect(),
        initializers: Vec::new(),
        opset,
    }
}

/// An `INTS` attribute.
pub fn ints(values: &[i64]) -> Attribute {
    Attribute::Ints(values.to_vec())
}

/// An `INT` attribute.
pub fn int(value: i64) -> Attribute {
    Attribute::Int(value)
}

/// A `FLOAT` attribute.
pub fn float(value: f32) -> Attribute {
    Attribute::Float(value)
}

/// A `STRING` attribute.
pub fn string(value: &str) -> Attribute {
    Attribute::String(value.to_string())
}

/// Runs `graph` with its inputs bound, in order, to `values`, on the tape of the first float.
pub fn run_vals(
    graph: &Graph,
    values: Vec<Val>,
    tape: &Tape,
    device: Device,
) -> Result<Vec<Val>, OnnxError> {
    let env: HashMap<String, Val> = graph
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .zip(values)
        .collect();
    let ctx = Ctx {
        tape,
        dtype: DType::F64,
        device,
        opset: graph.opset,
    };
    run(graph, env, &ctx)
}

/// Runs `graph` on float inputs; its float outputs.
pub fn run_vars(graph: &Graph, vars: &[Var]) -> Result<Vec<Var>, OnnxError> {
    let first = vars.first().expect("at least one input");
    let values = vars.iter().cloned().map(Val::Float).collect();
    run_vals(graph, values, first.tape(), first.device())?
        .into_iter()
        .map(|v| match v {
            Val::Float(v) => Ok(v),
            Val::Int(t) => Err(OnnxError::InvalidGraph(format!(
                "expected a float output, got integers {:?}",
                t.dims
            ))),
        })
        .collect()
}

/// Runs `graph` on the tensors `inputs`; each output's dims and values.
pub fn evaluate(graph: &Graph, inputs: &[Tensor]) -> Vec<(Vec<usize>, Vec<f64>)> {
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    run_vars(graph, &vars)
        .unwrap_or_else(|e| panic!("running {}: {e}", graph.nodes[0].op_type))
        .iter()
        .map(|v| (v.dims().to_vec(), v.value().to_f64s().expect("values")))
        .collect()
}

/// The error of running `graph` on `inputs` (floats) and `ints` (host integers, bound after
/// the floats); fails the test when it runs.
#[track_caller]
pub fn run_error(graph: &Graph, inputs: &[Tensor], ints: &[IntTensor]) -> OnnxError {
    let tape = Tape::new();
    let mut values: Vec<Val> = inputs
        .iter()
        .map(|t| Val::Float(tape.leaf(t.clone())))
        .collect();
    values.extend(ints.iter().cloned().map(Val::Int));
    match run_vals(graph, values, &tape, Device::Cpu) {
        Ok(_) => panic!("{} unexpectedly ran", graph.nodes[0].op_type),
        Err(e) => e,
    }
}

/// Asserts `error` is an `Unsupported` error of kind `what` naming the node, whose message
/// contains `needle`.
pub fn assert_unsupported(error: &OnnxError, what: &str, needle: &str) {
    let message = error.to_string();
    match error {
        OnnxError::Unsupported { what: w, node, .. } => {
            assert_eq!(*w, what, "{message}");
            assert!(
                message.contains(node.as_str()) && node.starts_with("the_"),
                "{message}"
            );
        }
        other => panic!("expected an Unsupported {what} error, got {other:?}"),
    }
    assert!(message.contains(needle), "'{message}' lacks '{needle}'");
}

/// Asserts `error` is a `Node` error naming the node, whose message contains `needle`.
pub fn assert_node_error(error: &OnnxError, needle: &str) {
    let message = error.to_string();
    match error {
        OnnxError::Node { node, .. } => {
            assert!(node.starts_with("the_"), "{message}");
        }
        other => panic!("expected a Node error, got {other:?}"),
    }
    assert!(message.contains(needle), "'{message}' lacks '{needle}'");
}

/// `n` seeded values uniform in `[lo, hi)` (a fixed-point hash of the index and seed).
pub fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let mut z = i
                .wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .wrapping_add(0x632b_e59b_d9b4_e019);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            lo + (hi - lo) * ((z >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// An f64 tensor of `dims` on `device` with seeded values in `[lo, hi)`.
pub fn seeded(dims: &[usize], seed: u64, lo: f64, hi: f64, device: Device) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_f64s(&values(n, seed, lo, hi), dims, DType::F64, device).expect("a tensor")
}

/// An f64 tensor of `dims` on `device` holding `data`.
pub fn tensor(data: &[f64], dims: &[usize], device: Device) -> Tensor {
    Tensor::from_f64s(data, dims, DType::F64, device).expect("a tensor")
}

/// Asserts `ours` equals `reference` to `tol` relative to the reference's largest magnitude.
pub fn assert_close(name: &str, ours: &[f64], reference: &[f64], tol: f64) {
    assert_eq!(ours.len(), reference.len(), "{name}: lengths differ");
    let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{name}: element {i}: {a} vs reference {b}"
        );
    }
}

/// gradcheck and gradgradcheck (central finite differences in f64) of the graph's first
/// output with respect to every input.
pub fn assert_derivatives(name: &str, graph: &Graph, inputs: &[Tensor]) {
    let f = |vars: &[Var]| -> curvature_tape::Result<Var> {
        run_vars(graph, vars)
            .map(|mut outs| outs.swap_remove(0))
            .map_err(|e| TapeError::InvalidArgument {
                op: "onnx graph",
                msg: e.to_string(),
            })
    };
    let options = CheckOptions::default();
    let first = gradcheck(f, inputs, options)
        .unwrap_or_else(|e| panic!("{name}: gradcheck could not run: {e}"));
    assert!(first.passed, "{name}: gradcheck failed: {first:#?}");
    let second = gradgradcheck(f, inputs, options, 0x5eed)
        .unwrap_or_else(|e| panic!("{name}: gradgradcheck could not run: {e}"));
    assert!(second.passed, "{name}: gradgradcheck failed: {second:#?}");
}
