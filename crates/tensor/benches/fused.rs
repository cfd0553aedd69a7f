//! A 20-op elementwise chain over [16, 100000] f64 ending in a sum over the leading axis: the
//! compiled plan (one fused step) against the same trace run op by op.

use criterion::{criterion_group, criterion_main, Criterion};
use curvature_tensor::plan::{
    compile::fuse, run_step, BroadcastLayout, PlanStep, Prim, Source, Trace, TraceStep, TraceValue,
    ValueId,
};
use curvature_tensor::{BinaryOp, DType, Device, Shape, Tensor, UnaryOp};

const K: usize = 16;
const N: usize = 100_000;

/// The chain's trace and its inputs' data.
fn chain() -> (Trace, Vec<Tensor>) {
    let full = Shape::new([K, N]);
    let row = Shape::new([N]);
    let mut values = Vec::new();
    let mut inputs = Vec::new();
    let mut data = Vec::new();
    for (i, shape) in [&full, &full, &row].into_iter().enumerate() {
        let n = shape.elem_count();
        let v: Vec<f64> = (0..n)
            .map(|j| ((j * 7 + i * 3) % 97) as f64 / 97.0 - 0.5)
            .collect();
        data.push(Tensor::from_f64s(&v, shape.clone(), DType::F64, Device::Cpu).unwrap());
        values.push(TraceValue {
            len: n,
            dtype: DType::F64,
            source: Source::Input(i),
        });
        inputs.push((i, shape.clone()));
    }
    let mut steps = Vec::new();
    let mut push = |prim: Prim, args: Vec<ValueId>, values: &mut Vec<TraceValue>| {
        let out = values.len();
        values.push(TraceValue {
            len: K * N,
            dtype: DType::F64,
            source: Source::Step(steps.len()),
        });
        steps.push(TraceStep { prim, args, out });
        out
    };
    let same = BroadcastLayout {
        out: full.clone(),
        strides: vec![vec![N, 1], vec![N, 1]],
    };
    let with_row = BroadcastLayout {
        out: full.clone(),
        strides: vec![vec![N, 1], vec![0, 1]],
    };
    let (x, y, w) = (0, 1, 2);
    let mut v = push(Prim::Unary(UnaryOp::Tanh), vec![x], &mut values);
    let unary = [
        UnaryOp::Sigmoid,
        UnaryOp::Square,
        UnaryOp::Affine { mul: 0.5, add: 0.1 },
        UnaryOp::Sin,
        UnaryOp::Softplus,
    ];
    for i in 0..19 {
        v = match i % 3 {
            0 => push(Prim::Unary(unary[i % unary.len()]), vec![v], &mut values),
            1 => push(
                Prim::Binary(BinaryOp::Mul, same.clone()),
                vec![v, y],
                &mut values,
            ),
            _ => push(
                Prim::Binary(BinaryOp::Add, with_row.clone()),
                vec![v, w],
                &mut values,
            ),
        };
    }
    let s = values.len();
    values.push(TraceValue {
        len: N,
        dtype: DType::F64,
        source: Source::Step(steps.len()),
    });
    steps.push(TraceStep {
        prim: Prim::Reduce {
            op: curvature_tensor::ReduceOp::Sum,
            outer: 1,
            reduced: K,
            inner: N,
        },
        args: vec![v],
        out: s,
    });
    let trace = Trace {
        device: Device::Cpu,
        values,
        inputs,
        steps,
        outputs: vec![(s, Shape::new([N]))],
    };
    (trace, data)
}

/// Runs `steps` (calls op by op, fused steps through their executor); returns the output.
fn run(trace: &Trace, steps: &[PlanStep], data: &[Tensor]) -> Tensor {
    let mut env: Vec<Option<Tensor>> = vec![None; trace.values.len()];
    for (i, t) in data.iter().enumerate() {
        env[i] = Some(t.clone());
    }
    for step in steps {
        match step {
            PlanStep::Call(s) => {
                let args: Vec<&Tensor> = s.args.iter().map(|&a| env[a].as_ref().unwrap()).collect();
                let len = trace.values[s.out].len;
                env[s.out] = Some(run_step(&s.prim, &args, Shape::new([len])).unwrap());
            }
            PlanStep::Fused(f) => {
                let args: Vec<&Tensor> = f
                    .operands
                    .iter()
                    .map(|o| env[o.value].as_ref().unwrap())
                    .collect();
                let outs = f.run(&args).unwrap();
                for (store, t) in f.stores.iter().zip(outs) {
                    env[store.value] = Some(t);
                }
            }
        }
    }
    env[trace.outputs[0].0].clone().unwrap()
}

fn bench(c: &mut Criterion) {
    let (trace, data) = chain();
    let op_by_op: Vec<PlanStep> = trace.steps.iter().cloned().map(PlanStep::Call).collect();
    let fused = fuse(&trace).unwrap();
    assert_eq!(fused.len(), 1);
    let a = run(&trace, &op_by_op, &data).to_f64s().unwrap();
    let b = run(&trace, &fused, &data).to_f64s().unwrap();
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() <= 1e-12 * x.abs().max(1.0)));
    let mut group = c.benchmark_group("chain20_16x100000_f64");
    group.sample_size(10);
    group.bench_function("op_by_op", |bch| bch.iter(|| run(&trace, &op_by_op, &data)));
    group.bench_function("fused", |bch| bch.iter(|| run(&trace, &fused, &data)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
