//! The binary elementwise ops (NumPy broadcasting). Each entry of the table below is the one
//! definition of its op: the doc, the method name (also the op's name and the stem of its CUDA
//! kernels `binary_{name}[_contig]_{dt}` in `kernels/elementwise.cu`), what its backward rule
//! saves, its scalar formula (the CPU loop) and the gradients of both inputs (unreduced:
//! shaped like the broadcast output).

use crate::backend::BroadcastLayout;
use crate::cpu::elementwise::zip_map;
use crate::ops::elementwise::{Differentiable, Saves, TernaryOp, UnaryOp};
use crate::{Element, Result};

/// The binary op table, handed to the macro `[$then]` with `$extra` in front.
///
/// Entry syntax: docs, `Variant method, saves S, on a [(lo, hi), …], b [(lo, hi), …],
/// value(a, b) => scalar formula, grad(g, a, b) => (rule for a, rule for b);`.
#[doc(hidden)]
#[macro_export]
macro_rules! binary_op_table {
    ([$($then:tt)+] $($extra:tt)*) => {
        $($then)+! {
            ($($extra)*)
            /// a + b (broadcasting).
            Add add, saves Nothing,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(a, b) => a + b,
                grad(g, _a, _b) => (Ok(g.clone()), Ok(g.clone()));
            /// a − b (broadcasting).
            Sub sub, saves Nothing,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(a, b) => a - b,
                grad(g, _a, _b) => (Ok(g.clone()), g.neg());
            /// a · b elementwise (broadcasting); derivatives (b, a).
            Mul mul, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(a, b) => a * b,
                grad(g, a, b) => (g.mul(b), g.mul(a));
            /// a / b (broadcasting); derivatives (1/b, −a/b²).
            Div div, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(a, b) => a / b,
                grad(g, a, b) => (g.div(b), g.div(b)?.mul(a)?.div(b)?.neg());
            /// 1 where a == b, else 0 (broadcasting); derivatives 0.
            Eq eq_mask, saves Nothing,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(a, b) => if a == b { T::one() } else { T::zero() },
                grad(g, _a, _b) => (g.scale(0.0), g.scale(0.0));
            /// g·(1 − y²) with `self = g` and `y = tanh(x)`: the tanh backward rule, fused;
            /// derivatives (1 − y², −2·y·g).
            TanhBackward tanh_backward, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(g, y) => g * (T::one() - y * y),
                grad(gg, g, y) => (
                    gg.binary(BinaryOp::TanhBackward, y),
                    gg.ternary(TernaryOp::TanhBackwardGradY, g, y)
                );
            /// g·y·(1 − y) with `self = g` and `y = σ(x)`: the sigmoid backward rule, fused;
            /// derivatives (y(1 − y), g·(1 − 2y)).
            SigmoidBackward sigmoid_backward, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                value(g, y) => g * y * (T::one() - y),
                grad(gg, g, y) => (
                    gg.binary(BinaryOp::SigmoidBackward, y),
                    gg.ternary(TernaryOp::SigmoidBackwardGradY, g, y)
                );
            /// max(a, b) elementwise (broadcasting; NaN if either is NaN, like PyTorch's
            /// `maximum`); the gradient goes to the larger operand, split equally (½ each) on
            /// ties, as PyTorch. Piecewise: its second derivative is 0 almost everywhere.
            Maximum maximum, saves Inputs,
                on a [(-1.5, 1.5)], b [(-1.5, 1.5)],
                value(a, b) => if a > b || a != a { a } else { b },
                grad(g, a, b) => (
                    g.mul(&tie_split(a, b)?.unary(UnaryOp::Affine { mul: 0.5, add: 0.5 })?),
                    g.mul(&tie_split(a, b)?.unary(UnaryOp::Affine { mul: -0.5, add: 0.5 })?)
                );
            /// min(a, b) elementwise (broadcasting; NaN if either is NaN, like PyTorch's
            /// `minimum`); the gradient goes to the smaller operand, split equally (½ each) on
            /// ties, as PyTorch. Piecewise: its second derivative is 0 almost everywhere.
            Minimum minimum, saves Inputs,
                on a [(-1.5, 1.5)], b [(-1.5, 1.5)],
                value(a, b) => if a < b || a != a { a } else { b },
                grad(g, a, b) => (
                    g.mul(&tie_split(a, b)?.unary(UnaryOp::Affine { mul: -0.5, add: 0.5 })?),
                    g.mul(&tie_split(a, b)?.unary(UnaryOp::Affine { mul: 0.5, add: 0.5 })?)
                );
            /// aᵇ elementwise with a tensor exponent (broadcasting), for a > 0; derivatives
            /// (b·aᵇ⁻¹, aᵇ·ln a).
            Pow pow, saves Inputs,
                on a [(0.5, 2.0)], b [(-1.5, 1.5)],
                value(a, b) => a.powf(b),
                grad(g, a, b) => (
                    g.mul(b)?.mul(&a.binary(
                        BinaryOp::Pow,
                        &b.unary(UnaryOp::Affine { mul: 1.0, add: -1.0 })?,
                    )?),
                    g.mul(&a.binary(BinaryOp::Pow, b)?)?.mul(&a.unary(UnaryOp::Log)?)
                );
        }
    };
}

