//! Reverse-mode differentiation: `grad`, `vjp` with batched cotangents, and the backward sweep
//! they share.

use curvature_tensor::Tensor;

use crate::op::Op;
use crate::rules::RuleCtx;
use crate::tape::NodeId;
use crate::{Result, Tape, TapeError, Var};

/// Options of [`grad`], with PyTorch's meanings.
#[derive(Clone, Default)]
pub struct GradOptions {
    /// Record the backward pass so the gradients can be differentiated again.
    pub create_graph: bool,
    /// Keep saved values for another backward pass; defaults to `create_graph`.
    pub retain_graph: Option<bool>,
    /// Cotangents of the outputs (required for non-scalar outputs). They may carry extra
    /// leading batch axes, shared by all outputs: then every gradient carries them too.
    pub grad_outputs: Option<Vec<Var>>,
    /// Return zeros for inputs the outputs do not depend on instead of an error.
    pub allow_unused: bool,
}

impl GradOptions {
    /// Options for a differentiable gradient (`create_graph = true`).
    pub fn create_graph() -> GradOptions {
        GradOptions {
            create_graph: true,
            ..GradOptions::default()
        }
    }
}

/// Gradients of `outputs` with respect to `wrt`, like `torch.autograd.grad`.
pub fn grad(outputs: &[Var], wrt: &[Var], options: GradOptions) -> Result<Vec<Var>> {
    let tape = outputs
        .first()
        .ok_or(TapeError::LengthMismatch {
            what: "grad outputs",
            expected: 1,
            got: 0,
        })?
        .tape()
        .clone();
    // Node ids index one tape: a variable of another tape would silently name a different
    // node here (or one out of range), so mixing tapes is an error.
    if outputs.iter().chain(wrt).any(|v| !v.tape().same_as(&tape)) {
        return Err(TapeError::TapeMismatch { op: "grad" });
    }
    let seeds = Seeds::new(outputs, options.grad_outputs)?;
    let batch = seeds.batch.clone();
    let retain = options.retain_graph.unwrap_or(options.create_graph);
    let targets: Vec<NodeId> = wrt.iter().filter_map(|v| v.node_id()).collect();
    let found = backward_pass(&tape, seeds, Some(&targets), options.create_graph, retain)?;
    wrt.iter()
        .enumerate()
        .map(|(index, var)| {
            let hit = var
                .node_id()
                .and_then(|id| found.iter().find(|(n, _)| *n == id));
            match hit {
                Some((_, g)) => Ok(g.clone()),
                None if options.allow_unused => zeros_like_batched(var, &batch),
                None => Err(TapeError::NotInGraph {
                    index,
                    shape: var.shape().clone(),
                }),
            }
        })
        .collect()
}

/// Vector-Jacobian products: `cotangents[i]` has shape `[B…] + outputs[i].shape`, and each
/// result has shape `[B…] + wrt[j].shape`. With a leading batch axis of K this computes K
/// products in one backward sweep. Inputs the outputs do not depend on get exact zeros.
pub fn vjp(
    outputs: &[Var],
    cotangents: &[Var],
    wrt: &[Var],
    create_graph: bool,
) -> Result<Vec<Var>> {
    grad(
        outputs,
        wrt,
        GradOptions {
            create_graph,
            retain_graph: Some(true),
            grad_outputs: Some(cotangents.to_vec()),
            allow_unused: true,
        },
    )
}

fn zeros_like_batched(var: &Var, batch: &[usize]) -> Result<Var> {
    let mut dims = batch.to_vec();
    dims.extend_from_slice(var.dims());
    Ok(var.constant(Tensor::zeros(dims, var.dtype(), var.device())?))
}

/// The outputs a backward pass starts from, their cotangents and the shared batch axes.
pub(crate) struct Seeds {
    outputs: Vec<Var>,
    cotangents: Vec<Var>,
    batch: Vec<usize>,
}

impl Seeds {
    pub(crate) fn new(outputs: &[Var], grad_outputs: Option<Vec<Var>>) -> Result<Seeds> {
        let Some(cotangents) = grad_outputs else {
            let cotangents = outputs
                .iter()
                .enumerate()
                .map(|(index, out)| {
                    if out.value().elem_count() != 1 {
                        return Err(TapeError::NonScalarOutput {
                            index,
                            shape: out.shape().clone(),
                        });
                    }
                    Ok(out.constant(out.value().ones_like()?))
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Seeds {
                outputs: outputs.to_vec(),
                cotangents,
                batch: Vec::new(),
            });
        };
        if cotangents.len() != outputs.len() {
            return Err(TapeError::LengthMismatch {
                what: "grad_outputs",
                expected: outputs.len(),
                got: cotangents.len(),
            });
        }
        let lead = cotangents[0].rank().saturating_sub(outputs[0].rank());
        let batch = cotangents[0].dims()[..lead].to_vec();
        for (index, (out, cot)) in outputs.iter().zip(&cotangents).enumerate() {
            out.check_tape("grad", cot)?;
            out.value().check_same_kind("grad", cot.value())?;
            let mut expected = batch.clone();
            expected.extend_from_slice(out.dims());
            if cot.dims() != expected.as_slice() {
                return Err(TapeError::CotangentShape {
                    index,
                    expected: out.shape().clone(),
                    got: cot.shape().clone(),
                });
            }
        }
        Ok(Seeds {
            outputs: outputs.to_vec(),
            cotangents,
            batch,
        })
    }
}

/// Restores the tape's recording flag when a backward pass ends, however it ends.
struct RecordingGuard<'a> {
    tape: &'a Tape,
    previous: bool,
}

