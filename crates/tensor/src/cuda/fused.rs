//! The CUDA executor of fused steps: one launch of `fused_eval_{dt}` (`kernels/fused.cu`) per
//! step, the whole step passed by value as the kernel's parameter struct (no upload), outputs
//! written in place (no allocation, no zeroing).
//!
//! The step is checked completely before it is packed (every operand index, register, op code,
//! view and length), so the kernel never reads or writes outside its buffers.

use std::sync::OnceLock;

use curvature_kernels::{elementwise_op_names, geometry, KernelArg, Launch, OpArity, StructArg};

use super::{kernels, CudaStorage};
pub use crate::plan::fused::{MAX_INSTRS, MAX_PARAMS};
use crate::plan::fused::{MAX_OPERANDS, MAX_RANK, MAX_REGS, MAX_STORES};
use crate::plan::{FusedStep, Instr, OperandView, Reduction};
use crate::storage::Storage;
use crate::{BinaryOp, Result, TensorError, TernaryOp, UnaryOp};

/// The byte layout of `struct cv_fused_args` (`kernels/fused.cu`).
mod layout {
    use super::{MAX_INSTRS, MAX_OPERANDS, MAX_PARAMS, MAX_RANK, MAX_STORES};

    pub const OUT: usize = 0;
    pub const DIMS: usize = OUT + 8 * MAX_STORES;
    pub const N: usize = DIMS + 8 * MAX_RANK;
    pub const OUTER: usize = N + 8;
    pub const REDUCED: usize = OUTER + 8;
    pub const INNER: usize = REDUCED + 8;
    pub const RANK: usize = INNER + 8;
    pub const N_INSTRS: usize = RANK + 4;
    pub const N_STORES: usize = N_INSTRS + 4;
    pub const BOUNDED: usize = N_STORES + 4;
    pub const REDUCE: usize = BOUNDED + 4;
    pub const STORE_REGS: usize = REDUCE + 4;
    pub const PARAMS: usize = STORE_REGS + MAX_STORES;
    pub const VIEWS: usize = PARAMS + 16 * MAX_PARAMS;
    /// `struct cv_fused_view`: data, offset, strides, lo, hi.
    pub const VIEW_BYTES: usize = 16 + 8 * MAX_RANK + 8 * MAX_RANK;
    pub const VIEW_OFFSET: usize = 8;
    pub const VIEW_STRIDES: usize = 16;
    pub const VIEW_LO: usize = VIEW_STRIDES + 8 * MAX_RANK;
    pub const VIEW_HI: usize = VIEW_LO + 4 * MAX_RANK;
    pub const PROGRAM: usize = VIEWS + VIEW_BYTES * MAX_OPERANDS;
    pub const INSTR_BYTES: usize = 8;
    pub const TOTAL: usize = PROGRAM + INSTR_BYTES * MAX_INSTRS;

    // The sizes `kernels/fused.cu` asserts (the emulated GPU also checks the struct's size at
    // every launch), within CUDA's parameter limit.
    const _: () = assert!(VIEW_BYTES == 112 && TOTAL == 3336);
    const _: () = assert!(TOTAL <= curvature_kernels::StructArg::MAX_BYTES);
}

/// Instruction kinds (`CV_FUSED_LOAD`, …).
const LOAD: u8 = 0;
const UNARY: u8 = 1;
const BINARY: u8 = 2;
const TERNARY: u8 = 3;

