//! Lowering: running a [`Graph`] node by node on the tape. Floating-point values are tape
//! variables (so every imported model has exact derivatives of any order, on every device);
//! integer and boolean values (shapes, indices, masks) are computed eagerly on the host, which
//! folds the shape subgraphs (`Shape → Gather → Concat → Reshape`) at the actual input shapes.
//!
//! Each op lives in one place: [`lower_node`] dispatches on the op type to the file of its
//! family.

use std::collections::HashMap;

use curvature_tape::{Tape, Var};
use curvature_tensor::{DType, Device};

mod activation;
mod conv;
mod conv_transpose;
mod einsum;
mod elementwise;
mod group_norm;
pub mod host;
mod linear;
mod norm;
mod operand;
mod pad_tile;
mod reduce;
mod sequence;
mod shape;
pub mod util;
mod window;

use crate::ir::{Graph, Node};
use crate::{OnnxError, Result};

/// An integer or boolean tensor on the host (bools as 0/1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntTensor {
    /// Its dimensions (`[]` for a scalar).
    pub dims: Vec<usize>,
    /// Its values, row-major; their count is the product of `dims`.
    pub data: Vec<i64>,
}

/// A value flowing through the graph during one forward pass.
#[derive(Debug, Clone)]
pub enum Val {
    /// A floating-point tensor on the tape.
    Float(Var),
    /// An integer or boolean tensor on the host.
    Int(IntTensor),
}

/// What a name holds while the graph runs: a tensor, or an ONNX sequence of tensors (made by
/// `SplitToSequence` or `SequenceConstruct`, read by `SequenceAt`, `SequenceLength` and
/// `ConcatFromSequence`). Only the sequence ops take or make sequences.
#[derive(Debug, Clone)]
pub enum Binding {
    /// One tensor.
    Tensor(Val),
    /// An ordered list of tensors of one kind (all floating-point, or all integer/boolean).
    Sequence(Vec<Val>),
}

/// What every op's lowering may read besides its inputs.
pub struct Ctx<'a> {
    /// The tape the forward pass records on (for constants).
    pub tape: &'a Tape,
    /// The dtype floating-point values are computed in.
    pub dtype: DType,
    /// The device they live on.
    pub device: Device,
    /// The model's default-domain opset.
    pub opset: i64,
}

