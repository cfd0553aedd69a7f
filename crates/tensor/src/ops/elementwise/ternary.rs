//! The ternary elementwise ops (NumPy broadcasting of all three): the double-backward rules of
//! the fused activation derivatives, and `where_cond`. Each entry of the table below is the one
//! definition of its op, as for the unary and binary tables; kernels
//! `ternary_{name}[_contig]_{dt}`.

use crate::backend::BroadcastLayout;
use crate::cpu::elementwise::zip3_map;
use crate::ops::elementwise::{Differentiable, Saves, UnaryOp};
use crate::{Element, Result};

/// The ternary op table, handed to the macro `[$then]` with `$extra` in front.
///
/// Entry syntax: docs, `Variant method, saves S, on a [(lo, hi), …], b […], c […],
/// value(a, b, c) => scalar formula, grad(d, a, b, c) => (rule for a, for b, for c);`.
#[doc(hidden)]
#[macro_export]
macro_rules! ternary_op_table {
    ([$($then:tt)+] $($extra:tt)*) => {
        $($then)+! {
            ($($extra)*)
            /// ∂/∂y of `tanh_backward(g, y)` applied to `gg`: −2·y·g·gg, with
            /// (a, b, c) = (gg, g, y).
            TanhBackwardGradY tanh_backward_grad_y, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                c [(-1.5, -0.5), (0.5, 1.5)],
                value(gg, g, y) => -(T::one() + T::one()) * y * g * gg,
                grad(d, a, b, c) => (
                    d.scale(-2.0)?.mul(b)?.mul(c),
                    d.scale(-2.0)?.mul(a)?.mul(c),
                    d.scale(-2.0)?.mul(a)?.mul(b)
                );
            /// ∂/∂y of `sigmoid_backward(g, y)` applied to `gg`: gg·g·(1 − 2y), with
            /// (a, b, c) = (gg, g, y).
            SigmoidBackwardGradY sigmoid_backward_grad_y, saves Inputs,
                on a [(-1.5, -0.5), (0.5, 1.5)], b [(-1.5, -0.5), (0.5, 1.5)],
                c [(-1.5, -0.5), (0.5, 1.5)],
                value(gg, g, y) => gg * g * (T::one() - (T::one() + T::one()) * y),
                grad(d, a, b, c) => (
                    d.mul(&c.unary(UnaryOp::Affine { mul: -2.0, add: 1.0 })?)?.mul(b),
                    d.mul(&c.unary(UnaryOp::Affine { mul: -2.0, add: 1.0 })?)?.mul(a),
                    d.mul(a)?.mul(b)?.scale(-2.0)
                );
            /// `mask.where_cond(&on_true, &on_false)`: `on_true` where the mask is nonzero (NaN
            /// counts as nonzero), else `on_false` (all three broadcast; PyTorch's
            /// `torch.where(mask, on_true, on_false)`). Gradient 0 to the mask, the cotangent to
            /// the operand chosen at each element (0 to the other). The mask's values 0 are
            /// tested exactly (the point interval (0, 0)); the op is not differentiable in the
            /// mask there.
            WhereCond where_cond, saves Inputs,
                on a [(-1.5, -0.5), (0.0, 0.0), (0.5, 1.5)], b [(-1.5, 1.5)], c [(-1.5, 1.5)],
                value(mask, on_true, on_false) =>
                    if mask != T::zero() { on_true } else { on_false },
                grad(d, mask, _on_true, _on_false) => (
                    d.scale(0.0),
                    mask.ternary(TernaryOp::WhereCond, d, &d.scale(0.0)?),
                    mask.ternary(TernaryOp::WhereCond, &d.scale(0.0)?, d)
                );
        }
    };
}

