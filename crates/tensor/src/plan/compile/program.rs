//! Register programs: a run of group members turned into one [`FusedStep`], with operands
//! deduplicated, registers reused by liveness and the iteration shape coalesced.

use std::collections::BTreeMap;

use crate::plan::compile::group::{Group, Member};
use crate::plan::compile::view;
use crate::plan::fused::{MAX_OPERANDS, MAX_RANK, MAX_REGS, MAX_STORES};
use crate::plan::{FusedStep, Instr, OperandView, Prim, Reg, Store, Trace, ValueId};
use crate::Shape;

/// Who reads each value in the compiled plan: trace step indices, and whether it is returned.
pub(super) struct Readers {
    pub steps: Vec<Vec<usize>>,
    pub output: Vec<bool>,
}

/// An instruction over virtual registers (one per value computed or loaded).
enum Virtual {
    Load(usize),
    Op(Prim, Vec<usize>),
}

/// The fused step evaluating `members` (a run of `group`'s members, in order): `Ok(None)` when
/// none of their values is read after them, `Err(())` when it would pass a limit.
#[allow(clippy::result_unit_err)]
pub(super) fn build(
    trace: &Trace,
    group: &Group,
    members: &[Member],
    readers: &Readers,
) -> Result<Option<FusedStep>, ()> {
    fits(trace, group, members, readers).ok_or(())
}

fn fits(
    trace: &Trace,
    group: &Group,
    members: &[Member],
    readers: &Readers,
) -> Option<Option<FusedStep>> {
    let inside: Vec<usize> = members.iter().map(|m| m.step).collect();
    let mut operands: Vec<OperandView> = Vec::new();
    let mut code: Vec<Virtual> = Vec::new();
    let mut vreg_of_value: BTreeMap<ValueId, usize> = BTreeMap::new();
    let mut vreg_of_operand: BTreeMap<usize, usize> = BTreeMap::new();
    let mut reduction = None;
    let mut reduced_store: Option<(usize, ValueId)> = None;
    for member in members {
        let step = trace.steps.get(member.step)?;
        let mut sources = Vec::with_capacity(member.views.len());
        for v in &member.views {
            let computed_here = vreg_of_value.get(&v.value).copied();
            let source = match computed_here {
                Some(r) if view::is_contiguous(v, &group.dims) => r,
                Some(_) => return None,
                None => {
                    let operand = match operands.iter().position(|o| o == v) {
                        Some(i) => i,
                        None => {
                            operands.push(v.clone());
                            operands.len() - 1
                        }
                    };
                    *vreg_of_operand.entry(operand).or_insert_with(|| {
                        code.push(Virtual::Load(operand));
                        code.len() - 1
                    })
                }
            };
            sources.push(source);
        }
        match member.reduction {
            Some(r) => {
                reduction = Some(r);
                reduced_store = Some((*sources.first()?, step.out));
            }
            None => {
                code.push(Virtual::Op(step.prim.clone(), sources));
                vreg_of_value.insert(step.out, code.len() - 1);
            }
        }
    }
    let mut stores: Vec<(usize, ValueId)> = vreg_of_value
        .iter()
        .filter(|(&value, _)| {
            readers.output.get(value).copied().unwrap_or(true)
                || readers
                    .steps
                    .get(value)
                    .is_none_or(|r| r.iter().any(|s| !inside.contains(s)))
        })
        .map(|(&value, &vreg)| (vreg, value))
        .collect();
    stores.sort_unstable();
    if let Some(store) = reduced_store {
        if !stores.is_empty() {
            return None;
        }
        stores.push(store);
    }
    if stores.is_empty() {
        return Some(None);
    }
    if stores.len() > MAX_STORES || operands.len() > MAX_OPERANDS {
        return None;
    }
    let (program, store_regs) = allocate(&code, &stores)?;
    let (dims, operands) = coalesce(&group.dims, operands);
    if dims.len() > MAX_RANK {
        return None;
    }
    Some(Some(FusedStep {
        dtype: group.dtype,
        shape: Shape::new(dims),
        operands,
        program,
        stores: store_regs
            .into_iter()
            .zip(&stores)
            .map(|(reg, &(_, value))| Store { reg, value })
            .collect(),
        reduction,
    }))
}

