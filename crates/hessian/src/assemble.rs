//! Dense Hessians and exact diagonals from an operator, a chunk of identity rows at a time.

use curvature_tensor::{DType, Device, IntoShape, Tensor};

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
        let per_row = 2 * dim.max(1) * dtype.size_in_bytes();
        (self.memory_budget_bytes / per_row)
            .min(self.max_rows)
            .min(dim)
            .max(1)
    }
}

/// A host array in a tensor dtype, filled piece by piece and uploaded once: the dense results
/// are held exactly once (plus one chunk) wherever the operator runs.
pub(crate) enum HostBuffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostBuffer {
    pub(crate) fn zeros(dtype: DType, len: usize) -> HostBuffer {
        match dtype {
            DType::F32 => HostBuffer::F32(vec![0.0; len]),
            DType::F64 => HostBuffer::F64(vec![0.0; len]),
        }
    }

    /// Copies the values of `t` to `offset..offset + t.elem_count()`.
    pub(crate) fn write(&mut self, offset: usize, t: &Tensor) -> Result<()> {
        let n = t.elem_count();
        match self {
            HostBuffer::F32(buf) => buf[offset..offset + n].copy_from_slice(&t.to_vec::<f32>()?),
            HostBuffer::F64(buf) => buf[offset..offset + n].copy_from_slice(&t.to_vec::<f64>()?),
        }
        Ok(())
    }

    pub(crate) fn into_tensor(self, shape: impl IntoShape, device: Device) -> Result<Tensor> {
        Ok(match self {
            HostBuffer::F32(buf) => Tensor::from_vec(buf, shape, device)?,
            HostBuffer::F64(buf) => Tensor::from_vec(buf, shape, device)?,
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
    let mut buf = HostBuffer::zeros(dtype, rows * dim);
    for r in 0..rows {
        match &mut buf {
            HostBuffer::F32(data) => data[r * dim + start + r] = 1.0,
            HostBuffer::F64(data) => data[r * dim + start + r] = 1.0,
        }
    }
    buf.into_tensor([rows, dim], device)
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
pub fn hessian_of<O: LinearOperator + ?Sized>(op: &O, options: &HessianOptions) -> Result<Tensor> {
    let dim = op.dim();
    let mut buf = HostBuffer::zeros(op.dtype(), dim * dim);
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
