//! The load-time checks of a parsed graph: names printable on one line, only standard-domain
//! ops the lowering supports and no subgraph attributes, input types the importer can feed,
//! every value produced exactly once (by a graph input, an initializer or one node), every
//! node input and graph output defined, and the nodes sorted into an order where every value
//! is produced before it is read (a cycle is an error naming a node on it).

use std::collections::HashMap;

use curvature_tensor::io::{bounded_text, shown};

use crate::ir::{Attribute, Graph, Node};
use crate::lower::{unsupported, SUPPORTED_OPS};
use crate::{OnnxError, Result};

/// Who produces a value.
#[derive(Debug, Clone, Copy)]
enum Producer {
    Input,
    Initializer,
    Node(usize),
}

/// Checks `graph` (nodes in file order) and returns it with its nodes sorted.
pub fn check_graph(mut graph: Graph) -> Result<Graph> {
    check_names(&graph)?;
    if graph.outputs.is_empty() {
        return Err(OnnxError::InvalidGraph("the graph has no outputs".into()));
    }
    for node in &graph.nodes {
        check_op(node)?;
    }
    for input in &graph.inputs {
        let t = input.elem_type;
        if !(t.is_float()
            || matches!(
                t,
                crate::ir::ElemType::I64 | crate::ir::ElemType::I32 | crate::ir::ElemType::Bool
            ))
        {
            return Err(OnnxError::InvalidGraph(format!(
                "graph input '{}' has element type {t:?} (supported: float types, int32, int64, bool)",
                shown(&input.name)
            )));
        }
    }
    let producers = producers(&graph)?;
    for node in &graph.nodes {
        for input in node.inputs.iter().filter(|n| !n.is_empty()) {
            if !producers.contains_key(input.as_str()) {
                return Err(OnnxError::InvalidGraph(format!(
                    "node '{}' ({}) reads '{}', which nothing produces",
                    shown(&node.name),
                    shown(&node.op_type),
                    shown(input)
                )));
            }
        }
    }
    for output in &graph.outputs {
        if !producers.contains_key(output.name.as_str()) {
            return Err(OnnxError::InvalidGraph(format!(
                "graph output '{}' is never produced",
                shown(&output.name)
            )));
        }
    }
    let order = topological_order(&graph.nodes, &producers)?;
    let mut slots: Vec<Option<Node>> = std::mem::take(&mut graph.nodes)
        .into_iter()
        .map(Some)
        .collect();
    graph.nodes = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(graph)
}

/// Refuses names that would not print on one line (control or bidirectional characters).
fn check_names(graph: &Graph) -> Result<()> {
    let value_names = graph
        .inputs
        .iter()
        .chain(&graph.outputs)
        .map(|v| ("value", v.name.as_str()))
        .chain(
            graph
                .initializers
                .iter()
                .map(|t| ("initializer", t.name.as_str())),
        );
    let node_names = graph.nodes.iter().flat_map(|n| {
        [
            ("node", n.name.as_str()),
            ("op type", n.op_type.as_str()),
            ("domain", n.domain.as_str()),
        ]
        .into_iter()
        .chain(
            n.inputs
                .iter()
                .chain(&n.outputs)
                .map(|v| ("value", v.as_str())),
        )
        .chain(n.attributes.iter().map(|(a, _)| ("attribute", a.as_str())))
    });
    for (what, name) in value_names.chain(node_names) {
        if name.chars().any(|c| c.is_control()) || bounded_text(name, name.len()) != name {
            return Err(OnnxError::InvalidGraph(format!(
                "{what} name '{}' holds control characters",
                shown(name)
            )));
        }
    }
    Ok(())
}

/// Refuses a node whose op the lowering does not support, at load rather than at its first run.
fn check_op(node: &Node) -> Result<()> {
    for (name, value) in &node.attributes {
        if matches!(value, Attribute::Other(5) | Attribute::Other(10)) {
            return Err(unsupported(
                node,
                "attribute",
                format!(
                    "'{}' is a subgraph (If, Loop and Scan bodies are not supported)",
                    shown(name)
                ),
            ));
        }
    }
    if !matches!(node.domain.as_str(), "" | "ai.onnx") {
        return Err(unsupported(
            node,
            "op",
            format!(
                "domain '{}' (only the standard ai.onnx ops are supported)",
                shown(&node.domain)
            ),
        ));
    }
    if !SUPPORTED_OPS.contains(&node.op_type.as_str()) {
        return Err(unsupported(
            node,
            "op",
            format!("'{}' is not supported", shown(&node.op_type)),
        ));
    }
    Ok(())
}

/// Every value's producer; a value with two producers is an error naming both.
fn producers(graph: &Graph) -> Result<HashMap<&str, Producer>> {
    let mut map: HashMap<&str, Producer> = HashMap::new();
    let describe = |p: Producer| match p {
        Producer::Input => "a graph input".to_string(),
        Producer::Initializer => "an initializer".to_string(),
        Producer::Node(i) => format!(
            "node '{}' ({})",
            shown(&graph.nodes[i].name),
            shown(&graph.nodes[i].op_type)
        ),
    };
    let named = graph
        .inputs
        .iter()
        .map(|v| (v.name.as_str(), Producer::Input))
        .chain(
            graph
                .initializers
                .iter()
                .map(|t| (t.name.as_str(), Producer::Initializer)),
        )
        .chain(graph.nodes.iter().enumerate().flat_map(|(i, n)| {
            n.outputs
                .iter()
                .filter(|o| !o.is_empty())
                .map(move |o| (o.as_str(), Producer::Node(i)))
        }));
    for (name, producer) in named {
        if name.is_empty() {
            return Err(OnnxError::InvalidGraph(format!(
                "{} has an empty name",
                describe(producer)
            )));
        }
        if let Some(&first) = map.get(name) {
            return Err(OnnxError::InvalidGraph(format!(
                "value '{}' is produced twice: by {} and by {}",
                shown(name),
                describe(first),
                describe(producer)
            )));
        }
        map.insert(name, producer);
    }
    Ok(map)
}

/// A topological order of `nodes` that keeps the file order among nodes that are ready
/// together (Kahn's algorithm, always taking the earliest ready node).
fn topological_order(nodes: &[Node], producers: &HashMap<&str, Producer>) -> Result<Vec<usize>> {
    let preds: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            let mut p: Vec<usize> = n
                .inputs
                .iter()
                .filter_map(|i| match producers.get(i.as_str()) {
                    Some(Producer::Node(j)) => Some(*j),
                    _ => None,
                })
                .collect();
            p.sort_unstable();
            p.dedup();
            p
        })
        .collect();
    let mut succs = vec![Vec::new(); nodes.len()];
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    for (i, p) in preds.iter().enumerate() {
        for &j in p {
            succs[j].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &s in &succs[i] {
            waiting[s] -= 1;
            if waiting[s] == 0 {
                ready.insert(s);
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    // Every node left waits on another node left; walking back through waiting predecessors
    // must revisit a node, and the first one revisited lies on a cycle.
    let start = (0..nodes.len())
        .find(|&i| waiting[i] > 0)
        .unwrap_or_default();
    let mut seen = vec![false; nodes.len()];
    let mut at = start;
    while !seen[at] {
        seen[at] = true;
        at = preds[at]
            .iter()
            .copied()
            .find(|&j| waiting[j] > 0)
            .unwrap_or(at);
    }
    Err(OnnxError::InvalidGraph(format!(
        "the graph has a cycle through node '{}' ({})",
        shown(&nodes[at].name),
        shown(&nodes[at].op_type)
    )))
}
