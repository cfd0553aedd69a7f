//! The CPU backend: the reference implementation of every primitive op, in f32 and f64; the
//! 16-bit storage dtypes compute in f32 (`half`).

mod conv;
pub(crate) mod elementwise;
pub(crate) mod fused;
pub(crate) mod gemm;
pub(crate) mod half;
mod layout;
mod matmul;
mod reduce;

use crate::backend::{
    BackendStorage, BinaryOp, BroadcastLayout, Im2Col, MatmulSpec, ReduceOp, StridedCopy,
    TernaryOp, UnaryOp,
};
use crate::{DType, Device, Element, Result, TensorError};

/// An empty vector with room for `len` elements, or [`TensorError::OutOfMemory`] naming `op`
/// when the memory cannot be had (every host buffer sized by user input is made here, so an
/// impossible size is an error, never an abort).
pub(crate) fn try_vec<T: Element>(op: &'static str, len: usize) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| TensorError::OutOfMemory {
            op,
            elements: len,
            dtype: T::DTYPE,
            bytes: len.saturating_mul(std::mem::size_of::<T>()),
            device: Device::Cpu,
        })?;
    Ok(out)
}

/// `len` copies of `value` in a fallibly allocated vector (see [`try_vec`]).
pub(crate) fn try_filled<T: Element>(op: &'static str, len: usize, value: T) -> Result<Vec<T>> {
    let mut out = try_vec(op, len)?;
    out.resize(len, value);
    Ok(out)
}

/// A fallibly allocated copy of `values` (see [`try_vec`]).
pub(crate) fn try_copy<T: Element>(op: &'static str, values: &[T]) -> Result<Vec<T>> {
    let mut out = try_vec(op, values.len())?;
    out.extend_from_slice(values);
    Ok(out)
}

/// `values` converted to `T` in a fallibly allocated vector (see [`try_vec`]).
pub(crate) fn try_convert<T: Element, S: Element>(
    op: &'static str,
    values: &[S],
) -> Result<Vec<T>> {
    let mut out = try_vec(op, values.len())?;
    out.extend(values.iter().map(|&v| T::from_f64(v.to_f64())));
    Ok(out)
}

/// Host memory of one tensor.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// IEEE binary16 values.
    F16(Vec<::half::f16>),
    /// bfloat16 values.
    BF16(Vec<::half::bf16>),
}

/// Applies a generic function to the storage's typed data, re-wrapping the result; 16-bit data
/// is widened to f32 for it and the result rounded back, overflow an error naming `$op`.
macro_rules! map_typed {
    ($storage:expr, $op:expr, $data:ident => $body:expr) => {
        match $storage {
            CpuStorage::F32($data) => CpuStorage::F32($body),
            CpuStorage::F64($data) => CpuStorage::F64($body),
            other => {
                let wide = other.f32s($op)?;
                let $data = &wide;
                half::from_f32s($op, other.dtype(), &$body)?
            }
        }
    };
}

/// Applies a generic function that only moves elements (no arithmetic) to the typed data of
/// every dtype, 16-bit ones included, re-wrapping the result.
macro_rules! map_moved {
    ($storage:expr, $data:ident => $body:expr) => {
        match $storage {
            CpuStorage::F32($data) => CpuStorage::F32($body),
            CpuStorage::F64($data) => CpuStorage::F64($body),
            CpuStorage::F16($data) => CpuStorage::F16($body),
            CpuStorage::BF16($data) => CpuStorage::BF16($body),
        }
    };
}

impl CpuStorage {
    /// Storage of `len` copies of `value`.
    pub fn full(dtype: DType, len: usize, value: f64) -> Result<CpuStorage> {
        Ok(match dtype {
            DType::F32 => CpuStorage::F32(try_filled("full", len, value as f32)?),
            DType::F64 => CpuStorage::F64(try_filled("full", len, value)?),
            DType::F16 | DType::BF16 => {
                let one = half::from_f64s("full", dtype, &[value])?;
                match one {
                    CpuStorage::F16(v) => CpuStorage::F16(try_filled("full", len, v[0])?),
                    CpuStorage::BF16(v) => CpuStorage::BF16(try_filled("full", len, v[0])?),
                    other => other,
                }
            }
        })
    }

