//! The CPU executor of fused steps: the program runs over blocks of elements, each instruction
//! one tight loop over the block (the op tables' scalar formulas, through `apply_slice`), loads
//! gathering through the operand views. Tasks of a fixed size split the work between threads;
//! a reduction sums each output element in increasing index order, so results do not depend on
//! the number of threads.

use rayon::prelude::*;

use crate::backend::BackendStorage;
use crate::cpu::CpuStorage;
use crate::plan::fused::{MAX_RANK, MAX_REGS};
use crate::plan::{FusedStep, Instr, OperandView, Reduction};
use crate::storage::Storage;
use crate::{DType, Element, Result, TensorError};

/// Elements per block: every register holds one block.
const BLOCK: usize = 512;
/// Elements per parallel task.
const TASK: usize = 32 * BLOCK;
/// Columns per task when a reduction keeps long rows.
const TASK_COLUMNS: usize = 4 * BLOCK;

fn invalid(msg: String) -> TensorError {
    TensorError::InvalidArgument { op: "fused", msg }
}

/// Evaluates `step` on the CPU (see [`FusedStep::run_into`]).
pub(crate) fn run_into(
    step: &FusedStep,
    operands: &[&Storage],
    outputs: &mut [Storage],
) -> Result<()> {
    let inputs: Vec<&CpuStorage> = operands
        .iter()
        .map(|s| match s {
            Storage::Cpu(c) => Ok(c),
            Storage::Cuda(_) => Err(TensorError::DeviceMismatch {
                op: "fused",
                lhs: crate::Device::Cpu,
                rhs: s.device(),
            }),
        })
        .collect::<Result<_>>()?;
    let lens: Vec<usize> = inputs.iter().map(|s| s.len()).collect();
    step.check(&lens)?;
    if outputs.len() != step.stores.len() {
        return Err(invalid(format!(
            "{} outputs for {} stores",
            outputs.len(),
            step.stores.len()
        )));
    }
    let store_len = step.store_len();
    let mut outs: Vec<&mut CpuStorage> = Vec::with_capacity(outputs.len());
    for out in outputs.iter_mut() {
        match out {
            Storage::Cpu(c) if c.len() == store_len => outs.push(c),
            Storage::Cpu(c) => {
                return Err(invalid(format!(
                    "an output of {} elements for stores of {store_len}",
                    c.len()
                )))
            }
            Storage::Cuda(_) => {
                return Err(TensorError::DeviceMismatch {
                    op: "fused",
                    lhs: crate::Device::Cpu,
                    rhs: out.device(),
                })
            }
        }
    }
    let dtypes = inputs
        .iter()
        .map(|s| s.dtype())
        .chain(outs.iter().map(|s| s.dtype()));
    for dtype in dtypes {
        if dtype != step.dtype {
            return Err(TensorError::DTypeMismatch {
                op: "fused",
                lhs: step.dtype,
                rhs: dtype,
            });
        }
    }
    match step.dtype {
        DType::F32 => run_typed::<f32>(step, &inputs, &mut outs),
        DType::F64 => run_typed::<f64>(step, &inputs, &mut outs),
        DType::F16 | DType::BF16 => Err(TensorError::InvalidArgument {
            op: "fused",
            msg: format!("fused steps compute in f32 or f64, not {}", step.dtype),
        }),
    }
}

fn typed_mut<T: Element>(s: &mut CpuStorage) -> Option<&mut [T]> {
    if s.dtype() != T::DTYPE {
        return None;
    }
    match s {
        CpuStorage::F32(v) => bytemuck::try_cast_slice_mut(v.as_mut_slice()).ok(),
        CpuStorage::F64(v) => bytemuck::try_cast_slice_mut(v.as_mut_slice()).ok(),
        CpuStorage::F16(_) | CpuStorage::BF16(_) => None,
    }
}

