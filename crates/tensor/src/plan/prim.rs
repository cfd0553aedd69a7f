//! [`Prim`]: one primitive op with its parameters, the single dispatch from `Tensor` ops to a
//! backend. Every tensor op that computes data goes through [`Prim::run`], so a trace of the
//! `Prim`s a computation ran replays it exactly.

use std::sync::Arc;

use crate::backend::{
    BinaryOp, BroadcastLayout, Im2Col, MatmulSpec, ReduceOp, StridedCopy, TernaryOp, UnaryOp,
};
use crate::epilogue::Bias;
use crate::gemm::GemmCall;
use crate::storage::Storage;
use crate::{DType, Device, Result, TensorError};

/// One primitive op of a backend, with everything it needs besides its operands' data. The
/// operand counts are fixed per variant ([`Prim::arity`]; `Cat` takes `widths.len()`).
#[derive(Debug, Clone)]
pub enum Prim {
    /// `len` copies of `value` (no operand).
    Full {
        value: f64,
        len: usize,
        dtype: DType,
    },
    Unary(UnaryOp),
    Binary(BinaryOp, BroadcastLayout),
    Ternary(TernaryOp, BroadcastLayout),
    Matmul(MatmulSpec),
    /// A product reading its operands through explicit layouts (a plan's view of a slice or a
    /// strided block), into a new dense `[batch, m, n]` output, with the call's epilogue. Its
    /// operands are A, B, then C (dense `[batch, m, n]`, read when `β ≠ 0`), then the bias
    /// vector (when the epilogue adds one); the output's layout is always dense.
    Gemm(GemmCall),
    /// Reduces the middle axis of `[outer, reduced, inner]`.
    Reduce {
        op: ReduceOp,
        outer: usize,
        reduced: usize,
        inner: usize,
    },
    LogSoftmax {
        rows: usize,
        cols: usize,
    },
    LogSumExp {
        rows: usize,
        cols: usize,
    },
    CopyStrided(StridedCopy),
    /// Parts viewed as `[outer, widths[i]]`, concatenated along the second axis.
    Cat {
        outer: usize,
        widths: Vec<usize>,
    },
    IndexSelect {
        indices: Arc<[usize]>,
        outer: usize,
        len: usize,
        inner: usize,
    },
    IndexAdd {
        indices: Arc<[usize]>,
        outer: usize,
        len: usize,
        inner: usize,
    },
    ToDtype(DType),
    Unfold {
        geometry: Im2Col,
        fill: f64,
    },
    Fold {
        geometry: Im2Col,
    },
}

