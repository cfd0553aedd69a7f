//! The plan executor: runs the compiled steps for new inputs, dropping every value after its
//! last use (liveness computed once, at compile time) and writing fused steps into buffers the
//! plan keeps from run to run (allocated by the first run, as its steps first need them).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::plan::{Plan, PlanStep, Prim, Source, Trace, TraceStep, ValueId};
use crate::storage::Storage;
use crate::{Result, Tensor, TensorError};

const RUN: &str = "Plan::run";

/// What a plan computes once about its steps: when each value dies, which values live in the
/// plan's buffer pool, and how many bytes a run holds.
pub(crate) struct Schedule {
    /// Per step, the values whose last use it is (or that nothing reads).
    drops: Vec<Vec<ValueId>>,
    /// Per value, its buffer in the pool (the values fused steps write, and the products that
    /// accumulate into one of them in place).
    slots: Vec<Option<usize>>,
    /// Per step, the C a product accumulates into in place (β ≠ 0, at C's last use).
    in_place: Vec<Option<ValueId>>,
    /// The length and dtype of each buffer in the pool.
    buffers: Vec<(usize, crate::DType)>,
    /// The bytes of the pooled buffers.
    pool_bytes: usize,
    /// The most bytes of step results one run holds at once.
    peak_bytes: usize,
}

/// The reads and writes of one step.
fn reads_writes(step: &PlanStep) -> (Vec<ValueId>, Vec<ValueId>) {
    match step {
        PlanStep::Call(s) => (s.args.clone(), vec![s.out]),
        PlanStep::Fused(f) => (
            f.operands.iter().map(|o| o.value).collect(),
            f.stores.iter().map(|s| s.value).collect(),
        ),
    }
}

fn malformed(msg: String) -> TensorError {
    TensorError::InvalidArgument {
        op: "Plan::compile",
        msg: format!("malformed plan: {msg}"),
    }
}

/// The pool's buffers: every value a fused step writes gets one, shared by values of the same
/// length and dtype whose lives do not overlap (a buffer is free for step `i` once its last
/// value's last reader ran before `i`, so no step reads and writes one buffer). The plan's
/// outputs get buffers of their own. Returns each value's buffer and the pool's bytes.
fn assign_buffers(
    trace: &Trace,
    steps: &[PlanStep],
    last_use: &[Option<usize>],
    outputs: &[ValueId],
    in_place: &[Option<ValueId>],
) -> (Vec<Option<usize>>, Vec<(usize, crate::DType)>, usize) {
    struct Buffer {
        len: usize,
        dtype: crate::DType,
        /// The step after which the buffer is free (`usize::MAX`: never within a run).
        free_after: usize,
    }
    let mut slots: Vec<Option<usize>> = vec![None; trace.values.len()];
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut pool_bytes = 0usize;
    for (i, step) in steps.iter().enumerate() {
        let f = match step {
            PlanStep::Fused(f) => f,
            PlanStep::Call(s) => {
                // The product overwrites C's buffer, which then holds its result.
                if let Some(slot) = in_place[i].and_then(|c| slots[c]) {
                    buffers[slot].free_after = if outputs.contains(&s.out) {
                        usize::MAX
                    } else {
                        last_use[s.out].unwrap_or(i)
                    };
                    slots[s.out] = Some(slot);
                }
                continue;
            }
        };
        for store in &f.stores {
            let value = &trace.values[store.value];
            let free_after = if outputs.contains(&store.value) {
                usize::MAX
            } else {
                last_use[store.value].unwrap_or(i)
            };
            let free = buffers
                .iter()
                .position(|b| b.len == value.len && b.dtype == value.dtype && b.free_after < i);
            let index = match free {
                Some(index) => {
                    buffers[index].free_after = free_after;
                    index
                }
                None => {
                    pool_bytes = pool_bytes.saturating_add(value.bytes());
                    buffers.push(Buffer {
                        len: value.len,
                        dtype: value.dtype,
                        free_after,
                    });
                    buffers.len() - 1
                }
            };
            slots[store.value] = Some(index);
        }
    }
    let specs = buffers.iter().map(|b| (b.len, b.dtype)).collect();
    (slots, specs, pool_bytes)
}

/// The C a product step accumulates into (`β ≠ 0`), when it reads C only in that role.
fn accumulator(step: &PlanStep) -> Option<ValueId> {
    let PlanStep::Call(s) = step else { return None };
    let Prim::Gemm(call) = &s.prim else {
        return None;
    };
    if call.epilogue.beta == 0.0 {
        return None;
    }
    let c = *s.args.get(2)?;
    (s.args.iter().filter(|&&a| a == c).count() == 1).then_some(c)
}