fn run_typed<T: Element>(
    step: &FusedStep,
    inputs: &[&CpuStorage],
    outs: &mut [&mut CpuStorage],
) -> Result<()> {
    let data: Vec<&[T]> = inputs
        .iter()
        .map(|s| T::slice(s).ok_or_else(|| invalid("operand dtype".into())))
        .collect::<Result<_>>()?;
    let mut out_slices: Vec<&mut [T]> = Vec::with_capacity(outs.len());
    for o in outs.iter_mut() {
        let dtype = o.dtype();
        out_slices.push(typed_mut::<T>(o).ok_or(TensorError::DTypeMismatch {
            op: "fused",
            lhs: T::DTYPE,
            rhs: dtype,
        })?);
    }
    let exec = Executor::new(step, data);
    match step.reduction {
        None => exec.elementwise(out_slices),
        Some(r) => exec.reduce(r, out_slices),
    }
    Ok(())
}

/// An operand view prepared for block loads.
struct Load<'a, T> {
    data: &'a [T],
    offset: i64,
    strides: Vec<i64>,
    /// Per dimension `lo..hi` (the whole dimension when unbounded).
    bounds: Vec<(usize, usize)>,
    /// Reads `data[offset + flat index]`.
    contiguous: bool,
    /// The view without bounds as runs over merged dimensions (`None` when bounded).
    runs: Option<Runs>,
}

/// An unbounded view over the iteration shape with its size-1 dimensions dropped and adjacent
/// dimensions merged where one stride steps over the other's whole extent: the same reads, in
/// longer runs.
struct Runs {
    dims: Vec<usize>,
    strides: Vec<i64>,
    /// `(period, span)` when a dimension other than the innermost has stride 0: within each
    /// aligned stretch of `span` flat indices, element `i + period` reads what element `i` does.
    periodic: Option<(usize, usize)>,
}

impl Runs {
    fn new(dims: &[usize], strides: &[i64]) -> Runs {
        let mut merged: Vec<(usize, i64)> = Vec::with_capacity(dims.len().max(1));
        for (&n, &s) in dims.iter().zip(strides) {
            if n == 1 {
                continue;
            }
            match merged.last_mut() {
                Some(last) if last.1 == s.saturating_mul(n as i64) => {
                    last.0 = last.0.saturating_mul(n);
                    last.1 = s;
                }
                _ => merged.push((n, s)),
            }
        }
        if merged.is_empty() {
            merged.push((1, 0));
        }
        let (dims, strides): (Vec<usize>, Vec<i64>) = merged.into_iter().unzip();
        let inner = dims.len() - 1;
        let periodic = (0..inner).rev().find(|&d| strides[d] == 0).and_then(|d| {
            let period: usize = dims[d + 1..].iter().product();
            (0 < period && period < BLOCK).then(|| (period, period.saturating_mul(dims[d])))
        });
        Runs {
            dims,
            strides,
            periodic,
        }
    }
}

struct Executor<'a, T> {
    step: &'a FusedStep,
    dims: Vec<usize>,
    loads: Vec<Load<'a, T>>,
    regs: usize,
}

/// The registers and scratch of one task. A register loaded from a contiguous operand borrows
/// the operand's elements instead of holding a copy.
struct Registers<'a, T> {
    regs: Vec<Vec<T>>,
    borrowed: Vec<Option<&'a [T]>>,
    scratch: [Vec<T>; 3],
}

impl<'a, T: Element> Registers<'a, T> {
    fn new(count: usize) -> Self {
        Registers {
            regs: (0..count).map(|_| vec![T::zero(); BLOCK]).collect(),
            borrowed: vec![None; count],
            scratch: std::array::from_fn(|_| vec![T::zero(); BLOCK]),
        }
    }

    /// The first `len` elements of register `reg`.
    fn get(&self, reg: u8, len: usize) -> &[T] {
        let i = usize::from(reg);
        match self.borrowed[i] {
            Some(b) => &b[..len],
            None => &self.regs[i][..len],
        }
    }
}