    /// Storage holding `values` converted to `dtype`.
    pub fn from_f64s(dtype: DType, values: &[f64]) -> Result<CpuStorage> {
        half::from_f64s("from_f64s", dtype, values)
    }

    /// A copy of the data, or [`TensorError::OutOfMemory`].
    pub fn try_clone(&self) -> Result<CpuStorage> {
        Ok(match self {
            CpuStorage::F32(v) => CpuStorage::F32(try_copy("copy", v)?),
            CpuStorage::F64(v) => CpuStorage::F64(try_copy("copy", v)?),
            CpuStorage::F16(v) => CpuStorage::F16(try_copy("copy", v)?),
            CpuStorage::BF16(v) => CpuStorage::BF16(try_copy("copy", v)?),
        })
    }

    /// The values widened to f64.
    pub fn to_f64s(&self) -> Result<Vec<f64>> {
        match self {
            CpuStorage::F32(v) => try_convert("to_f64s", v),
            CpuStorage::F64(v) => try_convert("to_f64s", v),
            CpuStorage::F16(v) => try_convert("to_f64s", v),
            CpuStorage::BF16(v) => try_convert("to_f64s", v),
        }
    }

    /// The data as f32 values (a copy of f32 data, the exact widening of 16-bit data, the
    /// rounding of f64 data), for the f32 loop of a 16-bit op.
    fn f32s(&self, op: &'static str) -> Result<Vec<f32>> {
        match self {
            CpuStorage::F32(v) => try_copy(op, v),
            CpuStorage::F64(v) => try_convert(op, v),
            CpuStorage::F16(v) => half::widen(op, v),
            CpuStorage::BF16(v) => half::widen(op, v),
        }
    }

    /// The raw bytes (native endianness), for device uploads and file output.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F64(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
        }
    }

    /// The raw bytes, writable (device downloads land here).
    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::F64(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::F16(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice_mut(v),
        }
    }
}

