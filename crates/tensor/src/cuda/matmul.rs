//! Batched GEMM: `gemm_{tile}_{dt}` of `kernels/matmul.cu`, with the tile and split-K of
//! `curvature_kernels::gemm_select`; a split product is one launch that also sums its splits.

use std::sync::Arc;

use curvature_kernels::gemm_select::GemmPlan;
use curvature_kernels::{Dtype, GpuBuffer, KernelArg, Launch};

use super::{kernels, to_i64, CudaStorage};
use crate::backend::MatmulSpec;
use crate::gemm::GemmCall;
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

/// A split count as the kernel's `int`.
fn splits_arg(splits: usize) -> Result<KernelArg<'static>> {
    i32::try_from(splits)
        .map(KernelArg::I32)
        .map_err(|_| TensorError::InvalidArgument {
            op: "gemm",
            msg: format!("{splits} k splits exceed the kernel's int"),
        })
}

/// A view of `storage` starting `offset` elements in.
fn view_arg(storage: &CudaStorage, offset: usize) -> Result<KernelArg<'_>> {
    let bytes = offset
        .checked_mul(storage.dtype.size_in_bytes())
        .ok_or_else(|| TensorError::InvalidArgument {
            op: "gemm",
            msg: format!("offset {offset} overflows the address space"),
        })?;
    Ok(KernelArg::BufferAt(&storage.buffer, bytes))
}

/// The bias vector, or (not read without a bias) `fallback`.
fn bias_or<'a>(bias: Option<&'a CudaStorage>, fallback: &'a CudaStorage) -> KernelArg<'a> {
    bias.unwrap_or(fallback).arg()
}

/// `matmul`: `C_z = op(A_z)·op(B_z)` for every batch index into a new contiguous output.
/// The uninitialised `[batch, m, n]` output of `spec`'s product, on `a`'s GPU.
pub(super) fn alloc_product(a: &CudaStorage, spec: &MatmulSpec) -> Result<CudaStorage> {
    let MatmulSpec { batch, m, n, .. } = *spec;
    let len = batch
        .checked_mul(m)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| TensorError::InvalidArgument {
            op: "matmul",
            msg: format!("a {batch}×{m}×{n} result overflows the address space"),
        })?;
    a.alloc_like(len)
}

/// f32 products go to the tensor-core GEMM when the device's precision is a tensor-core mode
/// (`super::matmul_tc`); f64 ignores the setting.
pub(super) fn matmul(a: &CudaStorage, b: &CudaStorage, spec: &MatmulSpec) -> Result<CudaStorage> {
    let precision = a.gpu().matmul_precision();
    if a.dtype == crate::DType::F32 && precision.uses_tensor_cores() {
        return super::matmul_tc::matmul(a, b, spec, precision);
    }
    let out = alloc_product(a, spec)?;
    let call = GemmCall::from_spec(spec);
    call.check([a.len, b.len, out.len], None)?;
    launch_gemm(a, b, &out, None, &call)?;
    Ok(out)
}

/// [`crate::gemm_into`] on CUDA storages (layouts already checked): writes `c` in place,
/// which must not share its buffer.
pub(crate) fn gemm_into(
    a: &CudaStorage,
    b: &CudaStorage,
    c: &mut CudaStorage,
    bias: Option<&CudaStorage>,
    call: &GemmCall,
) -> Result<()> {
    a.check_same("gemm", b)?;
    a.check_same("gemm", c)?;
    if let Some(bias) = bias {
        a.check_same("gemm", bias)?;
    }
    if Arc::get_mut(&mut c.buffer).is_none() {
        return Err(TensorError::InvalidArgument {
            op: "gemm",
            msg: "the output C shares its device buffer with another storage".to_string(),
        });
    }
    launch_gemm(a, b, c, bias, call)
}

/// The split-K workspace of a launch: the partial sums (from the device's buffer cache) and the
/// device's arrival counters (kept zeroed by the device).
struct SplitWorkspace {
    partial: CudaStorage,
    counters: Arc<GpuBuffer>,
}

