//! The property test: random expression graphs of elementwise ops (every table op, parametrised
//! ones with random parameters), broadcasting operands, narrow/pad, permute and expand reads,
//! reductions read back over the axes they reduced, a leading K axis and trailing sums; fused
//! execution equals the op-by-op path.

use curvature_tensor::plan::{compile::fuse, ValueId};
use curvature_tensor::{BinaryOp, DType, ReduceOp, TernaryOp, UnaryOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::recorder::{fused, Recorder};
use crate::{close, values};

/// Ops whose (first) operand must be positive.
fn needs_positive(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Powf { .. }
            | UnaryOp::Log1p
            | UnaryOp::Reciprocal
    )
}

/// A random op of the unary table, parameters drawn at random.
fn random_unary(rng: &mut ChaCha8Rng) -> UnaryOp {
    let op = UnaryOp::ALL[rng.random_range(0..UnaryOp::ALL.len())];
    let mut p = || (rng.random_range(-1.5..1.5f64) * 8.0).round() / 8.0;
    match op {
        UnaryOp::Powf { .. } => UnaryOp::Powf { exponent: p() },
        UnaryOp::Affine { .. } => UnaryOp::Affine { mul: p(), add: p() },
        UnaryOp::LeakyRelu { .. } => UnaryOp::LeakyRelu { slope: p() },
        UnaryOp::Elu { .. } => UnaryOp::Elu { alpha: p() },
        UnaryOp::Clamp { .. } | UnaryOp::Between { .. } => {
            let (a, b) = (p(), p());
            let (lo, hi) = (a.min(b), a.max(b));
            if matches!(op, UnaryOp::Clamp { .. }) {
                UnaryOp::Clamp { lo, hi }
            } else {
                UnaryOp::Between { lo, hi }
            }
        }
        other => other,
    }
}

/// A value in (0.5, 1.5) computed from `x`.
fn positive(r: &mut Recorder, x: ValueId) -> ValueId {
    let s = r.unary(UnaryOp::Sigmoid, x);
    r.unary(UnaryOp::Affine { mul: 1.0, add: 0.5 }, s)
}

fn pick(rng: &mut ChaCha8Rng, pool: &[ValueId]) -> ValueId {
    pool[rng.random_range(0..pool.len())]
}

/// A random binary op with its operands made valid for it (a positive base for `pow`, a
/// positive divisor for `div`).
fn random_binary(rng: &mut ChaCha8Rng, r: &mut Recorder, a: ValueId, b: ValueId) -> ValueId {
    let op = BinaryOp::ALL[rng.random_range(0..BinaryOp::ALL.len())];
    let a = if op == BinaryOp::Pow {
        positive(r, a)
    } else {
        a
    };
    let b = if op == BinaryOp::Div {
        positive(r, b)
    } else {
        b
    };
    r.binary(op, a, b)
}

/// Where reductions over the axes `first..end` of the full shape are taken.
struct Reduced<'a> {
    full: &'a [usize],
    first: usize,
    end: usize,
    keepdim: bool,
}

impl Reduced<'_> {
    /// The full shape with the reduced axes of length 1: how a reduction is read back.
    fn kept(&self) -> Vec<usize> {
        let mut d = self.full.to_vec();
        d[self.first..self.end].iter_mut().for_each(|n| *n = 1);
        d
    }

    /// A reduction (mostly a sum) of a full value computed for it alone, or of one in `pool`.
    fn of_fresh(&self, rng: &mut ChaCha8Rng, r: &mut Recorder, fulls: &[ValueId]) -> ValueId {
        let x = pick(rng, fulls);
        let fresh = match rng.random_range(0..3) {
            0 => {
                let y = pick(rng, fulls);
                r.binary(BinaryOp::Mul, x, y)
            }
            1 => {
                let op = random_unary(rng);
                let x = if needs_positive(op) {
                    positive(r, x)
                } else {
                    x
                };
                r.unary(op, x)
            }
            _ => x,
        };
        let op = if rng.random_bool(0.8) {
            ReduceOp::Sum
        } else {
            ReduceOp::Max
        };
        r.reduce_axes(op, fresh, self.first, self.end, self.keepdim)
    }
}

