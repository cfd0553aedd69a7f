//! [`gemm_into`](crate::gemm_into) on the host: each batch entry's product by
//! [`host_gemm`](crate::host_gemm) into a scratch matrix, then the epilogue element by element
//! into C at its layout. This is the specification the CUDA kernels are tested against.

use crate::backend::BackendStorage;
use crate::cpu::{try_filled, CpuStorage};
use crate::epilogue::Bias;
use crate::gemm::GemmCall;
use crate::host_gemm::{gemm, Gemm, Operand};
use crate::{Element, Result, TensorError};

/// `call` on host storages of one dtype (layouts already checked against their lengths).
pub(crate) fn gemm_into(
    a: &CpuStorage,
    b: &CpuStorage,
    c: &mut CpuStorage,
    bias: Option<&CpuStorage>,
    call: &GemmCall,
) -> Result<()> {
    match (a, b, c, bias) {
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c), None) => {
            typed(a, b, c, None, call)
        }
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c), Some(CpuStorage::F32(s))) => {
            typed(a, b, c, Some(s), call)
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c), None) => {
            typed(a, b, c, None, call)
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c), Some(CpuStorage::F64(s))) => {
            typed(a, b, c, Some(s), call)
        }
        (a, ..) => Err(TensorError::InvalidArgument {
            op: "gemm",
            msg: format!("operands of mixed dtypes (A is {:?})", a.dtype()),
        }),
    }
}

fn typed<T: Element>(
    a: &[T],
    b: &[T],
    c: &mut [T],
    bias: Option<&[T]>,
    call: &GemmCall,
) -> Result<()> {
    let GemmCall { batch, m, n, k, .. } = *call;
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    let mut product = try_filled("gemm", m * n, T::zero())?;
    // (row stride, column stride) of op(A) and op(B) in their slices.
    let a_strides = if call.trans_a {
        (1, call.a.ld)
    } else {
        (call.a.ld, 1)
    };
    let b_strides = if call.trans_b {
        (1, call.b.ld)
    } else {
        (call.b.ld, 1)
    };
    let epilogue = call.epilogue;
    for z in 0..batch {
        if k > 0 {
            let a_start = call.a.offset + z * call.a.batch_stride;
            let b_start = call.b.offset + z * call.b.batch_stride;
            gemm(Gemm {
                m,
                n,
                k,
                dst: Operand::row_major(&mut product[..], n),
                accumulate: false,
                lhs: Operand::strided(&a[a_start..], a_strides.0, a_strides.1),
                rhs: Operand::strided(&b[b_start..], b_strides.0, b_strides.1),
                parallel: true,
            })?;
        }
        let c_start = call.c.offset + z * call.c.batch_stride;
        for i in 0..m {
            for j in 0..n {
                let shift = match (epilogue.bias, bias) {
                    (Bias::Row, Some(v)) => v[j].to_f64(),
                    (Bias::Column, Some(v)) => v[i].to_f64(),
                    _ => 0.0,
                };
                let dst = &mut c[c_start + i * call.c.ld + j];
                let old = *dst;
                let value = epilogue.apply(product[i * n + j].to_f64(), || old.to_f64(), shift);
                *dst = T::from_f64(value);
            }
        }
    }
    Ok(())
}
