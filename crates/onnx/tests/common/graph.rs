//! Building small ONNX graphs by hand and running them through `lower::run` in f64, with
//! readers for the results and the finite-difference checks of first and second derivatives.

use std::collections::HashMap;

use curvature_onnx::ir::ElemType;
use curvature_onnx::ir::{Attribute, Graph, Node, ValueInfo};
use curvature_onnx::lower::{run, Ctx, IntTensor, Val};
use curvature_onnx::{OnnxError, Result};
use curvature_tape::check::{gradcheck, gradgradcheck, CheckOptions};
use curvature_tape::{Tape, TapeError, Var};
use curvature_tensor::{DType, Device, Tensor};

/// The default-domain opset the tests' graphs declare unless they say otherwise.
pub const OPSET: i64 = 18;

/// An attribute list entry.
pub fn attr(name: &str, value: Attribute) -> (String, Attribute) {
    (name.to_string(), value)
}

/// A node named `name`.
pub fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<(String, Attribute)>,
) -> Node {
    Node {
        name: name.to_string(),
        op_type: op.to_string(),
        domain: String::new(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        attributes,
    }
}

/// A graph of `nodes` with the given outputs (inputs are supplied by name when run).
pub fn graph(nodes: Vec<Node>, outputs: &[&str], opset: i64) -> Graph {
    Graph {
        nodes,
        inputs: Vec::new(),
        outputs: outputs
            .iter()
            .map(|name| ValueInfo {
                name: name.to_string(),
                elem_type: ElemType::F64,
                dims: None,
            })
            .collect(),
        initializers: Vec::new(),
        opset,
        external_files: Vec::new(),
    }
}

/// Runs `graph` on `tape` (f64 on `device`) with the named inputs.
pub fn run_graph(
    tape: &Tape,
    device: Device,
    graph: &Graph,
    inputs: Vec<(&str, Val)>,
) -> Result<Vec<Val>> {
    let env: HashMap<String, Val> = inputs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    let ctx = Ctx {
        tape,
        dtype: DType::F64,
        device,
        opset: graph.opset,
    };
    run(graph, env, &ctx)
}

/// Runs one node `op` (named `"n"`) on `inputs` (`None`: an omitted optional input) with
/// `outputs` outputs at opset `opset`.
pub fn run_op_at(
    tape: &Tape,
    device: Device,
    opset: i64,
    op: &str,
    attributes: Vec<(String, Attribute)>,
    inputs: Vec<Option<Val>>,
    outputs: usize,
) -> Result<Vec<Val>> {
    let input_names: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is_some() {
                format!("x{i}")
            } else {
                String::new()
            }
        })
        .collect();
    let output_names: Vec<String> = (0..outputs).map(|i| format!("y{i}")).collect();
    let in_refs: Vec<&str> = input_names.iter().map(String::as_str).collect();
    let out_refs: Vec<&str> = output_names.iter().map(String::as_str).collect();
    let g = graph(
        vec![node("n", op, &in_refs, &out_refs, attributes)],
        &out_refs,
        opset,
    );
    let env = input_names
        .iter()
        .zip(inputs)
        .filter_map(|(name, v)| v.map(|v| (name.as_str(), v)))
        .collect();
    run_graph(tape, device, &g, env)
}

/// [`run_op_at`] at [`OPSET`] with one output.
pub fn run_op(
    tape: &Tape,
    device: Device,
    op: &str,
    attributes: Vec<(String, Attribute)>,
    inputs: Vec<Option<Val>>,
) -> Result<Val> {
    let mut out = run_op_at(tape, device, OPSET, op, attributes, inputs, 1)?;
    Ok(out.remove(0))
}

/// An f64 constant on `tape`.
pub fn float(tape: &Tape, device: Device, data: &[f64], dims: &[usize]) -> Val {
    let t = Tensor::from_f64s(data, dims.to_vec(), DType::F64, device).expect("a test tensor");
    Val::Float(tape.constant(t))
}

/// A host integer tensor.
pub fn int(data: &[i64], dims: &[usize]) -> Val {
    Val::Int(IntTensor {
        dims: dims.to_vec(),
        data: data.to_vec(),
    })
}

/// A floating-point result's values and dimensions.
pub fn floats(v: &Val) -> (Vec<f64>, Vec<usize>) {
    match v {
        Val::Float(v) => (v.value().to_f64s().expect("values"), v.dims().to_vec()),
        Val::Int(t) => panic!("expected a float result, got an integer one {t:?}"),
    }
}

/// An integer result.
pub fn ints(v: &Val) -> IntTensor {
    match v {
        Val::Int(t) => t.clone(),
        Val::Float(v) => panic!("expected an integer result, got a float one {v:?}"),
    }
}

/// Asserts that `got` equals `expected` to `tol` (absolute) elementwise, with equal dims.
pub fn assert_close(what: &str, got: &Val, expected: &[f64], dims: &[usize], tol: f64) {
    let (values, got_dims) = floats(got);
    assert_eq!(got_dims, dims, "{what}: dims");
    assert_eq!(values.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in values.iter().zip(expected).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol;
        assert!(same, "{what}: element {i}: got {a}, expected {b}");
    }
}

/// The message of an error, asserting that it names node `"n"` (or the given node name).
pub fn error_text(result: Result<Vec<Val>>, node_name: &str) -> String {
    let err = match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    };
    match &err {
        OnnxError::Node { node, .. } | OnnxError::Unsupported { node, .. } => {
            assert_eq!(node, node_name, "the error names the node: {err}");
        }
        other => panic!("expected a node error, got {other}"),
    }
    err.to_string()
}

/// Checks the first and second derivatives of `f` (graph values → one float value) at the
/// given f64 inputs against central finite differences.
pub fn assert_derivatives(
    name: &str,
    device: Device,
    inputs: &[(&[f64], &[usize])],
    f: impl Fn(&Tape, &[Val]) -> Result<Val>,
) {
    let tensors: Vec<Tensor> = inputs
        .iter()
        .map(|(data, dims)| {
            Tensor::from_f64s(data, dims.to_vec(), DType::F64, device).expect("a test tensor")
        })
        .collect();
    let tape_fn = |vars: &[Var]| -> curvature_tape::Result<Var> {
        let vals: Vec<Val> = vars.iter().cloned().map(Val::Float).collect();
        match f(vars[0].tape(), &vals) {
            Ok(Val::Float(v)) => Ok(v),
            Ok(Val::Int(_)) => Err(invalid("the graph's result is an integer tensor")),
            Err(e) => Err(invalid(&e.to_string())),
        }
    };
    let options = CheckOptions::default();
    let first = gradcheck(tape_fn, &tensors, options)
        .unwrap_or_else(|e| panic!("{name}: gradcheck could not run: {e}"));
    assert!(first.passed, "{name}: gradcheck failed: {first:#?}");
    let second = gradgradcheck(tape_fn, &tensors, options, 0x0e55)
        .unwrap_or_else(|e| panic!("{name}: gradgradcheck could not run: {e}"));
    assert!(second.passed, "{name}: gradgradcheck failed: {second:#?}");
}

fn invalid(msg: &str) -> TapeError {
    TapeError::InvalidArgument {
        op: "onnx graph",
        msg: msg.to_string(),
    }
}