/// A reduction over a random run of axes (kept as unit axes or dropped), maybe scaled into a
/// mean, mapped and combined with a second reduction over the same axes, then read back over
/// the full shape by a binary op with a full value or by a broadcasting copy: the patterns of
/// the backward rules of layer norm, softmax and logsumexp. Returns the full result and, when
/// the axes were kept, the reduced value (a broadcasting operand for later ops).
fn reduced_back(
    rng: &mut ChaCha8Rng,
    r: &mut Recorder,
    fulls: &[ValueId],
    full: &[usize],
) -> (ValueId, Option<ValueId>) {
    let first = rng.random_range(0..full.len());
    let end = if rng.random_bool(0.3) {
        rng.random_range(first + 1..=full.len())
    } else {
        first + 1
    };
    let at = Reduced {
        full,
        first,
        end,
        keepdim: rng.random_bool(0.5),
    };
    let mut s = at.of_fresh(rng, r, fulls);
    if rng.random_bool(0.6) {
        let n: usize = full[first..end].iter().product();
        let mean = UnaryOp::Affine {
            mul: 1.0 / n as f64,
            add: 0.0,
        };
        s = r.unary(mean, s);
    }
    if rng.random_bool(0.4) {
        let op = random_unary(rng);
        if needs_positive(op) {
            s = positive(r, s);
        }
        s = r.unary(op, s);
    }
    if rng.random_bool(0.4) {
        let t = at.of_fresh(rng, r, fulls);
        s = random_binary(rng, r, s, t);
    }
    let kept = at.kept();
    let back = if rng.random_bool(0.3) {
        r.expand_as(s, &kept, full)
    } else {
        let op = BinaryOp::ALL[rng.random_range(0..BinaryOp::ALL.len())];
        let x = pick(rng, fulls);
        let (mut a, mut b) = ((x, full), (s, kept.as_slice()));
        if rng.random_bool(0.5) {
            std::mem::swap(&mut a, &mut b);
        }
        if op == BinaryOp::Pow {
            a.0 = positive(r, a.0);
        }
        if op == BinaryOp::Div {
            b.0 = positive(r, b.0);
        }
        r.binary_as(op, a, b)
    };
    (back, at.keepdim.then_some(s))
}

/// One random graph: the recorder and the values it returns.
fn random_graph(seed: u64, dtype: DType) -> (Recorder, Vec<ValueId>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = Recorder::new(dtype);
    let k = rng.random_range(1..=3);
    let mut full = vec![k];
    let extra = rng.random_range(1..=2);
    for _ in 0..extra {
        full.push(rng.random_range(1..=4));
    }
    if rng.random_bool(0.4) {
        let n = full[full.len() - 1];
        full.push(n);
    }
    let len = |d: &[usize]| d.iter().product::<usize>();
    let mut pool = Vec::new();
    for i in 0..rng.random_range(2..=3u64) {
        pool.push(r.input(&values(len(&full), seed * 16 + i), &full));
    }
    // A broadcasting input: some axes of length 1, maybe fewer leading axes.
    let mut small: Vec<usize> = full
        .iter()
        .map(|&n| if rng.random_bool(0.5) { 1 } else { n })
        .collect();
    if rng.random_bool(0.5) {
        small.remove(0);
    }
    let b = r.input(&values(len(&small).max(1), seed * 16 + 9), &small);
    pool.push(b);
    let is_full = |r: &Recorder, v: ValueId| r.shape(v) == full;
    for _ in 0..rng.random_range(4..=14) {
        let v = match rng.random_range(0..11) {
            0..=2 => {
                let op = random_unary(&mut rng);
                let mut x = pick(&mut rng, &pool);
                if needs_positive(op) {
                    x = positive(&mut r, x);
                }
                r.unary(op, x)
            }
            3 | 4 => {
                let op = BinaryOp::ALL[rng.random_range(0..BinaryOp::ALL.len())];
                let (mut a, mut b) = (pick(&mut rng, &pool), pick(&mut rng, &pool));
                if op == BinaryOp::Pow {
                    a = positive(&mut r, a);
                }
                if op == BinaryOp::Div {
                    b = positive(&mut r, b);
                }
                r.binary(op, a, b)
            }
            5 => {
                let op = TernaryOp::ALL[rng.random_range(0..TernaryOp::ALL.len())];
                let (mut a, b, c) = (
                    pick(&mut rng, &pool),
                    pick(&mut rng, &pool),
                    pick(&mut rng, &pool),
                );
                if op == TernaryOp::WhereCond {
                    a = r.unary(UnaryOp::Step, a);
                }
                r.ternary(op, a, b, c)
            }
            6 => {
                let fulls: Vec<ValueId> =
                    pool.iter().copied().filter(|&v| is_full(&r, v)).collect();
                let x = pick(&mut rng, &fulls);
                let axis = rng.random_range(0..full.len());
                let n = full[axis];
                let keep = rng.random_range(1..=n);
                let start = rng.random_range(0..=n - keep);
                let before = rng.random_range(0..=n - keep);
                let narrowed = r.narrow(x, axis, start, keep);
                r.pad(narrowed, axis, before, n - keep - before)
            }
            7 => {
                let fulls: Vec<ValueId> =
                    pool.iter().copied().filter(|&v| is_full(&r, v)).collect();
                let x = pick(&mut rng, &fulls);
                let pairs: Vec<(usize, usize)> = (0..full.len())
                    .flat_map(|a| (a + 1..full.len()).map(move |b| (a, b)))
                    .filter(|&(a, b)| full[a] == full[b])
                    .collect();
                if pairs.is_empty() {
                    continue;
                }
                let (a, b) = pairs[rng.random_range(0..pairs.len())];
                let mut perm: Vec<usize> = (0..full.len()).collect();
                perm.swap(a, b);
                r.permute(x, &perm)
            }
            8 => {
                let x = pick(&mut rng, &pool);
                r.expand(x, &full)
            }
            _ => {
                let fulls: Vec<ValueId> =
                    pool.iter().copied().filter(|&v| is_full(&r, v)).collect();
                let (back, reduced) = reduced_back(&mut rng, &mut r, &fulls, &full);
                pool.extend(reduced);
                back
            }
        };
        pool.push(v);
    }
    let mut last = *pool.last().unwrap_or(&0);
    if !is_full(&r, last) {
        let f = pool.iter().copied().find(|&v| is_full(&r, v)).unwrap_or(0);
        last = r.binary(BinaryOp::Mul, last, f);
    }
    let mut outputs = Vec::new();
    let mut s = r.sum(last, rng.random_range(0..full.len()));
    if rng.random_bool(0.3) {
        s = r.sum(s, rng.random_range(0..full.len()));
    }
    outputs.push(s);
    for _ in 0..rng.random_range(0..=2) {
        outputs.push(pick(&mut rng, &pool[2..]));
    }
    (r, outputs)
}

