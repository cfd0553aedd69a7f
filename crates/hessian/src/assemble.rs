//! Dense Hessians and exact diagonals from an operator, a chunk of identity rows at a time.

use curvature_tensor::{DType, Device, IntoShape, Tensor};

use crate::alloc;
use crate::error::invalid;
use crate::operator::{apply, LinearOperator};
use crate::Result;

/// How much memory the dense functions may use for the vectors they push through the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HessianOptions {
    /// Bytes for one chunk: its identity rows and their products, `2 · rows · dim` elements.
    /// The sweep's own intermediates grow with the rows too (K times the model's activations),
    /// which [`max_rows`](HessianOptions::max_rows) bounds.
    pub memory_budget_bytes: usize,
    /// The most rows one `apply_batch` call may receive, whatever the budget allows.
    pub max_rows: usize,
}

impl Default for HessianOptions {
    /// 256 MiB and at most 256 rows per call.
    fn default() -> Self {
        HessianOptions {
            memory_budget_bytes: 256 << 20,
            max_rows: 256,
        }
    }
}

impl HessianOptions {
    /// The rows per chunk for vectors of length `dim`: `budget / (2 · dim · size)`, at least 1,
    /// at most `max_rows` and `dim`.
    pub fn chunk_rows(&self, dim: usize, dtype: DType) -> usize {
        let per_row = dim.max(1).saturating_mul(2 * dtype.size_in_bytes());
        (self.memory_budget_bytes / per_row)
            .min(self.max_rows)
            .min(dim)
            .max(1)
    }
}

/// A host array in a tensor dtype, filled piece by piece in order and uploaded once: the dense
/// results are held exactly once (plus one chunk) wherever the operator runs. Its whole size is
/// reserved up front, fallibly, so a result that cannot be held is an error before any work.
pub(crate) enum HostBuffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// A 16-bit dtype's results, gathered in f32 and rounded to the dtype once at the end.
    Half(Vec<f32>, DType),
}

impl HostBuffer {
    /// An empty buffer with room for `len` elements of `dtype`, or an error naming `what` and
    /// the memory it needs.
    pub(crate) fn with_capacity(
        op: &'static str,
        what: &'static str,
        dtype: DType,
        len: usize,
    ) -> Result<HostBuffer> {
        Ok(match dtype {
            DType::F32 => HostBuffer::F32(alloc::with_capacity(op, what, len)?),
            DType::F64 => HostBuffer::F64(alloc::with_capacity(op, what, len)?),
            DType::F16 | DType::BF16 => {
                HostBuffer::Half(alloc::with_capacity(op, what, len)?, dtype)
            }
        })
    }

    /// Appends the values of `t`, which must start at `offset` (the elements written so far):
    /// pieces arrive in order and the buffer never grows past its reservation.
    pub(crate) fn write(&mut self, offset: usize, t: &Tensor) -> Result<()> {
        let (len, capacity) = match self {
            HostBuffer::F32(buf) => (buf.len(), buf.capacity()),
            HostBuffer::F64(buf) => (buf.len(), buf.capacity()),
            HostBuffer::Half(buf, _) => (buf.len(), buf.capacity()),
        };
        if offset != len || capacity - len < t.elem_count() {
            return Err(invalid(
                "HostBuffer::write",
                format!(
                    "{} values at offset {offset} do not continue the {len} of {capacity} written",
                    t.elem_count()
                ),
            ));
        }
        // A CPU tensor is read in place; a GPU one is downloaded first.
        match self {
            HostBuffer::F32(buf) => match t.host_slice::<f32>() {
                Ok(values) => buf.extend_from_slice(values),
                Err(_) => buf.extend_from_slice(&t.to_vec::<f32>()?),
            },
            HostBuffer::F64(buf) => match t.host_slice::<f64>() {
                Ok(values) => buf.extend_from_slice(values),
                Err(_) => buf.extend_from_slice(&t.to_vec::<f64>()?),
            },
            HostBuffer::Half(buf, _) => {
                buf.extend_from_slice(&t.to_dtype(DType::F32)?.to_vec::<f32>()?)
            }
        }
        Ok(())
    }

