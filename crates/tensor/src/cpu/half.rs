//! The 16-bit storage dtypes on the host. An op on f16 or bf16 data widens its operands to f32
//! (exactly), runs the f32 loop (so sums and products accumulate in f32) and rounds the result
//! to nearest even on store. A finite value that rounds to infinity is
//! [`TensorError::Overflow`] naming the op, never a silent infinity; infinities and NaNs that
//! were already there pass through.

use half::{bf16, f16};

use super::{try_vec, CpuStorage};
use crate::{DType, Element, Result, TensorError};

/// `values` widened to f32 (exact for both 16-bit dtypes).
pub(crate) fn widen<H: Element>(op: &'static str, values: &[H]) -> Result<Vec<f32>> {
    let mut out = try_vec(op, values.len())?;
    out.extend(values.iter().map(|&v| v.to_f64() as f32));
    Ok(out)
}

/// The overflow error of `op` storing `value` as `dtype`.
fn overflow(op: &'static str, dtype: DType, value: f64) -> TensorError {
    TensorError::Overflow {
        op,
        dtype,
        value: Some(value),
    }
}

/// `values` rounded to nearest even into `H` by `round`, or the overflow error of the first
/// finite value that rounds to infinity.
fn round_all<S: Copy + Into<f64>, H: Element>(
    op: &'static str,
    values: &[S],
    round: impl Fn(S) -> H,
) -> Result<Vec<H>> {
    let mut out = try_vec(op, values.len())?;
    for &v in values {
        let h = round(v);
        let wide: f64 = v.into();
        if h.is_infinite() && wide.is_finite() {
            return Err(overflow(op, H::DTYPE, wide));
        }
        out.push(h);
    }
    Ok(out)
}

/// f32 values stored as `dtype` (f16 or bf16; f32 and f64 are returned as they are or widened).
pub(crate) fn from_f32s(op: &'static str, dtype: DType, values: &[f32]) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F16 => CpuStorage::F16(round_all(op, values, f16::from_f32)?),
        DType::BF16 => CpuStorage::BF16(round_all(op, values, bf16::from_f32)?),
        DType::F32 => CpuStorage::F32(super::try_copy(op, values)?),
        DType::F64 => CpuStorage::F64(super::try_convert(op, values)?),
    })
}

/// f64 values stored as `dtype`; into a 16-bit dtype rounded once from the f64 value (through
/// f32 rounded to odd, `Element::from_f64`).
pub(crate) fn from_f64s(op: &'static str, dtype: DType, values: &[f64]) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F16 => CpuStorage::F16(round_all(op, values, <f16 as Element>::from_f64)?),
        DType::BF16 => CpuStorage::BF16(round_all(op, values, <bf16 as Element>::from_f64)?),
        DType::F32 => CpuStorage::F32(super::try_convert(op, values)?),
        DType::F64 => CpuStorage::F64(super::try_copy(op, values)?),
    })
}