impl Prim {
    /// The op's name, as errors name it.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Full { .. } => "full",
            Prim::Unary(op) => op.name(),
            Prim::Binary(op, _) => op.name(),
            Prim::Ternary(op, _) => op.name(),
            Prim::Matmul(_) => "matmul",
            Prim::Gemm(_) => "gemm",
            Prim::Reduce { op, .. } => op.name(),
            Prim::LogSoftmax { .. } => "log_softmax",
            Prim::LogSumExp { .. } => "logsumexp",
            Prim::CopyStrided(_) => "copy_strided",
            Prim::Cat { .. } => "cat",
            Prim::IndexSelect { .. } => "index_select",
            Prim::IndexAdd { .. } => "index_add",
            Prim::ToDtype(_) => "to_dtype",
            Prim::Unfold { .. } => "unfold2d",
            Prim::Fold { .. } => "fold2d",
        }
    }

    /// How many operands the op reads.
    pub fn arity(&self) -> usize {
        match self {
            Prim::Full { .. } => 0,
            Prim::Binary(..) | Prim::Matmul(_) => 2,
            Prim::Gemm(call) => gemm_arity(call),
            Prim::Ternary(..) => 3,
            Prim::Cat { widths, .. } => widths.len(),
            _ => 1,
        }
    }

    /// True for the ops a fused step can evaluate per element.
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Prim::Unary(_) | Prim::Binary(..) | Prim::Ternary(..))
    }

    /// Runs the op on `operands` (all on `device`), returning its output's data.
    pub(crate) fn run(&self, operands: &[&Storage], device: Device) -> Result<Storage> {
        if operands.len() != self.arity() {
            return Err(TensorError::InvalidArgument {
                op: self.name(),
                msg: format!("takes {} operands, got {}", self.arity(), operands.len()),
            });
        }
        match (self, operands) {
            (Prim::Full { value, len, dtype }, []) => Storage::full(device, *dtype, *len, *value),
            (Prim::Unary(op), [x]) => x.unary(*op),
            (Prim::Binary(op, layout), [a, b]) => a.binary(*op, b, layout),
            (Prim::Ternary(op, layout), [a, b, c]) => a.ternary(*op, b, c, layout),
            (Prim::Matmul(spec), [a, b]) => a.matmul(b, spec),
            (Prim::Gemm(call), [a, b, rest @ ..]) => run_gemm(call, a, b, rest, device),
            (
                Prim::Reduce {
                    op,
                    outer,
                    reduced,
                    inner,
                },
                [x],
            ) => x.reduce(*op, *outer, *reduced, *inner),
            (Prim::LogSoftmax { rows, cols }, [x]) => x.log_softmax(*rows, *cols),
            (Prim::LogSumExp { rows, cols }, [x]) => x.logsumexp(*rows, *cols),
            (Prim::CopyStrided(copy), [x]) => x.copy_strided(copy),
            (Prim::Cat { outer, widths }, parts) => Storage::cat(parts, *outer, widths),
            (
                Prim::IndexSelect {
                    indices,
                    outer,
                    len,
                    inner,
                },
                [x],
            ) => x.index_select(indices, *outer, *len, *inner),
            (
                Prim::IndexAdd {
                    indices,
                    outer,
                    len,
                    inner,
                },
                [x],
            ) => x.index_add(indices, *outer, *len, *inner),
            (Prim::ToDtype(dtype), [x]) => x.to_dtype(*dtype),
            (Prim::Unfold { geometry, fill }, [x]) => x.unfold(geometry, *fill),
            (Prim::Fold { geometry }, [x]) => x.fold(geometry),
            _ => Err(TensorError::InvalidArgument {
                op: self.name(),
                msg: "operand count does not match the op".into(),
            }),
        }
    }
}

/// The operand count of a planned product: A and B, C when `β ≠ 0`, the bias when there is one.
fn gemm_arity(call: &GemmCall) -> usize {
    2 + usize::from(call.epilogue.beta != 0.0) + usize::from(call.epilogue.bias != Bias::None)
}

/// The dense `[batch, m, n]` product of `call` (its output layout replaced by the dense one):
/// `rest` holds C (when `β ≠ 0`, copied into the output first) and the bias, in that order.
fn run_gemm(
    call: &GemmCall,
    a: &Storage,
    b: &Storage,
    rest: &[&Storage],
    device: Device,
) -> Result<Storage> {
    a.check_same("gemm", b)?;
    for s in rest {
        a.check_same("gemm", s)?;
    }
    let len = call
        .dense_c_len()
        .ok_or_else(|| TensorError::InvalidArgument {
            op: "gemm",
            msg: "the output's element count overflows".into(),
        })?;
    let call = GemmCall {
        c: crate::MatrixLayout::dense(call.m, call.n),
        ..*call
    };
    let (c_in, bias) = match (call.epilogue.beta != 0.0, rest) {
        (false, []) => (None, None),
        (false, [bias]) => (None, Some(*bias)),
        (true, [c]) => (Some(*c), None),
        (true, [c, bias]) => (Some(*c), Some(*bias)),
        _ => {
            return Err(TensorError::InvalidArgument {
                op: "gemm",
                msg: "operand count does not match the epilogue".into(),
            })
        }
    };
    call.check([a.len(), b.len(), len], bias.map(Storage::len))?;
    let mut out = match c_in {
        Some(c) if c.len() == len => c.copy_strided(&StridedCopy {
            out: crate::Shape::new([len]),
            strides: vec![1],
            offset: 0,
        })?,
        Some(c) => {
            return Err(TensorError::InvalidArgument {
                op: "gemm",
                msg: format!("C holds {} elements, the product {len}", c.len()),
            })
        }
        None => Storage::uninit(device, a.dtype(), len)?,
    };
    crate::gemm::gemm_storage(a, b, &mut out, bias, &call)?;
    Ok(out)
}
