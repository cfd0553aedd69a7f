//! A fused step: one pass over an iteration shape evaluating a small register program per
//! element: loads from strided operand views, elementwise ops from the op tables, stores (and an
//! optional sum over one axis). The CPU executor and the CUDA kernel `fused_eval_{dt}` run the
//! same program.

use crate::backend::{BinaryOp, TernaryOp, UnaryOp};
use crate::plan::ValueId;
use crate::storage::Storage;
use crate::{DType, Device, Result, Shape, Tensor, TensorError};

/// Most dimensions of a fused step's iteration shape.
pub const MAX_RANK: usize = 6;
/// Most registers of a fused step's program.
pub const MAX_REGS: usize = 32;
/// Most operands (loads from distinct views) of a fused step.
pub const MAX_OPERANDS: usize = 16;
/// Most outputs of a fused step.
pub const MAX_STORES: usize = 4;
/// Most instructions of a fused step's program.
pub const MAX_INSTRS: usize = 128;
/// Most distinct `(p0, p1)` parameter pairs of a program's unary ops.
pub const MAX_PARAMS: usize = 24;

/// The distinct parameter pairs of `program`'s unary ops, in first-use order (bitwise
/// distinct, so `-0.0` and `0.0` count as two).
pub fn param_pairs(program: &[Instr]) -> Vec<(f64, f64)> {
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for instr in program {
        if let Instr::Unary { op, .. } = instr {
            let pair = op.params();
            let known = pairs
                .iter()
                .any(|p| p.0.to_bits() == pair.0.to_bits() && p.1.to_bits() == pair.1.to_bits());
            if !known {
                pairs.push(pair);
            }
        }
    }
    pairs
}

/// A register of a fused program: one scalar per element.
pub type Reg = u8;

/// How a fused step reads one operand: element `i` of the iteration shape (multi-index
/// `(i_0, …)`) reads `value[offset + Σ_d i_d · strides[d]]`, or 0 when some `i_d` lies outside
/// `bounds[d]` (`lo ≤ i_d < hi`). A stride of 0 broadcasts; negative strides and offsets are
/// allowed when bounds keep every read in range. Narrow, permute, broadcast and zero padding
/// are all such views.
#[derive(Debug, Clone, PartialEq)]
pub struct OperandView {
    pub value: ValueId,
    pub offset: i64,
    pub strides: Vec<i64>,
    pub bounds: Option<Vec<(usize, usize)>>,
}

/// One instruction of a fused program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instr {
    /// `dst = operands[operand]` at the current element.
    Load {
        dst: Reg,
        operand: u8,
    },
    Unary {
        dst: Reg,
        op: UnaryOp,
        a: Reg,
    },
    Binary {
        dst: Reg,
        op: BinaryOp,
        a: Reg,
        b: Reg,
    },
    Ternary {
        dst: Reg,
        op: TernaryOp,
        a: Reg,
        b: Reg,
        c: Reg,
    },
}

/// Where a fused step writes register `reg`: the whole iteration shape into `value`, or, with a
/// [`Reduction`], its sums.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub reg: Reg,
    pub value: ValueId,
}

/// A sum over the middle axis of the iteration shape viewed as `[outer, reduced, inner]`: every
/// store of the step writes `[outer, inner]` sums, each summed in increasing index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduction {
    pub outer: usize,
    pub reduced: usize,
    pub inner: usize,
}

/// One fused pass: evaluate `program` at every element of `shape`, then store.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedStep {
    pub dtype: DType,
    pub shape: Shape,
    pub operands: Vec<OperandView>,
    pub program: Vec<Instr>,
    pub stores: Vec<Store>,
    pub reduction: Option<Reduction>,
}

impl FusedStep {
    /// The element count of each store's output: the iteration shape's, or `outer · inner`
    /// with a reduction.
    pub fn store_len(&self) -> usize {
        match self.reduction {
            Some(r) => r.outer * r.inner,
            None => self.shape.elem_count(),
        }
    }

    /// Evaluates the step on tensors: `operands[i]` holds the data of `self.operands[i].value`
    /// (flat, any shape). Returns one flat tensor per store.
    pub fn run(&self, operands: &[&Tensor]) -> Result<Vec<Tensor>> {
        let device = operands.first().map_or(Device::Cpu, |t| t.device());
        let data: Vec<&Storage> = operands.iter().map(|t| t.storage()).collect();
        let len = self.store_len();
        let mut outputs = self
            .stores
            .iter()
            .map(|_| Storage::uninit(device, self.dtype, len))
            .collect::<Result<Vec<_>>>()?;
        self.run_into(&data, &mut outputs)?;
        Ok(outputs
            .into_iter()
            .map(|s| Tensor::from_storage(s, Shape::new([len])))
            .collect())
    }

    /// Evaluates the step into `outputs` (one per store, in order, each already of the store's
    /// length: the iteration shape's element count, or `outer · inner` with a reduction).
    /// `operands[i]` is the data of `self.operands[i].value`. Every storage must be on one
    /// device with the step's dtype.
    pub(crate) fn run_into(&self, operands: &[&Storage], outputs: &mut [Storage]) -> Result<()> {
        match outputs.first() {
            Some(Storage::Cpu(_)) => crate::cpu::fused::run_into(self, operands, outputs),
            Some(Storage::Cuda(_)) => crate::cuda::fused::run_into(self, operands, outputs),
            None => Err(TensorError::InvalidArgument {
                op: "fused",
                msg: "a fused step needs at least one store".into(),
            }),
        }
    }
}
