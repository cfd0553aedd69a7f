//! Element types: the runtime tag [`DType`] and the host types behind it.

use crate::cpu::CpuStorage;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    /// IEEE binary16 storage (`half::f16`): ops compute in f32 and round to nearest even on
    /// store; a finite result beyond ±65504 is an error, never a silent infinity.
    F16,
    /// bfloat16 storage (`half::bf16`, f32's exponent with 8 significant bits): ops compute in
    /// f32 and round to nearest even on store.
    BF16,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The short name used in kernel names and messages (`f32`, `f64`, `f16`, `bf16`).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// True for the 16-bit storage dtypes (f16, bf16), whose ops compute in f32.
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// The dtype arithmetic runs in: f32 for the 16-bit storage dtypes, else the dtype itself.
    pub fn compute(self) -> DType {
        if self.is_half() {
            DType::F32
        } else {
            self
        }
    }

    /// The spacing of the dtype's values at 1 (machine epsilon).
    pub fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64,
            DType::F64 => f64::EPSILON,
            DType::F16 => half::f16::EPSILON.to_f64(),
            DType::BF16 => half::bf16::EPSILON.to_f64(),
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
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            other => Err(format!(
                "unknown dtype '{other}' (expected f32, f64, f16 or bf16)"
            )),
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
            _ => None,
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
            _ => None,
        }
    }
}

/// `d` rounded to f32 by rounding to odd (truncated toward zero, the last bit set when
/// inexact): rounding that f32 to a 16-bit format equals rounding `d` to it directly, since f32
/// keeps more than two bits beyond either format's significand (no double rounding).
pub(crate) fn f32_rounded_to_odd(d: f64) -> f32 {
    let f = d as f32;
    if d.is_nan() || f as f64 == d {
        return f;
    }
    let mut bits = f.to_bits();
    if (f as f64).abs() > d.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// The 16-bit storage types: `from_f64` rounds to nearest even (once, from the f64 value), and
/// the scalar formulas a generic CPU loop would run are never used for them (the CPU backend
/// computes their ops in f32, `cpu::half`).
macro_rules! half_element {
    ($ty:ty, $dtype:ident) => {
        impl Element for $ty {
            const DTYPE: DType = DType::$dtype;
            fn from_f64(v: f64) -> Self {
                <$ty>::from_f32(f32_rounded_to_odd(v))
            }
            fn to_f64(self) -> f64 {
                <$ty>::to_f64(self)
            }
            fn erf(self) -> Self {
                <$ty>::from_f32(libm::erff(self.to_f32()))
            }
            fn into_storage(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$dtype(data)
            }
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$dtype(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

half_element!(half::f16, F16);
half_element!(half::bf16, BF16);