impl<'a, T: Element> Executor<'a, T> {
    fn new(step: &'a FusedStep, data: Vec<&'a [T]>) -> Self {
        let dims = step.shape.dims().to_vec();
        let row_major = {
            let mut s = vec![0i64; dims.len()];
            let mut acc = 1i64;
            for (s, &n) in s.iter_mut().zip(&dims).rev() {
                *s = acc;
                acc = acc.saturating_mul(n as i64);
            }
            s
        };
        let loads = step
            .operands
            .iter()
            .zip(data)
            .map(|(v, data): (&OperandView, _)| {
                let bounds = v
                    .bounds
                    .clone()
                    .unwrap_or_else(|| dims.iter().map(|&n| (0, n)).collect());
                let full = bounds
                    .iter()
                    .zip(&dims)
                    .all(|(&(lo, hi), &n)| lo == 0 && hi == n);
                let contiguous = full
                    && v.offset >= 0
                    && v.strides
                        .iter()
                        .zip(&row_major)
                        .zip(&dims)
                        .all(|((a, b), &n)| n <= 1 || a == b);
                let runs = full.then(|| Runs::new(&dims, &v.strides));
                Load {
                    data,
                    offset: v.offset,
                    strides: v.strides.clone(),
                    bounds,
                    contiguous,
                    runs,
                }
            })
            .collect();
        let regs = step
            .program
            .iter()
            .map(|i| match *i {
                Instr::Load { dst, .. }
                | Instr::Unary { dst, .. }
                | Instr::Binary { dst, .. }
                | Instr::Ternary { dst, .. } => usize::from(dst) + 1,
            })
            .max()
            .unwrap_or(0)
            .min(MAX_REGS);
        Executor {
            step,
            dims,
            loads,
            regs,
        }
    }

    fn total(&self) -> usize {
        self.dims.iter().product()
    }

    /// Runs the program on the `len` elements from flat index `start` (`len ≤ BLOCK`).
    fn block(&self, r: &mut Registers<'a, T>, start: usize, len: usize) {
        for instr in &self.step.program {
            match *instr {
                Instr::Load { dst, operand } => {
                    let load = &self.loads[usize::from(operand)];
                    let d = usize::from(dst);
                    if load.contiguous {
                        let from = load.offset as usize + start;
                        r.borrowed[d] = Some(&load.data[from..from + len]);
                    } else {
                        r.borrowed[d] = None;
                        self.load(load, start, &mut r.regs[d][..len]);
                    }
                }
                Instr::Unary { dst, op, a } => {
                    with_sources(r, dst, [a], len, |[x], out| op.apply_slice(x, out))
                }
                Instr::Binary { dst, op, a, b } => {
                    with_sources(r, dst, [a, b], len, |[x, y], out| op.apply_slice(x, y, out))
                }
                Instr::Ternary { dst, op, a, b, c } => {
                    with_sources(r, dst, [a, b, c], len, |[x, y, z], out| {
                        op.apply_slice(x, y, z, out)
                    })
                }
            }
        }
    }

    /// Gathers `out.len()` elements of `load` from flat index `start` of the iteration shape.
    fn load(&self, load: &Load<'_, T>, start: usize, out: &mut [T]) {
        if load.contiguous {
            let from = load.offset as usize + start;
            out.copy_from_slice(&load.data[from..from + out.len()]);
            return;
        }
        if let Some(runs) = &load.runs {
            match runs.periodic {
                Some((period, span)) => load_periodic(load, runs, period, span, start, out),
                None => load_runs(load, runs, start, out),
            }
            return;
        }
        let rank = self.dims.len();
        let mut idx = [0usize; MAX_RANK];
        let mut rest = start;
        for d in (0..rank).rev() {
            idx[d] = rest % self.dims[d];
            rest /= self.dims[d];
        }
        let inner = rank - 1;
        let (lo, hi) = load.bounds[inner];
        let s = load.strides[inner];
        let mut done = 0;
        while done < out.len() {
            let run = (self.dims[inner] - idx[inner]).min(out.len() - done);
            let row = &mut out[done..done + run];
            let outer_inside = (0..inner).all(|d| {
                let (l, h) = load.bounds[d];
                l <= idx[d] && idx[d] < h
            });
            if outer_inside {
                let base = load.offset
                    + (0..inner)
                        .map(|d| idx[d] as i64 * load.strides[d])
                        .sum::<i64>();
                let first = idx[inner];
                // Positions of the run inside lo..hi.
                let a = lo.clamp(first, first + run) - first;
                let b = hi.clamp(first, first + run) - first;
                if a > 0 {
                    row[..a].fill(T::zero());
                }
                if b < run {
                    row[b..].fill(T::zero());
                }
                let at = |j: usize| (base + (first + j) as i64 * s) as usize;
                match s {
                    0 if a < b => row[a..b].fill(load.data[at(a)]),
                    1 if a < b => row[a..b].copy_from_slice(&load.data[at(a)..at(a) + (b - a)]),
                    _ => row[a..b]
                        .iter_mut()
                        .enumerate()
                        .for_each(|(j, o)| *o = load.data[at(a + j)]),
                }
            } else {
                row.fill(T::zero());
            }
            done += run;
            idx[inner] += run;
            for d in (1..rank).rev() {
                if idx[d] < self.dims[d] {
                    break;
                }
                idx[d] = 0;
                idx[d - 1] += 1;
            }
        }
    }

