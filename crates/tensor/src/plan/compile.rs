//! Compilation of a trace into plan steps: elementwise chains fused into [`FusedStep`]s.
//!
//! Three passes: [`group`] joins elementwise steps into chains over one iteration shape (reading
//! through the layout steps before them, ending with the `sum` that consumes them); [`program`]
//! turns runs of a chain into register programs within the limits of [`crate::plan::fused`];
//! this module orders the result and drops the layout steps no one reads any more.

mod cat;
mod epilogue;
mod gemm_view;
mod group;
mod program;
mod view;

pub(crate) use epilogue::fold_epilogues;
pub(crate) use gemm_view::read_copies_in_place;

use std::collections::BTreeMap;

use crate::plan::{FusedStep, PlanStep, Prim, Trace};
use crate::{Result, TensorError};

use group::Group;
use program::Readers;

/// The steps that replay `trace`: every traced step as a [`PlanStep::Call`], or maximal chains of
/// elementwise and broadcasting steps (and the reduction that consumes them, and the layout
/// copies they read through) as one [`PlanStep::Fused`]. Steps come in an order where every
/// value is computed before it is read; the output is a function of the trace alone.
pub fn fuse(trace: &Trace) -> Result<Vec<PlanStep>> {
    validate(trace)?;
    let groups = group::group(trace);
    let mut member_views: BTreeMap<usize, &group::Member> = BTreeMap::new();
    for g in &groups {
        for m in &g.members {
            member_views.insert(m.step, m);
        }
    }
    let all_calls_kept = readers(trace, |i| {
        member_views
            .get(&i)
            .map(|m| m.views.iter().map(|v| v.value).collect())
    });
    let mut emitted: BTreeMap<usize, Vec<PlanStep>> = BTreeMap::new();
    let mut fused_members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for g in &groups {
        for (last, step) in chunk(trace, g, &all_calls_kept) {
            match step {
                Chunk::Fused(fused, members) => {
                    let reads: Vec<usize> = fused.operands.iter().map(|o| o.value).collect();
                    for m in members {
                        fused_members.insert(m, reads.clone());
                    }
                    emitted
                        .entry(last)
                        .or_default()
                        .push(PlanStep::Fused(fused));
                }
                Chunk::Dead(steps) => {
                    for s in steps {
                        fused_members.entry(s).or_default();
                    }
                }
                Chunk::Call => {}
            }
        }
    }
    let final_readers = readers(trace, |i| fused_members.get(&i).cloned());
    let dead = dead_layout_steps(trace, &fused_members, final_readers);
    let mut steps = Vec::new();
    for (i, step) in trace.steps.iter().enumerate() {
        if !fused_members.contains_key(&i) && !dead[i] {
            steps.push(match cat::as_fused(trace, step) {
                Some(fused) => PlanStep::Fused(fused),
                None => PlanStep::Call(step.clone()),
            });
        }
        if let Some(fused) = emitted.remove(&i) {
            steps.extend(fused);
        }
    }
    for step in &steps {
        if let PlanStep::Fused(f) = step {
            let lens: Vec<usize> = f
                .operands
                .iter()
                .map(|o| trace.values[o.value].len)
                .collect();
            f.check(&lens)?;
        }
    }
    Ok(steps)
}

/// The value ids of the trace's steps and outputs must name its values.
fn validate(trace: &Trace) -> Result<()> {
    let n = trace.values.len();
    let bad = |what: String| TensorError::InvalidArgument {
        op: "plan::fuse",
        msg: what,
    };
    for (i, s) in trace.steps.iter().enumerate() {
        if let Some(&v) = s.args.iter().chain([&s.out]).find(|&&v| v >= n) {
            return Err(bad(format!(
                "step {i} ({}) names value {v} of {n}",
                s.prim.name()
            )));
        }
    }
    if let Some((v, _)) = trace.outputs.iter().find(|(v, _)| *v >= n) {
        return Err(bad(format!("an output names value {v} of {n}")));
    }
    Ok(())
}

/// Who reads each value: `reads(i)` gives what a fused step `i` reads (else its traced args).
fn readers(trace: &Trace, reads: impl Fn(usize) -> Option<Vec<usize>>) -> Readers {
    let mut steps = vec![Vec::new(); trace.values.len()];
    for (i, s) in trace.steps.iter().enumerate() {
        for v in reads(i).unwrap_or_else(|| s.args.clone()) {
            if !steps[v].contains(&i) {
                steps[v].push(i);
            }
        }
    }
    let mut output = vec![false; trace.values.len()];
    for (v, _) in &trace.outputs {
        output[*v] = true;
    }
    Readers { steps, output }
}

/// The traced layout steps (`full`, `cat`, strided copies) whose outputs no remaining step reads
/// and the trace does not return: the fused steps read through them.
fn dead_layout_steps(
    trace: &Trace,
    fused: &BTreeMap<usize, Vec<usize>>,
    mut readers: Readers,
) -> Vec<bool> {
    let mut dead = vec![false; trace.steps.len()];
    loop {
        let mut changed = false;
        for (i, s) in trace.steps.iter().enumerate().rev() {
            let layout = matches!(
                s.prim,
                Prim::Full { .. } | Prim::Cat { .. } | Prim::CopyStrided(_)
            );
            if dead[i] || fused.contains_key(&i) || !layout {
                continue;
            }
            if !readers.output[s.out] && readers.steps[s.out].is_empty() {
                dead[i] = true;
                changed = true;
                for &a in &s.args {
                    readers.steps[a].retain(|&r| r != i);
                }
            }
        }
        if !changed {
            return dead;
        }
    }
}

/// What one run of a group's members became.
enum Chunk {
    /// A fused step and the trace indices of its members.
    Fused(FusedStep, Vec<usize>),
    /// Members whose values no one reads.
    Dead(Vec<usize>),
    /// A member left as a traced call (it passes a limit alone).
    Call,
}

/// Splits `group` into the longest runs of members that fit the limits, each with the trace
/// index of its last member.
fn chunk(trace: &Trace, group: &Group, readers: &Readers) -> Vec<(usize, Chunk)> {
    let members = &group.members;
    let mut out = Vec::new();
    let mut start = 0;
    while start < members.len() {
        let mut best: Option<(usize, Option<FusedStep>)> = None;
        for end in start + 1..=members.len() {
            match program::build(trace, group, &members[start..end], readers) {
                Ok(step) => best = Some((end, step)),
                Err(()) => break,
            }
        }
        match best {
            Some((end, step)) => {
                let last = members[end - 1].step;
                let steps = members[start..end].iter().map(|m| m.step).collect();
                out.push((
                    last,
                    match step {
                        Some(s) => Chunk::Fused(s, steps),
                        None => Chunk::Dead(steps),
                    },
                ));
                start = end;
            }
            None => {
                out.push((members[start].step, Chunk::Call));
                start += 1;
            }
        }
    }
    out
}
