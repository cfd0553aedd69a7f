//! The CUDA fused-step kernel `fused_eval_{dt}` (on the emulated GPU without a real one):
//! hand-built steps covering every op code, broadcasting, offsets, negative strides and bounds,
//! several stores and reductions over each position of axis, in f32 and f64, against the same
//! ops run one by one on the CPU in f64; one launch per step; malformed steps refused.

mod common;

use std::sync::{Mutex, MutexGuard};

use curvature_tensor::plan::fused::{MAX_OPERANDS, MAX_RANK, MAX_REGS, MAX_STORES};
use curvature_tensor::plan::{FusedStep, Instr, OperandView, Reduction, Reg, Store};
use curvature_tensor::{BinaryOp, DType, Device, Shape, Tensor, TernaryOp, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const DTYPES: [DType; 2] = [DType::F32, DType::F64];

/// The tests share one GPU and count its launches: one at a time.
fn gpu() -> (MutexGuard<'static, ()>, Device) {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    (guard, common::cuda())
}

/// A view of `value` with `offset`, `strides` and optional bounds.
fn view(
    value: usize,
    offset: i64,
    strides: &[i64],
    bounds: Option<&[(usize, usize)]>,
) -> OperandView {
    OperandView {
        value,
        offset,
        strides: strides.to_vec(),
        bounds: bounds.map(<[_]>::to_vec),
    }
}

fn step(
    shape: &[usize],
    operands: Vec<OperandView>,
    program: Vec<Instr>,
    stores: &[Reg],
    reduction: Option<Reduction>,
) -> FusedStep {
    FusedStep {
        dtype: DType::F64,
        shape: Shape::new(shape.to_vec()),
        operands,
        program,
        stores: stores
            .iter()
            .enumerate()
            .map(|(s, &reg)| Store {
                reg,
                value: 100 + s,
            })
            .collect(),
        reduction,
    }
}

fn load(dst: Reg, operand: u8) -> Instr {
    Instr::Load { dst, operand }
}

/// `n` values drawn from `intervals` (a point interval gives its value exactly).
fn draw(rng: &mut ChaCha8Rng, intervals: &[(f64, f64)], n: usize) -> Vec<f64> {
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

/// `view` of `data` over the iteration shape `dims`, element by element (0 outside bounds).
fn materialize(view: &OperandView, data: &[f64], dims: &[usize]) -> Vec<f64> {
    let n: usize = dims.iter().product();
    (0..n)
        .map(|e| {
            let mut rest = e;
            let mut idx = vec![0usize; dims.len()];
            for d in (0..dims.len()).rev() {
                idx[d] = rest % dims[d];
                rest /= dims[d];
            }
            let inside = view
                .bounds
                .as_ref()
                .is_none_or(|b| idx.iter().zip(b).all(|(&i, &(lo, hi))| lo <= i && i < hi));
            if !inside {
                return 0.0;
            }
            let offset = view.offset
                + idx
                    .iter()
                    .zip(&view.strides)
                    .map(|(&i, &s)| i as i64 * s)
                    .sum::<i64>();
            data[usize::try_from(offset).expect("the view stays inside its value")]
        })
        .collect()
}

/// The step's outputs computed op by op on the CPU in f64: each load materialised over the
/// iteration shape, each instruction one tensor op, each reduction a `sum` over axis 1 of
/// `[outer, reduced, inner]`.
fn reference(step: &FusedStep, data: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    let dims = step.shape.dims().to_vec();
    let mut regs: Vec<Option<Tensor>> = vec![None; MAX_REGS];
    let reg = |regs: &[Option<Tensor>], r: Reg| regs[usize::from(r)].clone().expect("written");
    for instr in &step.program {
        let (dst, value) = match *instr {
            Instr::Load { dst, operand } => {
                let k = usize::from(operand);
                let values = materialize(&step.operands[k], &data[k], &dims);
                (
                    dst,
                    Tensor::from_f64s(&values, dims.clone(), DType::F64, Device::Cpu)?,
                )
            }
            Instr::Unary { dst, op, a } => (dst, reg(&regs, a).unary(op)?),
            Instr::Binary { dst, op, a, b } => (dst, reg(&regs, a).binary(op, &reg(&regs, b))?),
            Instr::Ternary { dst, op, a, b, c } => (
                dst,
                reg(&regs, a).ternary(op, &reg(&regs, b), &reg(&regs, c))?,
            ),
        };
        regs[usize::from(dst)] = Some(value);
    }
    step.stores
        .iter()
        .map(|store| {
            let value = reg(&regs, store.reg);
            let value = match step.reduction {
                None => value,
                Some(r) => value
                    .reshape([r.outer, r.reduced, r.inner])?
                    .sum(&[1], false)?,
            };
            Ok(value.to_vec::<f64>()?)
        })
        .collect()
}

/// Runs `step` in `dtype` on `device` with operand values `data` (rounded to the dtype) and
/// compares every store with the CPU f64 reference of the rounded values: to 1e-12 in f64,
/// 1e-5 in f32 (relative to max(1, |reference|)). Asserts one launch per step.
fn check(device: Device, step: &FusedStep, data: &[Vec<f64>], dtype: DType) -> Result<()> {
    let rounded: Vec<Vec<f64>> = data
        .iter()
        .map(|v| match dtype {
            DType::F64 => v.clone(),
            _ => v.iter().map(|&x| f64::from(x as f32)).collect(),
        })
        .collect();
    let expected = reference(step, &rounded)?;
    let mut step = step.clone();
    step.dtype = dtype;
    let inputs = rounded
        .iter()
        .map(|v| Tensor::from_f64s(v, [v.len()], dtype, device))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let before = device.gpu_counters()?.expect("a CUDA device");
    let outputs = step.run(&refs)?;
    let work = device.gpu_counters()?.expect("a CUDA device") - before;
    assert_eq!(work.launches, 1, "one launch per step: {work:?}");
    let tol = match dtype {
        DType::F64 => 1e-12,
        _ => 1e-5,
    };
    assert_eq!(outputs.len(), expected.len());
    for (s, (out, want)) in outputs.iter().zip(&expected).enumerate() {
        let got = out.to_dtype(DType::F64)?.to_vec::<f64>()?;
        assert_eq!(got.len(), want.len(), "store {s}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{dtype} store {s} element {i}: got {g}, want {w} ({:?})",
                step.program
            );
        }
    }
    Ok(())
}

#[test]
fn every_unary_op_code_runs_its_formula() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &op in UnaryOp::ALL {
        let s = step(
            &[3, 5],
            vec![view(0, 0, &[5, 1], None)],
            vec![load(0, 0), Instr::Unary { dst: 1, op, a: 0 }],
            &[1],
            None,
        );
        let data = vec![draw(&mut rng, op.domain(), 15)];
        for dtype in DTYPES {
            check(device, &s, &data, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn every_binary_op_code_runs_its_formula_with_a_broadcast_operand() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &op in BinaryOp::ALL {
        // a [3, 5]; b a row of 5 repeated down the 3 rows (stride 0).
        let s = step(
            &[3, 5],
            vec![view(0, 0, &[5, 1], None), view(1, 0, &[0, 1], None)],
            vec![
                load(0, 0),
                load(1, 1),
                Instr::Binary {
                    dst: 2,
                    op,
                    a: 0,
                    b: 1,
                },
            ],
            &[2],
            None,
        );
        let domains = op.domains();
        let data = vec![
            draw(&mut rng, domains[0], 15),
            draw(&mut rng, domains[1], 5),
        ];
        for dtype in DTYPES {
            check(device, &s, &data, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn every_ternary_op_code_runs_its_formula_on_transposed_and_broadcast_operands() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &op in TernaryOp::ALL {
        // a [3, 5]; b stored as [5, 3] and read transposed; c a column of 3 (stride 0 on axis 1).
        let s = step(
            &[3, 5],
            vec![
                view(0, 0, &[5, 1], None),
                view(1, 0, &[1, 3], None),
                view(2, 0, &[1, 0], None),
            ],
            vec![
                load(0, 0),
                load(1, 1),
                load(2, 2),
                Instr::Ternary {
                    dst: 3,
                    op,
                    a: 0,
                    b: 1,
                    c: 2,
                },
            ],
            &[3],
            None,
        );
        let domains = op.domains();
        let data = vec![
            draw(&mut rng, domains[0], 15),
            draw(&mut rng, domains[1], 15),
            draw(&mut rng, domains[2], 3),
        ];
        for dtype in DTYPES {
            check(device, &s, &data, dtype)?;
        }
    }
    Ok(())
}

/// Zero padding around a flipped operand: x [3, 4] placed at rows 1..4, columns 1..5 of a
/// [5, 6] iteration shape, its columns reversed (element (i, j) reads x[i − 1, 4 − j]: offset 0,
/// strides [4, −1], bounds [(1, 4), (1, 5)]), times y [5, 8] narrowed to columns 2..8
/// (offset 2); three stores.
#[test]
fn offsets_negative_strides_and_bounds_read_zero_padding() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let s = step(
        &[5, 6],
        vec![
            view(0, 0, &[4, -1], Some(&[(1, 4), (1, 5)])),
            view(1, 2, &[8, 1], None),
        ],
        vec![
            load(0, 0),
            load(1, 1),
            Instr::Binary {
                dst: 2,
                op: BinaryOp::Mul,
                a: 0,
                b: 1,
            },
            Instr::Unary {
                dst: 3,
                op: UnaryOp::Affine {
                    mul: 2.0,
                    add: -0.25,
                },
                a: 2,
            },
            Instr::Unary {
                dst: 2,
                op: UnaryOp::Tanh,
                a: 3,
            },
        ],
        &[0, 3, 2],
        None,
    );
    // The padding reads 0: the first store is x flipped with a zero border.
    let x: Vec<f64> = (0..12).map(|v| f64::from(v) + 1.0).collect();
    let data = vec![x, draw(&mut rng, &[(-1.0, 1.0)], 40)];
    let padded = reference(&s, &data)?.remove(0);
    #[rustfmt::skip]
    let closed_form = [
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 4.0, 3.0, 2.0, 1.0, 0.0,
        0.0, 8.0, 7.0, 6.0, 5.0, 0.0,
        0.0, 12.0, 11.0, 10.0, 9.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(padded, closed_form);
    for dtype in DTYPES {
        check(device, &s, &data, dtype)?;
    }
    Ok(())
}

/// The tanh layer and its derivatives in one pass, four stores: y = tanh(w·x + b),
/// g·(1 − y²), its derivative in y, and a mask of y > 0.
#[test]
fn four_stores_of_one_program() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let s = step(
        &[2, 3, 4],
        vec![
            view(0, 0, &[12, 4, 1], None),
            view(1, 0, &[0, 0, 1], None),
            view(2, 0, &[12, 4, 1], None),
        ],
        vec![
            load(0, 0),
            load(1, 1),
            Instr::Binary {
                dst: 2,
                op: BinaryOp::Add,
                a: 0,
                b: 1,
            },
            Instr::Unary {
                dst: 3,
                op: UnaryOp::Tanh,
                a: 2,
            },
            load(4, 2),
            Instr::Binary {
                dst: 5,
                op: BinaryOp::TanhBackward,
                a: 4,
                b: 3,
            },
            Instr::Ternary {
                dst: 6,
                op: TernaryOp::TanhBackwardGradY,
                a: 5,
                b: 4,
                c: 3,
            },
            Instr::Unary {
                dst: 7,
                op: UnaryOp::Step,
                a: 3,
            },
        ],
        &[3, 5, 6, 7],
        None,
    );
    let data = vec![
        draw(&mut rng, &[(-2.0, 2.0)], 24),
        draw(&mut rng, &[(-0.5, 0.5)], 4),
        draw(&mut rng, &[(-1.0, 1.0)], 24),
    ];
    for dtype in DTYPES {
        check(device, &s, &data, dtype)?;
    }
    Ok(())
}

/// exp(x)·w summed over the middle, last and first axes of [4, 6, 5] (two stores: the sum and
/// the sum of squares), w broadcast along the reduced axis.
#[test]
fn reductions_over_inner_outer_and_middle_axes() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let reductions = [
        Reduction {
            outer: 4,
            reduced: 6,
            inner: 5,
        },
        Reduction {
            outer: 24,
            reduced: 5,
            inner: 1,
        },
        Reduction {
            outer: 1,
            reduced: 4,
            inner: 30,
        },
    ];
    let data = vec![
        draw(&mut rng, &[(-1.0, 1.0)], 120),
        draw(&mut rng, &[(0.5, 1.5)], 30),
    ];
    for reduction in reductions {
        let s = step(
            &[4, 6, 5],
            vec![view(0, 0, &[30, 5, 1], None), view(1, 0, &[0, 5, 1], None)],
            vec![
                load(0, 0),
                Instr::Unary {
                    dst: 0,
                    op: UnaryOp::Exp,
                    a: 0,
                },
                load(1, 1),
                Instr::Binary {
                    dst: 2,
                    op: BinaryOp::Mul,
                    a: 0,
                    b: 1,
                },
                Instr::Unary {
                    dst: 3,
                    op: UnaryOp::Square,
                    a: 2,
                },
            ],
            &[2, 3],
            Some(reduction),
        );
        for dtype in DTYPES {
            check(device, &s, &data, dtype)?;
        }
    }
    Ok(())
}

/// A reduced axis longer than a block (600 = more than 256 partial sums per output), a whole
/// tensor summed to one value, and a reduction over an empty axis (sums of nothing are 0).
#[test]
fn long_whole_and_empty_reductions() -> Result<()> {
    let (_lock, device) = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let square = |shape: &[usize], strides: &[i64], r: Reduction| {
        step(
            shape,
            vec![view(0, 0, strides, None)],
            vec![
                load(0, 0),
                Instr::Unary {
                    dst: 1,
                    op: UnaryOp::Square,
                    a: 0,
                },
            ],
            &[1],
            Some(r),
        )
    };
    let data = vec![draw(&mut rng, &[(-1.0, 1.0)], 1200)];
    let cases = [
        square(
            &[2, 600],
            &[600, 1],
            Reduction {
                outer: 2,
                reduced: 600,
                inner: 1,
            },
        ),
        square(
            &[1200],
            &[1],
            Reduction {
                outer: 1,
                reduced: 1200,
                inner: 1,
            },
        ),
        square(
            &[3, 0],
            &[0, 1],
            Reduction {
                outer: 3,
                reduced: 0,
                inner: 1,
            },
        ),
    ];
    for s in &cases {
        for dtype in DTYPES {
            check(device, s, &data, dtype)?;
        }
    }
    Ok(())
}

/// The emulated GPU's counters around one step: the outputs `FusedStep::run` creates (one
/// uninitialised buffer each) and exactly one launch; the kernel itself allocates, zeroes and copies
/// nothing.
#[test]
fn a_step_is_one_launch_and_no_other_work() -> Result<()> {
    let (_lock, device) = gpu();
    let s = step(
        &[4, 8],
        vec![view(0, 0, &[8, 1], None)],
        vec![
            load(0, 0),
            Instr::Unary {
                dst: 1,
                op: UnaryOp::Sin,
                a: 0,
            },
            Instr::Unary {
                dst: 2,
                op: UnaryOp::Cos,
                a: 0,
            },
        ],
        &[1, 2],
        None,
    );
    let x = Tensor::from_f64s(&[0.5; 32], [32], DType::F64, device)?;
    let before = device.gpu_counters()?.expect("a CUDA device");
    s.run(&[&x])?;
    let work = device.gpu_counters()?.expect("a CUDA device") - before;
    assert_eq!(work.launches, 1, "{work:?}");
    assert_eq!(work.memsets, 0, "outputs are not zeroed: {work:?}");
    assert_eq!(
        work.allocations + work.reuses,
        2,
        "the two outputs only: {work:?}"
    );
    assert_eq!(work.copies, 0, "no upload: {work:?}");
    Ok(())
}

/// The unary op list of the kernels holds every op of the tensor crate's table (and no other),
/// so every `UnaryOp` has a code.
#[test]
fn the_kernels_op_lists_are_the_op_tables() {
    use curvature_kernels::{elementwise_op_names, OpArity};
    let mut unary: Vec<&str> = UnaryOp::ALL.iter().map(|op| op.name()).collect();
    let mut binary: Vec<&str> = BinaryOp::ALL.iter().map(|op| op.name()).collect();
    let mut ternary: Vec<&str> = TernaryOp::ALL.iter().map(|op| op.name()).collect();
    for (names, arity) in [
        (&mut unary, OpArity::Unary),
        (&mut binary, OpArity::Binary),
        (&mut ternary, OpArity::Ternary),
    ] {
        let mut listed = elementwise_op_names(arity);
        names.sort_unstable();
        listed.sort_unstable();
        assert_eq!(*names, listed, "{arity:?}");
    }
}

/// Malformed steps are errors naming the step, never panics or out-of-bounds reads.
#[test]
fn malformed_steps_are_refused() -> Result<()> {
    let (_lock, device) = gpu();
    let x = Tensor::from_f64s(&[1.0; 12], [12], DType::F64, device)?;
    let x32 = Tensor::from_f64s(&[1.0; 12], [12], DType::F32, device)?;
    let cpu = Tensor::from_f64s(&[1.0; 12], [12], DType::F64, Device::Cpu)?;
    let neg = |dst, a| Instr::Unary {
        dst,
        op: UnaryOp::Neg,
        a,
    };
    let good = || {
        step(
            &[3, 4],
            vec![view(0, 0, &[4, 1], None)],
            vec![load(0, 0), neg(1, 0)],
            &[1],
            None,
        )
    };
    good().run(&[&x])?;

    let mut cases: Vec<(&str, FusedStep)> = Vec::new();
    let mut s = good();
    s.program.clear();
    cases.push(("empty program", s));
    let mut s = good();
    s.program = vec![load(0, 0); 129];
    cases.push(("129 instructions", s));
    let mut s = good();
    s.program[1] = neg(MAX_REGS as Reg, 0);
    cases.push(("register out of range", s));
    let mut s = good();
    s.program[1] = neg(1, 5);
    cases.push(("read before write", s));
    let mut s = good();
    s.program[0] = load(0, 1);
    cases.push(("load of a missing operand", s));
    let mut s = good();
    s.stores[0].reg = 7;
    cases.push(("store of an unwritten register", s));
    let mut s = good();
    s.stores.clear();
    cases.push(("no store", s));
    let mut s = good();
    s.stores = (0..=MAX_STORES)
        .map(|v| Store { reg: 1, value: v })
        .collect();
    cases.push(("too many stores", s));
    let mut s = good();
    s.operands[0].strides = vec![1];
    cases.push(("strides of the wrong rank", s));
    let mut s = good();
    s.operands[0].bounds = Some(vec![(0, 3)]);
    cases.push(("bounds of the wrong rank", s));
    let mut s = good();
    s.operands[0].offset = 1;
    cases.push(("a view past the end", s));
    let mut s = good();
    s.operands[0].offset = -1;
    cases.push(("a view before the start", s));
    let mut s = good();
    s.operands[0].strides = vec![4, -1];
    cases.push(("a negative stride below 0", s));
    let mut s = good();
    s.operands[0].offset = 4;
    s.operands[0].bounds = Some(vec![(0, 3), (0, 4)]);
    cases.push(("bounds that still read past the end", s));
    let mut s = good();
    s.shape = Shape::new(vec![1; MAX_RANK + 1]);
    s.operands[0].strides = vec![0; MAX_RANK + 1];
    cases.push(("rank 7", s));
    let mut s = good();
    s.reduction = Some(Reduction {
        outer: 3,
        reduced: 2,
        inner: 1,
    });
    cases.push(("a reduction that does not cover the shape", s));
    let mut s = good();
    s.program = (0..=24)
        .map(|i| Instr::Unary {
            dst: 1,
            op: UnaryOp::Affine {
                mul: f64::from(i),
                add: 1.0,
            },
            a: 0,
        })
        .collect();
    s.program.insert(0, load(0, 0));
    cases.push(("25 distinct parameter pairs", s));
    let mut s = good();
    s.operands = vec![view(0, 0, &[4, 1], None); MAX_OPERANDS + 1];
    cases.push(("17 operands", s));
    for (what, s) in &cases {
        let operands: Vec<&Tensor> = vec![&x; s.operands.len()];
        match s.run(&operands) {
            Err(e) => assert!(
                e.to_string().contains("fused"),
                "{what}: the error names the fused step: {e}"
            ),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
    // Operands that do not match the step.
    assert!(
        good().run(&[&x32]).is_err(),
        "an f32 operand of an f64 step"
    );
    assert!(good().run(&[&x, &x]).is_err(), "two operands for one view");
    let mut on_cpu_output = good();
    on_cpu_output.operands.push(view(1, 0, &[4, 1], None));
    assert!(
        on_cpu_output.run(&[&x, &cpu]).is_err(),
        "a CPU operand of a CUDA step"
    );
    Ok(())
}

/// A random view of a new value over the iteration shape `dims`: each axis read whole,
/// broadcast (stride 0) or through bounds with zero padding, stored in a random axis order and
/// maybe reversed. Returns the view and the value's length.
fn random_view(rng: &mut ChaCha8Rng, value: usize, dims: &[usize]) -> (OperandView, usize) {
    let rank = dims.len();
    // Per axis: (stored extent, lo) with reads of i in [lo, lo + extent).
    let mut extents = Vec::with_capacity(rank);
    let mut bounded = false;
    for &n in dims {
        extents.push(match rng.random_range(0..4) {
            0 => (1, None),
            1 if n > 1 => {
                let len = rng.random_range(1..n);
                bounded = true;
                (len, Some(rng.random_range(0..=n - len)))
            }
            _ => (n, Some(0)),
        });
    }
    let mut order: Vec<usize> = (0..rank).collect();
    for i in (1..rank).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut strides = vec![0i64; rank];
    let mut step = 1i64;
    for &d in order.iter().rev() {
        strides[d] = step;
        step *= extents[d].0 as i64;
    }
    let len = step as usize;
    let mut offset = 0i64;
    let mut bounds = Vec::with_capacity(rank);
    for d in 0..rank {
        match extents[d] {
            (_, None) => {
                strides[d] = 0;
                bounds.push((0, dims[d]));
            }
            (extent, Some(lo)) => {
                if rng.random_bool(0.3) {
                    offset += (extent as i64 - 1) * strides[d];
                    strides[d] = -strides[d];
                }
                offset -= lo as i64 * strides[d];
                bounds.push((lo, lo + extent));
            }
        }
    }
    let view = OperandView {
        value,
        offset,
        strides,
        bounds: bounded.then_some(bounds),
    };
    (view, len)
}

/// A random step: up to 4 operands with random views, a program of ops that keep values
/// moderate, 1 to 3 stores and, half the time, a sum over a random middle range of axes.
fn random_step(seed: u64) -> (FusedStep, Vec<Vec<f64>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rank = rng.random_range(1..=4);
    let dims: Vec<usize> = (0..rank).map(|_| rng.random_range(1..=4)).collect();
    let operands = rng.random_range(1..=4);
    let mut views = Vec::new();
    let mut data = Vec::new();
    let mut program = Vec::new();
    for k in 0..operands {
        let (v, len) = random_view(&mut rng, k, &dims);
        views.push(v);
        data.push(draw(&mut rng, &[(-1.5, 1.5)], len));
        program.push(load(k as Reg, k as u8));
    }
    let unary = [
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Sin,
        UnaryOp::Neg,
        UnaryOp::Square,
        UnaryOp::Gelu,
        UnaryOp::Relu,
        UnaryOp::Affine {
            mul: 0.75,
            add: -0.5,
        },
        UnaryOp::Clamp { lo: -0.5, hi: 0.5 },
    ];
    let binary = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Maximum,
        BinaryOp::TanhBackward,
    ];
    let ternary = [TernaryOp::WhereCond, TernaryOp::SigmoidBackwardGradY];
    let mut written = operands;
    for _ in 0..rng.random_range(1..=12) {
        let dst = written as Reg;
        let mut pick = || rng.random_range(0..written) as Reg;
        let (a, b, c) = (pick(), pick(), pick());
        program.push(match rng.random_range(0..6) {
            0..=2 => Instr::Unary {
                dst,
                op: unary[rng.random_range(0..unary.len())],
                a,
            },
            3 | 4 => Instr::Binary {
                dst,
                op: binary[rng.random_range(0..binary.len())],
                a,
                b,
            },
            _ => Instr::Ternary {
                dst,
                op: ternary[rng.random_range(0..ternary.len())],
                a,
                b,
                c,
            },
        });
        written += 1;
    }
    let stores: Vec<Reg> = (0..rng.random_range(1..=3))
        .map(|_| rng.random_range(0..written) as Reg)
        .collect();
    let reduction = rng.random_bool(0.5).then(|| {
        let a = rng.random_range(0..=rank);
        let b = rng.random_range(a..=rank);
        let product = |r: &[usize]| r.iter().product::<usize>();
        Reduction {
            outer: product(&dims[..a]),
            reduced: product(&dims[a..b]),
            inner: product(&dims[b..]),
        }
    });
    (step(&dims, views, program, &stores, reduction), data)
}

/// Random steps on the GPU against the CPU executor of fused steps and the op-by-op reference:
/// the same values to rounding, f64 and f32.
#[test]
fn random_steps_match_the_cpu_executor_and_the_op_by_op_reference() -> Result<()> {
    let (_lock, device) = gpu();
    let (mut bounded, mut reductions) = (0, 0);
    for seed in 0..60 {
        let (s, data) = random_step(seed);
        bounded += s.operands.iter().filter(|v| v.bounds.is_some()).count();
        reductions += usize::from(s.reduction.is_some());
        for dtype in DTYPES {
            check(device, &s, &data, dtype)?;
            let mut on_cpu = s.clone();
            on_cpu.dtype = dtype;
            let cpu_inputs = data
                .iter()
                .map(|v| Tensor::from_f64s(v, [v.len()], dtype, Device::Cpu))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let gpu_inputs = cpu_inputs
                .iter()
                .map(|t| t.to_device(device))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let cpu = on_cpu.run(&cpu_inputs.iter().collect::<Vec<_>>())?;
            let gpu = on_cpu.run(&gpu_inputs.iter().collect::<Vec<_>>())?;
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            for (c, g) in cpu.iter().zip(&gpu) {
                let c = c.to_dtype(DType::F64)?.to_vec::<f64>()?;
                let g = g.to_dtype(DType::F64)?.to_vec::<f64>()?;
                for (i, (&c, &g)) in c.iter().zip(&g).enumerate() {
                    assert!(
                        (c - g).abs() <= tol * c.abs().max(1.0),
                        "seed {seed} {dtype} element {i}: CPU {c}, GPU {g}"
                    );
                }
            }
        }
    }
    assert!(bounded > 10, "{bounded} bounded views");
    assert!(reductions > 15, "{reductions} reductions");
    Ok(())
}