/// Inherent methods `a.{name}(&b, &c)` for every ternary op, on a type with
/// `fn ternary(&self, TernaryOp, &Self, &Self) -> $result`.
#[doc(hidden)]
#[macro_export]
macro_rules! __ternary_op_methods {
    (($ty:ty, $result:ty)
     $($(#[$doc:meta])* $O:ident $method:ident, saves $s:ident,
        on a [$(($alo:expr, $ahi:expr)),*], b [$(($blo:expr, $bhi:expr)),*],
        c [$(($clo:expr, $chi:expr)),*],
        value($va:pat, $vb:pat, $vc:pat) => $value:expr,
        grad($d:pat, $a:pat, $b:pat, $c:pat) => ($ga:expr, $gb:expr, $gc:expr);)*) => {
        impl $ty {
            $($(#[$doc])* pub fn $method(&self, b: &Self, c: &Self) -> $result {
                self.ternary($crate::TernaryOp::$O, b, c)
            })*
        }
    };
}

macro_rules! define_ternary_ops {
    (()
     $($(#[$doc:meta])* $O:ident $method:ident, saves $s:ident,
        on a [$(($alo:expr, $ahi:expr)),*], b [$(($blo:expr, $bhi:expr)),*],
        c [$(($clo:expr, $chi:expr)),*],
        value($va:pat, $vb:pat, $vc:pat) => $value:expr,
        grad($d:pat, $a:pat, $b:pat, $c:pat) => ($ga:expr, $gb:expr, $gc:expr);)*) => {
        /// Elementwise functions of three broadcast tensors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum TernaryOp {
            $($(#[$doc])* $O,)*
        }

        impl TernaryOp {
            /// Every op: what the op-level tests run on every device.
            pub const ALL: &'static [TernaryOp] = &[$(TernaryOp::$O),*];

            /// The op's name: its method's name and the stem of its kernels.
            pub fn name(self) -> &'static str {
                match self {
                    $(TernaryOp::$O => stringify!($method),)*
                }
            }

            /// What the backward rule reads.
            pub fn saves(self) -> Saves {
                match self {
                    $(TernaryOp::$O => Saves::$s,)*
                }
            }

            /// For each operand, the intervals it is tested on (where the op is smooth). A point
            /// interval `(v, v)` draws `v` exactly: a value where the op is not differentiable
            /// in that operand (a mask's 0), which the tests hold constant.
            pub fn domains(self) -> [&'static [(f64, f64)]; 3] {
                match self {
                    $(TernaryOp::$O => [
                        &[$(($alo, $ahi)),*],
                        &[$(($blo, $bhi)),*],
                        &[$(($clo, $chi)),*],
                    ],)*
                }
            }

            /// The op applied with broadcasting on the CPU, one monomorphic loop per op.
            pub(crate) fn apply<T: Element>(
                self,
                a: &[T],
                b: &[T],
                c: &[T],
                layout: &BroadcastLayout,
            ) -> Result<Vec<T>> {
                match self {
                    $(TernaryOp::$O => zip3_map(a, b, c, layout, |$va: T, $vb: T, $vc: T| $value),)*
                }
            }

            /// The op over a block, `out[i] = f(a[i], b[i], c[i])`: the loop the fused CPU
            /// executor runs.
            pub(crate) fn apply_slice<T: Element>(self, a: &[T], b: &[T], c: &[T], out: &mut [T]) {
                match self {
                    $(TernaryOp::$O => out
                        .iter_mut()
                        .zip(a.iter().zip(b).zip(c))
                        .for_each(|(o, ((&$va, &$vb), &$vc))| *o = $value),)*
                }
            }

            /// The unreduced gradients of the cotangent `d` with respect to the three inputs.
            /// Each is computed only when its flag in `needs` is set.
            pub fn backward<V: Differentiable>(
                self,
                d: &V,
                inputs: [&V; 3],
                needs: [bool; 3],
            ) -> std::result::Result<[Option<V>; 3], V::Error> {
                match self {
                    $(TernaryOp::$O => {
                        let ($d, $a, $b, $c) = (d, inputs[0], inputs[1], inputs[2]);
                        Ok([
                            if needs[0] { Some($ga?) } else { None },
                            if needs[1] { Some($gb?) } else { None },
                            if needs[2] { Some($gc?) } else { None },
                        ])
                    })*
                }
            }
        }
    };
}

ternary_op_table!([define_ternary_ops]);
ternary_op_table!([crate::__ternary_op_methods] crate::Tensor, Result<crate::Tensor>);
