//! Compiled plans: the primitive ops of one computation, traced once and replayed fast.
//!
//! Recording (the tape) is for differentiation; a plan is for execution. [`trace::capture`] runs
//! a closure once and records every primitive op it performs on tensors ([`Prim`], the one
//! dispatch every `Tensor` op goes through), which values were the closure's inputs and which
//! were captured constants (saved primal values). [`Plan::compile`] turns that [`Trace`] into
//! steps: maximal chains of elementwise and broadcasting ops become one [`FusedStep`] (one pass
//! over the data, a small register program per element, a reduction fused at its end), layout
//! ops become strided operand views, and every intermediate gets a buffer from one pool sized
//! once by liveness. [`Plan::run`] replays it for new inputs of the traced shapes.
//!
//! The op-by-op path stays the reference: a plan's results equal it to rounding.

pub mod compile;
pub mod fused;
mod fused_check;
pub mod prim;
pub mod trace;

pub use crate::backend::{BroadcastLayout, MatmulSpec, ReduceOp, StridedCopy};
pub use crate::ops::conv::Im2Col;
pub use fused::{FusedStep, Instr, OperandView, Reduction, Reg, Store};
pub use prim::Prim;
pub use trace::{capture, Source, Trace, TraceStep, TraceValue, ValueId};

use crate::{Result, Shape, Tensor, TensorError};

/// Whether plans are used where a caller offers them: true unless the environment variable
/// `CURVATURE_PLAN` is `0` (which runs the op-by-op path, for comparison and debugging).
pub fn enabled_by_env() -> bool {
    std::env::var("CURVATURE_PLAN").map_or(true, |v| v.trim() != "0")
}

/// One step of a compiled plan. Operand and output ids are the trace's [`ValueId`]s (a fused
/// step's intermediate values have none: they live in its registers).
#[derive(Clone)]
pub enum PlanStep {
    /// A traced primitive run as it was traced.
    Call(TraceStep),
    /// Several traced elementwise steps in one pass.
    Fused(FusedStep),
}

/// A compiled trace: replays the traced computation for new inputs of the traced shapes.
pub struct Plan {
    trace: Trace,
    steps: Vec<PlanStep>,
}

/// Runs one traced step op by op (the reference every plan step is compared against).
pub fn run_step(prim: &Prim, operands: &[&Tensor], shape: Shape) -> Result<Tensor> {
    let device = operands.first().map_or(crate::Device::Cpu, |t| t.device());
    let data: Vec<&crate::storage::Storage> = operands.iter().map(|t| t.storage()).collect();
    Ok(Tensor::from_storage(prim.run(&data, device)?, shape))
}

impl Plan {
    /// Compiles `trace`.
    pub fn compile(trace: Trace) -> Result<Plan> {
        let steps = compile::fuse(&trace)?;
        Ok(Plan { trace, steps })
    }

    /// The compiled steps, in execution order.
    pub fn steps(&self) -> &[PlanStep] {
        &self.steps
    }

    /// The input shapes the plan was traced with, in order.
    pub fn input_shapes(&self) -> Vec<Shape> {
        self.trace.input_shapes()
    }

    /// Runs the plan on `inputs` (the traced inputs' shapes, dtype and device), returning the
    /// traced outputs.
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let _ = inputs;
        Err(TensorError::InvalidArgument {
            op: "Plan::run",
            msg: "plans cannot run yet".into(),
        })
    }
}
