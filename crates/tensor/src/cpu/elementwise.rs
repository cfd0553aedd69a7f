//! Elementwise kernels with NumPy broadcasting.

use rayon::prelude::*;

use crate::backend::{BinaryOp, BroadcastLayout, TernaryOp, UnaryOp};
use crate::Element;

/// Below this many elements, a loop on one thread beats splitting the work.
const PARALLEL_THRESHOLD: usize = 1 << 15;

fn sign<T: Element>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
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

fn unary_fn<T: Element>(op: UnaryOp) -> impl Fn(T) -> T + Sync {
    let (p0, p1) = op.params();
    let (p0, p1) = (T::from_f64(p0), T::from_f64(p1));
    move |x: T| match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Square => x * x,
        UnaryOp::Sign => sign(x),
        UnaryOp::Recip => T::one() / x,
        UnaryOp::Powf(_) => x.powf(p0),
        UnaryOp::Affine { .. } => x * p0 + p1,
    }
}

fn binary_fn<T: Element>(op: BinaryOp) -> impl Fn(T, T) -> T + Sync {
    move |a: T, b: T| match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Eq => {
            if a == b {
                T::one()
            } else {
                T::zero()
            }
        }
        BinaryOp::TanhBackward => a * (T::one() - b * b),
        BinaryOp::SigmoidBackward => a * b * (T::one() - b),
    }
}

fn ternary_fn<T: Element>(op: TernaryOp) -> impl Fn(T, T, T) -> T + Sync {
    let two = T::from_f64(2.0);
    move |gg: T, g: T, y: T| match op {
        TernaryOp::TanhBackwardGradY => -two * y * g * gg,
        TernaryOp::SigmoidBackwardGradY => gg * g * (T::one() - two * y),
    }
}

pub fn unary<T: Element>(op: UnaryOp, x: &[T]) -> Vec<T> {
    let f = unary_fn::<T>(op);
    if x.len() >= PARALLEL_THRESHOLD {
        x.par_iter().map(|&v| f(v)).collect()
    } else {
        x.iter().map(|&v| f(v)).collect()
    }
}

/// Visits every output element in row-major order with the offsets of each operand.
fn for_each_offset<const N: usize>(
    layout: &BroadcastLayout,
    mut visit: impl FnMut(usize, [usize; N]),
) {
    let dims = layout.out.dims();
    let total = layout.out.elem_count();
    if total == 0 {
        return;
    }
    let rank = dims.len();
    let mut index = vec![0usize; rank];
    let mut offsets = [0usize; N];
    for i in 0..total {
        visit(i, offsets);
        for d in (0..rank).rev() {
            index[d] += 1;
            for (o, s) in offsets.iter_mut().zip(&layout.strides) {
                *o += s[d];
            }
            if index[d] < dims[d] {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(&layout.strides) {
                *o -= s[d] * dims[d];
            }
            index[d] = 0;
        }
    }
}

pub fn binary<T: Element>(op: BinaryOp, a: &[T], b: &[T], layout: &BroadcastLayout) -> Vec<T> {
    let f = binary_fn::<T>(op);
    if layout.is_contiguous() {
        if a.len() >= PARALLEL_THRESHOLD {
            return a.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        }
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    let mut out = Vec::with_capacity(layout.out.elem_count());
    for_each_offset(layout, |_, [ia, ib]| out.push(f(a[ia], b[ib])));
    out
}

pub fn ternary<T: Element>(
    op: TernaryOp,
    a: &[T],
    b: &[T],
    c: &[T],
    layout: &BroadcastLayout,
) -> Vec<T> {
    let f = ternary_fn::<T>(op);
    let mut out = Vec::with_capacity(layout.out.elem_count());
    for_each_offset(layout, |_, [ia, ib, ic]| out.push(f(a[ia], b[ib], c[ic])));
    out
}
