//! The unary elementwise ops. Each entry of the table below is the one definition of its op:
//! the doc (shown on the `Tensor` and `Var` methods), the method name (also the op's name and
//! the stem of its CUDA kernel `unary_{name}_{dt}` in `kernels/elementwise.cu`), what its
//! backward rule saves, the inputs it is tested on, its scalar formula (the CPU loop) and its
//! backward rule (written with differentiable ops, so it can be differentiated again).

use crate::cpu::elementwise::map;
use crate::ops::elementwise::{BinaryOp, Differentiable, Saves};
use crate::{Element, Result};

/// The unary op table, handed to the macro `[$then]` with `$extra` in front.
///
/// Entry syntax: docs, `Variant method(param = sample, …), saves S, on [(lo, hi), …],
/// value(x) => scalar formula, grad(g, saved) => rule;`. Ops without parameters come under
/// `unit:`, ops with scalar parameters (`f64`) under `params:`.
#[doc(hidden)]
#[macro_export]
macro_rules! unary_op_table {
    ([$($then:tt)+] $($extra:tt)*) => {
        $($then)+! {
            ($($extra)*)
            unit: {
            /// −x; derivative −1.
            Neg neg, saves Nothing, on [(-2.0, 2.0)],
                value(x) => -x,
                grad(g, _) => g.neg();
            /// eˣ; derivative eˣ.
            Exp exp, saves Output, on [(-2.0, 2.0)],
                value(x) => x.exp(),
                grad(g, y) => g.mul(y);
            /// ln x; derivative 1/x.
            Log log, saves Inputs, on [(0.5, 2.0)],
                value(x) => x.ln(),
                grad(g, x) => g.div(x);
            /// sin x; derivative cos x.
            Sin sin, saves Inputs, on [(-2.0, 2.0)],
                value(x) => x.sin(),
                grad(g, x) => g.mul(&x.unary(UnaryOp::Cos)?);
            /// cos x; derivative −sin x.
            Cos cos, saves Inputs, on [(-2.0, 2.0)],
                value(x) => x.cos(),
                grad(g, x) => g.mul(&x.unary(UnaryOp::Sin)?)?.neg();
            /// √x; derivative 1/(2√x).
            Sqrt sqrt, saves Output, on [(0.5, 2.0)],
                value(x) => x.sqrt(),
                grad(g, y) => g.div(y)?.scale(0.5);
            /// |x|; derivative sign(x) (0 at 0). Its second derivative is 0 away from 0.
            Abs abs, saves Inputs, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => x.abs(),
                grad(g, x) => g.mul(&x.constant_unary(UnaryOp::Sign)?);
            /// tanh x; derivative 1 − tanh²x (through the fused `tanh_backward`).
            Tanh tanh, saves Output, on [(-2.0, 2.0)],
                value(x) => x.tanh(),
                grad(g, y) => g.binary(BinaryOp::TanhBackward, y);
            /// σ(x) = 1 / (1 + e⁻ˣ); derivative σ(1 − σ) (through the fused `sigmoid_backward`).
            Sigmoid sigmoid, saves Output, on [(-3.0, 3.0)],
                value(x) => sigmoid(x),
                grad(g, y) => g.binary(BinaryOp::SigmoidBackward, y);
            /// x²; derivative 2x.
            Square square, saves Inputs, on [(-2.0, 2.0)],
                value(x) => x * x,
                grad(g, x) => g.mul(x)?.scale(2.0);
            /// sign(x) ∈ {−1, 0, 1} (zero keeps its sign, NaN stays NaN); derivative 0.
            Sign sign, saves Nothing, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => sign(x),
                grad(g, _) => g.scale(0.0);
            /// 1 / x; derivative −1/x².
            Recip recip, saves Output, on [(-2.0, -0.5), (0.5, 2.0)],
                value(x) => T::one() / x,
                grad(g, y) => g.mul(&y.unary(UnaryOp::Square)?)?.neg();
            /// softplus(x) = ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|) so it neither
            /// overflows nor loses the small values; derivative σ(x).
            Softplus softplus, saves Inputs, on [(-3.0, 3.0)],
                value(x) => x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
                grad(g, x) => g.mul(&x.unary(UnaryOp::Sigmoid)?);
            }
            params: {
            /// xᵖ for a scalar exponent; derivative p·xᵖ⁻¹.
            Powf powf(exponent = 2.5), saves Inputs, on [(0.5, 2.0)],
                value(x) => x.powf(exponent),
                grad(g, x) => g
                    .mul(&x.unary(UnaryOp::Powf { exponent: exponent - 1.0 })?)?
                    .scale(exponent);
            /// x·mul + add; derivative `mul`.
            Affine affine(mul = 1.5, add = -0.25), saves Nothing, on [(-2.0, 2.0)],
                value(x) => x * mul + add,
                grad(g, _) => g.scale(mul);
            }
        }
    };
}

