//! The passes [`Plan::compile`](crate::plan::Plan::compile) runs on a trace before fusion:
//! constant folding (a step whose operands are all constants runs once, at compile time) and
//! dead-step removal, then a renumbering that leaves only the values the plan still needs.

use crate::plan::{Source, Trace, TraceStep, TraceValue, ValueId};
use crate::storage::Storage;
use crate::{Result, Shape, Tensor, TensorError};

/// A trace with its constant steps folded and its dead steps removed, and the bytes of the
/// constants folding made (data the plan holds that the traced computation did not).
pub(crate) struct Simplified {
    pub trace: Trace,
    pub folded_bytes: usize,
}

/// Folds every step whose operands are all constants (the functions of saved values that the
/// backward rules compute, `1 − t²`, masks, …) into a constant, unless its output is larger than
/// the plan's inputs together; then drops the steps no output depends on.
pub(crate) fn simplify(trace: Trace) -> Result<Simplified> {
    let limit = trace.input_bytes();
    let mut values = trace.values;
    let mut folded = vec![false; values.len()];
    let mut kept = vec![true; trace.steps.len()];
    for (i, step) in trace.steps.iter().enumerate() {
        let foldable = step
            .args
            .iter()
            .all(|&a| matches!(values.get(a).map(|v| &v.source), Some(Source::Constant(_))));
        let out = value(&values, step.out)?;
        if !foldable || out.bytes() > limit {
            continue;
        }
        let data = step
            .args
            .iter()
            .map(|&a| match &values[a].source {
                Source::Constant(t) => Ok(t.storage()),
                _ => Err(broken("a folded operand is not a constant")),
            })
            .collect::<Result<Vec<&Storage>>>()?;
        let result = step.prim.run(&data, trace.device)?;
        let len = out.len;
        values[step.out].source = Source::Constant(Tensor::from_storage(result, Shape::new([len])));
        folded[step.out] = true;
        kept[i] = false;
    }
    let live = live_steps(&trace.steps, &trace.outputs, &values, &mut kept)?;
    let (trace, folded_bytes) = compact(
        Trace {
            device: trace.device,
            values,
            inputs: trace.inputs,
            steps: trace.steps,
            outputs: trace.outputs,
        },
        &kept,
        &live,
        &folded,
    )?;
    Ok(Simplified {
        trace,
        folded_bytes,
    })
}

fn broken(msg: &str) -> TensorError {
    TensorError::InvalidArgument {
        op: "Plan::compile",
        msg: format!("malformed trace: {msg}"),
    }
}

fn value(values: &[TraceValue], id: ValueId) -> Result<&TraceValue> {
    values
        .get(id)
        .ok_or_else(|| broken(&format!("value {id} of {} does not exist", values.len())))
}

/// Marks the values the outputs need and unmarks in `kept` the steps none of them needs.
fn live_steps(
    steps: &[TraceStep],
    outputs: &[(ValueId, Shape)],
    values: &[TraceValue],
    kept: &mut [bool],
) -> Result<Vec<bool>> {
    let mut live = vec![false; values.len()];
    for &(id, _) in outputs {
        value(values, id)?;
        live[id] = true;
    }
    for (i, step) in steps.iter().enumerate().rev() {
        value(values, step.out)?;
        if !kept[i] || !live[step.out] {
            kept[i] = false;
            continue;
        }
        for &a in &step.args {
            value(values, a)?;
            live[a] = true;
        }
    }
    Ok(live)
}

/// The trace with only the kept steps and the values they, the inputs and the outputs use,
/// renumbered; and the bytes of the folded constants that remain.
fn compact(trace: Trace, kept: &[bool], live: &[bool], folded: &[bool]) -> Result<(Trace, usize)> {
    let mut keep_value = live.to_vec();
    for &(id, _) in &trace.inputs {
        value(&trace.values, id)?;
        keep_value[id] = true;
    }
    let mut new_id = vec![usize::MAX; trace.values.len()];
    let mut values = Vec::new();
    let mut folded_bytes = 0usize;
    for (id, v) in trace.values.iter().enumerate() {
        if keep_value[id] {
            new_id[id] = values.len();
            if folded[id] {
                folded_bytes = folded_bytes.saturating_add(v.bytes());
            }
            values.push(v.clone());
        }
    }
    let map = |id: ValueId| -> Result<ValueId> {
        match new_id.get(id) {
            Some(&n) if n != usize::MAX => Ok(n),
            _ => Err(broken(&format!("value {id} is read but was dropped"))),
        }
    };
    let mut steps = Vec::new();
    for (i, step) in trace.steps.iter().enumerate() {
        if !kept[i] {
            continue;
        }
        let out = map(step.out)?;
        values[out].source = Source::Step(steps.len());
        steps.push(TraceStep {
            prim: step.prim.clone(),
            args: step.args.iter().map(|&a| map(a)).collect::<Result<_>>()?,
            out,
        });
    }
    let remap = |list: &[(ValueId, Shape)]| -> Result<Vec<(ValueId, Shape)>> {
        list.iter()
            .map(|(id, s)| Ok((map(*id)?, s.clone())))
            .collect()
    };
    let trace = Trace {
        device: trace.device,
        inputs: remap(&trace.inputs)?,
        outputs: remap(&trace.outputs)?,
        values,
        steps,
    };
    Ok((trace, folded_bytes))
}
