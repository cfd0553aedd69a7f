//! The fusion compiler and the CPU executor of fused steps: the structure `plan::compile::fuse`
//! gives known chains, its limits, `FusedStep::check` refusing bad steps, and a property test
//! comparing fused execution with the op-by-op path on random expression graphs.

#[path = "plan_fuse/recorder.rs"]
mod recorder;

use curvature_tensor::plan::fused::{MAX_OPERANDS, MAX_RANK, MAX_REGS, MAX_STORES};
use curvature_tensor::plan::{compile::fuse, FusedStep, Instr, OperandView, Reduction, Store};
use curvature_tensor::{BinaryOp, DType, Device, ReduceOp, Shape, Tensor, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recorder::{calls, fused, Recorder};

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.5..1.5)).collect()
}

fn close(got: &[f64], want: &[f64], rel: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= rel * w.abs().max(1.0);
        if !same {
            return Err(format!("element {i}: {g} vs {w}"));
        }
    }
    Ok(())
}

#[test]
fn tanh_backward_chain_and_its_sum_are_one_step() {
    let (k, n) = (3, 5);
    let mut r = Recorder::new(DType::F64);
    let xv = values(k * n, 1);
    let gv = values(k * n, 2);
    let wv = values(n, 3);
    let x = r.input(&xv, &[k, n]);
    let g = r.input(&gv, &[k, n]);
    let w = r.input(&wv, &[n]);
    let t = r.unary(UnaryOp::Tanh, x);
    let d = r.binary(BinaryOp::TanhBackward, g, t);
    let m = r.binary(BinaryOp::Mul, d, w);
    let s = r.sum(m, 0);
    let steps = fuse(&r.trace(&[s])).unwrap();
    assert_eq!(steps.len(), 1, "calls left: {:?}", calls(&steps));
    let f = fused(&steps)[0];
    assert_eq!(
        f.reduction,
        Some(Reduction {
            outer: 1,
            reduced: k,
            inner: n
        })
    );
    assert_eq!(f.stores.len(), 1);
    assert_eq!(f.stores[0].value, s);
    let got = r.run(&steps, &[s]).unwrap()[0].to_f64s().unwrap();
    let want: Vec<f64> = (0..n)
        .map(|j| {
            (0..k)
                .map(|i| {
                    let th = xv[i * n + j].tanh();
                    gv[i * n + j] * (1.0 - th * th) * wv[j]
                })
                .sum()
        })
        .collect();
    close(&got, &want, 1e-12).unwrap();
}

#[test]
fn a_value_read_twice_outside_is_stored_once() {
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(12, 4), &[3, 4]);
    let y = r.input(&values(12, 5), &[3, 4]);
    let a = r.unary(UnaryOp::Exp, x);
    let b = r.binary(BinaryOp::Mul, a, y);
    let m0 = r.reduce(ReduceOp::Max, a, 0);
    let m1 = r.reduce(ReduceOp::Max, a, 1);
    let steps = fuse(&r.trace(&[b, m0, m1])).unwrap();
    let f = fused(&steps);
    assert_eq!(f.len(), 1);
    let stored: Vec<usize> = f[0].stores.iter().map(|s| s.value).collect();
    assert_eq!(stored, vec![a, b]);
    assert_eq!(calls(&steps), vec!["reduce_max", "reduce_max"]);
    let got = r.run(&steps, &[b, m0, m1]).unwrap();
    for (t, v) in got.iter().zip([b, m0, m1]) {
        close(&t.to_f64s().unwrap(), &r.data[v].to_f64s().unwrap(), 0.0).unwrap();
    }
}

