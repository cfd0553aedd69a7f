//! The tape: an append-only arena of recorded ops. Nodes are pushed in execution order, so the
//! arena is already topologically sorted and backward is one descending sweep.

use std::cell::RefCell;
use std::rc::Rc;

use curvature_tensor::{Shape, Tensor};

use crate::op::Op;
use crate::{Result, TapeError, Var};

/// Index of a node on its tape.
pub type NodeId = usize;

/// A value an op saved for its backward rule: the input's node (if tracked) and its data.
#[derive(Clone)]
pub(crate) struct Saved {
    pub node: Option<NodeId>,
    pub shape: Shape,
    pub value: Option<Tensor>,
}

pub(crate) struct Node {
    pub op: Op,
    pub inputs: Vec<Saved>,
    pub output: Option<Tensor>,
    pub shape: Shape,
    pub freed: bool,
    /// Accumulated gradient of a leaf after `backward`.
    pub grad: Option<Tensor>,
}

pub(crate) struct TapeInner {
    pub nodes: Vec<Node>,
    /// False while a backward pass that must not record (create_graph = false) runs.
    pub recording: bool,
    /// Elements of every value an op computed on this tape, recorded or not.
    pub computed: usize,
    /// When set, an op whose value would take `computed` past it is an error.
    pub computed_limit: Option<usize>,
}

/// What a node is, for inspection (like PyTorch's `grad_fn` and `next_functions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// The op's name, e.g. `"matmul"`, `"add"`, `"leaf"`.
    pub op: &'static str,
    /// The nodes of the op's inputs; `None` for untracked constants.
    pub inputs: Vec<Option<NodeId>>,
}

/// A recording of tensor ops that can be differentiated to any order.
///
/// Cloning a `Tape` gives another handle to the same recording. Create a fresh tape per
/// training step: nodes live as long as the tape.
#[derive(Clone)]
pub struct Tape {
    pub(crate) inner: Rc<RefCell<TapeInner>>,
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    pub fn new() -> Tape {
        Tape {
            inner: Rc::new(RefCell::new(TapeInner {
                nodes: Vec::new(),
                recording: true,
                computed: 0,
                computed_limit: None,
            })),
        }
    }

    /// A variable that requires gradients (a leaf of the graph).
    pub fn leaf(&self, value: Tensor) -> Var {
        let shape = value.shape().clone();
        let id = self.push(Node {
            op: Op::Leaf,
            inputs: Vec::new(),
            output: None,
            shape,
            freed: false,
            grad: None,
        });
        Var::new(self.clone(), Some(id), value)
    }

    /// A value that is not differentiated (no node is recorded).
    pub fn constant(&self, value: Tensor) -> Var {
        Var::new(self.clone(), None, value)
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of every value an op has computed on this tape so far, whether recorded or a
    /// constant (leaves and [`Tape::constant`]s are not counted): what a forward pass computes,
    /// the values it keeps and its intermediates alike. Saturates at `usize::MAX`.
    pub fn computed_elements(&self) -> usize {
        self.inner.borrow().computed
    }

    /// Elements of the values of the recorded ops (every node but the leaves): what the tape
    /// keeps a node for, the part of [`Tape::computed_elements`] that depends on a leaf.
    /// Saturates at `usize::MAX`.
    pub fn recorded_elements(&self) -> usize {
        self.inner
            .borrow()
            .nodes
            .iter()
            .filter(|node| !matches!(node.op, Op::Leaf))
            .fold(0usize, |total, node| {
                total.saturating_add(node.shape.elem_count())
            })
    }

    /// Bounds [`Tape::computed_elements`]: once set, an op whose value takes the count past
    /// `limit` returns [`TapeError::InvalidArgument`] naming the op; its value still counts, so
    /// a count above `limit` says the bound was hit (the value is computed before it is
    /// counted: the bound holds up to one op's value). `None` removes the bound.
    pub fn limit_computed_elements(&self, limit: Option<usize>) {
        self.inner.borrow_mut().computed_limit = limit;
    }

    /// Describes node `id`, or `None` if there is no such node.
    pub fn node_info(&self, id: NodeId) -> Option<NodeInfo> {
        let inner = self.inner.borrow();
        let node = inner.nodes.get(id)?;
        Some(NodeInfo {
            id,
            op: node.op.name(),
            inputs: node.inputs.iter().map(|s| s.node).collect(),
        })
    }

    pub(crate) fn same_as(&self, other: &Tape) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn is_recording(&self) -> bool {
        self.inner.borrow().recording
    }

    /// Sets whether ops are recorded, returning the previous setting.
    pub(crate) fn set_recording(&self, on: bool) -> bool {
        std::mem::replace(&mut self.inner.borrow_mut().recording, on)
    }

    /// Adds `elements` to the computed count, or refuses them past the limit.
    fn count_computed(&self, op: &'static str, elements: usize) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        let total = inner.computed.saturating_add(elements);
        inner.computed = total;
        if let Some(limit) = inner.computed_limit {
            if total > limit {
                return Err(TapeError::InvalidArgument {
                    op,
                    msg: format!(
                        "its {elements} elements take the values computed on this tape to \
                         {total}, past the limit of {limit}"
                    ),
                });
            }
        }
        Ok(())
    }

    fn push(&self, node: Node) -> NodeId {
        let mut inner = self.inner.borrow_mut();
        inner.nodes.push(node);
        inner.nodes.len() - 1
    }

    /// Records `op` applied to `inputs` with result `value`, or returns a constant when nothing
    /// is being recorded or no input is tracked. O(1): saved values share their data.
    pub(crate) fn record(&self, op: Op, inputs: &[&Var], value: Tensor) -> Result<Var> {
        for input in inputs {
            if !input.tape().same_as(self) {
                return Err(TapeError::TapeMismatch { op: op.name() });
            }
        }
        self.count_computed(op.name(), value.elem_count())?;
        let tracked = inputs.iter().any(|v| v.node_id().is_some());
        if !tracked || !self.is_recording() {
            return Ok(Var::new(self.clone(), None, value));
        }
        let save_inputs = op.saves_inputs();
        let saved = inputs
            .iter()
            .map(|v| Saved {
                node: v.node_id(),
                shape: v.shape().clone(),
                value: save_inputs.then(|| v.value().clone()),
            })
            .collect();
        let output = op.saves_output().then(|| value.clone());
        let id = self.push(Node {
            op,
            inputs: saved,
            output,
            shape: value.shape().clone(),
            freed: false,
            grad: None,
        });
        Ok(Var::new(self.clone(), Some(id), value))
    }
}