fn dtype_mismatch(op: &'static str, lhs: DType, rhs: DType) -> TensorError {
    TensorError::DTypeMismatch { op, lhs, rhs }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
        }
    }

    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
        }
    }

    fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(map_typed!(self, op.name(), x => op.apply(x)?))
    }

    fn binary(&self, op: BinaryOp, rhs: &Self, layout: &BroadcastLayout) -> Result<Self> {
        match (self, rhs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                Ok(CpuStorage::F32(op.apply(a, b, layout)?))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                Ok(CpuStorage::F64(op.apply(a, b, layout)?))
            }
            (a, b) if a.dtype().is_half() && a.dtype() == b.dtype() => {
                let out = op.apply(&a.f32s(op.name())?, &b.f32s(op.name())?, layout)?;
                half::from_f32s(op.name(), a.dtype(), &out)
            }
            _ => Err(dtype_mismatch(op.name(), self.dtype(), rhs.dtype())),
        }
    }

    fn ternary(&self, op: TernaryOp, b: &Self, c: &Self, layout: &BroadcastLayout) -> Result<Self> {
        match (self, b, c) {
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
                Ok(CpuStorage::F32(op.apply(a, b, c, layout)?))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
                Ok(CpuStorage::F64(op.apply(a, b, c, layout)?))
            }
            (a, b, c)
                if a.dtype().is_half() && a.dtype() == b.dtype() && a.dtype() == c.dtype() =>
            {
                let name = op.name();
                let out = op.apply(&a.f32s(name)?, &b.f32s(name)?, &c.f32s(name)?, layout)?;
                half::from_f32s(name, a.dtype(), &out)
            }
            _ => Err(dtype_mismatch(op.name(), self.dtype(), b.dtype())),
        }
    }

    fn matmul(&self, rhs: &Self, spec: &MatmulSpec) -> Result<Self> {
        match (self, rhs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                Ok(CpuStorage::F32(matmul::matmul(a, b, spec)?))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                Ok(CpuStorage::F64(matmul::matmul(a, b, spec)?))
            }
            (a, b) if a.dtype().is_half() && a.dtype() == b.dtype() => {
                let out = matmul::matmul(&a.f32s("matmul")?, &b.f32s("matmul")?, spec)?;
                half::from_f32s("matmul", a.dtype(), &out)
            }
            _ => Err(dtype_mismatch("matmul", self.dtype(), rhs.dtype())),
        }
    }

    fn reduce(&self, op: ReduceOp, outer: usize, reduced: usize, inner: usize) -> Result<Self> {
        Ok(map_typed!(self, op.name(), x => reduce::reduce(op, x, outer, reduced, inner)?))
    }

    fn log_softmax(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(map_typed!(self, "log_softmax", x => reduce::log_softmax(x, rows, cols)?))
    }

    fn logsumexp(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(map_typed!(self, "logsumexp", x => reduce::logsumexp(x, rows, cols)?))
    }

    fn copy_strided(&self, copy: &StridedCopy) -> Result<Self> {
        Ok(map_moved!(self, x => layout::copy_strided(x, copy)?))
    }

    fn cat(parts: &[&Self], outer: usize, widths: &[usize]) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(TensorError::Empty { op: "cat" });
        };
        if let Some(other) = parts.iter().find(|p| p.dtype() != first.dtype()) {
            return Err(dtype_mismatch("cat", first.dtype(), other.dtype()));
        }
        Ok(match first {
            CpuStorage::F32(_) => {
                let typed: Vec<&[f32]> = parts.iter().filter_map(|p| f32::slice(p)).collect();
                CpuStorage::F32(layout::cat(&typed, outer, widths)?)
            }
            CpuStorage::F64(_) => {
                let typed: Vec<&[f64]> = parts.iter().filter_map(|p| f64::slice(p)).collect();
                CpuStorage::F64(layout::cat(&typed, outer, widths)?)
            }
            CpuStorage::F16(_) => {
                let typed: Vec<&[::half::f16]> =
                    parts.iter().filter_map(|p| ::half::f16::slice(p)).collect();
                CpuStorage::F16(layout::cat(&typed, outer, widths)?)
            }
            CpuStorage::BF16(_) => {
                let typed: Vec<&[::half::bf16]> = parts
                    .iter()
                    .filter_map(|p| ::half::bf16::slice(p))
                    .collect();
                CpuStorage::BF16(layout::cat(&typed, outer, widths)?)
            }
        })
    }

    fn index_select(
        &self,
        indices: &[usize],
        outer: usize,
        axis_len: usize,
        inner: usize,
    ) -> Result<Self> {
        Ok(map_moved!(self, x => layout::index_select(x, indices, outer, axis_len, inner)?))
    }

    fn index_add(&self, indices: &[usize], outer: usize, len: usize, inner: usize) -> Result<Self> {
        Ok(map_typed!(self, "index_add", x => layout::index_add(x, indices, outer, len, inner)?))
    }

    fn to_dtype(&self, dtype: DType) -> Result<Self> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        match self {
            CpuStorage::F64(v) => half::from_f64s("to_dtype", dtype, v),
            other => half::from_f32s("to_dtype", dtype, &other.f32s("to_dtype")?),
        }
    }

    fn unfold(&self, geometry: &Im2Col, fill: f64) -> Result<Self> {
        Ok(map_moved!(self, x => conv::unfold(x, geometry, fill)?))
    }

    fn fold(&self, geometry: &Im2Col) -> Result<Self> {
        Ok(map_typed!(self, "fold2d", x => conv::fold(x, geometry)?))
    }
}
