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
            /// |x|; derivative sign(x), 0 at the kink x = 0 (as PyTorch). Piecewise linear: its
            /// second derivative is 0 almost everywhere.
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
            Reciprocal reciprocal, saves Output, on [(-2.0, -0.5), (0.5, 2.0)],
                value(x) => T::one() / x,
                grad(g, y) => g.mul(&y.unary(UnaryOp::Square)?)?.neg();
            /// softplus(x) = ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|) so it neither
            /// overflows nor loses the small values; derivative σ(x).
            Softplus softplus, saves Inputs, on [(-3.0, 3.0)],
                value(x) => x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
                grad(g, x) => g.mul(&x.unary(UnaryOp::Sigmoid)?);
            /// The Heaviside step: 1 where x > 0, else 0 (0 at 0, and for NaN); derivative 0. The
            /// gradient mask of `relu` and its relatives.
            Step step, saves Nothing, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => if x > T::zero() { T::one() } else { T::zero() },
                grad(g, _) => g.scale(0.0);
            /// relu(x) = max(x, 0) (NaN stays NaN); derivative 1 where x > 0, else 0 (0 at the
            /// kink x = 0, as PyTorch). Piecewise linear: its second derivative is 0 almost
            /// everywhere.
            Relu relu, saves Inputs, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => if x < T::zero() { T::zero() } else { x },
                grad(g, x) => g.mul(&x.constant_unary(UnaryOp::Step)?);
            /// The exact GELU, x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2 the standard normal CDF
            /// (PyTorch's `gelu`); derivative Φ(x) + x·φ(x), φ the normal density.
            Gelu gelu, saves Inputs, on [(-3.0, 3.0)],
                value(x) => T::from_f64(0.5) * x
                    * (T::one() + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf()),
                grad(g, x) => gelu_grad(g, x);
            /// The tanh GELU, x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2 (PyTorch's
            /// `gelu(approximate='tanh')`); derivative by the chain rule through the tanh.
            GeluTanh gelu_tanh, saves Inputs, on [(-3.0, 3.0)],
                value(x) => {
                    let cubic = x + T::from_f64(GELU_TANH_KAPPA) * x * x * x;
                    T::from_f64(0.5) * x * (T::one() + (T::from_f64(GELU_TANH_BETA) * cubic).tanh())
                },
                grad(g, x) => gelu_tanh_grad(g, x);
            /// silu(x) = x·σ(x) (also called swish); derivative σ(x)·(1 + x·(1 − σ(x))).
            Silu silu, saves Inputs, on [(-3.0, 3.0)],
                value(x) => x * sigmoid(x),
                grad(g, x) => {
                    let s = x.unary(UnaryOp::Sigmoid)?;
                    let one_minus_s = s.unary(UnaryOp::Affine { mul: -1.0, add: 1.0 })?;
                    let one_plus = x
                        .mul(&one_minus_s)?
                        .unary(UnaryOp::Affine { mul: 1.0, add: 1.0 })?;
                    g.mul(&s.mul(&one_plus)?)
                };
            /// The error function erf(x) = (2/√π)∫₀ˣ e^(−t²) dt (within 1 ulp; CUDA's `erf` /
            /// `erff` within 2); derivative (2/√π)·e^(−x²).
            Erf erf, saves Inputs, on [(-2.5, 2.5)],
                value(x) => x.erf(),
                grad(g, x) => g.mul(
                    &x.unary(UnaryOp::Square)?
                        .unary(UnaryOp::Affine { mul: -1.0, add: 0.0 })?
                        .unary(UnaryOp::Exp)?
                        .scale(std::f64::consts::FRAC_2_SQRT_PI)?,
                );
            /// 1/√x; derivative −1/(2·x^(3/2)) = −y³/2.
            Rsqrt rsqrt, saves Output, on [(0.5, 2.0)],
                value(x) => T::one() / x.sqrt(),
                grad(g, y) => g.mul(&y.unary(UnaryOp::Square)?.mul(y)?)?.scale(-0.5);
            /// ln(1 + x), accurate for small x; derivative 1/(1 + x).
            Log1p log1p, saves Inputs, on [(-0.5, 2.0)],
                value(x) => x.ln_1p(),
                grad(g, x) => g.div(&x.unary(UnaryOp::Affine { mul: 1.0, add: 1.0 })?);
            /// eˣ − 1, accurate for small x; derivative eˣ = y + 1.
            Expm1 expm1, saves Output, on [(-2.0, 2.0)],
                value(x) => x.exp_m1(),
                grad(g, y) => g.mul(&y.unary(UnaryOp::Affine { mul: 1.0, add: 1.0 })?);
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
            /// x where x > 0, else slope·x (PyTorch's `leaky_relu`, NaN stays NaN); derivative 1
            /// where x > 0, else `slope` (`slope` at the kink x = 0, as PyTorch). Piecewise
            /// linear: its second derivative is 0 almost everywhere.
            LeakyRelu leaky_relu(slope = 0.1), saves Inputs, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => if x > T::zero() { x } else { x * slope },
                grad(g, x) => g.mul(
                    &x.constant_unary(UnaryOp::Step)?
                        .unary(UnaryOp::Affine { mul: 1.0 - slope, add: slope })?,
                );
            /// elu(x) = x where x > 0, else α·(eˣ − 1) (PyTorch's `elu`); derivative 1 where
            /// x > 0, else α·eˣ (α at x = 0, as PyTorch). Its second derivative is α·eˣ for
            /// x < 0 and 0 for x > 0 (undefined at 0 unless α = 1).
            Elu elu(alpha = 1.5), saves Inputs, on [(-2.0, -0.3), (0.3, 2.0)],
                value(x) => if x > T::zero() { x } else { alpha * x.exp_m1() },
                grad(g, x) => {
                    // 1 where x > 0; else y + α = α·eˣ (finite for every x, unlike eˣ).
                    let positive = x.constant_unary(UnaryOp::Step)?;
                    let negative = positive.unary(UnaryOp::Affine { mul: -1.0, add: 1.0 })?;
                    let y_plus_alpha = x
                        .unary(UnaryOp::Elu { alpha })?
                        .unary(UnaryOp::Affine { mul: 1.0, add: alpha })?;
                    g.mul(&y_plus_alpha.mul(&negative)?.add(&positive)?)
                };
            /// min(max(x, lo), hi) (PyTorch's `clamp`: hi where lo > hi; NaN stays NaN);
            /// derivative 1 where lo ≤ x ≤ hi (the bounds included, as PyTorch), else 0.
            /// Piecewise linear: its second derivative is 0 almost everywhere.
            Clamp clamp(lo = -0.5, hi = 0.75), saves Inputs,
                on [(-2.0, -0.6), (-0.4, 0.65), (0.85, 2.0)],
                value(x) => {
                    let above_lo = if x < lo { lo } else { x };
                    if above_lo > hi { hi } else { above_lo }
                },
                grad(g, x) => g.mul(&x.constant_unary(UnaryOp::Between { lo, hi })?);
            /// 1 where lo ≤ x ≤ hi, else 0 (0 for NaN); derivative 0. The gradient mask of
            /// `clamp`.
            Between between(lo = -0.5, hi = 0.75), saves Nothing,
                on [(-2.0, -0.6), (-0.4, 0.65), (0.85, 2.0)],
                value(x) => if x >= lo && x <= hi { T::one() } else { T::zero() },
                grad(g, _) => g.scale(0.0);
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

            /// The op over a block, `out[i] = f(x[i])`: the loop the fused CPU executor runs.
            pub(crate) fn apply_slice<T: Element>(self, x: &[T], out: &mut [T]) {
                match self {
                    $(UnaryOp::$U => out.iter_mut().zip(x).for_each(|(o, &$ux)| *o = $uvalue),)*
                    $(UnaryOp::$P { $($param),* } => {
                        $(let $param = T::from_f64($param);)*
                        out.iter_mut().zip(x).for_each(|(o, &$px)| *o = $pvalue)
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

/// √(2/π), the tanh GELU's scale.
const GELU_TANH_BETA: f64 = 0.797_884_560_802_865_4;
/// The tanh GELU's cubic coefficient.
const GELU_TANH_KAPPA: f64 = 0.044715;

/// `g·gelu'(x)` = `g·(Φ(x) + x·φ(x))`, with Φ through erf and φ(x) = e^(−x²/2)/√(2π).
fn gelu_grad<V: Differentiable>(g: &V, x: &V) -> std::result::Result<V, V::Error> {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    let cdf = x
        .scale(FRAC_1_SQRT_2)?
        .unary(UnaryOp::Erf)?
        .unary(UnaryOp::Affine { mul: 0.5, add: 0.5 })?;
    let pdf = x
        .unary(UnaryOp::Square)?
        .scale(-0.5)?
        .unary(UnaryOp::Exp)?
        .scale(0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2)?;
    g.mul(&cdf.add(&x.mul(&pdf)?)?)
}

/// `g·gelu_tanh'(x)` with t = tanh(β·(x + κx³)): `g·((1 + t)/2 + x·(1 − t²)·β·(1 + 3κx²)/2)`.
fn gelu_tanh_grad<V: Differentiable>(g: &V, x: &V) -> std::result::Result<V, V::Error> {
    let (beta, kappa) = (GELU_TANH_BETA, GELU_TANH_KAPPA);
    let x2 = x.unary(UnaryOp::Square)?;
    let inner = x
        .mul(&x2.unary(UnaryOp::Affine {
            mul: kappa,
            add: 1.0,
        })?)?
        .scale(beta)?;
    let t = inner.unary(UnaryOp::Tanh)?;
    let inner_grad = x2.unary(UnaryOp::Affine {
        mul: 3.0 * kappa * beta,
        add: beta,
    })?;
    // (1 − t²)·β(1 + 3κx²), through the fused tanh backward.
    let through_tanh = inner_grad.binary(BinaryOp::TanhBackward, &t)?;
    let d = t
        .unary(UnaryOp::Affine { mul: 0.5, add: 0.5 })?
        .add(&x.mul(&through_tanh)?.scale(0.5)?)?;
    g.mul(&d)
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
