//! [`FusedStep::check`]: the invariants both executors index by.

use crate::plan::fused::{MAX_OPERANDS, MAX_RANK, MAX_REGS, MAX_STORES};
use crate::plan::{FusedStep, Instr, OperandView};
use crate::{Result, TensorError};

fn invalid(msg: String) -> TensorError {
    TensorError::InvalidArgument { op: "fused", msg }
}

impl FusedStep {
    /// Checks the step against the limits and against `operand_lens` (the element count of each
    /// operand's value, in the order of `operands`): the iteration shape's rank, the operand,
    /// register and store counts, every view read in range at every element inside its bounds,
    /// every register written before it is read, and a reduction that covers the iteration
    /// shape. Both executors index by these facts; an error names what is wrong.
    pub fn check(&self, operand_lens: &[usize]) -> Result<()> {
        let dims = self.shape.dims();
        let shape = &self.shape;
        if dims.len() > MAX_RANK {
            return Err(invalid(format!(
                "iteration shape {shape} has rank {}, more than {MAX_RANK}",
                dims.len()
            )));
        }
        if self.operands.len() > MAX_OPERANDS {
            return Err(invalid(format!(
                "{} operands, more than {MAX_OPERANDS}",
                self.operands.len()
            )));
        }
        if operand_lens.len() != self.operands.len() {
            return Err(invalid(format!(
                "{} operand lengths given for {} operands",
                operand_lens.len(),
                self.operands.len()
            )));
        }
        if self.stores.is_empty() || self.stores.len() > MAX_STORES {
            return Err(invalid(format!(
                "{} stores, expected 1 to {MAX_STORES}",
                self.stores.len()
            )));
        }
        let total = dims
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| invalid(format!("iteration shape {shape} overflows")))?;
        for (i, (view, &len)) in self.operands.iter().zip(operand_lens).enumerate() {
            check_view(i, view, dims, len, total)?;
        }
        self.check_program()?;
        if let Some(r) = self.reduction {
            let covered = r
                .outer
                .checked_mul(r.reduced)
                .and_then(|n| n.checked_mul(r.inner));
            if covered != Some(total) {
                return Err(invalid(format!(
                    "reduction [{}, {}, {}] does not cover the iteration shape {shape} \
                     ({total} elements)",
                    r.outer, r.reduced, r.inner
                )));
            }
        }
        Ok(())
    }

    fn check_program(&self) -> Result<()> {
        let mut written = [false; MAX_REGS];
        let reg = |r: u8, written: &[bool; MAX_REGS], at: usize| -> Result<()> {
            match written.get(usize::from(r)) {
                Some(true) => Ok(()),
                Some(false) => Err(invalid(format!(
                    "instruction {at} reads register {r} before it is written"
                ))),
                None => Err(invalid(format!(
                    "instruction {at} names register {r}, past {MAX_REGS}"
                ))),
            }
        };
        for (at, instr) in self.program.iter().enumerate() {
            let (dst, sources): (u8, Vec<u8>) = match *instr {
                Instr::Load { dst, operand } => {
                    if usize::from(operand) >= self.operands.len() {
                        return Err(invalid(format!(
                            "instruction {at} loads operand {operand} of {}",
                            self.operands.len()
                        )));
                    }
                    (dst, vec![])
                }
                Instr::Unary { dst, a, .. } => (dst, vec![a]),
                Instr::Binary { dst, a, b, .. } => (dst, vec![a, b]),
                Instr::Ternary { dst, a, b, c, .. } => (dst, vec![a, b, c]),
            };
            for s in sources {
                reg(s, &written, at)?;
            }
            let slot = written.get_mut(usize::from(dst)).ok_or_else(|| {
                invalid(format!(
                    "instruction {at} writes register {dst}, past {MAX_REGS}"
                ))
            })?;
            *slot = true;
        }
        for (i, store) in self.stores.iter().enumerate() {
            reg(store.reg, &written, self.program.len()).map_err(|_| {
                invalid(format!(
                    "store {i} reads register {}, which the program never writes",
                    store.reg
                ))
            })?;
        }
        Ok(())
    }
}

/// Every read of `view` inside its bounds lies in `0..len`.
fn check_view(
    i: usize,
    view: &OperandView,
    dims: &[usize],
    len: usize,
    total: usize,
) -> Result<()> {
    if view.strides.len() != dims.len() {
        return Err(invalid(format!(
            "operand {i} has {} strides for an iteration shape of rank {}",
            view.strides.len(),
            dims.len()
        )));
    }
    let ranges: Vec<(usize, usize)> = match &view.bounds {
        Some(b) if b.len() != dims.len() => {
            return Err(invalid(format!(
                "operand {i} has {} bounds for an iteration shape of rank {}",
                b.len(),
                dims.len()
            )))
        }
        Some(b) => {
            if let Some((d, &(lo, hi))) = b
                .iter()
                .enumerate()
                .find(|(d, &(lo, hi))| lo > hi || hi > dims[*d])
            {
                return Err(invalid(format!(
                    "operand {i}: bounds {lo}..{hi} on dimension {d} of length {}",
                    dims[d]
                )));
            }
            b.clone()
        }
        None => dims.iter().map(|&n| (0, n)).collect(),
    };
    if total == 0 || ranges.iter().any(|&(lo, hi)| lo == hi) {
        return Ok(());
    }
    let (mut min, mut max) = (i128::from(view.offset), i128::from(view.offset));
    for (&s, &(lo, hi)) in view.strides.iter().zip(&ranges) {
        let (a, b) = (i128::from(s) * lo as i128, i128::from(s) * (hi as i128 - 1));
        min += a.min(b);
        max += a.max(b);
    }
    if min < 0 || max >= len as i128 {
        return Err(invalid(format!(
            "operand {i} (value {}) reads indices {min}..={max} of a value of {len} elements",
            view.value
        )));
    }
    Ok(())
}
