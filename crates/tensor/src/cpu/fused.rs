//! The CPU executor of fused steps.

use crate::plan::FusedStep;
use crate::storage::Storage;
use crate::{Result, TensorError};

/// Evaluates `step` on the CPU (see [`FusedStep::run_into`]).
pub(crate) fn run_into(
    step: &FusedStep,
    operands: &[&Storage],
    outputs: &mut [Storage],
) -> Result<()> {
    let _ = (step, operands, outputs);
    Err(TensorError::InvalidArgument {
        op: "fused",
        msg: "the CPU executor of fused steps is not available yet".into(),
    })
}
