//! The plan of one CUDA GEMM: `curvature_kernels::gemm_select`'s table rule, or, with
//! `CURVATURE_GEMM_TUNE=1`, the autotuner's choice for this GPU and shape
//! (`curvature_kernels::gemm_tune`), tuned on first use by timing each candidate plan.

use curvature_kernels::gemm_select::{select_gemm, GemmPlan};
use curvature_kernels::gemm_tune::{median_ms, process_tuner, GemmShape, GpuIdentity, TuneKey};
use curvature_kernels::Precision;

use super::{kernels, CudaStorage};
use crate::epilogue::Epilogue;
use crate::gemm::GemmCall;
use crate::{DType, Result};

/// Untimed launches before each candidate's timed ones.
const WARM_UPS: usize = 1;

/// Timed launches per candidate (the median is kept).
const TIMED_RUNS: usize = 3;

/// The plan for the checked, non-empty `call` of `a`, `b` into `c`: the table's, or with
/// tuning on the tuned one. Tuning times the candidates on a scratch output of `c`'s size,
/// with the plain epilogue and no bias, so `c` is written only by the call itself.
pub(super) fn tuned_or_selected(
    a: &CudaStorage,
    b: &CudaStorage,
    c: &CudaStorage,
    call: &GemmCall,
) -> Result<GemmPlan> {
    let GemmCall { batch, m, n, k, .. } = *call;
    let gpu = a.gpu();
    let dtype = kernels::dtype(a.dtype);
    let Some(tuner) = process_tuner() else {
        return Ok(select_gemm(dtype, m, n, k, batch, gpu.sm_count()));
    };
    let precision = match a.dtype {
        DType::F32 => gpu.matmul_precision(),
        _ => Precision::Ieee,
    };
    let key = TuneKey {
        gpu: GpuIdentity::of(gpu),
        shape: GemmShape {
            dtype,
            precision,
            m,
            n,
            k,
            batch,
            trans_a: call.trans_a,
            trans_b: call.trans_b,
        },
    };
    let mut tuner = tuner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(plan) = tuner.lookup(&key) {
        return Ok(plan);
    }
    let scratch = a.alloc_like(c.len)?;
    let timed = GemmCall {
        epilogue: Epilogue::default(),
        ..*call
    };
    tuner.choose(&key, |plan| {
        median_ms(gpu, WARM_UPS, TIMED_RUNS, || {
            super::matmul::launch_planned(a, b, &scratch, None, &timed, plan)
        })
    })
}
