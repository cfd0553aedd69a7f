//! Tracing: the primitive ops one run of a closure performs, as a [`Trace`].
//!
//! While [`capture`] runs its closure, a thread-local tracer sees every op that computes data
//! (they all go through one dispatch, [`Prim`]). A value's identity is its data: the shared
//! storage a tensor points to, so a reshape (which shares the data) is the same value and costs
//! nothing. Every storage the tracer has seen is kept as a weak handle until the capture ends, so
//! its address cannot be reused by a later allocation (the data itself is still freed at its
//! last use).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::plan::Prim;
use crate::storage::Storage;
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

impl TraceValue {
    /// The bytes of the value's data (saturating: a traced value exists, so it fits).
    pub fn bytes(&self) -> usize {
        self.len.saturating_mul(self.dtype.size_in_bytes())
    }
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

    /// The bytes of all inputs together (saturating).
    pub fn input_bytes(&self) -> usize {
        self.inputs
            .iter()
            .map(|&(id, _)| self.values[id].bytes())
            .fold(0, usize::saturating_add)
    }
}

thread_local! {
    static TRACER: RefCell<Option<Tracer>> = const { RefCell::new(None) };
}

const CAPTURE: &str = "plan::capture";

/// Runs `f` once and records the primitive ops it performs. `inputs` are the tensors that
/// change from run to run (the plan's inputs); every other tensor an op reads that `f` did not
/// compute becomes a [`Source::Constant`]. Returns `f`'s results and the trace.
///
/// `f` must depend on its inputs only through tensor ops: tensors it builds from host data
/// (`Tensor::from_f64s`, `ones_like`, …) are constants of the trace, and control flow is
/// recorded as it went on this run. Reading a value computed from the inputs on the host
/// (`to_vec`, `to_f64s`, `host_slice`, `to_device`, `to_bytes`, `Debug`) is therefore refused
/// with [`TensorError::PlanUnsupported`], as are an op on a device other than the inputs' and
/// a capture started inside another (the inner computation then runs op by op and the outer
/// trace records it). An output that is an input or a constant (`f` returned an input or a
/// tensor it did not compute) is traced as that value: a plan returns the new input or the
/// constant itself.
///
/// Errors: no inputs, inputs on different devices, two inputs sharing their data
/// (`InvalidArgument`, `DeviceMismatch`); `f`'s own error (returned first); the refusals above.
/// The tracer is reset on every exit, including a panic in `f`.
pub fn capture<F>(inputs: &[&Tensor], f: F) -> Result<(Vec<Tensor>, Trace)>
where
    F: FnOnce() -> Result<Vec<Tensor>>,
{
    capture_with(inputs, f)
}

/// [`capture`] for a closure with its own error type (any error a [`TensorError`] converts
/// into): the capture's own errors are converted.
pub fn capture_with<F, E>(inputs: &[&Tensor], f: F) -> std::result::Result<(Vec<Tensor>, Trace), E>
where
    F: FnOnce() -> std::result::Result<Vec<Tensor>, E>,
    E: From<TensorError>,
{
    let tracer = Tracer::new(inputs)?;
    TRACER.with(|slot| match slot.try_borrow_mut() {
        Ok(mut slot) if slot.is_none() => {
            *slot = Some(tracer);
            Ok(())
        }
        _ => Err(TensorError::PlanUnsupported {
            op: CAPTURE,
            msg: "a capture cannot start while another is running on this thread".into(),
        }),
    })?;
    let active = Active;
    let result = f();
    let tracer = TRACER.with(|slot| slot.borrow_mut().take());
    drop(active);
    let outputs = result?;
    let mut tracer = tracer.ok_or_else(|| TensorError::InvalidArgument {
        op: CAPTURE,
        msg: "the tracer was removed while the closure ran".into(),
    })?;
    if let Some(error) = tracer.error.take() {
        return Err(error.into());
    }
    let trace = tracer.finish(&outputs)?;
    Ok((outputs, trace))
}

/// Whether a [`capture`] is running on this thread (a capture started now would be refused).
pub fn capturing() -> bool {
    TRACER.with(|slot| slot.try_borrow().map_or(true, |slot| slot.is_some()))
}

/// Clears the thread's tracer when dropped: on return and on unwinding out of the closure.
struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        TRACER.with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                slot.take();
            }
        });
    }
}

/// The address of a tensor's data: its identity while tracing.
fn key(t: &Tensor) -> usize {
    Arc::as_ptr(t.storage_arc()) as usize
}

/// The state of one capture.
struct Tracer {
    device: Device,
    values: Vec<TraceValue>,
    /// Whether each value is computed from an input (a constant's is not).
    varies: Vec<bool>,
    ids: HashMap<usize, ValueId>,
    /// Every traced storage, so no later allocation reuses its address.
    keep: Vec<Weak<Storage>>,
    inputs: Vec<(ValueId, Shape)>,
    steps: Vec<TraceStep>,
    /// The first refusal, returned when the closure has finished.
    error: Option<TensorError>,
}

