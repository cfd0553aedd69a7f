//! Batched GEMM with transpose flags: `matmul_{dt}` of `kernels/matmul.cu`.

use curvature_kernels::{geometry, KernelArg, KernelFamily};

use super::{to_i64, CudaStorage};
use crate::backend::MatmulSpec;
use crate::{Result, TensorError};

/// A matrix dimension as the kernel's `int`.
fn dim_arg(value: usize) -> Result<KernelArg<'static>> {
    i32::try_from(value)
        .map(KernelArg::I32)
        .map_err(|_| TensorError::InvalidArgument {
            op: "matmul",
            msg: format!("dimension {value} exceeds the CUDA kernel's 32-bit limit"),
        })
}

/// `matmul_{dt}(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a, trans_b,
/// alpha = 1, beta = 0)`: `C_z = op(A_z)·op(B_z)` for every batch index, C contiguous.
pub(super) fn matmul(a: &CudaStorage, b: &CudaStorage, spec: &MatmulSpec) -> Result<CudaStorage> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let len = batch
        .checked_mul(m)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| TensorError::InvalidArgument {
            op: "matmul",
            msg: format!("a {batch}×{m}×{n} result overflows the address space"),
        })?;
    let out = a.alloc_like(len)?;
    if len == 0 {
        return Ok(out);
    }
    let dt = a.dtype.as_str();
    a.launch(
        KernelFamily::Matmul,
        &a.kernel("matmul"),
        geometry::matmul_launch(dt, m, n, batch),
        &[
            a.arg(),
            b.arg(),
            out.arg(),
            dim_arg(m)?,
            dim_arg(n)?,
            dim_arg(k)?,
            KernelArg::I64(to_i64("matmul", batch)?),
            KernelArg::I64(to_i64("matmul", spec.stride_a)?),
            KernelArg::I64(to_i64("matmul", spec.stride_b)?),
            KernelArg::I64(to_i64("matmul", m * n)?),
            KernelArg::I32(i32::from(spec.trans_a)),
            KernelArg::I32(i32::from(spec.trans_b)),
            a.scalar(1.0),
            a.scalar(0.0),
        ],
    )?;
    Ok(out)
}