    /// Every element of the iteration shape, stored.
    fn elementwise(&self, outs: Vec<&mut [T]>) {
        let total = self.total();
        let lens = chunk_lens(total, TASK);
        let tasks = split_outputs(outs, &lens);
        let run = |(t, mut outs): (usize, Vec<&mut [T]>)| {
            let mut r = Registers::new(self.regs);
            let task_start = t * TASK;
            let task_len = outs.first().map_or(0, |o| o.len());
            let mut done = 0;
            while done < task_len {
                let len = BLOCK.min(task_len - done);
                self.block(&mut r, task_start + done, len);
                for (store, out) in self.step.stores.iter().zip(outs.iter_mut()) {
                    out[done..done + len].copy_from_slice(r.get(store.reg, len));
                }
                done += len;
            }
        };
        if tasks.len() > 1 {
            tasks.into_par_iter().enumerate().for_each(run);
        } else {
            tasks.into_iter().enumerate().for_each(run);
        }
    }

    /// The sums of `reduction` for every store: each output element sums its terms in
    /// increasing index along the reduced axis, starting from 0.
    fn reduce(&self, reduction: Reduction, outs: Vec<&mut [T]>) {
        let Reduction {
            outer,
            reduced,
            inner,
        } = reduction;
        let mut outs = outs;
        outs.iter_mut().for_each(|o| o.fill(T::zero()));
        if outer == 0 || inner == 0 {
            return;
        }
        // Tasks own disjoint outputs: row ranges with whole rows, or column ranges of one row.
        let split_columns = inner >= 2 * TASK_COLUMNS;
        let lens = if split_columns {
            (0..outer)
                .flat_map(|_| chunk_lens(inner, TASK_COLUMNS))
                .collect::<Vec<_>>()
        } else {
            let row_work = reduced.max(1).saturating_mul(inner);
            let rows = (TASK / row_work).max(1);
            chunk_lens(outer, rows)
                .into_iter()
                .map(|r| r * inner)
                .collect()
        };
        let starts: Vec<usize> = lens
            .iter()
            .scan(0usize, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            })
            .collect();
        let tasks = split_outputs(outs, &lens);
        let run = |(t, mut outs): (usize, Vec<&mut [T]>)| {
            let mut r = Registers::new(self.regs);
            let first = starts[t];
            let count = lens[t];
            if split_columns {
                let (o, i0) = (first / inner, first % inner);
                for k in 0..reduced {
                    let row = (o * reduced + k) * inner + i0;
                    self.accumulate(&mut r, &mut outs, row, count, |j| j);
                }
            } else {
                let o0 = first / inner;
                for o in o0..o0 + count / inner {
                    let base = (o - o0) * inner;
                    let from = o * reduced * inner;
                    self.accumulate(&mut r, &mut outs, from, reduced * inner, |j| {
                        base + j % inner
                    });
                }
            }
        };
        if tasks.len() > 1 {
            tasks.into_par_iter().enumerate().for_each(run);
        } else {
            tasks.into_iter().enumerate().for_each(run);
        }
    }

    /// Evaluates the `len` elements from flat index `from` and adds element `j` into
    /// `outs[..][slot(j)]`, in order of `j`.
    fn accumulate(
        &self,
        r: &mut Registers<'a, T>,
        outs: &mut [&mut [T]],
        from: usize,
        len: usize,
        slot: impl Fn(usize) -> usize,
    ) {
        let mut done = 0;
        while done < len {
            let n = BLOCK.min(len - done);
            self.block(r, from + done, n);
            for (store, out) in self.step.stores.iter().zip(outs.iter_mut()) {
                let values = r.get(store.reg, n);
                for (j, &v) in values.iter().enumerate() {
                    let at = slot(done + j);
                    out[at] = out[at] + v;
                }
            }
            done += n;
        }
    }
}