impl Drop for RecordingGuard<'_> {
    fn drop(&mut self) {
        self.tape.set_recording(self.previous);
    }
}

/// One backward sweep from the seeds. Returns the gradient of every target node reached
/// (`targets = None`: every leaf). Without `create_graph` nothing is recorded; without
/// `retain_graph` the saved values of the nodes it walked are freed.
pub(crate) fn backward_pass(
    tape: &Tape,
    seeds: Seeds,
    targets: Option<&[NodeId]>,
    create_graph: bool,
    retain_graph: bool,
) -> Result<Vec<(NodeId, Var)>> {
    let Some(top) = seeds.outputs.iter().filter_map(|o| o.node_id()).max() else {
        return Ok(Vec::new());
    };
    let is_target = target_mask(tape, targets, top);
    let needed = needed_nodes(tape, &is_target, top);
    let _guard = RecordingGuard {
        tape,
        previous: tape.set_recording(create_graph),
    };
    let mut grads: Vec<Option<Var>> = vec![None; top + 1];
    for (out, cot) in seeds.outputs.iter().zip(&seeds.cotangents) {
        if let Some(id) = out.node_id() {
            accumulate(&mut grads[id], cot.clone())?;
        }
    }
    let mut found = Vec::new();
    let mut walked = Vec::new();
    for id in (0..=top).rev() {
        if !needed[id] {
            continue;
        }
        let Some(g) = grads[id].take() else { continue };
        if is_target[id] {
            found.push((id, g.clone()));
        }
        let Some((op, ctx)) = rule_context(tape, id, g, &seeds.batch, &needed)? else {
            continue;
        };
        walked.push(id);
        let input_grads = op.backward(&ctx)?;
        let input_nodes = tape.inner.borrow().nodes[id]
            .inputs
            .iter()
            .map(|s| s.node)
            .collect::<Vec<_>>();
        for (node, input_grad) in input_nodes.into_iter().zip(input_grads) {
            if let (Some(j), Some(input_grad)) = (node, input_grad) {
                if needed[j] {
                    accumulate(&mut grads[j], input_grad)?;
                }
            }
        }
    }
    if !retain_graph {
        free_saved(tape, &walked);
    }
    Ok(found)
}

fn target_mask(tape: &Tape, targets: Option<&[NodeId]>, top: NodeId) -> Vec<bool> {
    let inner = tape.inner.borrow();
    let mut mask = vec![false; top + 1];
    match targets {
        Some(ids) => ids
            .iter()
            .filter(|&&id| id <= top)
            .for_each(|&id| mask[id] = true),
        None => {
            for (id, node) in inner.nodes.iter().take(top + 1).enumerate() {
                mask[id] = node.op == Op::Leaf;
            }
        }
    }
    mask
}

/// Nodes on a path from a target to the top: only these get gradients.
fn needed_nodes(tape: &Tape, is_target: &[bool], top: NodeId) -> Vec<bool> {
    let inner = tape.inner.borrow();
    let mut needed = is_target.to_vec();
    for id in 0..=top {
        if !needed[id] {
            needed[id] = inner.nodes[id]
                .inputs
                .iter()
                .any(|s| s.node.is_some_and(|j| needed[j]));
        }
    }
    needed
}

fn accumulate(slot: &mut Option<Var>, grad: Var) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(acc) => acc.add(&grad)?,
        None => grad,
    });
    Ok(())
}

/// The op of node `id` and what its rule needs; `None` for leaves.
fn rule_context(
    tape: &Tape,
    id: NodeId,
    g: Var,
    batch: &[usize],
    needed: &[bool],
) -> Result<Option<(Op, RuleCtx)>> {
    let inner = tape.inner.borrow();
    let node = &inner.nodes[id];
    if node.op == Op::Leaf {
        return Ok(None);
    }
    if node.freed {
        return Err(TapeError::BackwardTwice { op: node.op.name() });
    }
    let ctx = RuleCtx {
        inputs: node
            .inputs
            .iter()
            .map(|s| s.value.clone().map(|v| Var::new(tape.clone(), s.node, v)))
            .collect(),
        input_shapes: node.inputs.iter().map(|s| s.shape.clone()).collect(),
        output: node
            .output
            .clone()
            .map(|v| Var::new(tape.clone(), Some(id), v)),
        out_shape: node.shape.clone(),
        batch: batch.to_vec(),
        needs: node
            .inputs
            .iter()
            .map(|s| s.node.is_some_and(|j| needed[j]))
            .collect(),
        g,
    };
    Ok(Some((node.op.clone(), ctx)))
}

fn free_saved(tape: &Tape, walked: &[NodeId]) {
    let mut inner = tape.inner.borrow_mut();
    for &id in walked {
        let node = &mut inner.nodes[id];
        node.freed = true;
        node.output = None;
        for saved in &mut node.inputs {
            saved.value = None;
        }
    }
}