/// Inherent methods `x.{name}()` (and `x.powf(p)`, `x.affine(m, a)`) for every unary op, on a
/// type with `fn unary(&self, UnaryOp) -> $result`.
#[doc(hidden)]
#[macro_export]
macro_rules! __unary_op_methods {
    (($ty:ty, $result:ty)
     unit: { $($(#[$udoc:meta])* $U:ident $umethod:ident, saves $us:ident,
        on [$(($ulo:expr, $uhi:expr)),*], value($ux:pat) => $uvalue:expr,
        grad($ug:ident, $usaved:pat) => $ugrad:expr;)* }
     params: { $($(#[$pdoc:meta])* $P:ident $pmethod:ident($($param:ident = $sample:expr),*),
        saves $ps:ident, on [$(($plo:expr, $phi:expr)),*], value($px:pat) => $pvalue:expr,
        grad($pg:ident, $psaved:pat) => $pgrad:expr;)* }) => {
        impl $ty {
            $($(#[$udoc])* pub fn $umethod(&self) -> $result {
                self.unary($crate::UnaryOp::$U)
            })*
            $($(#[$pdoc])* pub fn $pmethod(&self, $($param: f64),*) -> $result {
                self.unary($crate::UnaryOp::$P { $($param),* })
            })*
        }
    };
}

macro_rules! define_unary_ops {
    (()
     unit: { $($(#[$udoc:meta])* $U:ident $umethod:ident, saves $us:ident,
        on [$(($ulo:expr, $uhi:expr)),*], value($ux:pat) => $uvalue:expr,
        grad($ug:ident, $usaved:pat) => $ugrad:expr;)* }
     params: { $($(#[$pdoc:meta])* $P:ident $pmethod:ident($($param:ident = $sample:expr),*),
        saves $ps:ident, on [$(($plo:expr, $phi:expr)),*], value($px:pat) => $pvalue:expr,
        grad($pg:ident, $psaved:pat) => $pgrad:expr;)* }) => {
        /// Elementwise functions of one tensor.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum UnaryOp {
            $($(#[$udoc])* $U,)*
            $($(#[$pdoc])* $P { $($param: f64),* },)*
        }

        impl UnaryOp {
            /// Every op (parameterised ones with a sample parameter): what the op-level tests
            /// run on every device.
            pub const ALL: &'static [UnaryOp] = &[
                $(UnaryOp::$U,)*
                $(UnaryOp::$P { $($param: $sample),* },)*
            ];

            /// The op's name: its method's name and the stem of its kernel `unary_{name}_{dt}`.
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$U => stringify!($umethod),)*
                    $(UnaryOp::$P { .. } => stringify!($pmethod),)*
                }
            }

            /// The two scalar parameters passed to the kernel (unused ones are 0).
            pub fn params(self) -> (f64, f64) {
                let params: &[f64] = match self {
                    $(UnaryOp::$U => &[],)*
                    $(UnaryOp::$P { $($param),* } => &[$($param),*],)*
                };
                (
                    params.first().copied().unwrap_or(0.0),
                    params.get(1).copied().unwrap_or(0.0),
                )
            }

            /// What the backward rule reads.
            pub fn saves(self) -> Saves {
                match self {
                    $(UnaryOp::$U => Saves::$us,)*
                    $(UnaryOp::$P { .. } => Saves::$ps,)*
                }
            }

            /// Intervals of inputs where the op is smooth, for tests (away from kinks and
            /// singularities).
            pub fn domain(self) -> &'static [(f64, f64)] {
                match self {
                    $(UnaryOp::$U => &[$(($ulo, $uhi)),*],)*
                    $(UnaryOp::$P { .. } => &[$(($plo, $phi)),*],)*
                }
            }

            /// The op applied to every element on the CPU, one monomorphic loop per op.
            pub(crate) fn apply<T: Element>(self, x: &[T]) -> Result<Vec<T>> {
                match self {
                    $(UnaryOp::$U => map(x, |$ux: T| $uvalue),)*
                    $(UnaryOp::$P { $($param),* } => {
                        $(let $param = T::from_f64($param);)*
                        map(x, |$px: T| $pvalue)
                    })*
                }
            }

            /// `g·f'(x)` for the cotangent `g`, given the value [`UnaryOp::saves`] names (the
            /// input or the output; ignored when it saves nothing).
            #[allow(unused_variables)] // parameters a rule does not read (`add` of affine)
            pub fn backward<V: Differentiable>(
                self,
                g: &V,
                saved: &V,
            ) -> std::result::Result<V, V::Error> {
                match self {
                    $(UnaryOp::$U => {
                        let ($ug, $usaved) = (g, saved);
                        $ugrad
                    })*
                    $(UnaryOp::$P { $($param),* } => {
                        let ($pg, $psaved) = (g, saved);
                        $pgrad
                    })*
                }
            }
        }
    };
}

unary_op_table!([define_unary_ops]);
unary_op_table!([crate::__unary_op_methods] crate::Tensor, Result<crate::Tensor>);

/// The activations whose derivatives are polynomials of their output: the closed forms the
/// fused MLP sweep uses, the same polynomials the fused `tanh_backward` / `sigmoid_backward`
/// ops (first derivative) and their double-backward ops (second) apply elementwise.
impl UnaryOp {
    /// `(t, tanh'(z), tanh''(z))` with `t = tanh z`: `(t, 1 − t², −2t(1 − t²))`.
    pub fn tanh_derivatives<T: Element>(z: T) -> (T, T, T) {
        let t = z.tanh();
        let d1 = T::one() - t * t;
        (t, d1, -T::from_f64(2.0) * t * d1)
    }

    /// `(s, σ'(z), σ''(z))` with `s = σ(z)`: `(s, s(1 − s), s(1 − s)(1 − 2s))`.
    pub fn sigmoid_derivatives<T: Element>(z: T) -> (T, T, T) {
        let s = sigmoid(z);
        let d1 = s * (T::one() - s);
        (s, d1, d1 * (T::one() - T::from_f64(2.0) * s))
    }
}

fn sign<T: Element>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x
    }
}

fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}