/// Checks that every step reads values that exist by then and computes the schedule.
pub(crate) fn schedule(trace: &Trace, steps: &[PlanStep]) -> Result<Schedule> {
    let n = trace.values.len();
    let mut ready: Vec<bool> = trace
        .values
        .iter()
        .map(|v| !matches!(v.source, Source::Step(_)))
        .collect();
    let mut last_use: Vec<Option<usize>> = vec![None; n];
    let mut written_by: Vec<Option<usize>> = vec![None; n];
    for (i, step) in steps.iter().enumerate() {
        let (reads, writes) = reads_writes(step);
        for r in reads {
            if !ready.get(r).copied().unwrap_or(false) {
                return Err(malformed(format!(
                    "step {i} reads value {r} before it exists"
                )));
            }
            last_use[r] = Some(i);
        }
        for w in writes {
            let fresh = matches!(
                trace.values.get(w).map(|v| &v.source),
                Some(Source::Step(_))
            );
            if !fresh || written_by[w].is_some() {
                return Err(malformed(format!(
                    "step {i} writes value {w}, which is not a step result or is written twice"
                )));
            }
            ready[w] = true;
            written_by[w] = Some(i);
        }
    }
    for &(id, _) in &trace.outputs {
        if !ready.get(id).copied().unwrap_or(false) {
            return Err(malformed(format!("output value {id} is never computed")));
        }
        last_use[id] = None;
        written_by[id].get_or_insert(usize::MAX);
    }
    let outputs: Vec<ValueId> = trace.outputs.iter().map(|&(id, _)| id).collect();
    let mut drops = vec![Vec::new(); steps.len()];
    for id in 0..n {
        let Some(w) = written_by[id].filter(|&w| w != usize::MAX) else {
            continue;
        };
        if outputs.contains(&id) {
            continue;
        }
        drops[last_use[id].unwrap_or(w)].push(id);
    }
    let in_place: Vec<Option<ValueId>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| accumulator(step).filter(|&c| drops[i].contains(&c)))
        .collect();
    let (slots, buffers, pool_bytes) = assign_buffers(trace, steps, &last_use, &outputs, &in_place);
    let mut live = 0usize;
    let mut peak = 0usize;
    for (i, step) in steps.iter().enumerate() {
        for w in reads_writes(step).1 {
            live = live.saturating_add(trace.values[w].bytes());
        }
        peak = peak.max(live);
        for &d in &drops[i] {
            live = live.saturating_sub(trace.values[d].bytes());
        }
    }
    Ok(Schedule {
        drops,
        slots,
        in_place,
        buffers,
        pool_bytes,
        peak_bytes: peak,
    })
}

impl Schedule {
    /// The bytes of the buffers fused steps write, which the plan keeps between runs.
    pub(crate) fn pool_bytes(&self) -> usize {
        self.pool_bytes
    }

    /// The most bytes of step results (intermediates and outputs) one run holds at once.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// The number of pooled buffers.
    pub(crate) fn slot_count(&self) -> usize {
        self.buffers.len()
    }
}

/// One line per tensor: `[2, 3] f64 on cpu`.
fn describe<'a>(
    list: impl Iterator<Item = (&'a crate::Shape, crate::DType)>,
    device: crate::Device,
) -> String {
    let parts: Vec<String> = list.map(|(s, d)| format!("{s} {d} on {device}")).collect();
    format!("[{}]", parts.join(", "))
}

/// Errors unless `inputs` match the traced inputs in count, shape, dtype and device.
fn check_inputs(trace: &Trace, inputs: &[&Tensor]) -> Result<()> {
    let matches = inputs.len() == trace.inputs.len()
        && inputs.iter().zip(&trace.inputs).all(|(t, (id, shape))| {
            t.shape() == shape && t.dtype() == trace.values[*id].dtype && t.device() == trace.device
        });
    if matches {
        return Ok(());
    }
    let expected = describe(
        trace
            .inputs
            .iter()
            .map(|(id, s)| (s, trace.values[*id].dtype)),
        trace.device,
    );
    let got: Vec<String> = inputs
        .iter()
        .map(|t| format!("{} {} on {}", t.shape(), t.dtype(), t.device()))
        .collect();
    Err(TensorError::InvalidArgument {
        op: RUN,
        msg: format!("expects inputs {expected}, got [{}]", got.join(", ")),
    })
}

fn lock(pool: &Mutex<Vec<Option<Arc<Storage>>>>) -> MutexGuard<'_, Vec<Option<Arc<Storage>>>> {
    pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `plan` on `inputs`.