/// Physical registers for the virtual program: each register is freed after the last read of
/// its value (stored values live to the end) and reused, lowest first; a destination never
/// shares a register with its own sources. `None` past [`MAX_REGS`].
fn allocate(code: &[Virtual], stores: &[(usize, ValueId)]) -> Option<(Vec<Instr>, Vec<Reg>)> {
    let mut last_use: Vec<usize> = (0..code.len()).collect();
    for (i, instr) in code.iter().enumerate() {
        if let Virtual::Op(_, sources) = instr {
            for &s in sources {
                last_use[s] = i;
            }
        }
    }
    for &(vreg, _) in stores {
        last_use[vreg] = usize::MAX;
    }
    let mut free = [true; MAX_REGS];
    let mut phys: Vec<Reg> = vec![0; code.len()];
    let mut program = Vec::with_capacity(code.len());
    for (i, instr) in code.iter().enumerate() {
        let dst = free.iter().position(|&f| f)?;
        free[dst] = false;
        phys[i] = Reg::try_from(dst).ok()?;
        let dst = phys[i];
        program.push(match instr {
            Virtual::Load(operand) => Instr::Load {
                dst,
                operand: u8::try_from(*operand).ok()?,
            },
            Virtual::Op(prim, sources) => {
                let regs: Vec<Reg> = sources.iter().map(|&s| phys[s]).collect();
                match (prim, regs.as_slice()) {
                    (Prim::Unary(op), &[a]) => Instr::Unary { dst, op: *op, a },
                    (Prim::Binary(op, _), &[a, b]) => Instr::Binary { dst, op: *op, a, b },
                    (Prim::Ternary(op, _), &[a, b, c]) => Instr::Ternary {
                        dst,
                        op: *op,
                        a,
                        b,
                        c,
                    },
                    _ => return None,
                }
            }
        });
        if let Virtual::Op(_, sources) = instr {
            for &s in sources {
                if last_use[s] == i {
                    free[usize::from(phys[s])] = true;
                }
            }
        }
        if last_use[i] == i {
            free[usize::from(phys[i])] = true;
        }
    }
    let store_regs = stores.iter().map(|&(vreg, _)| phys[vreg]).collect();
    Some((program, store_regs))
}

/// The iteration shape without unit dimensions and with neighbours merged where every view
/// walks them as one (so loads run over long contiguous rows); at least one dimension.
fn coalesce(dims: &[usize], mut operands: Vec<OperandView>) -> (Vec<usize>, Vec<OperandView>) {
    let full = |o: &OperandView, d: usize| o.bounds.as_ref().is_none_or(|b| b[d] == (0, dims[d]));
    let mut kept: Vec<usize> = Vec::new();
    let mut merged_dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<i64>> = vec![Vec::new(); operands.len()];
    let mut bounds: Vec<Vec<(usize, usize)>> = vec![Vec::new(); operands.len()];
    for d in 0..dims.len() {
        if dims[d] == 1 && operands.iter().all(|o| full(o, d)) {
            continue;
        }
        let mergeable = match (kept.last(), merged_dims.last()) {
            (Some(_), Some(_)) => operands.iter().enumerate().all(|(i, o)| {
                let prev = *strides[i].last().unwrap_or(&0);
                let prev_full = bounds[i]
                    .last()
                    .is_none_or(|&(lo, hi)| lo == 0 && hi == *merged_dims.last().unwrap_or(&0));
                prev_full && full(o, d) && prev == o.strides[d] * dims[d] as i64
            }),
            _ => false,
        };
        if mergeable {
            let last = merged_dims.len() - 1;
            merged_dims[last] *= dims[d];
            for (i, o) in operands.iter().enumerate() {
                let l = strides[i].len() - 1;
                strides[i][l] = o.strides[d];
                bounds[i][l] = (0, merged_dims[last]);
            }
        } else {
            kept.push(d);
            merged_dims.push(dims[d]);
            for (i, o) in operands.iter().enumerate() {
                strides[i].push(o.strides[d]);
                bounds[i].push(o.bounds.as_ref().map_or((0, dims[d]), |b| b[d]));
            }
        }
    }
    if merged_dims.is_empty() {
        merged_dims.push(1);
        strides.iter_mut().for_each(|s| s.push(0));
        bounds.iter_mut().for_each(|b| b.push((0, 1)));
    }
    for ((o, s), b) in operands.iter_mut().zip(strides).zip(bounds) {
        let all_full = b
            .iter()
            .zip(&merged_dims)
            .all(|(&(lo, hi), &n)| lo == 0 && hi == n);
        o.strides = s;
        o.bounds = (!all_full).then_some(b);
    }
    (merged_dims, operands)
}
