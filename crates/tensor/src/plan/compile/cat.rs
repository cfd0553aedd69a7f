//! A concatenation as one fused pass: part i of `[outer, wᵢ]` is a bounded view of the output
//! `[outer, Σ w]` (zero outside its columns), and the parts' loads are summed, so the
//! `[K, P]` result of a sweep is assembled in one launch instead of one copy per part.

use crate::backend::BinaryOp;
use crate::plan::fused::{FusedStep, Instr, OperandView, Store, MAX_OPERANDS};
use crate::plan::{Prim, Trace, TraceStep};
use crate::Shape;

/// The fused form of a `Cat` step, or `None` for another step, a 16-bit dtype, or more
/// non-empty parts than a fused step reads.
pub(super) fn as_fused(trace: &Trace, step: &TraceStep) -> Option<FusedStep> {
    let Prim::Cat { outer, widths } = &step.prim else {
        return None;
    };
    let dtype = trace.values.get(step.out)?.dtype;
    if dtype.is_half() || widths.len() != step.args.len() {
        return None;
    }
    let total: usize = widths.iter().try_fold(0usize, |t, &w| t.checked_add(w))?;
    let mut operands = Vec::new();
    let mut column = 0usize;
    for (&value, &width) in step.args.iter().zip(widths) {
        if width > 0 {
            operands.push(OperandView {
                value,
                offset: -i64::try_from(column).ok()?,
                strides: vec![i64::try_from(width).ok()?, 1],
                bounds: Some(vec![(0, *outer), (column, column + width)]),
            });
        }
        column += width;
    }
    if operands.is_empty() || operands.len() > MAX_OPERANDS {
        return None;
    }
    // acc ← part 0; acc' ← acc + part i, alternating the accumulator between registers 0 and 2
    // so no instruction writes a register it reads.
    let mut program = vec![Instr::Load { dst: 0, operand: 0 }];
    let mut acc = 0u8;
    for operand in 1..operands.len() {
        let next = 2 - acc;
        program.push(Instr::Load {
            dst: 1,
            operand: u8::try_from(operand).ok()?,
        });
        program.push(Instr::Binary {
            dst: next,
            op: BinaryOp::Add,
            a: acc,
            b: 1,
        });
        acc = next;
    }
    Some(FusedStep {
        dtype,
        shape: Shape::new([*outer, total]),
        operands,
        program,
        stores: vec![Store {
            reg: acc,
            value: step.out,
        }],
        reduction: None,
    })
}
