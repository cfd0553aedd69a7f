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
mod exec;
mod fold;
pub mod fused;
mod fused_check;
pub mod prim;
pub mod trace;

pub use crate::backend::{BroadcastLayout, MatmulSpec, ReduceOp, StridedCopy};
pub use crate::ops::conv::Im2Col;
pub use fused::{FusedStep, Instr, OperandView, Reduction, Reg, Store};
pub use prim::Prim;
pub use trace::{capture, capture_with, capturing, Source, Trace, TraceStep, TraceValue, ValueId};

use crate::{Result, Shape, Tensor};

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
    schedule: exec::Schedule,
    /// The buffers fused steps write, kept from run to run (one per pooled buffer), allocated
    /// by the first run: a plan compiled right after its traced run does not add its pool to
    /// the traced run's values, which are still alive while it compiles.
    pool: std::sync::Mutex<Vec<Option<std::sync::Arc<crate::storage::Storage>>>>,
    /// The bytes of the constants constant folding made.
    folded_bytes: usize,
}

/// Runs one traced step op by op (the reference every plan step is compared against).
pub fn run_step(prim: &Prim, operands: &[&Tensor], shape: Shape) -> Result<Tensor> {
    let device = operands.first().map_or(crate::Device::Cpu, |t| t.device());
    Tensor::apply_prim(prim.clone(), operands, device, shape)
}

impl Plan {
    /// Compiles `trace`: folds the steps whose operands are all constants (unless a result is
    /// larger than the inputs together), drops the steps no output needs, lets GPU products
    /// read strided operands in place and absorb the scaling, bias, accumulation and
    /// activation after them into their epilogues, fuses
    /// ([`compile::fuse`]) and computes when each value dies and which values share a buffer of
    /// the pool (allocated by the first [`Plan::run`] and kept).
    pub fn compile(trace: Trace) -> Result<Plan> {
        let fold::Simplified {
            trace,
            folded_bytes,
        } = fold::simplify(trace)?;
        let trace = compile::read_copies_in_place(trace);
        // Products that absorb their epilogues leave values no step writes any more. A product
        // accumulates (β = 1) only a value already in memory, such as another product's result;
        // the second pass sees the products the first one completed.
        let mut trace = trace;
        for _ in 0..2 {
            trace = fold::simplify(compile::fold_epilogues(trace))?.trace;
        }
        let steps = compile::fuse(&trace)?;
        let schedule = exec::schedule(&trace, &steps)?;
        let pool = std::sync::Mutex::new(Vec::new());
        Ok(Plan {
            trace,
            steps,
            schedule,
            pool,
            folded_bytes,
        })
    }

    /// The trace the steps replay, after constant folding and dead-step removal (its constants
    /// include the folded ones).
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The bytes the plan holds between runs, after its first: the buffers its fused steps
    /// write and the constants folding made (the traced constants are shared with whoever
    /// made them and not counted).
    pub fn pool_bytes(&self) -> usize {
        self.schedule.pool_bytes().saturating_add(self.folded_bytes)
    }

    /// An estimate of the most bytes one run holds at once besides its inputs and the plan's
    /// constants: step results, each dropped (or returned to the pool) after its last use.
    pub fn peak_bytes(&self) -> usize {
        self.schedule.peak_bytes()
    }

    /// How many buffers the pool keeps (one per value a fused step writes).
    pub fn pooled_buffers(&self) -> usize {
        self.schedule.slot_count()
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
    /// traced outputs. Errors name every input when one differs from the traced ones.
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        exec::run(self, inputs)
    }
}