/// Evaluates `step` on its GPU (see [`FusedStep::run_into`]).
pub(crate) fn run_into(
    step: &FusedStep,
    operands: &[&Storage],
    outputs: &mut [Storage],
) -> Result<()> {
    let operands = cuda_storages(step, operands.iter().copied(), "operand")?;
    let outputs = cuda_storages(step, outputs.iter(), "output")?;
    check_buffers(step, &operands, &outputs)?;
    let n = check_shape(step)?;
    let bytes = pack(step, n, &operands)?;
    let Some(first) = outputs.first() else {
        return Err(refuse(step, "it has no store".into()));
    };
    if step.store_len() == 0 {
        return Ok(());
    }
    let mut args = StructArg::new(bytes)?;
    for (s, out) in outputs.iter().enumerate() {
        args.set_pointer(layout::OUT + 8 * s, &out.buffer, 0)?;
    }
    for (k, operand) in operands.iter().enumerate() {
        args.set_pointer(layout::VIEWS + layout::VIEW_BYTES * k, &operand.buffer, 0)?;
    }
    let geometry = match step.reduction {
        None => geometry::launch_1d(n),
        Some(r) => reduce_launch(r),
    };
    first.launch(Launch::new(kernels::fused(step.dtype), geometry).arg(KernelArg::Struct(&args)))
}

/// The launch of a reduction: a block of `geometry::BLOCK_1D` threads, `bx` along `inner`
/// (coalesced when it is wide) and the rest along the reduced axis; a grid over the output
/// tiles.
fn reduce_launch(r: Reduction) -> ((u32, u32, u32), (u32, u32, u32)) {
    let bx: u32 = if r.inner >= 32 {
        32
    } else {
        (r.inner.max(1) as u32).next_power_of_two()
    };
    let tiles = (r.outer as u64).saturating_mul((r.inner as u64).div_ceil(u64::from(bx)));
    let blocks = tiles.clamp(1, 65_535) as u32;
    ((blocks, 1, 1), (bx, geometry::BLOCK_1D / bx, 1))
}

/// The error for a step the kernel cannot run, naming its shape and dtype.
fn refuse(step: &FusedStep, msg: String) -> TensorError {
    TensorError::InvalidArgument {
        op: "fused",
        msg: format!(
            "CUDA fused step over {} ({}): {msg}",
            step.shape, step.dtype
        ),
    }
}

/// The CUDA storages of `storages` (operands or outputs), each of the step's dtype.
fn cuda_storages<'s>(
    step: &FusedStep,
    storages: impl Iterator<Item = &'s Storage>,
    what: &str,
) -> Result<Vec<&'s CudaStorage>> {
    storages
        .enumerate()
        .map(|(i, s)| match s {
            Storage::Cuda(c) if c.dtype == step.dtype => Ok(c),
            Storage::Cuda(c) => Err(refuse(
                step,
                format!(
                    "{what} {i} holds {}, the step computes in {}",
                    c.dtype, step.dtype
                ),
            )),
            Storage::Cpu(_) => Err(refuse(step, format!("{what} {i} is on the CPU"))),
        })
        .collect()
}

/// Counts, lengths, one GPU, and no output sharing memory with an operand or another output.
fn check_buffers(
    step: &FusedStep,
    operands: &[&CudaStorage],
    outputs: &[&CudaStorage],
) -> Result<()> {
    if operands.len() != step.operands.len() {
        return Err(refuse(
            step,
            format!(
                "{} operand storages for {} operand views",
                operands.len(),
                step.operands.len()
            ),
        ));
    }
    if outputs.len() != step.stores.len() {
        return Err(refuse(
            step,
            format!("{} outputs for {} stores", outputs.len(), step.stores.len()),
        ));
    }
    if step.stores.is_empty() || step.stores.len() > MAX_STORES {
        return Err(refuse(
            step,
            format!("{} stores (1 to {MAX_STORES})", step.stores.len()),
        ));
    }
    if step.operands.len() > MAX_OPERANDS {
        return Err(refuse(
            step,
            format!("{} operands (at most {MAX_OPERANDS})", step.operands.len()),
        ));
    }
    let len = step.store_len();
    let ordinal = outputs[0].ordinal();
    for (i, out) in outputs.iter().enumerate() {
        if out.len != len {
            return Err(refuse(
                step,
                format!(
                    "output {i} has {} elements, the store writes {len}",
                    out.len
                ),
            ));
        }
        for (j, other) in outputs[..i].iter().enumerate() {
            if std::sync::Arc::ptr_eq(&out.buffer, &other.buffer) {
                return Err(refuse(step, format!("outputs {j} and {i} share memory")));
            }
        }
        for (j, operand) in operands.iter().enumerate() {
            if std::sync::Arc::ptr_eq(&out.buffer, &operand.buffer) {
                return Err(refuse(
                    step,
                    format!("output {i} shares memory with operand {j}"),
                ));
            }
        }
    }
    for s in operands.iter().chain(outputs) {
        if s.ordinal() != ordinal {
            return Err(TensorError::DeviceMismatch {
                op: "fused",
                lhs: crate::Device::Cuda(ordinal),
                rhs: crate::Device::Cuda(s.ordinal()),
            });
        }
    }
    Ok(())
}

