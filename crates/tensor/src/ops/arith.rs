//! The arithmetic operators `+ - * /` and unary `-` on tensors. Each returns a [`Result`], and
//! a `Result<Tensor>` is accepted as an operand next to a tensor, so a chain needs one `?` at
//! the end and an error anywhere in it (a shape mismatch, a dtype or device mismatch) comes
//! out as that `Err`, naming the op that failed:
//!
//! ```
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_tensor::Result<()> {
//! let a = Tensor::from_f64s(&[1.0, 2.0], [2], DType::F64, Device::Cpu)?;
//! let b = Tensor::from_f64s(&[3.0, 4.0], [2], DType::F64, Device::Cpu)?;
//! let y = ((2.0 * &a + &b) * &a - &b) / &b; // ((2a + b)·a − b) / b
//! assert_eq!(y?.to_vec::<f64>()?, vec![(5.0 - 3.0) / 3.0, (16.0 - 4.0) / 4.0]);
//!
//! let c = Tensor::ones([3], DType::F64, Device::Cpu)?;
//! let bad = (&a * &b + &c) / &b;
//! assert!(bad.unwrap_err().to_string().starts_with("add: shapes [2] and [3]"));
//! # Ok(())
//! # }
//! ```
//!
//! Operands are tensors (owned or borrowed), an `f64` on either side of a tensor, and a
//! `Result<Tensor>` on either side of a tensor. Rust's coherence rules allow no operator
//! between a `Result` and an `f64` or between two `Result`s (neither type is this crate's), so
//! there one `Result` needs its `?` first: `(&a * &b)? + 2.0`, `(&a * &b)? + &c * &d`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::{Result, Tensor};

/// The four arithmetic operators.
#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

impl Arith {
    /// `a op b`, broadcasting.
    fn tensors(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Arith::Add => Tensor::add(a, b),
            Arith::Sub => Tensor::sub(a, b),
            Arith::Mul => Tensor::mul(a, b),
            Arith::Div => Tensor::div(a, b),
        }
    }

    /// `a op c` for a scalar `c`.
    fn tensor_scalar(self, a: &Tensor, c: f64) -> Result<Tensor> {
        match self {
            Arith::Add => a.add_scalar(c),
            Arith::Sub => a.sub_scalar(c),
            Arith::Mul => a.mul_scalar(c),
            Arith::Div => a.div_scalar(c),
        }
    }

    /// `c op b` for a scalar `c`.
    fn scalar_tensor(self, c: f64, b: &Tensor) -> Result<Tensor> {
        match self {
            Arith::Add => b.add_scalar(c),
            Arith::Sub => b.affine(-1.0, c),
            Arith::Mul => b.mul_scalar(c),
            Arith::Div => Tensor::div(&Tensor::scalar(c, b.dtype(), b.device())?, b),
        }
    }
}

/// `impl $Trait<$rhs> for $lhs` for each listed pair, the result computed by `body` from the
/// operator `op` and the two operands `a` and `b` as given.
macro_rules! operator_impls {
    ($Trait:ident $method:ident $arith:ident:
     $($lhs:ty, $rhs:ty => |$op:ident, $a:ident, $b:ident| $body:expr;)*) => {
        $(
            impl $Trait<$rhs> for $lhs {
                type Output = Result<Tensor>;

                fn $method(self, rhs: $rhs) -> Result<Tensor> {
                    let ($op, $a, $b) = (Arith::$arith, self, rhs);
                    $body
                }
            }
        )*
    };
}

/// Every operand combination of one operator.
macro_rules! operator {
    ($Trait:ident $method:ident $arith:ident) => {
        operator_impls! { $Trait $method $arith:
            &Tensor, &Tensor => |op, a, b| op.tensors(a, b);
            &Tensor, Tensor => |op, a, b| op.tensors(a, &b);
            Tensor, &Tensor => |op, a, b| op.tensors(&a, b);
            Tensor, Tensor => |op, a, b| op.tensors(&a, &b);
            Result<Tensor>, &Tensor => |op, a, b| op.tensors(&a?, b);
            Result<Tensor>, Tensor => |op, a, b| op.tensors(&a?, &b);
            &Tensor, Result<Tensor> => |op, a, b| op.tensors(a, &b?);
            Tensor, Result<Tensor> => |op, a, b| op.tensors(&a, &b?);
            &Tensor, f64 => |op, a, b| op.tensor_scalar(a, b);
            Tensor, f64 => |op, a, b| op.tensor_scalar(&a, b);
            f64, &Tensor => |op, a, b| op.scalar_tensor(a, b);
            f64, Tensor => |op, a, b| op.scalar_tensor(a, &b);
        }
    };
}

operator!(Add add Add);
operator!(Sub sub Sub);
operator!(Mul mul Mul);
operator!(Div div Div);

impl Neg for &Tensor {
    type Output = Result<Tensor>;

    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;

    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
