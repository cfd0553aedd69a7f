//! Batched GEMM with transpose flags: `matmul_{dt}` of `kernels/matmul.cu`.

use curvature_kernels::{geometry, KernelArg, Launch};

use super::{kernels, to_i64, CudaStorage};
use crate::backend::MatmulSpec;
use crate::{Result, TensorError};

/// The largest m, n or k the kernel accepts: its `int` loop counters step past the last index
/// by up to one k-slice (`k0 + BK`), so every dimension keeps this much headroom below
/// `i32::MAX` (see the header of `kernels/matmul.cu`).
const MAX_DIM: usize = i32::MAX as usize - 256;

/// A matrix dimension as the kernel's `int`.
pub(super) fn dim_arg(value: usize) -> Result<KernelArg<'static>> {
    if value > MAX_DIM {
        return Err(TensorError::InvalidArgument {
            op: "matmul",
            msg: format!("dimension {value} exceeds the CUDA kernel's limit of {MAX_DIM}"),
        });
    }
    Ok(KernelArg::I32(value as i32))
}

/// `matmul_{dt}(a, b, c, m, n, k, batch, stride_a, stride_b, stride_c, trans_a, trans_b,
/// alpha = 1, beta = 0)`: `C_z = op(A_z)·op(B_z)` for every batch index, C contiguous.
/// f32 products go to the tensor-core GEMM when the device's precision is a tensor-core mode
/// (`super::matmul_tc`); f64 ignores the setting.
pub(super) fn matmul(a: &CudaStorage, b: &CudaStorage, spec: &MatmulSpec) -> Result<CudaStorage> {
    let precision = a.gpu().matmul_precision();
    if a.dtype == crate::DType::F32 && precision.uses_tensor_cores() {
        return super::matmul_tc::matmul(a, b, spec, precision);
    }
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
    let geometry = geometry::matmul_launch(kernels::dtype(a.dtype), m, n, batch);
    a.launch(Launch::new(kernels::matmul(a.dtype), geometry).args([
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
    ]))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_arg_refuses_dimensions_whose_k_loop_would_overflow() {
        assert!(matches!(dim_arg(MAX_DIM), Ok(KernelArg::I32(v)) if v as usize == MAX_DIM));
        for bad in [
            MAX_DIM + 1,
            i32::MAX as usize - 1,
            i32::MAX as usize,
            usize::MAX,
        ] {
            let err = dim_arg(bad).expect_err("must be refused");
            assert!(
                err.to_string().contains("exceeds the CUDA kernel's limit"),
                "{err}"
            );
        }
    }
}