/// The iteration shape's element count, after checking the rank and the reduction.
fn check_shape(step: &FusedStep) -> Result<usize> {
    let dims = step.shape.dims();
    if dims.len() > MAX_RANK {
        return Err(refuse(
            step,
            format!("rank {} (at most {MAX_RANK})", dims.len()),
        ));
    }
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| refuse(step, "the element count overflows".into()))?;
    if let Some(r) = step.reduction {
        let product = r
            .outer
            .checked_mul(r.reduced)
            .and_then(|p| p.checked_mul(r.inner));
        if product != Some(n) {
            return Err(refuse(
                step,
                format!(
                    "reduction [{}, {}, {}] does not cover the {n} elements",
                    r.outer, r.reduced, r.inner
                ),
            ));
        }
    }
    Ok(n)
}

/// The op codes of one arity: each op's position in its list in `elementwise_ops.cuh`.
fn op_code(arity: OpArity, name: &str) -> Option<u8> {
    static TABLES: OnceLock<[Vec<&'static str>; 3]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        [
            elementwise_op_names(OpArity::Unary),
            elementwise_op_names(OpArity::Binary),
            elementwise_op_names(OpArity::Ternary),
        ]
    });
    let table = match arity {
        OpArity::Unary => &tables[0],
        OpArity::Binary => &tables[1],
        OpArity::Ternary => &tables[2],
    };
    table
        .iter()
        .position(|&n| n == name)
        .and_then(|p| u8::try_from(p).ok())
}

/// The kernel's code of each op.
pub(crate) fn unary_code(op: UnaryOp) -> Option<u8> {
    op_code(OpArity::Unary, op.name())
}

/// See [`unary_code`].
pub(crate) fn binary_code(op: BinaryOp) -> Option<u8> {
    op_code(OpArity::Binary, op.name())
}

/// See [`unary_code`].
pub(crate) fn ternary_code(op: TernaryOp) -> Option<u8> {
    op_code(OpArity::Ternary, op.name())
}

/// Writes little helpers' values into the parameter bytes.
struct Writer(Vec<u8>);

impl Writer {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn i64(&mut self, at: usize, v: i64) {
        self.put(at, &v.to_ne_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_ne_bytes());
    }
    fn f64(&mut self, at: usize, v: f64) {
        self.put(at, &v.to_ne_bytes());
    }
}