#[test]
fn narrow_pad_permute_and_expand_fold_into_views() {
    let mut r = Recorder::new(DType::F64);
    let xv = values(12, 6);
    let zv = values(12, 7);
    let bv = values(4, 8);
    let x = r.input(&xv, &[3, 4]);
    let z = r.input(&zv, &[4, 3]);
    let b = r.input(&bv, &[1, 4]);
    let n = r.narrow(x, 1, 1, 2); // [3, 2]: x[:, 1..3]
    let p = r.pad(n, 1, 1, 1); // [3, 4]: 0, x[:, 1], x[:, 2], 0
    let zt = r.permute(z, &[1, 0]); // [3, 4]
    let be = r.expand(b, &[3, 4]);
    let m = r.binary(BinaryOp::Mul, p, zt);
    let y = r.binary(BinaryOp::Add, m, be);
    let steps = fuse(&r.trace(&[y])).unwrap();
    assert_eq!(steps.len(), 1, "calls left: {:?}", calls(&steps));
    let f = fused(&steps)[0];
    let read: Vec<usize> = f.operands.iter().map(|o| o.value).collect();
    assert_eq!(read, vec![x, z, b]);
    assert!(f.operands[0].bounds.is_some());
    let got = r.run(&steps, &[y]).unwrap()[0].to_f64s().unwrap();
    let want: Vec<f64> = (0..3)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| {
            let padded = if (1..3).contains(&j) {
                xv[i * 4 + j]
            } else {
                0.0
            };
            padded * zv[j * 3 + i] + bv[j]
        })
        .collect();
    close(&got, &want, 1e-15).unwrap();
}

#[test]
fn operand_limit_splits_a_chain() {
    let mut r = Recorder::new(DType::F64);
    let count = MAX_OPERANDS + 4;
    let xs: Vec<usize> = (0..count)
        .map(|i| r.input(&values(8, 10 + i as u64), &[8]))
        .collect();
    let mut acc = xs[0];
    for &x in &xs[1..] {
        acc = r.binary(BinaryOp::Add, acc, x);
    }
    let steps = fuse(&r.trace(&[acc])).unwrap();
    let f = fused(&steps);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.operands.len() <= MAX_OPERANDS));
    let got = r.run(&steps, &[acc]).unwrap()[0].to_f64s().unwrap();
    close(&got, &r.data[acc].to_f64s().unwrap(), 0.0).unwrap();
}

#[test]
fn store_limit_splits_a_chain() {
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(6, 30), &[6]);
    let mut outs = Vec::new();
    let mut v = x;
    for i in 0..MAX_STORES + 2 {
        v = r.unary(
            UnaryOp::Affine {
                mul: 0.5,
                add: i as f64,
            },
            v,
        );
        outs.push(v);
    }
    let steps = fuse(&r.trace(&outs)).unwrap();
    let f = fused(&steps);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.stores.len() <= MAX_STORES));
    let got = r.run(&steps, &outs).unwrap();
    for (t, &o) in got.iter().zip(&outs) {
        close(&t.to_f64s().unwrap(), &r.data[o].to_f64s().unwrap(), 0.0).unwrap();
    }
}

#[test]
fn registers_are_reused_and_their_limit_splits_a_chain() {
    // A long chain reuses registers: 60 ops in one step with a handful of registers.
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(6, 31), &[6]);
    let mut v = x;
    for _ in 0..60 {
        v = r.unary(UnaryOp::Sin, v);
    }
    let steps = fuse(&r.trace(&[v])).unwrap();
    assert_eq!(steps.len(), 1);
    let max_reg = |f: &FusedStep| {
        f.program
            .iter()
            .map(|i| match *i {
                Instr::Load { dst, .. }
                | Instr::Unary { dst, .. }
                | Instr::Binary { dst, .. }
                | Instr::Ternary { dst, .. } => dst,
            })
            .max()
            .unwrap()
    };
    assert!(max_reg(fused(&steps)[0]) < 2);
    // 40 values alive at once pass the register limit.
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(6, 32), &[6]);
    let parts: Vec<usize> = (0..MAX_REGS + 8)
        .map(|i| {
            r.unary(
                UnaryOp::Affine {
                    mul: i as f64,
                    add: 1.0,
                },
                x,
            )
        })
        .collect();
    let mut acc = parts[0];
    for &p in &parts[1..] {
        acc = r.binary(BinaryOp::Mul, acc, p);
    }
    let steps = fuse(&r.trace(&[acc])).unwrap();
    let f = fused(&steps);
    assert!(f.len() >= 2);
    assert!(f.iter().all(|f| usize::from(max_reg(f)) < MAX_REGS));
    let got = r.run(&steps, &[acc]).unwrap()[0].to_f64s().unwrap();
    close(&got, &r.data[acc].to_f64s().unwrap(), 0.0).unwrap();
}

