//! Elementwise kernels (`kernels/elementwise.cu`): unary functions, broadcasting binary and
//! ternary ops, dtype casts.

use curvature_kernels::{geometry, Indexing, Kernel, KernelArg, Launch};

use super::{kernels, rank_arg, upload_i64s, CudaStorage};
use crate::backend::{BinaryOp, BroadcastLayout, TernaryOp, UnaryOp};
use crate::{DType, Result, TensorError};

/// `unary_{op}_{dt}(x, out, n, p0, p1)`.
pub(super) fn unary(x: &CudaStorage, op: UnaryOp) -> Result<CudaStorage> {
    let out = x.alloc_like(x.len)?;
    if x.len == 0 {
        return Ok(out);
    }
    let (p0, p1) = op.params();
    x.launch(
        Launch::new(kernels::unary(op, x.dtype), geometry::launch_1d(x.len)).args([
            x.arg(),
            out.arg(),
            KernelArg::U64(x.len as u64),
            x.scalar(p0),
            x.scalar(p1),
        ]),
    )?;
    Ok(out)
}

/// `binary_{op}_contig_{dt}(a, b, out, n)` when both operands have the output's shape, else
/// `binary_{op}_{dt}(a, b, out, n, rank, [dims, strides a, strides b])`.
pub(super) fn binary(
    a: &CudaStorage,
    op: BinaryOp,
    b: &CudaStorage,
    layout: &BroadcastLayout,
) -> Result<CudaStorage> {
    let kernel = |indexing| kernels::binary(op, indexing, a.dtype);
    broadcast(op.name(), kernel, &[a, b], layout)
}

/// `ternary_{op}_contig_{dt}(a, b, c, out, n)` or the broadcasting
/// `ternary_{op}_{dt}(a, b, c, out, n, rank, [dims, strides a, b, c])`.
pub(super) fn ternary(
    a: &CudaStorage,
    op: TernaryOp,
    b: &CudaStorage,
    c: &CudaStorage,
    layout: &BroadcastLayout,
) -> Result<CudaStorage> {
    let kernel = |indexing| kernels::ternary(op, indexing, a.dtype);
    broadcast(op.name(), kernel, &[a, b, c], layout)
}

/// One launch of a broadcasting elementwise kernel over `operands` (one dtype, one GPU):
/// `kernel(Indexing::Contiguous)` when every operand has the output's shape, else
/// `kernel(Indexing::Broadcast)` with a dims-and-strides table.
fn broadcast(
    op: &'static str,
    kernel: impl Fn(Indexing) -> Kernel,
    operands: &[&CudaStorage],
    layout: &BroadcastLayout,
) -> Result<CudaStorage> {
    let Some(first) = operands.first() else {
        return Err(TensorError::Empty { op });
    };
    let n = layout.out.elem_count();
    let out = first.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let args = operands
        .iter()
        .map(|s| s.arg())
        .chain([out.arg(), KernelArg::U64(n as u64)]);
    if layout.is_contiguous() {
        first
            .launch(Launch::new(kernel(Indexing::Contiguous), geometry::launch_1d(n)).args(args))?;
        return Ok(out);
    }
    let mut table = layout.out.dims().to_vec();
    for strides in &layout.strides {
        table.extend_from_slice(strides);
    }
    let table = upload_i64s(op, first.gpu(), &table)?;
    first.launch(
        Launch::new(kernel(Indexing::Broadcast), geometry::launch_1d(n))
            .args(args)
            .arg(rank_arg(op, layout.out.rank())?)
            .arg(KernelArg::Buffer(&table)),
    )?;
    Ok(out)
}

/// `cast_{from}_{to}(x, out, n)`; into f16 or bf16 the rounding cast that flags overflow
/// (`half::narrow`); a shared copy for the same dtype.
pub(super) fn to_dtype(x: &CudaStorage, dtype: DType) -> Result<CudaStorage> {
    if dtype == x.dtype {
        return Ok(x.clone());
    }
    if dtype.is_half() {
        return super::half::narrow("to_dtype", x, dtype);
    }
    let out = CudaStorage::alloc(x.gpu(), dtype, x.len)?;
    if x.len == 0 {
        return Ok(out);
    }
    x.launch(
        Launch::new(kernels::cast(x.dtype, dtype), geometry::launch_1d(x.len)).args([
            x.arg(),
            out.arg(),
            KernelArg::U64(x.len as u64),
        ]),
    )?;
    Ok(out)
}