impl SplitWorkspace {
    /// `splits·batch·m·n` partial sums and one counter per block tile and batch index.
    fn new(
        a: &CudaStorage,
        plan: &GemmPlan,
        dtype: Dtype,
        call: &GemmCall,
    ) -> Result<SplitWorkspace> {
        let GemmCall { batch, m, n, .. } = *call;
        let (bm, bn, _) = plan.tile.dims(dtype);
        let overflow = || TensorError::InvalidArgument {
            op: "gemm",
            msg: format!(
                "a split-K workspace of {} × {batch} × {m} × {n}",
                plan.splits
            ),
        };
        let partial_len = plan
            .splits
            .checked_mul(batch)
            .and_then(|v| v.checked_mul(m))
            .and_then(|v| v.checked_mul(n))
            .ok_or_else(overflow)?;
        let tiles = batch
            .checked_mul(m.div_ceil(bm))
            .and_then(|v| v.checked_mul(n.div_ceil(bn)))
            .ok_or_else(overflow)?;
        Ok(SplitWorkspace {
            partial: a.alloc_like(partial_len)?,
            counters: a.gpu().gemm_tile_counters(tiles)?,
        })
    }
}

/// The one `gemm_{tile}` launch of a checked call; a split-K plan also gets a workspace and
/// the device's arrival counters, and sums its splits in the same launch.
fn launch_gemm(
    a: &CudaStorage,
    b: &CudaStorage,
    c: &CudaStorage,
    bias: Option<&CudaStorage>,
    call: &GemmCall,
) -> Result<()> {
    let GemmCall { batch, m, n, .. } = *call;
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    let plan = super::gemm_tune::tuned_or_selected(a, b, c, call)?;
    launch_planned(a, b, c, bias, call, &plan)
}

/// The launch of one checked, non-empty call with `plan`'s tile and splits.
pub(super) fn launch_planned(
    a: &CudaStorage,
    b: &CudaStorage,
    c: &CudaStorage,
    bias: Option<&CudaStorage>,
    call: &GemmCall,
    plan: &GemmPlan,
) -> Result<()> {
    let GemmCall { batch, m, n, k, .. } = *call;
    let dtype = kernels::dtype(a.dtype);
    let split = if plan.splits > 1 {
        Some(SplitWorkspace::new(a, plan, dtype, call)?)
    } else {
        None
    };
    let i64_arg = |v: usize| to_i64("gemm", v).map(KernelArg::I64);
    let (bias_kind, activation, factor) = call.epilogue.codes();
    let (partial, counters) = match &split {
        Some(w) => (w.partial.arg(), KernelArg::Buffer(&w.counters)),
        // Not read without splits.
        None => (c.arg(), c.arg()),
    };
    let launched = a.launch(
        Launch::new(plan.kernel(dtype), (plan.grid, plan.block)).args([
            view_arg(a, call.a.offset)?,
            view_arg(b, call.b.offset)?,
            view_arg(c, call.c.offset)?,
            bias_or(bias, c),
            dim_arg(m)?,
            dim_arg(n)?,
            dim_arg(k)?,
            i64_arg(batch)?,
            splits_arg(plan.splits)?,
            i64_arg(call.a.ld)?,
            i64_arg(call.b.ld)?,
            i64_arg(call.c.ld)?,
            i64_arg(call.a.batch_stride)?,
            i64_arg(call.b.batch_stride)?,
            i64_arg(call.c.batch_stride)?,
            KernelArg::I32(i32::from(call.trans_a)),
            KernelArg::I32(i32::from(call.trans_b)),
            a.scalar(call.epilogue.alpha),
            a.scalar(call.epilogue.beta),
            KernelArg::I32(bias_kind),
            KernelArg::I32(activation),
            KernelArg::I32(factor),
            partial,
            counters,
        ]),
    );
    if launched.is_err() && split.is_some() {
        // A launch that failed part-way may have left counters non-zero.
        a.gpu().discard_gemm_tile_counters();
    }
    launched
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