impl Tracer {
    fn new(inputs: &[&Tensor]) -> Result<Tracer> {
        let first = inputs.first().ok_or_else(|| TensorError::InvalidArgument {
            op: CAPTURE,
            msg: "needs at least one input".into(),
        })?;
        let mut tracer = Tracer {
            device: first.device(),
            values: Vec::new(),
            varies: Vec::new(),
            ids: HashMap::new(),
            keep: Vec::new(),
            inputs: Vec::new(),
            steps: Vec::new(),
            error: None,
        };
        for (i, t) in inputs.iter().enumerate() {
            if t.device() != tracer.device {
                return Err(TensorError::DeviceMismatch {
                    op: CAPTURE,
                    lhs: tracer.device,
                    rhs: t.device(),
                });
            }
            if let Some(&other) = tracer.ids.get(&key(t)) {
                return Err(TensorError::InvalidArgument {
                    op: CAPTURE,
                    msg: format!("inputs {other} and {i} share their data ({})", t.shape()),
                });
            }
            let id = tracer.push(t, Source::Input(i), true);
            tracer.inputs.push((id, t.shape().clone()));
        }
        Ok(tracer)
    }

    fn push(&mut self, t: &Tensor, source: Source, varies: bool) -> ValueId {
        let id = self.values.len();
        self.values.push(TraceValue {
            len: t.elem_count(),
            dtype: t.dtype(),
            source,
        });
        self.varies.push(varies);
        self.ids.insert(key(t), id);
        self.keep.push(Arc::downgrade(t.storage_arc()));
        id
    }

    /// The value `t` holds: a traced one, or a new constant (a flat view the trace keeps).
    fn value_of(&mut self, t: &Tensor) -> ValueId {
        match self.ids.get(&key(t)) {
            Some(&id) => id,
            None => {
                let flat =
                    Tensor::from_arc(Arc::clone(t.storage_arc()), Shape::new([t.elem_count()]));
                self.push(t, Source::Constant(flat), false)
            }
        }
    }

    fn refuse(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(TensorError::PlanUnsupported { op: CAPTURE, msg });
        }
    }

    fn record(&mut self, prim: Prim, operands: &[&Tensor], out: &Tensor) {
        if self.error.is_some() {
            return;
        }
        if let Some(t) = std::iter::once(out)
            .chain(operands.iter().copied())
            .find(|t| t.device() != self.device)
        {
            let msg = format!(
                "{} runs on {} while the inputs are on {}",
                prim.name(),
                t.device(),
                self.device
            );
            self.refuse(msg);
            return;
        }
        let args: Vec<ValueId> = operands.iter().map(|t| self.value_of(t)).collect();
        let varies = args.iter().any(|&a| self.varies[a]);
        let step = self.steps.len();
        let out_id = self.push(out, Source::Step(step), varies);
        self.steps.push(TraceStep {
            prim,
            args,
            out: out_id,
        });
    }

    fn note_host_read(&mut self, t: &Tensor) {
        if let Some(&id) = self.ids.get(&key(t)) {
            if self.varies[id] {
                let msg = format!(
                    "a value computed from the inputs ({} {}) is read on the host, and a plan \
                     cannot replay what the host does with it",
                    t.shape(),
                    t.dtype()
                );
                self.refuse(msg);
            }
        }
    }

    fn finish(mut self, outputs: &[Tensor]) -> Result<Trace> {
        let mut traced = Vec::with_capacity(outputs.len());
        for (i, t) in outputs.iter().enumerate() {
            if t.device() != self.device {
                return Err(TensorError::PlanUnsupported {
                    op: CAPTURE,
                    msg: format!(
                        "output {i} is on {} while the inputs are on {}",
                        t.device(),
                        self.device
                    ),
                });
            }
            traced.push((self.value_of(t), t.shape().clone()));
        }
        Ok(Trace {
            device: self.device,
            values: self.values,
            inputs: self.inputs,
            steps: self.steps,
            outputs: traced,
        })
    }
}

/// Records `out = prim(operands…)` when a capture is running on this thread.
pub(crate) fn record(prim: Prim, operands: &[&Tensor], out: &Tensor) {
    TRACER.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(tracer) = slot.as_mut() {
                tracer.record(prim, operands, out);
            }
        }
    });
}

/// Notes that `t`'s data is read on the host: a refusal when a running capture computed it
/// from its inputs.
pub(crate) fn note_host_read(t: &Tensor) {
    TRACER.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(tracer) = slot.as_mut() {
                tracer.note_host_read(t);
            }
        }
    });
}
