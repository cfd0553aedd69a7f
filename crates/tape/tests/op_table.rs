//! Every op of the elementwise op tables (`UnaryOp::ALL`, `BinaryOp::ALL`, `TernaryOp::ALL`) on
//! every device: values in f64 and f32 against an independent scalar reference, gradcheck and
//! gradgradcheck (central finite differences in f64), and the batched-cotangent invariant (one
//! `vjp` with `[K, …]` cotangents equals K separate `vjp`s to 1e-12, for the gradient and for
//! the gradient of the gradient). An op is tested by being in its table; its scalar reference
//! (`crates/tensor/tests/common/reference.rs`, shared with the tensor tests) is the one thing a
//! new op adds to the tests (its `match` does not compile without it).
//!
//! The CUDA instances run on a real GPU when present, else on the emulated GPU.

mod common;
/// The tensor tests' scalar references of the elementwise ops: one per op.
#[path = "../../tensor/tests/common/reference.rs"]
mod reference;

use common::{assert_gradchecks, relative_error};
use curvature_tape::{grad, vjp, GradOptions, Result, Tape, Var};
use curvature_tensor::{BinaryOp, DType, Device, Tensor, TernaryOp, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Operand shapes that broadcast to `[2, 3]`, so gradients are summed back to each shape.
const SHAPES: [&[usize]; 3] = [&[2, 3], &[3], &[2, 1]];

/// Seeded f64 values drawn from `intervals` (each element from a random one of them; a point
/// interval `(v, v)` gives `v`).
fn draw(rng: &mut ChaCha8Rng, n: usize, intervals: &[(f64, f64)]) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (lo, hi) = intervals[rng.random_range(0..intervals.len())];
            if lo == hi {
                lo
            } else {
                rng.random_range(lo..hi)
            }
        })
        .collect()
}

/// An operand drawn from `intervals` with a point interval among them is held constant: the op
/// is not differentiable in it at that point (a mask's 0).
fn is_constant(intervals: &[(f64, f64)]) -> bool {
    intervals.iter().any(|&(lo, hi)| lo == hi)
}

/// Cotangents and weights: away from zero.
const AWAY_FROM_ZERO: &[(f64, f64)] = &[(-1.5, -0.5), (0.5, 1.5)];

/// An op's scalar reference at the elements of its operands.
type Reference = Box<dyn Fn(&[f64]) -> f64>;

/// The op applied to tape variables.
type Apply = Box<dyn Fn(&[Var]) -> Result<Var>>;

/// A case: the op's name, its operands (f64 values and shapes), which operands are held
/// constant (the rest are differentiated), and the op on tape variables.
struct Case {
    name: String,
    operands: Vec<(Vec<f64>, Vec<usize>)>,
    constant: Vec<bool>,
    reference: Reference,
    apply: Apply,
}

/// Operands of the given shapes (which broadcast to `[2, 3]`), each drawn from its domain, and
/// which of them are constants.
type Operands = (Vec<(Vec<f64>, Vec<usize>)>, Vec<bool>);

fn broadcast_operands(
    rng: &mut ChaCha8Rng,
    shapes: &[&[usize]],
    domains: &[&[(f64, f64)]],
) -> Operands {
    let operands = shapes
        .iter()
        .zip(domains)
        .map(|(s, domain)| (draw(rng, s.iter().product(), domain), s.to_vec()))
        .collect();
    (operands, domains.iter().map(|d| is_constant(d)).collect())
}

fn cases(seed: u64) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cases = Vec::new();
    for &op in UnaryOp::ALL {
        cases.push(Case {
            name: op.name().to_string(),
            operands: vec![(draw(&mut rng, 6, op.domain()), vec![2, 3])],
            constant: vec![false],
            reference: Box::new(move |x| reference::unary(op, x[0])),
            apply: Box::new(move |v| v[0].unary(op)),
        });
    }
    for &op in BinaryOp::ALL {
        let (operands, constant) = broadcast_operands(&mut rng, &SHAPES[..2], &op.domains());
        cases.push(Case {
            name: op.name().to_string(),
            operands,
            constant,
            reference: Box::new(move |x| reference::binary(op, x[0], x[1])),
            apply: Box::new(move |v| v[0].binary(op, &v[1])),
        });
    }
    for &op in TernaryOp::ALL {
        let (operands, constant) = broadcast_operands(&mut rng, &SHAPES, &op.domains());
        cases.push(Case {
            name: op.name().to_string(),
            operands,
            constant,
            reference: Box::new(move |x| reference::ternary(op, x[0], x[1], x[2])),
            apply: Box::new(move |v| v[0].ternary(op, &v[1], &v[2])),
        });
    }
    cases
}

