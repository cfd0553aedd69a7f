//! Element types: the runtime tag [`DType`] and the host types behind it.

use crate::cpu::CpuStorage;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The short name used in kernel names and messages (`f32`, `f64`).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            other => Err(format!("unknown dtype '{other}' (expected f32 or f64)")),
        }
    }
}

/// A host element type a tensor can hold.
pub trait Element:
    num_traits::Float + bytemuck::Pod + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static
{
    const DTYPE: DType;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn into_storage(data: Vec<Self>) -> CpuStorage;
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    /// The error function: the `libm` crate's port of FreeBSD's `erf` / `erff` (within 1 ulp;
    /// CUDA's `erf` / `erff` are within 2 ulp, so the backends agree to a few ulp).
    fn erf(self) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(data)
    }
    fn slice(storage: &CpuStorage) -> Option<&[Self]> {
        match storage {
            CpuStorage::F32(v) => Some(v),
            CpuStorage::F64(_) => None,
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(data)
    }
    fn slice(storage: &CpuStorage) -> Option<&[Self]> {
        match storage {
            CpuStorage::F64(v) => Some(v),
            CpuStorage::F32(_) => None,
        }
    }
}