/// Lowers one node: its inputs (`None` for omitted optional inputs) to its outputs, one per
/// declared output (omitted trailing outputs may be left off).
pub fn lower_node(node: &Node, inputs: &[Option<Val>], ctx: &Ctx) -> Result<Vec<Val>> {
    if !matches!(node.domain.as_str(), "" | "ai.onnx") {
        return Err(unsupported(
            node,
            "op",
            format!(
                "domain '{}' (only the standard ai.onnx ops are supported)",
                node.domain
            ),
        ));
    }
    for (i, value) in inputs.iter().enumerate() {
        if let Some(value) = value {
            check_host_dims(node, i, value)?;
        }
    }
    let lowered = match node.op_type.as_str() {
        "Add" | "Sub" | "Mul" | "Div" | "Neg" | "Pow" | "Sqrt" | "Reciprocal" | "Exp" | "Log"
        | "Tanh" | "Sigmoid" | "Relu" | "LeakyRelu" | "Elu" | "Gelu" | "Erf" | "Softplus"
        | "Where" | "Cast" | "Identity" | "Dropout" | "Equal" | "Less" | "Greater"
        | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor" | "Max" | "Min"
        | "Size" | "Range" | "Trilu" | "CastLike" | "Abs" | "Sign" | "Sin" | "Cos" | "Clip" => {
            elementwise::lower(node, inputs, ctx)
        }
        "Constant" | "ConstantOfShape" | "Reshape" | "Flatten" | "Transpose" | "Squeeze"
        | "Unsqueeze" | "Concat" | "Slice" | "Split" | "Gather" | "Expand" | "Shape" => {
            shape::lower(node, inputs, ctx)
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceSumSquare" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSumExp" => reduce::lower(node, inputs, ctx),
        "PRelu" | "Selu" | "HardSigmoid" | "HardSwish" | "Mish" | "Softsign"
        | "ThresholdedRelu" | "Celu" | "Sum" | "Mean" => activation::lower(node, inputs, ctx),
        "Pad" | "Tile" => pad_tile::lower(node, inputs, ctx),
        "InstanceNormalization" | "GroupNormalization" => group_norm::lower(node, inputs, ctx),
        "Einsum" => einsum::lower(node, inputs, ctx),
        "ConvTranspose" => conv_transpose::lower(node, inputs, ctx),
        "Gemm" | "MatMul" => linear::lower(node, inputs, ctx),
        "Conv" | "MaxPool" | "AveragePool" | "GlobalAveragePool" => conv::lower(node, inputs, ctx),
        "Softmax" | "LogSoftmax" | "LayerNormalization" | "BatchNormalization" => {
            norm::lower(node, inputs, ctx)
        }
        op if sequence::is_sequence_op(op) => Err(node_error(
            node,
            "a sequence op takes or makes sequences: lower it with `lower_bound_node`".to_string(),
        )),
        other => Err(unsupported(
            node,
            "op",
            format!(
                "'{other}' is not supported (supported: {})",
                SUPPORTED_OPS.join(", ")
            ),
        )),
    };
    // Tensor and tape errors (shapes that do not fit an op, …) name the node they come from.
    lowered.map_err(|e| match e {
        OnnxError::Tensor(_) | OnnxError::Tape(_) => node_error(node, e.to_string()),
        other => other,
    })
}

/// Host tensors index their data by their dims: a mismatch is an error, not a panic.
fn check_host_dims(node: &Node, i: usize, value: &Val) -> Result<()> {
    if let Val::Int(t) = value {
        let count = t.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count != Some(t.data.len()) {
            return Err(node_error(
                node,
                format!(
                    "input {i} has shape {:?} but holds {} values",
                    t.dims,
                    t.data.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Lowers one node whose inputs and outputs may be sequences: the sequence ops run here, every
/// other op through [`lower_node`] (a sequence given to it is an error naming the input).
pub fn lower_bound_node(
    node: &Node,
    inputs: &[Option<Binding>],
    ctx: &Ctx,
) -> Result<Vec<Binding>> {
    for (i, binding) in inputs.iter().enumerate() {
        match binding {
            Some(Binding::Tensor(value)) => check_host_dims(node, i, value)?,
            Some(Binding::Sequence(items)) => {
                for item in items {
                    check_host_dims(node, i, item)?;
                }
            }
            None => {}
        }
    }
    if sequence::is_sequence_op(&node.op_type) && matches!(node.domain.as_str(), "" | "ai.onnx") {
        return sequence::lower(node, inputs, ctx).map_err(|e| match e {
            OnnxError::Tensor(_) | OnnxError::Tape(_) => node_error(node, e.to_string()),
            other => other,
        });
    }
    let tensors = inputs
        .iter()
        .enumerate()
        .map(|(i, binding)| match binding {
            None => Ok(None),
            Some(Binding::Tensor(value)) => Ok(Some(value.clone())),
            Some(Binding::Sequence(items)) => Err(node_error(
                node,
                format!(
                    "input {i} is a sequence of {} tensors; {} takes tensors",
                    items.len(),
                    node.op_type
                ),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(lower_node(node, &tensors, ctx)?
        .into_iter()
        .map(Binding::Tensor)
        .collect())
}

/// Every op type [`lower_bound_node`] accepts ([`lower_node`] takes all but the sequence ops).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Tanh",
    "Sigmoid",
    "Relu",
    "LeakyRelu",
    "Elu",
    "Gelu",
    "Erf",
    "Softplus",
    "Where",
    "Cast",
    "Identity",
    "Dropout",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "Max",
    "Min",
    "Size",
    "Range",
    "Trilu",
    "Constant",
    "ConstantOfShape",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Slice",
    "Split",
    "Gather",
    "Expand",
    "Shape",
    "ReduceMean",
    "ReduceSum",
    "Gemm",
    "MatMul",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "BatchNormalization",
    "CastLike",
    "Abs",
    "Sign",
    "Sin",
    "Cos",
    "Clip",
    "ReduceMax",
    "ReduceMin",
    "SplitToSequence",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceLength",
    "ConcatFromSequence",
    "ReduceSumSquare",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSumExp",
    "PRelu",
    "Selu",
    "HardSigmoid",
    "HardSwish",
    "Mish",
    "Softsign",
    "ThresholdedRelu",
    "Celu",
    "Sum",
    "Mean",
    "Pad",
    "Tile",
    "InstanceNormalization",
    "GroupNormalization",
    "Einsum",
    "ConvTranspose",
];

/// Runs the graph: `env` holds the graph inputs and initializers by name; returns the graph
/// outputs in order (each a tensor: a sequence output is an error).
pub fn run(graph: &Graph, env: HashMap<String, Val>, ctx: &Ctx) -> Result<Vec<Val>> {
    let mut env: HashMap<String, Binding> = env
        .into_iter()
        .map(|(name, value)| (name, Binding::Tensor(value)))
        .collect();
    for node in &graph.nodes {
        let inputs = node
            .inputs
            .iter()
            .map(|name| {
                if name.is_empty() {
                    return Ok(None);
                }
                env.get(name).cloned().map(Some).ok_or_else(|| {
                    OnnxError::InvalidGraph(format!(
                        "node '{}' ({}) reads '{name}', which nothing produces",
                        node.name, node.op_type
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = lower_bound_node(node, &inputs, ctx)?;
        for (name, value) in node.outputs.iter().zip(outputs) {
            if !name.is_empty() {
                env.insert(name.clone(), value);
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|out| match env.remove(&out.name) {
            Some(Binding::Tensor(value)) => Ok(value),
            Some(Binding::Sequence(items)) => Err(OnnxError::InvalidGraph(format!(
                "graph output '{}' is a sequence of {} tensors; outputs must be tensors",
                out.name,
                items.len()
            ))),
            None => Err(OnnxError::InvalidGraph(format!(
                "graph output '{}' is never produced",
                out.name
            ))),
        })
        .collect()
}

/// The error for an unsupported op, attribute value or dtype of `node`.
pub fn unsupported(node: &Node, what: &'static str, detail: String) -> OnnxError {
    OnnxError::Unsupported {
        op_type: node.op_type.clone(),
        node: node.name.clone(),
        what,
        detail,
    }
}

/// The error for inputs that do not fit `node`.
pub fn node_error(node: &Node, detail: String) -> OnnxError {
    OnnxError::Node {
        op_type: node.op_type.clone(),
        node: node.name.clone(),
        detail,
    }
}