/// Inherent methods `a.{name}(&b)` for every binary op, on a type with
/// `fn binary(&self, BinaryOp, &Self) -> $result`.
#[doc(hidden)]
#[macro_export]
macro_rules! __binary_op_methods {
    (($ty:ty, $result:ty)
     $($(#[$doc:meta])* $B:ident $method:ident, saves $s:ident,
        on a [$(($alo:expr, $ahi:expr)),*], b [$(($blo:expr, $bhi:expr)),*],
        value($va:pat, $vb:pat) => $value:expr,
        grad($g:pat, $a:pat, $b:pat) => ($ga:expr, $gb:expr);)*) => {
        impl $ty {
            $($(#[$doc])* pub fn $method(&self, rhs: &Self) -> $result {
                self.binary($crate::BinaryOp::$B, rhs)
            })*
        }
    };
}

macro_rules! define_binary_ops {
    (()
     $($(#[$doc:meta])* $B:ident $method:ident, saves $s:ident,
        on a [$(($alo:expr, $ahi:expr)),*], b [$(($blo:expr, $bhi:expr)),*],
        value($va:pat, $vb:pat) => $value:expr,
        grad($g:pat, $a:pat, $b:pat) => ($ga:expr, $gb:expr);)*) => {
        /// Elementwise functions of two broadcast tensors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum BinaryOp {
            $($(#[$doc])* $B,)*
        }

        impl BinaryOp {
            /// Every op: what the op-level tests run on every device.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$B),*];

            /// The op's name: its method's name and the stem of its kernels.
            pub fn name(self) -> &'static str {
                match self {
                    $(BinaryOp::$B => stringify!($method),)*
                }
            }

            /// What the backward rule reads.
            pub fn saves(self) -> Saves {
                match self {
                    $(BinaryOp::$B => Saves::$s,)*
                }
            }

            /// For each operand, the intervals it is tested on (where the op is smooth, away
            /// from kinks, ties and singularities).
            pub fn domains(self) -> [&'static [(f64, f64)]; 2] {
                match self {
                    $(BinaryOp::$B => [&[$(($alo, $ahi)),*], &[$(($blo, $bhi)),*]],)*
                }
            }

            /// The op applied with broadcasting on the CPU, one monomorphic loop per op.
            pub(crate) fn apply<T: Element>(
                self,
                a: &[T],
                b: &[T],
                layout: &BroadcastLayout,
            ) -> Result<Vec<T>> {
                match self {
                    $(BinaryOp::$B => zip_map(a, b, layout, |$va: T, $vb: T| $value),)*
                }
            }

            /// The op over a block, `out[i] = f(a[i], b[i])`: the loop the fused CPU executor
            /// runs.
            pub(crate) fn apply_slice<T: Element>(self, a: &[T], b: &[T], out: &mut [T]) {
                match self {
                    $(BinaryOp::$B => out
                        .iter_mut()
                        .zip(a.iter().zip(b))
                        .for_each(|(o, (&$va, &$vb))| *o = $value),)*
                }
            }

            /// The unreduced gradients `(∂/∂a, ∂/∂b)` of the cotangent `g`, given the inputs
            /// (or `g` itself in their place when the op saves nothing). Each is computed only
            /// when its flag in `needs` is set.
            pub fn backward<V: Differentiable>(
                self,
                g: &V,
                inputs: [&V; 2],
                needs: [bool; 2],
            ) -> std::result::Result<[Option<V>; 2], V::Error> {
                match self {
                    $(BinaryOp::$B => {
                        let ($g, $a, $b) = (g, inputs[0], inputs[1]);
                        Ok([
                            if needs[0] { Some($ga?) } else { None },
                            if needs[1] { Some($gb?) } else { None },
                        ])
                    })*
                }
            }
        }
    };
}

binary_op_table!([define_binary_ops]);
binary_op_table!([crate::__binary_op_methods] crate::Tensor, Result<crate::Tensor>);

/// sign(a − b) as a constant (no derivative flows through it): 1 where a > b, −1 where a < b,
/// 0 on ties; how `maximum` and `minimum` route their gradient.
fn tie_split<V: Differentiable>(a: &V, b: &V) -> std::result::Result<V, V::Error> {
    a.binary(BinaryOp::Sub, b)?.constant_unary(UnaryOp::Sign)
}