impl Case {
    fn tensors(&self, dtype: DType, device: Device) -> Vec<Tensor> {
        self.operands
            .iter()
            .map(|(data, dims)| Tensor::from_f64s(data, dims.as_slice(), dtype, device))
            .collect::<curvature_tensor::Result<_>>()
            .unwrap_or_else(|e| panic!("{}: operands on {device}: {e}", self.name))
    }

    /// The operands as tape variables (leaves, or constants where `constant` says), and the
    /// leaves alone: what is differentiated.
    fn vars(&self, tape: &Tape, tensors: Vec<Tensor>) -> (Vec<Var>, Vec<Var>) {
        let vars: Vec<Var> = tensors
            .into_iter()
            .zip(&self.constant)
            .map(|(t, &c)| if c { tape.constant(t) } else { tape.leaf(t) })
            .collect();
        let leaves = vars
            .iter()
            .zip(&self.constant)
            .filter(|(_, &c)| !c)
            .map(|(v, _)| v.clone())
            .collect();
        (vars, leaves)
    }

    /// The differentiated operands' values (f64), and the op as a function of them alone, the
    /// constant operands put back in their places.
    fn differentiated(&self, device: Device) -> (Vec<Tensor>, impl Fn(&[Var]) -> Result<Var> + '_) {
        let tensors = self.tensors(DType::F64, device);
        let fixed: Vec<Option<Tensor>> = tensors
            .iter()
            .zip(&self.constant)
            .map(|(t, &c)| c.then(|| t.clone()))
            .collect();
        let free = tensors
            .into_iter()
            .zip(&self.constant)
            .filter(|(_, &c)| !c)
            .map(|(t, _)| t)
            .collect();
        let apply = move |free: &[Var]| {
            let mut rest = free.iter();
            let all: Vec<Var> = fixed
                .iter()
                .map(|f| match f {
                    Some(t) => free[0].constant(t.clone()),
                    None => rest.next().expect("one variable per free operand").clone(),
                })
                .collect();
            (self.apply)(&all)
        };
        (free, apply)
    }

    /// The reference at every element of the broadcast `[2, 3]` output.
    fn expected(&self) -> Vec<f64> {
        (0..6)
            .map(|i| {
                let (row, col) = (i / 3, i % 3);
                let args: Vec<f64> = self
                    .operands
                    .iter()
                    .map(|(data, dims)| match dims.as_slice() {
                        [2, 3] => data[i],
                        [3] => data[col],
                        _ => data[row],
                    })
                    .collect();
                (self.reference)(&args)
            })
            .collect()
    }
}

/// Values in f64 (to 1e-14) and f32 (to 1e-6) against the reference.
fn values_match_reference(device: Device) {
    for case in cases(1) {
        let expected = case.expected();
        for (dtype, tolerance) in [(DType::F64, 1e-14), (DType::F32, 1e-6)] {
            let tape = Tape::new();
            let vars: Vec<Var> = case
                .tensors(dtype, device)
                .into_iter()
                .map(|t| tape.leaf(t))
                .collect();
            let out = (case.apply)(&vars).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(out.dims(), &[2, 3], "{}: output shape", case.name);
            assert_eq!(out.dtype(), dtype, "{}: output dtype", case.name);
            let got = out.value().to_f64s().expect("download");
            let error = relative_error(&got, &expected);
            assert!(
                error <= tolerance,
                "{} {dtype:?} on {device}: {got:?} vs {expected:?} (relative error {error:.1e})",
                case.name
            );
        }
    }
}

/// gradcheck and gradgradcheck in f64, with broadcasting operands.
fn derivatives_match_finite_differences(device: Device) {
    for case in cases(2) {
        let (free, apply) = case.differentiated(device);
        assert_gradchecks(&case.name, &free, apply);
    }
}

