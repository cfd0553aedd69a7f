//! [`Var`]: a tensor value together with its place on a tape.

use curvature_tensor::{DType, Device, Shape, Tensor};

use crate::grad::{backward_pass, Seeds};
use crate::tape::{NodeId, NodeInfo};
use crate::{Result, Tape, TapeError};

/// A tensor recorded on a [`Tape`]. Tracked variables have a node; constants do not.
#[derive(Clone)]
pub struct Var {
    tape: Tape,
    node: Option<NodeId>,
    value: Tensor,
}

impl Var {
    pub(crate) fn new(tape: Tape, node: Option<NodeId>, value: Tensor) -> Var {
        Var { tape, node, value }
    }

    pub fn value(&self) -> &Tensor {
        &self.value
    }

    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.value.dims()
    }

    pub fn rank(&self) -> usize {
        self.value.rank()
    }

    pub fn dtype(&self) -> DType {
        self.value.dtype()
    }

    pub fn device(&self) -> Device {
        self.value.device()
    }

    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// The node recording this variable, `None` for constants.
    pub fn node_id(&self) -> Option<NodeId> {
        self.node
    }

    /// Whether gradients flow to this variable.
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }

    /// The op that produced this variable and its inputs (PyTorch's `grad_fn`).
    pub fn grad_fn(&self) -> Option<NodeInfo> {
        self.node.and_then(|id| self.tape.node_info(id))
    }

    /// The same value as an untracked constant.
    pub fn detach(&self) -> Var {
        Var::new(self.tape.clone(), None, self.value.clone())
    }

    /// A constant on this variable's tape.
    pub fn constant(&self, value: Tensor) -> Var {
        self.tape.constant(value)
    }

    /// Backpropagates from a scalar, accumulating into every reachable leaf's `.grad`.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None, false)
    }

    /// Backpropagates with an explicit cotangent (required for non-scalar outputs); with
    /// `retain_graph` the saved values survive for another backward pass.
    pub fn backward_with(&self, grad_output: Option<Tensor>, retain_graph: bool) -> Result<()> {
        let seeds = Seeds::new(
            std::slice::from_ref(self),
            grad_output.map(|g| vec![self.tape.constant(g)]),
        )?;
        let leaves = backward_pass(&self.tape, seeds, None, false, retain_graph)?;
        let mut inner = self.tape.inner.borrow_mut();
        for (id, grad) in leaves {
            let node = &mut inner.nodes[id];
            node.grad = Some(match node.grad.take() {
                Some(acc) => acc.add(grad.value())?,
                None => grad.value().clone(),
            });
        }
        Ok(())
    }

    /// The gradient accumulated by `backward` (leaves only).
    pub fn grad(&self) -> Option<Tensor> {
        let id = self.node?;
        self.tape.inner.borrow().nodes.get(id)?.grad.clone()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        if let Some(id) = self.node {
            if let Some(node) = self.tape.inner.borrow_mut().nodes.get_mut(id) {
                node.grad = None;
            }
        }
    }

    pub(crate) fn check_tape(&self, op: &'static str, other: &Var) -> Result<()> {
        if self.tape.same_as(&other.tape) {
            Ok(())
        } else {
            Err(TapeError::TapeMismatch { op })
        }
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(node {:?}, {:?})", self.node, self.value)
    }
}