fn check_cases(dtype: DType, cases: u64, rel: f64) {
    let mut fused_steps = 0;
    let mut fused_ops = 0;
    let (mut padded_reads, mut reductions, mut sums_read_back) = (0, 0, 0);
    for seed in 0..cases {
        let (r, outputs) = random_graph(seed, dtype);
        let trace = r.trace(&outputs);
        let steps = fuse(&trace).unwrap_or_else(|e| panic!("seed {seed}: fuse failed: {e}"));
        let got = r
            .run(&steps, &outputs)
            .unwrap_or_else(|e| panic!("seed {seed}: run failed: {e}"));
        for (t, &v) in got.iter().zip(&outputs) {
            let want = r.data[v].to_f64s().unwrap();
            if let Err(e) = close(&t.to_f64s().unwrap(), &want, rel) {
                panic!("seed {seed} ({dtype}): output value {v}: {e}");
            }
        }
        let f = fused(&steps);
        padded_reads += f
            .iter()
            .flat_map(|f| &f.operands)
            .filter(|o| o.bounds.is_some())
            .count();
        reductions += f.iter().filter(|f| f.reduction.is_some()).count();
        // Sums of a fused reduction that a later fused step reads.
        sums_read_back += f
            .iter()
            .filter(|f| f.reduction.is_some())
            .flat_map(|f| &f.stores)
            .filter(|s| {
                f.iter()
                    .any(|g| g.operands.iter().any(|o| o.value == s.value))
            })
            .count();
        fused_steps += f.len();
        fused_ops += f.iter().map(|f| f.program.len()).sum::<usize>();
    }
    assert!(
        fused_steps > cases as usize,
        "{fused_steps} fused steps in {cases} graphs"
    );
    assert!(
        padded_reads > cases as usize / 20,
        "{padded_reads} padded reads"
    );
    assert!(
        reductions > cases as usize / 2,
        "{reductions} fused sums in {cases} graphs"
    );
    assert!(
        sums_read_back > cases as usize / 4,
        "{sums_read_back} fused sums read by fused steps in {cases} graphs"
    );
    assert!(
        fused_ops > 2 * fused_steps,
        "{fused_ops} instructions in {fused_steps} steps"
    );
}

#[test]
fn random_graphs_fused_equal_op_by_op_f64() {
    check_cases(DType::F64, 1000, 1e-12);
}

#[test]
fn random_graphs_fused_equal_op_by_op_f32() {
    check_cases(DType::F32, 400, 1e-5);
}