#[test]
fn rank_limit_leaves_a_call() {
    // Rank 8 with an operand broadcast along every other axis: no two axes merge.
    let mut r = Recorder::new(DType::F64);
    let dims = [2usize; MAX_RANK + 2];
    let bdims: Vec<usize> = (0..dims.len())
        .map(|d| if d % 2 == 0 { 2 } else { 1 })
        .collect();
    let x = r.input(&values(256, 40), &dims);
    let b = r.input(&values(16, 41), &bdims);
    let y = r.binary(BinaryOp::Mul, x, b);
    let steps = fuse(&r.trace(&[y])).unwrap();
    assert_eq!(calls(&steps), vec!["mul"]);
    // The same op on coalescable shapes fuses.
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(256, 40), &dims);
    let z = r.input(&values(256, 42), &dims);
    let y = r.binary(BinaryOp::Mul, x, z);
    let steps = fuse(&r.trace(&[y])).unwrap();
    assert_eq!(fused(&steps).len(), 1);
    assert_eq!(fused(&steps)[0].shape.dims(), &[256]);
}

#[test]
fn fuse_is_deterministic() {
    let build = || {
        let mut r = Recorder::new(DType::F64);
        let x = r.input(&values(20, 50), &[4, 5]);
        let y = r.input(&values(5, 51), &[5]);
        let a = r.unary(UnaryOp::Gelu, x);
        let b = r.binary(BinaryOp::Sub, a, y);
        let c = r.permute(b, &[1, 0]);
        let d = r.unary(UnaryOp::Square, c);
        let s = r.sum(d, 1);
        fuse(&r.trace(&[s, b])).unwrap()
    };
    let (one, two) = (build(), build());
    assert_eq!(fused(&one), fused(&two));
    assert_eq!(calls(&one), calls(&two));
}

/// A valid step: y = x·2 + z over [2, 3].
fn valid_step() -> FusedStep {
    FusedStep {
        dtype: DType::F64,
        shape: Shape::new([2, 3]),
        operands: vec![
            OperandView {
                value: 0,
                offset: 0,
                strides: vec![3, 1],
                bounds: None,
            },
            OperandView {
                value: 1,
                offset: 0,
                strides: vec![0, 1],
                bounds: None,
            },
        ],
        program: vec![
            Instr::Load { dst: 0, operand: 0 },
            Instr::Unary {
                dst: 1,
                op: UnaryOp::Affine { mul: 2.0, add: 0.0 },
                a: 0,
            },
            Instr::Load { dst: 0, operand: 1 },
            Instr::Binary {
                dst: 2,
                op: BinaryOp::Add,
                a: 1,
                b: 0,
            },
        ],
        stores: vec![Store { reg: 2, value: 5 }],
        reduction: None,
    }
}

#[test]
fn check_accepts_a_valid_step_and_the_executor_runs_it() {
    let step = valid_step();
    step.check(&[6, 3]).unwrap();
    let x = Tensor::from_f64s(&[1., 2., 3., 4., 5., 6.], [6], DType::F64, Device::Cpu).unwrap();
    let z = Tensor::from_f64s(&[10., 20., 30.], [3], DType::F64, Device::Cpu).unwrap();
    let out = step.run(&[&x, &z]).unwrap();
    assert_eq!(
        out[0].to_f64s().unwrap(),
        vec![12., 24., 36., 18., 30., 42.]
    );
}

