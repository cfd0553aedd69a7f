//! [`Precision`]: how a GPU's f32 matrix products round their inputs — IEEE f32 FMAs, or tensor
//! cores with TF32 inputs — a per-device setting read when a GEMM kernel is chosen.

use std::fmt;
use std::str::FromStr;

use crate::KernelError;

/// How f32 matrix products (GEMMs) on a GPU round their inputs. f64 GEMMs always use IEEE f64
/// FMAs and ignore the setting.
///
/// | mode | kernel | rounding | expected error of a product (relative to Σ\|a·b\|) |
/// |---|---|---|---|
/// | [`Precision::Ieee`] (default) | `matmul_f32` (SIMT) | none: f32 FMA | ~k·2⁻²⁴ worst case, ~√k·2⁻²⁴ typical |
/// | [`Precision::Tf32`] | `matmul_tf32_f32` (tensor cores) | A and B rounded to TF32 (10 mantissa bits, to nearest), f32 accumulate | ~2⁻¹¹ ≈ 5·10⁻⁴ per product, ~10⁻⁴–10⁻³ |
/// | [`Precision::Tf32x3`] | `matmul_tf32x3_f32` (tensor cores, three products) | x = big + small, both TF32; small·small dropped (~2⁻²²) | f32 level, like `Ieee` |
///
/// Tensor-core modes need compute capability 8.0 (A100) or newer; the emulated GPU runs them.
///
/// f16 and bf16 products ignore the setting too: on a GPU with tensor cores they always run
/// `matmul_h16_{f16,bf16}` (`mma.sync` m16n8k16, the 16-bit operands as stored, f32
/// accumulation, one rounding to the dtype), which is what IEEE f32 FMAs on the widened operands
/// would compute up to the order of the f32 sums: a product of two 16-bit values is exact in
/// f32. Without tensor cores they widen to f32 and use the f32 GEMM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE f32 fused multiply-adds (the default).
    #[default]
    Ieee,
    /// TF32 tensor cores: inputs rounded to 10 mantissa bits, f32 accumulation.
    Tf32,
    /// Split TF32 ("3xTF32"): big·big + big·small + small·big on tensor cores, f32 accuracy.
    Tf32x3,
}

impl Precision {
    /// Every mode, in the order of the table above.
    pub const ALL: [Precision; 3] = [Precision::Ieee, Precision::Tf32, Precision::Tf32x3];

    /// `ieee`, `tf32` or `tf32x3`: the name `--precision` and [`FromStr`] accept.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Ieee => "ieee",
            Precision::Tf32 => "tf32",
            Precision::Tf32x3 => "tf32x3",
        }
    }

    /// Whether the mode runs on tensor cores (compute capability 8.0 or newer).
    pub fn uses_tensor_cores(self) -> bool {
        self != Precision::Ieee
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Precision::Ieee => 0,
            Precision::Tf32 => 1,
            Precision::Tf32x3 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Precision {
        match code {
            1 => Precision::Tf32,
            2 => Precision::Tf32x3,
            _ => Precision::Ieee,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = KernelError;

    /// `ieee`, `tf32` or `tf32x3` (ASCII case-insensitive); anything else is an error naming
    /// the accepted values.
    fn from_str(s: &str) -> Result<Precision, KernelError> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| KernelError::UnknownPrecision {
                value: s.chars().take(40).collect(),
            })
    }
}

/// The compute capability `major·10 + minor` of an architecture name `sm_XY` / `sm_XYa`.
pub(crate) fn arch_number(arch: &str) -> Option<u32> {
    let digits: String = arch
        .strip_prefix("sm_")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_accepted_ones() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().ok(), Some(p));
            assert_eq!(Precision::from_code(p.code()), p);
        }
        assert_eq!("TF32x3".parse::<Precision>().ok(), Some(Precision::Tf32x3));
        let err = "fp16"
            .parse::<Precision>()
            .expect_err("unknown")
            .to_string();
        for part in ["fp16", "ieee", "tf32", "tf32x3"] {
            assert!(err.contains(part), "{err}");
        }
        assert_eq!(Precision::default(), Precision::Ieee);
    }

    #[test]
    fn arch_numbers() {
        assert_eq!(arch_number("sm_90"), Some(90));
        assert_eq!(arch_number("sm_90a"), Some(90));
        assert_eq!(arch_number("sm_75"), Some(75));
        assert_eq!(arch_number("emulated"), None);
    }
}
