//! Batched GEMM on tensor cores: `matmul_tf32_f32` / `matmul_tf32x3_f32` of
//! `kernels/matmul_tc.cu`, chosen for f32 by the device's [`Precision`] (`Device::set_matmul_precision`),
//! and `matmul_h16_{f16,bf16}` of `kernels/matmul_h16.cu` for every 16-bit product.

use curvature_kernels::{geometry, KernelArg, Launch, Precision};

use super::matmul::dim_arg;
use super::{half, kernels, to_i64, CudaStorage};
use crate::backend::MatmulSpec;
use crate::{DType, Result, TensorError};

/// `C_z = op(A_z)·op(B_z)` for every batch index (C contiguous, alpha = 1, beta = 0) on tensor
/// cores, with the inputs rounded as `precision` says. f32 only; `Precision::Ieee` is not a
/// tensor-core mode.
pub(super) fn matmul(
    a: &CudaStorage,
    b: &CudaStorage,
    spec: &MatmulSpec,
    precision: Precision,
) -> Result<CudaStorage> {
    if a.dtype != DType::F32 || !precision.uses_tensor_cores() {
        return Err(TensorError::InvalidArgument {
            op: "matmul",
            msg: format!(
                "the tensor-core GEMM computes f32 in tf32 or tf32x3 precision, not {:?} in {precision}",
                a.dtype
            ),
        });
    }
    let MatmulSpec { batch, m, n, .. } = *spec;
    let out = super::matmul::alloc_product(a, spec)?;
    let len = out.len;
    if len == 0 {
        return Ok(out);
    }
    let geometry = geometry::matmul_tensor_core_launch(m, n, batch);
    let kernel = kernels::matmul_tensor_core(precision == Precision::Tf32x3);
    a.launch(Launch::new(kernel, geometry).args(product_args(a, b, &out, spec)?))?;
    Ok(out)
}

/// `C_z = op(A_z)·op(B_z)` for every batch index of f16 or bf16 operands, read as stored, on
/// tensor cores (`mma.sync` m16n8k16): products exact in f32, sums in f32, the result rounded
/// once to the operands' dtype; a finite result that rounds to infinity raises the GPU's
/// overflow flag with the code of `matmul` (reported at the next download). Any precision
/// setting: 16-bit inputs lose nothing to the tensor cores.
pub(super) fn matmul_half(
    a: &CudaStorage,
    b: &CudaStorage,
    spec: &MatmulSpec,
) -> Result<CudaStorage> {
    if !a.dtype.is_half() || b.dtype != a.dtype {
        return Err(TensorError::InvalidArgument {
            op: "matmul",
            msg: format!(
                "the 16-bit tensor-core GEMM multiplies two f16 or two bf16 operands, not {:?} and {:?}",
                a.dtype, b.dtype
            ),
        });
    }
    let MatmulSpec { batch, m, n, .. } = *spec;
    let out = super::matmul::alloc_product(a, spec)?;
    if out.len == 0 {
        return Ok(out);
    }
    let flag = half::flag(a.gpu())?;
    let geometry = geometry::matmul_tensor_core_launch(m, n, batch);
    let overflow = [
        KernelArg::Buffer(&flag),
        KernelArg::U32(half::code_of("matmul", a.dtype)?),
    ];
    let args = product_args(a, b, &out, spec)?.into_iter().chain(overflow);
    a.launch(Launch::new(kernels::matmul_h16(a.dtype), geometry).args(args))?;
    Ok(out)
}

/// The arguments the tensor-core GEMMs share: `a`, `b`, the contiguous product `out`, the
/// sizes, batch strides and transpose flags of `spec`, alpha = 1 and beta = 0.
fn product_args<'a>(
    a: &'a CudaStorage,
    b: &'a CudaStorage,
    out: &'a CudaStorage,
    spec: &MatmulSpec,
) -> Result<[KernelArg<'a>; 14]> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let plane = m
        .checked_mul(n)
        .ok_or_else(|| TensorError::InvalidArgument {
            op: "matmul",
            msg: format!("a {m}×{n} product overflows the address space"),
        })?;
    Ok([
        a.arg(),
        b.arg(),
        out.arg(),
        dim_arg(m)?,
        dim_arg(n)?,
        dim_arg(k)?,
        KernelArg::I64(to_i64("matmul", batch)?),
        KernelArg::I64(to_i64("matmul", spec.stride_a)?),
        KernelArg::I64(to_i64("matmul", spec.stride_b)?),
        KernelArg::I64(to_i64("matmul", plane)?),
        KernelArg::I32(i32::from(spec.trans_a)),
        KernelArg::I32(i32::from(spec.trans_b)),
        KernelArg::F32(1.0),
        KernelArg::F32(0.0),
    ])
}