#[test]
fn check_rejects_each_kind_of_bad_step() {
    type Edit = fn(&mut FusedStep);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("rank", |s| s.shape = Shape::new([1; MAX_RANK + 1]), "rank"),
        (
            "operands",
            |s| s.operands = vec![s.operands[0].clone(); MAX_OPERANDS + 1],
            "operands",
        ),
        ("no stores", |s| s.stores.clear(), "stores"),
        (
            "many stores",
            |s| s.stores = vec![s.stores[0].clone(); MAX_STORES + 1],
            "stores",
        ),
        (
            "register",
            |s| {
                s.program[1] = Instr::Unary {
                    dst: MAX_REGS as u8,
                    op: UnaryOp::Neg,
                    a: 0,
                }
            },
            "past",
        ),
        (
            "read before write",
            |s| {
                s.program[1] = Instr::Unary {
                    dst: 1,
                    op: UnaryOp::Neg,
                    a: 7,
                }
            },
            "before it is written",
        ),
        ("store unwritten", |s| s.stores[0].reg = 9, "never writes"),
        (
            "load operand",
            |s| s.program[0] = Instr::Load { dst: 0, operand: 2 },
            "loads operand",
        ),
        ("offset", |s| s.operands[0].offset = 1, "reads indices"),
        (
            "negative",
            |s| s.operands[1].strides = vec![0, -1],
            "reads indices",
        ),
        (
            "strides length",
            |s| s.operands[0].strides = vec![1],
            "strides",
        ),
        (
            "bounds past",
            |s| s.operands[0].bounds = Some(vec![(0, 2), (0, 4)]),
            "bounds",
        ),
        (
            "bounds reversed",
            |s| s.operands[0].bounds = Some(vec![(1, 0), (0, 3)]),
            "bounds",
        ),
        (
            "bounds length",
            |s| s.operands[0].bounds = Some(vec![(0, 2)]),
            "bounds",
        ),
        (
            "reduction",
            |s| {
                s.reduction = Some(Reduction {
                    outer: 1,
                    reduced: 4,
                    inner: 1,
                })
            },
            "reduction",
        ),
    ];
    for (name, edit, needle) in cases {
        let mut step = valid_step();
        edit(&mut step);
        let lens = vec![6; step.operands.len()];
        let lens: Vec<usize> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| if i == 1 { 3 } else { l })
            .collect();
        let err = step.check(&lens).expect_err(name).to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }
    let err = valid_step().check(&[6]).unwrap_err().to_string();
    assert!(err.contains("operand lengths"), "{err}");
    // Bounds make an otherwise out-of-range view valid: offset −1 read only from column 1 on.
    let mut step = valid_step();
    step.operands[0].offset = -1;
    step.operands[0].bounds = Some(vec![(0, 2), (1, 3)]);
    step.check(&[6, 3]).unwrap();
}

#[test]
fn the_executor_refuses_bad_outputs_and_dtypes() {
    let step = valid_step();
    let x = Tensor::from_f64s(&[1.; 6], [6], DType::F64, Device::Cpu).unwrap();
    let z32 = Tensor::from_f64s(&[1.; 3], [3], DType::F32, Device::Cpu).unwrap();
    assert!(step
        .run(&[&x, &z32])
        .unwrap_err()
        .to_string()
        .contains("dtype"));
    let short = Tensor::from_f64s(&[1.; 2], [2], DType::F64, Device::Cpu).unwrap();
    assert!(step
        .run(&[&x, &short])
        .unwrap_err()
        .to_string()
        .contains("reads indices"));
}