/// The parameter bytes of `step` (pointers left 0: the runtime writes them), after checking
/// the program and the views.
fn pack(step: &FusedStep, n: usize, operands: &[&CudaStorage]) -> Result<Vec<u8>> {
    let dims = step.shape.dims();
    let mut w = Writer(vec![0; layout::TOTAL]);
    for (d, &dim) in dims.iter().enumerate() {
        w.i64(layout::DIMS + 8 * d, to_i64(step, dim)?);
    }
    w.i64(layout::N, to_i64(step, n)?);
    if let Some(r) = step.reduction {
        w.i64(layout::OUTER, to_i64(step, r.outer)?);
        w.i64(layout::REDUCED, to_i64(step, r.reduced)?);
        w.i64(layout::INNER, to_i64(step, r.inner)?);
        w.u32(layout::REDUCE, 1);
    }
    // Counts below MAX_RANK, MAX_INSTRS and MAX_STORES (checked) fit u32.
    w.u32(layout::RANK, dims.len() as u32);
    w.u32(layout::N_STORES, step.stores.len() as u32);
    let params = pack_program(step, &mut w)?;
    for (i, (p0, p1)) in params.iter().enumerate() {
        w.f64(layout::PARAMS + 16 * i, *p0);
        w.f64(layout::PARAMS + 16 * i + 8, *p1);
    }
    let mut bounded = 0u32;
    for (k, (view, storage)) in step.operands.iter().zip(operands).enumerate() {
        let at = layout::VIEWS + layout::VIEW_BYTES * k;
        if pack_view(step, k, view, storage.len, at, &mut w)? {
            bounded |= 1 << k;
        }
    }
    w.u32(layout::BOUNDED, bounded);
    Ok(w.0)
}

fn to_i64(step: &FusedStep, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| refuse(step, format!("{v} does not fit a 64-bit index")))
}

/// Checks and writes the program and the stores' registers; returns the parameter pairs.
fn pack_program(step: &FusedStep, w: &mut Writer) -> Result<Vec<(f64, f64)>> {
    if step.program.is_empty() || step.program.len() > MAX_INSTRS {
        return Err(refuse(
            step,
            format!(
                "a program of {} instructions (1 to {MAX_INSTRS})",
                step.program.len()
            ),
        ));
    }
    let mut written = [false; MAX_REGS];
    let reg = |r: u8, written: &[bool; MAX_REGS], k: usize| -> Result<u8> {
        match written.get(usize::from(r)) {
            Some(true) => Ok(r),
            Some(false) => Err(refuse(
                step,
                format!("instruction {k} reads register {r} before it is written"),
            )),
            None => Err(refuse(
                step,
                format!("instruction {k} names register {r} (at most {MAX_REGS} registers)"),
            )),
        }
    };
    let mut params: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    w.u32(layout::N_INSTRS, step.program.len() as u32);
    for (k, instr) in step.program.iter().enumerate() {
        let (kind, op, dst, a, b, c, param) = match *instr {
            Instr::Load { dst, operand } => {
                if usize::from(operand) >= step.operands.len() {
                    return Err(refuse(
                        step,
                        format!(
                            "instruction {k} loads operand {operand} of {}",
                            step.operands.len()
                        ),
                    ));
                }
                (LOAD, operand, dst, 0, 0, 0, 0)
            }
            Instr::Unary { dst, op, a } => {
                let code = unary_code(op).ok_or_else(|| unknown(step, op.name()))?;
                let pair = op.params();
                let slot = match params.iter().position(|p| {
                    p.0.to_bits() == pair.0.to_bits() && p.1.to_bits() == pair.1.to_bits()
                }) {
                    Some(slot) => slot,
                    None if params.len() < MAX_PARAMS => {
                        params.push(pair);
                        params.len() - 1
                    }
                    None => {
                        return Err(refuse(
                            step,
                            format!(
                            "more than {MAX_PARAMS} distinct op parameter pairs (instruction {k})"
                        ),
                        ))
                    }
                };
                let a = reg(a, &written, k)?;
                // `slot < MAX_PARAMS` fits u8.
                (UNARY, code, dst, a, 0, 0, slot as u8)
            }
            Instr::Binary { dst, op, a, b } => {
                let code = binary_code(op).ok_or_else(|| unknown(step, op.name()))?;
                (
                    BINARY,
                    code,
                    dst,
                    reg(a, &written, k)?,
                    reg(b, &written, k)?,
                    0,
                    0,
                )
            }
            Instr::Ternary { dst, op, a, b, c } => {
                let code = ternary_code(op).ok_or_else(|| unknown(step, op.name()))?;
                (
                    TERNARY,
                    code,
                    dst,
                    reg(a, &written, k)?,
                    reg(b, &written, k)?,
                    reg(c, &written, k)?,
                    0,
                )
            }
        };
        match written.get_mut(usize::from(dst)) {
            Some(slot) => *slot = true,
            None => {
                return Err(refuse(
                    step,
                    format!("instruction {k} writes register {dst} (at most {MAX_REGS} registers)"),
                ))
            }
        }
        w.put(
            layout::PROGRAM + layout::INSTR_BYTES * k,
            &[kind, op, dst, a, b, c, param, 0],
        );
    }
    for (s, store) in step.stores.iter().enumerate() {
        let r = reg(store.reg, &written, step.program.len()).map_err(|_| {
            refuse(
                step,
                format!(
                    "store {s} reads register {}, which no instruction writes",
                    store.reg
                ),
            )
        })?;
        w.put(layout::STORE_REGS + s, &[r]);
    }
    Ok(params)
}