/// Gathers `out.len()` elements of an unbounded view from flat index `start`, one run of the
/// innermost merged dimension at a time.
fn load_runs<T: Element>(load: &Load<'_, T>, runs: &Runs, start: usize, out: &mut [T]) {
    let rank = runs.dims.len();
    let inner = rank - 1;
    let mut idx = [0usize; MAX_RANK];
    let mut rest = start;
    for d in (0..rank).rev() {
        idx[d] = rest % runs.dims[d];
        rest /= runs.dims[d];
    }
    let s = runs.strides[inner];
    let mut done = 0;
    while done < out.len() {
        let run = (runs.dims[inner] - idx[inner]).min(out.len() - done);
        let row = &mut out[done..done + run];
        let base = load.offset
            + (0..rank)
                .map(|d| idx[d] as i64 * runs.strides[d])
                .sum::<i64>();
        let at = |j: usize| (base + j as i64 * s) as usize;
        match s {
            0 => row.fill(load.data[at(0)]),
            1 => row.copy_from_slice(&load.data[at(0)..at(0) + run]),
            _ => row
                .iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = load.data[at(j)]),
        }
        done += run;
        idx[inner] += run;
        for d in (1..rank).rev() {
            if idx[d] < runs.dims[d] {
                break;
            }
            idx[d] = 0;
            idx[d - 1] += 1;
        }
    }
}

/// [`load_runs`] for a view that repeats with `period` inside aligned stretches of `span`:
/// each stretch gathers its first period and copies it forward, doubling.
fn load_periodic<T: Element>(
    load: &Load<'_, T>,
    runs: &Runs,
    period: usize,
    span: usize,
    start: usize,
    out: &mut [T],
) {
    let mut done = 0;
    while done < out.len() {
        let i = start + done;
        let stretch = (span - i % span).min(out.len() - done);
        let first = period.min(stretch);
        load_runs(load, runs, i, &mut out[done..done + first]);
        let mut filled = first;
        while filled < stretch {
            let n = filled.min(stretch - filled);
            out.copy_within(done..done + n, done + filled);
            filled += n;
        }
        done += stretch;
    }
}

/// Runs `f(sources, dst)` on the first `len` elements of the registers; a source that is also
/// the destination is read from a copy.
fn with_sources<'a, T: Element, const N: usize>(
    r: &mut Registers<'a, T>,
    dst: u8,
    sources: [u8; N],
    len: usize,
    f: impl FnOnce([&[T]; N], &mut [T]),
) {
    let d = usize::from(dst);
    let mut out = std::mem::take(&mut r.regs[d]);
    let dst_owned = r.borrowed[d].is_none();
    for (k, &s) in sources.iter().enumerate() {
        if s == dst && dst_owned {
            r.scratch[k][..len].copy_from_slice(&out[..len]);
        }
    }
    let regs = &r.regs;
    let borrowed = &r.borrowed;
    let scratch = &r.scratch;
    let srcs: [&[T]; N] = std::array::from_fn(|k| {
        let s = usize::from(sources[k]);
        match borrowed[s] {
            Some(b) => &b[..len],
            None if sources[k] == dst => &scratch[k][..len],
            None => &regs[s][..len],
        }
    });
    f(srcs, &mut out[..len]);
    r.regs[d] = out;
    r.borrowed[d] = None;
}

/// `total` cut into pieces of `size` (the last shorter).
fn chunk_lens(total: usize, size: usize) -> Vec<usize> {
    let mut lens = Vec::with_capacity(total.div_ceil(size.max(1)));
    let mut left = total;
    while left > 0 {
        let n = left.min(size);
        lens.push(n);
        left -= n;
    }
    if lens.is_empty() {
        lens.push(0);
    }
    lens
}

/// Each output cut at `lens`, regrouped per piece: piece `t` holds every output's `t`-th part.
fn split_outputs<'o, T>(outs: Vec<&'o mut [T]>, lens: &[usize]) -> Vec<Vec<&'o mut [T]>> {
    let mut tasks: Vec<Vec<&'o mut [T]>> = lens.iter().map(|_| Vec::new()).collect();
    for out in outs {
        let mut rest = out;
        for (task, &len) in tasks.iter_mut().zip(lens) {
            let n = len.min(rest.len());
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            task.push(head);
            rest = tail;
        }
    }
    tasks
}