    pub(crate) fn into_tensor(self, shape: impl IntoShape, device: Device) -> Result<Tensor> {
        Ok(match self {
            HostBuffer::F32(buf) => Tensor::from_vec(buf, shape, device)?,
            HostBuffer::F64(buf) => Tensor::from_vec(buf, shape, device)?,
            HostBuffer::Half(buf, dtype) => {
                Tensor::from_vec(buf, shape, device)?.to_dtype(dtype)?
            }
        })
    }
}

/// Rows `start..start + rows` of the `dim × dim` identity, built on the host in `dtype`.
pub(crate) fn identity_rows(
    start: usize,
    rows: usize,
    dim: usize,
    dtype: DType,
    device: Device,
) -> Result<Tensor> {
    const OP: &str = "identity_rows";
    const WHAT: &str = "a chunk of identity rows";
    let len = alloc::product(OP, WHAT, &[rows, dim])?;
    match dtype {
        DType::F32 => {
            let mut data = alloc::filled(OP, WHAT, len, 0.0f32)?;
            for r in 0..rows {
                data[r * dim + start + r] = 1.0;
            }
            Ok(Tensor::from_vec(data, [rows, dim], device)?)
        }
        DType::F16 | DType::BF16 => {
            Ok(identity_rows(start, rows, dim, DType::F32, device)?.to_dtype(dtype)?)
        }
        DType::F64 => {
            let mut data = alloc::filled(OP, WHAT, len, 0.0f64)?;
            for r in 0..rows {
                data[r * dim + start + r] = 1.0;
            }
            Ok(Tensor::from_vec(data, [rows, dim], device)?)
        }
    }
}

/// Writes the `dim × dim` matrix of `op` (row i = `eᵢ·H`) to `buf[offset..]`, chunk by chunk.
pub(crate) fn write_matrix<O: LinearOperator + ?Sized>(
    op: &O,
    options: &HessianOptions,
    buf: &mut HostBuffer,
    offset: usize,
) -> Result<()> {
    let dim = op.dim();
    let rows = options.chunk_rows(dim, op.dtype());
    for start in (0..dim).step_by(rows) {
        let count = rows.min(dim - start);
        let basis = identity_rows(start, count, dim, op.dtype(), op.device())?;
        buf.write(offset + start * dim, &apply(op, &basis)?)?;
    }
    Ok(())
}

/// The dense `[dim, dim]` matrix of `op`, assembled from `apply_batch` over chunks of identity
/// rows ([`HessianOptions::chunk_rows`] each). Besides the result, at most one chunk of basis
/// rows and products is alive. The result is on the operator's device.
///
/// The result's `dim²` elements are counted and reserved before any product is computed: a
/// size that overflows or memory the allocator refuses is an error naming both.
pub fn hessian_of<O: LinearOperator + ?Sized>(op: &O, options: &HessianOptions) -> Result<Tensor> {
    const OP: &str = "hessian_of";
    const WHAT: &str = "the dim × dim Hessian";
    let dim = op.dim();
    let len = alloc::product(OP, WHAT, &[dim, dim])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, op.dtype(), len)?;
    write_matrix(op, options, &mut buf, 0)?;
    buf.into_tensor([dim, dim], op.device())
}

/// The exact diagonal `[dim]` of `op`: `Hᵢᵢ = eᵢ·H·eᵢ`, from the same identity chunks as
/// [`hessian_of`] (so `dim` products), reduced on the device.
pub fn hessian_diagonal<O: LinearOperator + ?Sized>(
    op: &O,
    options: &HessianOptions,
) -> Result<Tensor> {
    let dim = op.dim();
    let rows = options.chunk_rows(dim, op.dtype());
    let mut parts = Vec::new();
    for start in (0..dim).step_by(rows) {
        let count = rows.min(dim - start);
        let basis = identity_rows(start, count, dim, op.dtype(), op.device())?;
        parts.push(apply(op, &basis)?.mul(&basis)?.sum(&[1], false)?);
    }
    Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?)
}
