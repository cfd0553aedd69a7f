//! The 16-bit storage dtypes on the GPU. Their data stays 16-bit in device memory; the kernels
//! that only move elements (fill, strided copy, `cat`'s scatter, gather) run on the bits;
//! matrix products on a GPU with tensor cores read the 16-bit operands directly
//! (`super::matmul_tc::matmul_half`); every other op with arithmetic widens its operands to f32
//! on the device (`cast_{f16,bf16}_f32`, exact), runs the f32 kernel (so reductions and GEMMs
//! accumulate in f32) and rounds the result back to nearest even (`cast_f32_{f16,bf16}`).
//!
//! Overflow: the rounding kernel stores a code naming the op and dtype in a 4-byte flag of the
//! GPU when a finite value rounds to infinity. The flag is read (4 bytes) at the next download
//! of any tensor from that GPU and at the next `synchronize`, which then fail with
//! [`TensorError::Overflow`] naming the op, and reset it. Launches stay asynchronous, and a GPU
//! that never rounded to 16 bits has no flag and pays nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curvature_kernels::{geometry, GpuBuffer, GpuDevice, KernelArg, Launch};

use super::{kernels, CudaStorage};
use crate::{DType, Result, TensorError};

/// The overflow flag of each GPU that ran a rounding kernel, by (emulated, ordinal).
type Flags = Mutex<HashMap<(bool, usize), Arc<GpuBuffer>>>;

/// The flags of every GPU of this process.
fn flags() -> &'static Flags {
    static FLAGS: OnceLock<Flags> = OnceLock::new();
    FLAGS.get_or_init(Mutex::default)
}

/// The (op, dtype) pairs codes stand for: code `c` is entry `c − 1`.
fn codes() -> &'static Mutex<Vec<(&'static str, DType)>> {
    static CODES: OnceLock<Mutex<Vec<(&'static str, DType)>>> = OnceLock::new();
    CODES.get_or_init(Mutex::default)
}

/// The nonzero code of (op, dtype), registered on first use.
pub(super) fn code_of(op: &'static str, dtype: DType) -> Result<u32> {
    let mut codes = codes().lock().unwrap_or_else(|e| e.into_inner());
    let index = match codes.iter().position(|&entry| entry == (op, dtype)) {
        Some(index) => index,
        None => {
            codes.push((op, dtype));
            codes.len() - 1
        }
    };
    u32::try_from(index + 1).map_err(|_| TensorError::InvalidArgument {
        op,
        msg: "too many distinct ops for the overflow flag's codes".into(),
    })
}

/// The flag of `gpu`, allocated (zeroed) on first use.
pub(super) fn flag(gpu: &GpuDevice) -> Result<Arc<GpuBuffer>> {
    let mut flags = flags().lock().unwrap_or_else(|e| e.into_inner());
    let key = (gpu.is_emulated(), gpu.ordinal());
    if let Some(buffer) = flags.get(&key) {
        return Ok(Arc::clone(buffer));
    }
    let buffer = Arc::new(gpu.alloc_zeros(4)?);
    flags.insert(key, Arc::clone(&buffer));
    Ok(buffer)
}

/// Errors with [`TensorError::Overflow`] when a rounding kernel on `gpu` raised its flag since
/// the last check (and clears it); nothing to read when `gpu` never rounded to 16 bits.
pub(super) fn check_overflow(gpu: &GpuDevice) -> Result<()> {
    let key = (gpu.is_emulated(), gpu.ordinal());
    let Some(buffer) = flags()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
    else {
        return Ok(());
    };
    let mut word = [0u8; 4];
    gpu.download(&buffer, &mut word)?;
    let code = u32::from_ne_bytes(word);
    if code == 0 {
        return Ok(());
    }
    // A fresh zeroed flag replaces the raised one (the kernels still queued hold no reference:
    // the download above waited for them).
    flags()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::new(gpu.alloc_zeros(4)?));
    let codes = codes().lock().unwrap_or_else(|e| e.into_inner());
    let (op, dtype) = codes
        .get(code as usize - 1)
        .copied()
        .unwrap_or(("cast", DType::F16));
    Err(TensorError::Overflow {
        op,
        dtype,
        value: None,
    })
}

/// `x` (f16 or bf16) widened to f32 on the device (exact).
pub(super) fn widen(x: &CudaStorage) -> Result<CudaStorage> {
    let out = CudaStorage::alloc(x.gpu(), DType::F32, x.len)?;
    if x.len > 0 {
        x.launch(
            Launch::new(
                kernels::cast(x.dtype, DType::F32),
                geometry::launch_1d(x.len),
            )
            .args([x.arg(), out.arg(), KernelArg::U64(x.len as u64)]),
        )?;
    }
    Ok(out)
}

/// `x` (f32, f64 or the other 16-bit dtype) rounded to nearest even into `dtype` (f16 or bf16)
/// by `op`; an overflow raises the GPU's flag with `op`'s code.
pub(super) fn narrow(op: &'static str, x: &CudaStorage, dtype: DType) -> Result<CudaStorage> {
    let out = CudaStorage::alloc(x.gpu(), dtype, x.len)?;
    if x.len > 0 {
        let flag = flag(x.gpu())?;
        x.launch(
            Launch::new(kernels::cast(x.dtype, dtype), geometry::launch_1d(x.len)).args([
                x.arg(),
                out.arg(),
                KernelArg::U64(x.len as u64),
                KernelArg::Buffer(&flag),
                KernelArg::U32(code_of(op, dtype)?),
            ]),
        )?;
    }
    Ok(out)
}

/// `compute` run on the operands widened to f32, its result rounded back to the operands'
/// 16-bit dtype (overflow flagged with `op`'s code).
pub(super) fn in_f32<const N: usize>(
    op: &'static str,
    operands: [&CudaStorage; N],
    compute: impl FnOnce([&CudaStorage; N]) -> Result<CudaStorage>,
) -> Result<CudaStorage> {
    let dtype = operands[0].dtype;
    let wide = operands
        .iter()
        .map(|x| widen(x))
        .collect::<Result<Vec<CudaStorage>>>()?;
    let refs: [&CudaStorage; N] = std::array::from_fn(|i| &wide[i]);
    narrow(op, &compute(refs)?, dtype)
}

/// `len` copies of `value` as `dtype` (f16 or bf16): the rounded bits checked on the host,
/// then `fill_{dt}(out, n, bits)`.
pub(super) fn full(gpu: &GpuDevice, dtype: DType, len: usize, value: f64) -> Result<CudaStorage> {
    let host = crate::cpu::half::from_f64s("full", dtype, &[value])?;
    let bits = match host.as_bytes() {
        &[lo, hi] => u16::from_ne_bytes([lo, hi]),
        _ => 0,
    };
    let out = CudaStorage::alloc(gpu, dtype, len)?;
    if len > 0 {
        out.launch(
            Launch::new(kernels::fill(dtype), geometry::launch_1d(len)).args([
                out.arg(),
                KernelArg::U64(len as u64),
                KernelArg::U32(u32::from(bits)),
            ]),
        )?;
    }
    Ok(out)
}