#[test]
fn fused_sums_do_not_depend_on_the_thread_count() {
    let (k, n) = (64, 2000);
    let mut r = Recorder::new(DType::F64);
    let x = r.input(&values(k * n, 60), &[k, n]);
    let t = r.unary(UnaryOp::Tanh, x);
    let s0 = r.sum(t, 0);
    let steps = fuse(&r.trace(&[s0])).unwrap();
    assert_eq!(steps.len(), 1);
    let many = r.run(&steps, &[s0]).unwrap()[0].to_f64s().unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one = pool.install(|| r.run(&steps, &[s0]).unwrap()[0].to_f64s().unwrap());
    assert_eq!(many, one);
    // Each column summed in increasing row order from 0, as the op-by-op sum does.
    close(&many, &r.data[s0].to_f64s().unwrap(), 0.0).unwrap();
}

/// `out[i, j, l] = a·b + c·f` over [3, 400, 3] (several blocks and tasks), reading broadcast
/// and transposed views: `a` repeats one row of 3 along `j`, `b` one [400, 3] slab along `i`,
/// `c` is a [3, 3, 400] tensor read transposed, `f` one row of 3 everywhere.
fn broadcast_views_step(reduction: Option<Reduction>) -> FusedStep {
    let view = |value, offset, strides: [i64; 3]| OperandView {
        value,
        offset,
        strides: strides.to_vec(),
        bounds: None,
    };
    FusedStep {
        dtype: DType::F64,
        shape: Shape::new([3, 400, 3]),
        operands: vec![
            view(0, 2, [3, 0, 1]),
            view(1, 0, [0, 3, 1]),
            view(2, 0, [1200, 1, 400]),
            view(3, 0, [0, 0, 1]),
        ],
        program: vec![
            Instr::Load { dst: 0, operand: 0 },
            Instr::Load { dst: 1, operand: 1 },
            Instr::Binary {
                dst: 2,
                op: BinaryOp::Mul,
                a: 0,
                b: 1,
            },
            Instr::Load { dst: 0, operand: 2 },
            Instr::Load { dst: 1, operand: 3 },
            Instr::Binary {
                dst: 3,
                op: BinaryOp::Mul,
                a: 0,
                b: 1,
            },
            Instr::Binary {
                dst: 0,
                op: BinaryOp::Add,
                a: 2,
                b: 3,
            },
        ],
        stores: vec![Store { reg: 0, value: 4 }],
        reduction,
    }
}

#[test]
fn broadcast_and_transposed_views_read_the_right_elements() {
    let (a, b, c, f) = (
        values(11, 70),
        values(1200, 71),
        values(3600, 72),
        values(3, 73),
    );
    let tensor = |v: &[f64]| Tensor::from_f64s(v, [v.len()], DType::F64, Device::Cpu).unwrap();
    let operands = [tensor(&a), tensor(&b), tensor(&c), tensor(&f)];
    let operands: Vec<&Tensor> = operands.iter().collect();
    let term = |i: usize, j: usize, l: usize| {
        a[2 + 3 * i + l] * b[3 * j + l] + c[1200 * i + 400 * l + j] * f[l]
    };
    let mut want = Vec::with_capacity(3600);
    for i in 0..3 {
        for j in 0..400 {
            for l in 0..3 {
                want.push(term(i, j, l));
            }
        }
    }
    let step = broadcast_views_step(None);
    let got = step.run(&operands).unwrap()[0].to_f64s().unwrap();
    close(&got, &want, 0.0).unwrap();

    let sums = broadcast_views_step(Some(Reduction {
        outer: 3,
        reduced: 400,
        inner: 3,
    }));
    let mut want = Vec::with_capacity(9);
    for i in 0..3 {
        for l in 0..3 {
            want.push((0..400).fold(0.0, |acc, j| acc + term(i, j, l)));
        }
    }
    let got = sums.run(&operands).unwrap()[0].to_f64s().unwrap();
    close(&got, &want, 0.0).unwrap();
}

#[path = "plan_fuse/property.rs"]
mod property;

/// Through real traces: `plan::capture` of tensor ops, compiled and run by `Plan`.
mod captured {
    use curvature_tensor::plan::{capture, Plan, PlanStep};
    use curvature_tensor::{DType, Device, Tensor};

