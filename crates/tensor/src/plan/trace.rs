//! Tracing: the primitive ops one run of a closure performs, as a [`Trace`].

use crate::plan::Prim;
use crate::{DType, Device, Result, Shape, Tensor, TensorError};

/// Index of a value in [`Trace::values`].
pub type ValueId = usize;

/// Where a traced value comes from.
#[derive(Clone)]
pub enum Source {
    /// The closure's `i`-th input: supplied anew on every run of a plan.
    Input(usize),
    /// A tensor the closure read but did not compute (a saved primal value, a weight): held by
    /// the trace and read on every run.
    Constant(Tensor),
    /// The output of [`Trace::steps`]`[i]`.
    Step(usize),
}

/// One value of a trace: flat data of `len` elements (shapes belong to the ops that read it).
#[derive(Clone)]
pub struct TraceValue {
    pub len: usize,
    pub dtype: DType,
    pub source: Source,
}

/// One traced primitive op: `out = prim(args…)`.
#[derive(Clone)]
pub struct TraceStep {
    pub prim: Prim,
    pub args: Vec<ValueId>,
    pub out: ValueId,
}

/// The primitive ops of one run of a closure, in execution order.
#[derive(Clone)]
pub struct Trace {
    pub device: Device,
    pub values: Vec<TraceValue>,
    /// The inputs' values and shapes, in the closure's order.
    pub inputs: Vec<(ValueId, Shape)>,
    pub steps: Vec<TraceStep>,
    /// The closure's results: their values and shapes.
    pub outputs: Vec<(ValueId, Shape)>,
}

impl Trace {
    /// The shapes of the traced inputs, in order.
    pub fn input_shapes(&self) -> Vec<Shape> {
        self.inputs.iter().map(|(_, s)| s.clone()).collect()
    }
}

/// Runs `f` once and records the primitive ops it performs. `inputs` are the tensors that
/// change from run to run (the plan's inputs); every other tensor an op reads that `f` did not
/// compute becomes a [`Source::Constant`]. Returns `f`'s results and the trace.
pub fn capture<F>(inputs: &[&Tensor], f: F) -> Result<(Vec<Tensor>, Trace)>
where
    F: FnOnce() -> Result<Vec<Tensor>>,
{
    let _ = (inputs, f);
    Err(TensorError::InvalidArgument {
        op: "trace::capture",
        msg: "tracing is not available yet".into(),
    })
}