fn unknown(step: &FusedStep, name: &str) -> TensorError {
    refuse(
        step,
        format!("op `{name}` has no code in kernels/elementwise_ops.cuh"),
    )
}

/// Checks and writes view `k` (reading a value of `len` elements) at byte `at`; returns
/// whether it has bounds.
fn pack_view(
    step: &FusedStep,
    k: usize,
    view: &OperandView,
    len: usize,
    at: usize,
    w: &mut Writer,
) -> Result<bool> {
    let dims = step.shape.dims();
    let rank = dims.len();
    if view.strides.len() != rank {
        return Err(refuse(
            step,
            format!(
                "operand {k} has {} strides for rank {rank}",
                view.strides.len()
            ),
        ));
    }
    if let Some(bounds) = &view.bounds {
        if bounds.len() != rank {
            return Err(refuse(
                step,
                format!("operand {k} has {} bounds for rank {rank}", bounds.len()),
            ));
        }
    }
    // The index range each dimension reads: [lo, hi) clipped to [0, dim).
    let mut ranges = Vec::with_capacity(rank);
    for (d, &dim) in dims.iter().enumerate() {
        let (lo, hi) = match &view.bounds {
            Some(b) => (b[d].0.min(dim), b[d].1.min(dim)),
            None => (0, dim),
        };
        if view.bounds.is_some() && u32::try_from(hi).is_err() {
            return Err(refuse(
                step,
                format!("operand {k}'s bound {hi} on dimension {d} exceeds 2^32 − 1"),
            ));
        }
        ranges.push((lo, hi));
    }
    // Every element read lies in the value: the smallest and largest offsets over the region.
    if ranges.iter().all(|&(lo, hi)| lo < hi) {
        let mut min = i128::from(view.offset);
        let mut max = i128::from(view.offset);
        for (&(lo, hi), &stride) in ranges.iter().zip(&view.strides) {
            let (a, b) = (
                lo as i128 * i128::from(stride),
                (hi as i128 - 1) * i128::from(stride),
            );
            min += a.min(b);
            max += a.max(b);
        }
        if min < 0 || max >= len as i128 {
            return Err(refuse(
                step,
                format!("operand {k} reads offsets {min}..={max} of a value of {len} elements"),
            ));
        }
    }
    w.i64(at + layout::VIEW_OFFSET, view.offset);
    for (d, &stride) in view.strides.iter().enumerate() {
        w.i64(at + layout::VIEW_STRIDES + 8 * d, stride);
    }
    for (d, &(lo, hi)) in ranges.iter().enumerate() {
        // Both fit u32: checked above for bounded views; unbounded views skip the check.
        w.u32(at + layout::VIEW_LO + 4 * d, u32::try_from(lo).unwrap_or(0));
        w.u32(
            at + layout::VIEW_HI + 4 * d,
            u32::try_from(hi).unwrap_or(u32::MAX),
        );
    }
    Ok(view.bounds.is_some())
}