    use crate::{close, values};

    fn tensor(seed: u64, dims: &[usize], dtype: DType) -> Tensor {
        let n = dims.iter().product();
        Tensor::from_f64s(&values(n, seed), dims.to_vec(), dtype, Device::Cpu).unwrap()
    }

    /// A row mean (a fused sum, then a scale) broadcast back over the rows it reduced: the
    /// scale and the broadcast read the `[3, 5]` sums, not the `[3, 5, 4]` iteration shape.
    #[test]
    fn a_keepdim_mean_broadcast_back_compiles_and_runs() {
        let v = tensor(80, &[3, 5, 4], DType::F64);
        let c = tensor(81, &[5, 4], DType::F64);
        let f = |v: &Tensor| -> curvature_tensor::Result<Vec<Tensor>> {
            Ok(vec![v
                .mul(&c)?
                .mean(&[-1], true)?
                .broadcast_to([3, 5, 4])?])
        };
        let (_, trace) = capture(&[&v], || f(&v)).unwrap();
        let plan = Plan::compile(trace).unwrap();
        let v2 = tensor(82, &[3, 5, 4], DType::F64);
        let got = plan.run(&[&v2]).unwrap()[0].to_f64s().unwrap();
        let (vv, cv) = (v2.to_f64s().unwrap(), c.to_f64s().unwrap());
        let want: Vec<f64> = (0..60)
            .map(|i| {
                let (b, r) = (i / 20, (i / 4) % 5);
                (0..4)
                    .map(|j| vv[b * 20 + r * 4 + j] * cv[r * 4 + j])
                    .sum::<f64>()
                    / 4.0
            })
            .collect();
        close(&got, &want, 1e-14).unwrap();
    }

    #[test]
    fn a_backward_chain_with_padding_is_one_fused_step() {
        for (dtype, rel) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let x = tensor(70, &[4, 3, 5], dtype);
            let g = tensor(71, &[4, 3, 5], dtype);
            let w = tensor(72, &[5], dtype);
            let u = tensor(73, &[4, 3, 3], dtype);
            let f = |x: &Tensor, g: &Tensor| -> curvature_tensor::Result<Vec<Tensor>> {
                let t = x.tanh()?;
                let d = g.tanh_backward(&t)?;
                let padded = g
                    .narrow(2, 1, 2)?
                    .pad_zeros(2, 2, 1)?
                    .mul(&u.pad_zeros(2, 1, 1)?)?;
                let m = d.mul(&w)?.add(&padded)?;
                Ok(vec![m.sum_to([3, 5])?])
            };
            let want = f(&x, &g).unwrap();
            let (_, trace) = capture(&[&x, &g], || f(&x, &g)).unwrap();
            let plan = Plan::compile(trace).unwrap();
            let fused: Vec<_> = plan
                .steps()
                .iter()
                .filter(|s| matches!(s, PlanStep::Fused(_)))
                .collect();
            assert_eq!(plan.steps().len(), 1, "{dtype}");
            assert_eq!(fused.len(), 1);
            if let PlanStep::Fused(f) = fused[0] {
                assert!(f.reduction.is_some());
                assert!(f.operands.iter().any(|o| o.bounds.is_some()));
            }
            // New inputs of the traced shapes.
            let x2 = tensor(74, &[4, 3, 5], dtype);
            let g2 = tensor(75, &[4, 3, 5], dtype);
            let got = plan.run(&[&x2, &g2]).unwrap();
            let want2 = f(&x2, &g2).unwrap();
            assert_eq!(got[0].dims(), want2[0].dims());
            close(
                &got[0].to_f64s().unwrap(),
                &want2[0].to_f64s().unwrap(),
                rel,
            )
            .unwrap();
            assert_ne!(want[0].to_f64s().unwrap(), want2[0].to_f64s().unwrap());
        }
    }
}