/// K stacked cotangents in one `vjp` equal K separate `vjp`s, for the op's gradient and for
/// the gradient of `Σ w·op(x)`'s gradient (a batch of Hessian-vector products).
fn batched_cotangents_equal_separate_ones(device: Device) {
    const K: usize = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for case in cases(4) {
        let tape = Tape::new();
        let (operands, inputs) = case.vars(&tape, case.tensors(DType::F64, device));
        let mut run = || -> Result<()> {
            let out = (case.apply)(&operands)?;
            let weights = Tensor::from_f64s(
                &draw(&mut rng, 6, AWAY_FROM_ZERO),
                [2, 3],
                DType::F64,
                device,
            )?;
            let loss = out.mul(&tape.constant(weights))?.sum_all()?;
            let grads = grad(&[loss], &inputs, GradOptions::create_graph())?;
            for (what, outputs) in [("vjp", vec![out]), ("hvp", grads)] {
                let output_dims: Vec<Vec<usize>> =
                    outputs.iter().map(|o| o.dims().to_vec()).collect();
                let cotangents: Vec<Tensor> = output_dims
                    .iter()
                    .map(|dims| {
                        let mut batched = vec![K];
                        batched.extend(dims);
                        let n = batched.iter().product();
                        Tensor::from_f64s(
                            &draw(&mut rng, n, AWAY_FROM_ZERO),
                            batched,
                            DType::F64,
                            device,
                        )
                    })
                    .collect::<curvature_tensor::Result<_>>()?;
                let stacked: Vec<Var> = cotangents
                    .iter()
                    .map(|c| tape.constant(c.clone()))
                    .collect();
                let batched = vjp(&outputs, &stacked, &inputs, false)?;
                for k in 0..K {
                    let single: Vec<Var> = cotangents
                        .iter()
                        .zip(&output_dims)
                        .map(|(c, dims)| {
                            Ok(tape.constant(c.narrow(0, k, 1)?.reshape(dims.as_slice())?))
                        })
                        .collect::<Result<_>>()?;
                    let separate = vjp(&outputs, &single, &inputs, false)?;
                    for (i, (b, s)) in batched.iter().zip(&separate).enumerate() {
                        let row = b.value().narrow(0, k, 1)?.to_f64s()?;
                        let error = relative_error(&row, &s.value().to_f64s()?);
                        assert!(
                            error <= 1e-12,
                            "{} {what}: input {i}, direction {k}: relative error {error:.1e}",
                            case.name
                        );
                    }
                }
            }
            Ok(())
        };
        run().unwrap_or_else(|e| panic!("{} on {device}: {e}", case.name));
    }
}

/// The closed-form activation derivatives (what the fused MLP sweep uses) equal, at each z, the
/// tape's own ops — the value, `tanh_backward(1, y)` / `sigmoid_backward(1, y)` for the first
/// derivative and the double-backward op `(d1, 1, y)` for the second — and central finite
/// differences of the f64 reference.
fn activation_derivatives_match_the_ops(device: Device) {
    type Closed = fn(f64) -> (f64, f64, f64);
    let cases: [(UnaryOp, BinaryOp, TernaryOp, Closed); 2] = [
        (
            UnaryOp::Tanh,
            BinaryOp::TanhBackward,
            TernaryOp::TanhBackwardGradY,
            UnaryOp::tanh_derivatives,
        ),
        (
            UnaryOp::Sigmoid,
            BinaryOp::SigmoidBackward,
            TernaryOp::SigmoidBackwardGradY,
            UnaryOp::sigmoid_derivatives,
        ),
    ];
    let z: Vec<f64> = (0..13).map(|i| -3.0 + 0.5 * i as f64).collect();
    let tensor = |v: &[f64]| Tensor::from_f64s(v, [v.len()], DType::F64, device).unwrap();
    for (op, first, second, closed) in cases {
        let (mut value, mut d1, mut d2) = (Vec::new(), Vec::new(), Vec::new());
        for &x in &z {
            let (y, a, b) = closed(x);
            value.push(y);
            d1.push(a);
            d2.push(b);
        }
        let ones = tensor(&vec![1.0; z.len()]);
        let y = tensor(&z).unary(op).unwrap();
        let by_first = ones.binary(first, &y).unwrap();
        let by_second = tensor(&d1).ternary(second, &ones, &y).unwrap();
        for (what, ours, tape) in [
            ("value", &value, &y),
            ("d1", &d1, &by_first),
            ("d2", &d2, &by_second),
        ] {
            let error = relative_error(ours, &tape.to_f64s().unwrap());
            assert!(
                error <= 1e-14,
                "{} {what}: relative error {error:.1e}",
                op.name()
            );
        }
        let h = 1e-5;
        for (i, &x) in z.iter().enumerate() {
            let f = |x| reference::unary(op, x);
            let fd1 = (f(x + h) - f(x - h)) / (2.0 * h);
            let fd2 = (f(x + h) - 2.0 * f(x) + f(x - h)) / (h * h);
            assert!((fd1 - d1[i]).abs() <= 1e-8, "{} d1 at {x}", op.name());
            assert!((fd2 - d2[i]).abs() <= 1e-4, "{} d2 at {x}", op.name());
        }
    }
}

device_tests!(
    values_match_reference,
    derivatives_match_finite_differences,
    batched_cotangents_equal_separate_ones,
    activation_derivatives_match_the_ops,
);