pub(crate) fn run(plan: &Plan, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let trace = &plan.trace;
    check_inputs(trace, inputs)?;
    let device = trace.device;
    let mut slots: Vec<Option<Arc<Storage>>> = vec![None; trace.values.len()];
    for (t, &(id, _)) in inputs.iter().zip(&trace.inputs) {
        slots[id] = Some(Arc::clone(t.storage_arc()));
    }
    let mut pool = lock(&plan.pool);
    pool.resize(plan.schedule.slot_count(), None);
    for (i, step) in plan.steps.iter().enumerate() {
        match step {
            PlanStep::Call(s) => {
                let in_place = match plan.schedule.in_place[i] {
                    Some(c) => take_unshared(plan, &mut slots, &mut pool, c),
                    None => None,
                };
                let out = match in_place {
                    Some(c) => accumulate_in_place(trace, &slots, s, c)?,
                    None => {
                        let data = s
                            .args
                            .iter()
                            .map(|&a| read(trace, &slots, a))
                            .collect::<Result<Vec<_>>>()?;
                        s.prim.run(&data, device)?
                    }
                };
                let arc = Arc::new(out);
                if let Some(slot) = plan.schedule.slots[s.out] {
                    pool[slot] = Some(Arc::clone(&arc));
                }
                slots[s.out] = Some(arc);
            }
            PlanStep::Fused(f) => {
                let len = f.store_len();
                let mut outs = f
                    .stores
                    .iter()
                    .map(|st| {
                        let reused = plan.schedule.slots[st.value]
                            .and_then(|slot| pool[slot].take())
                            .and_then(|arc| Arc::try_unwrap(arc).ok());
                        match reused {
                            Some(s) => Ok(s),
                            None => Storage::uninit(device, f.dtype, len),
                        }
                    })
                    .collect::<Result<Vec<Storage>>>()?;
                {
                    let data = f
                        .operands
                        .iter()
                        .map(|o| read(trace, &slots, o.value))
                        .collect::<Result<Vec<_>>>()?;
                    f.run_into(&data, &mut outs)?;
                }
                for (st, s) in f.stores.iter().zip(outs) {
                    let arc = Arc::new(s);
                    if let Some(slot) = plan.schedule.slots[st.value] {
                        pool[slot] = Some(Arc::clone(&arc));
                    }
                    slots[st.value] = Some(arc);
                }
            }
        }
        for &d in &plan.schedule.drops[i] {
            slots[d] = None;
        }
    }
    drop(pool);
    trace
        .outputs
        .iter()
        .map(|(id, shape)| {
            let data = match &trace.values[*id].source {
                Source::Constant(t) => Arc::clone(t.storage_arc()),
                _ => slots[*id].clone().ok_or_else(|| missing(*id))?,
            };
            Ok(Tensor::from_arc(data, shape.clone()))
        })
        .collect()
}

/// Value `c`'s storage, taken out of the run (and out of the pool when it lives there) when
/// nothing else holds it; else `None`, with everything left in place.
fn take_unshared(
    plan: &Plan,
    slots: &mut [Option<Arc<Storage>>],
    pool: &mut [Option<Arc<Storage>>],
    c: ValueId,
) -> Option<Storage> {
    let pooled = plan.schedule.slots[c].and_then(|slot| pool[slot].take().map(|a| (slot, a)));
    let held = slots[c].take();
    let pooled_is_held = match (&pooled, &held) {
        (Some((_, p)), Some(h)) => Arc::ptr_eq(p, h),
        (None, _) => true,
        _ => false,
    };
    if pooled_is_held {
        if let Some(held) = held {
            // The pool's handle (if any) is `held`'s twin; dropping it leaves one owner.
            drop(pooled);
            return match Arc::try_unwrap(held) {
                Ok(storage) => Some(storage),
                Err(held) => {
                    slots[c] = Some(held);
                    None
                }
            };
        }
    }
    if let Some((slot, arc)) = pooled {
        pool[slot] = Some(arc);
    }
    slots[c] = held;
    None
}

/// Runs the product `step` (`β ≠ 0`) into `c`, the storage of its C operand, which it
/// overwrites with its result.
fn accumulate_in_place(
    trace: &Trace,
    slots: &[Option<Arc<Storage>>],
    step: &TraceStep,
    mut c: Storage,
) -> Result<Storage> {
    let Prim::Gemm(call) = &step.prim else {
        return Err(malformed_run("an in-place accumulation is not a product"));
    };
    let call = crate::gemm::GemmCall {
        c: crate::gemm::MatrixLayout::dense(call.m, call.n),
        ..*call
    };
    let a = read(trace, slots, step.args[0])?;
    let b = read(trace, slots, step.args[1])?;
    let bias = match step.args.get(3) {
        Some(&v) => Some(read(trace, slots, v)?),
        None => None,
    };
    for operand in [b, &c].into_iter().chain(bias) {
        a.check_same("gemm", operand)?;
    }
    call.check([a.len(), b.len(), c.len()], bias.map(Storage::len))?;
    crate::gemm::gemm_storage(a, b, &mut c, bias, &call)?;
    Ok(c)
}

fn malformed_run(msg: &str) -> TensorError {
    TensorError::InvalidArgument {
        op: RUN,
        msg: format!("malformed plan: {msg}"),
    }
}

fn missing(id: ValueId) -> TensorError {
    TensorError::InvalidArgument {
        op: RUN,
        msg: format!("value {id} was read after it was dropped"),
    }
}

/// The data of value `id` during a run.
fn read<'a>(
    trace: &'a Trace,
    slots: &'a [Option<Arc<Storage>>],
    id: ValueId,
) -> Result<&'a Storage> {
    match &trace.values[id].source {
        Source::Constant(t) => Ok(t.storage()),
        _ => slots[id].as_deref().ok_or_else(|| missing(id)),
    }
}
