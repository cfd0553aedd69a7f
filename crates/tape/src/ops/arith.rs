//! The arithmetic operators `+ - * /` and unary `-` on variables, recorded like the methods
//! they stand for (`add`, `sub`, `mul`, `div`, `neg` and the scalar forms), so gradients of
//! any order flow through them. Each returns a [`Result`]; a `Result<Var>` is accepted as an
//! operand next to a variable, so a chain needs one `?` at the end, and an error anywhere in it
//! comes out as that `Err`, naming the op that failed. A [`Tensor`] operand is a constant on
//! the variable's tape, and an `f64` may stand on either side:
//!
//! ```
//! use curvature_tape::{grad, GradOptions, Tape};
//! use curvature_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> curvature_tape::Result<()> {
//! let tape = Tape::new();
//! let x = tape.leaf(Tensor::from_f64s(&[1.0, 2.0], [2], DType::F64, Device::Cpu)?);
//! let w = Tensor::from_f64s(&[3.0, 4.0], [2], DType::F64, Device::Cpu)?; // a constant
//! let y = (0.5 - &x) * &x * &x; // (1/2 − x)·x²
//! let z = &x * &w - &x; // (w − 1)·x
//! let dy = grad(&[y?.sum_all()?, z?.sum_all()?], &[x], GradOptions::default())?;
//! assert_eq!(dy[0].value().to_vec::<f64>()?, vec![1.0 - 3.0 + 2.0, 2.0 - 12.0 + 3.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Rust's coherence rules allow no operator between a `Result` and an `f64`, a `Tensor` or
//! another `Result` (none of them is this crate's), so there one `Result` needs its `?` first:
//! `(&x * &x)? + 2.0`, `(&x * &x)? + &x * &y`.

use std::borrow::Cow;
use std::ops::{Add, Div, Mul, Neg, Sub};

use curvature_tensor::Tensor;

use crate::{Result, Var};

/// The four arithmetic operators.
#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// The operand beside a variable.
enum Operand<'a> {
    Var(Cow<'a, Var>),
    Tensor(Cow<'a, Tensor>),
    Scalar(f64),
}

impl Arith {
    /// `a op b`, broadcasting.
    fn vars(self, a: &Var, b: &Var) -> Result<Var> {
        match self {
            Arith::Add => Var::add(a, b),
            Arith::Sub => Var::sub(a, b),
            Arith::Mul => Var::mul(a, b),
            Arith::Div => Var::div(a, b),
        }
    }

    /// `a op b` with the variable `a` on the left.
    fn left(self, a: &Var, b: Operand<'_>) -> Result<Var> {
        match b {
            Operand::Var(b) => self.vars(a, &b),
            Operand::Tensor(b) => self.vars(a, &a.constant(b.into_owned())),
            Operand::Scalar(c) => match self {
                Arith::Add => a.add_scalar(c),
                Arith::Sub => a.sub_scalar(c),
                Arith::Mul => a.mul_scalar(c),
                Arith::Div => a.div_scalar(c),
            },
        }
    }

    /// `a op b` with the variable `b` on the right.
    fn right(self, a: Operand<'_>, b: &Var) -> Result<Var> {
        match a {
            Operand::Var(a) => self.vars(&a, b),
            Operand::Tensor(a) => self.vars(&b.constant(a.into_owned()), b),
            Operand::Scalar(c) => match self {
                Arith::Add => b.add_scalar(c),
                Arith::Sub => b.affine(-1.0, c),
                Arith::Mul => b.mul_scalar(c),
                Arith::Div => {
                    let c = b.constant(Tensor::scalar(c, b.dtype(), b.device())?);
                    Var::div(&c, b)
                }
            },
        }
    }
}

/// A variable operand: a `Var`, borrowed or owned, or a `Result` holding one.
trait IntoVar<'a> {
    fn into_var(self) -> Result<Cow<'a, Var>>;
}

impl<'a> IntoVar<'a> for &'a Var {
    fn into_var(self) -> Result<Cow<'a, Var>> {
        Ok(Cow::Borrowed(self))
    }
}

impl IntoVar<'static> for Var {
    fn into_var(self) -> Result<Cow<'static, Var>> {
        Ok(Cow::Owned(self))
    }
}

impl IntoVar<'static> for Result<Var> {
    fn into_var(self) -> Result<Cow<'static, Var>> {
        Ok(Cow::Owned(self?))
    }
}

/// Any operand: a variable operand, a tensor (a constant) or a scalar.
trait IntoOperand<'a> {
    fn into_operand(self) -> Result<Operand<'a>>;
}

impl<'a, V: IntoVar<'a>> IntoOperand<'a> for V {
    fn into_operand(self) -> Result<Operand<'a>> {
        Ok(Operand::Var(self.into_var()?))
    }
}

impl<'a> IntoOperand<'a> for &'a Tensor {
    fn into_operand(self) -> Result<Operand<'a>> {
        Ok(Operand::Tensor(Cow::Borrowed(self)))
    }
}

impl IntoOperand<'static> for Tensor {
    fn into_operand(self) -> Result<Operand<'static>> {
        Ok(Operand::Tensor(Cow::Owned(self)))
    }
}

impl IntoOperand<'static> for f64 {
    fn into_operand(self) -> Result<Operand<'static>> {
        Ok(Operand::Scalar(self))
    }
}

/// `impl $Trait<rhs> for lhs` for each listed pair: those after `left` have the variable
/// operand on the left, those after `right` on the right.
macro_rules! operator_impls {
    ($Trait:ident $method:ident $arith:ident:
     left [$($llhs:ty, $lrhs:ty;)*] right [$($rlhs:ty, $rrhs:ty;)*]) => {
        $(
            impl $Trait<$lrhs> for $llhs {
                type Output = Result<Var>;

                fn $method(self, rhs: $lrhs) -> Result<Var> {
                    Arith::$arith.left(&*self.into_var()?, rhs.into_operand()?)
                }
            }
        )*
        $(
            impl $Trait<$rrhs> for $rlhs {
                type Output = Result<Var>;

                fn $method(self, rhs: $rrhs) -> Result<Var> {
                    Arith::$arith.right(self.into_operand()?, &*rhs.into_var()?)
                }
            }
        )*
    };
}

/// Every operand combination of one operator.
macro_rules! operator {
    ($Trait:ident $method:ident $arith:ident) => {
        operator_impls! { $Trait $method $arith:
            left [
                &Var, &Var; &Var, Var; Var, &Var; Var, Var;
                &Var, Result<Var>; Var, Result<Var>; Result<Var>, &Var; Result<Var>, Var;
                &Var, &Tensor; &Var, Tensor; Var, &Tensor; Var, Tensor;
                &Var, f64; Var, f64;
            ]
            right [
                &Tensor, &Var; &Tensor, Var; Tensor, &Var; Tensor, Var;
                f64, &Var; f64, Var;
            ]
        }
    };
}

operator!(Add add Add);
operator!(Sub sub Sub);
operator!(Mul mul Mul);
operator!(Div div Div);

impl Neg for &Var {
    type Output = Result<Var>;

    fn neg(self) -> Result<Var> {
        Var::neg(self)
    }
}

impl Neg for Var {
    type Output = Result<Var>;

    fn neg(self) -> Result<Var> {
        Var::neg(&self)
    }
}
