//! Forward values of every tensor op on the CPU and on `Device::Cuda`, against independent
//! references: hand-computed values and naive loops written here with NumPy / PyTorch semantics
//! (broadcasting, `torch.matmul`, `torch.linspace`). On CUDA every result also equals the CPU's
//! (the CPU backend is the specification) to 1e-12 in f64 and 1e-5 in f32, relative to the
//! largest magnitude of the result.

mod common;

use common::reference;

use curvature_tensor::{BinaryOp, TernaryOp, UnaryOp};
use curvature_tensor::{DType, Device, Result, Tensor, TensorError};

const CPU: Device = Device::Cpu;
const DTYPES: [DType; 2] = [DType::F64, DType::F32];

// ---------------------------------------------------------------------------------------------
// Inputs, references and comparisons

/// Deterministic values in [lo, hi) from a SplitMix64 stream (no rand dependency here).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn values(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * self.next_f64()).collect()
    }

    /// A CPU tensor in `dtype` with each element uniform in a random one of `intervals` (a
    /// point interval `(v, v)` gives `v`), and its values as stored.
    fn intervals(
        &mut self,
        dims: &[usize],
        intervals: &[(f64, f64)],
        dtype: DType,
    ) -> Result<(Tensor, Vec<f64>)> {
        let data: Vec<f64> = (0..dims.iter().product())
            .map(|_| {
                let pick = (self.next_f64() * intervals.len() as f64) as usize;
                let (lo, hi) = intervals[pick.min(intervals.len() - 1)];
                lo + (hi - lo) * self.next_f64()
            })
            .collect();
        let t = Tensor::from_f64s(&data, dims, dtype, CPU)?;
        let stored = t.to_f64s()?;
        Ok((t, stored))
    }

    /// A CPU f64 tensor uniform in [−1, 1), and its values.
    fn tensor(&mut self, dims: &[usize]) -> Result<(Tensor, Vec<f64>)> {
        self.uniform(dims, -1.0, 1.0, DType::F64)
    }

    /// A CPU tensor uniform in [lo, hi) in `dtype`, and its values as stored (rounded to the
    /// dtype), so references see exactly the op's inputs.
    fn uniform(
        &mut self,
        dims: &[usize],
        lo: f64,
        hi: f64,
        dtype: DType,
    ) -> Result<(Tensor, Vec<f64>)> {
        let data = self.values(dims.iter().product(), lo, hi);
        let t = Tensor::from_f64s(&data, dims, dtype, CPU)?;
        let stored = t.to_f64s()?;
        Ok((t, stored))
    }
}

fn t64(data: &[f64], dims: &[usize]) -> Result<Tensor> {
    Tensor::from_f64s(data, dims, DType::F64, CPU)
}

/// Row-major multi-index of flat index `i` in `dims`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

/// Flat row-major index of `idx` in `dims`.
fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Every element of a tensor of shape `dims`, as `element(index)` of its multi-index.
fn gather(dims: &[usize], element: impl Fn(&[usize]) -> f64) -> Vec<f64> {
    let n: usize = dims.iter().product();
    (0..n).map(|i| element(&unravel(i, dims))).collect()
}

/// NumPy's broadcast shape of `a` and `b`.
fn broadcast_dims(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let at = |dims: &[usize], d: usize| (d + dims.len()).checked_sub(rank).map_or(1, |i| dims[i]);
    (0..rank).map(|d| at(a, d).max(at(b, d))).collect()
}

/// The element of `data` (shape `dims`) that NumPy broadcasting reads for output index `out`.
fn broadcast_read(data: &[f64], dims: &[usize], out: &[usize]) -> f64 {
    let offset = out.len() - dims.len();
    let idx: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(d, &n)| if n == 1 { 0 } else { out[offset + d] })
        .collect();
    data[ravel(&idx, dims)]
}

/// How close a result must be to its reference.
#[derive(Debug, Clone, Copy)]
enum Bound<'a> {
    /// Bit for bit.
    Exact,
    /// |ours − reference| ≤ tol elementwise.
    Abs(f64),
    /// |ours − reference| ≤ tol·max(1, max|reference|) over the finite elements (the golden
    /// data's measure: summation order differs between the backends), NaN and ±inf in the same
    /// places.
    Scaled(f64),
    /// |ours − reference| ≤ bound[i] for element i.
    Each(&'a [f64]),
}

impl<'a> Bound<'a> {
    /// The CUDA backend's bound against any reference, the CPU's included.
    fn cuda(dtype: DType) -> Bound<'static> {
        match dtype {
            DType::F64 => Bound::Scaled(1e-12),
            DType::F32 => Bound::Scaled(1e-5),
            half => Bound::Scaled(half.epsilon()),
        }
    }

    /// This CPU bound for a result in `dtype` on `device`: on CUDA, per-element bounds hold as
    /// they are and every other bound is the CUDA backend's.
    fn on(self, device: Device, dtype: DType) -> Bound<'a> {
        match (device, self) {
            (Device::Cpu, bound) | (_, bound @ Bound::Each(_)) => bound,
            _ => Bound::cuda(dtype),
        }
    }
}

fn assert_within(name: &str, ours: &[f64], reference: &[f64], bound: Bound) {
    assert_eq!(ours.len(), reference.len(), "{name}: length");
    let scale = reference
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        let (ok, tol) = match bound {
            Bound::Exact => (a == b, 0.0),
            Bound::Abs(tol) => ((a - b).abs() <= tol, tol),
            Bound::Scaled(tol) if b.is_finite() => ((a - b).abs() <= tol * scale, tol * scale),
            Bound::Scaled(_) => ((a.is_nan() && b.is_nan()) || a == b, 0.0),
            Bound::Each(bounds) => ((a - b).abs() <= bounds[i], bounds[i]),
        };
        assert!(
            ok,
            "{name}: element {i} is {a}, expected {b} (tolerance {tol:e})"
        );
    }
}

/// `make(device)`, after asserting that it lives on `device`, that its values match `expected`
/// within `cpu` (on CUDA within `cpu.on(device)`), and on CUDA that it equals `make(Device::Cpu)`:
/// shape, dtype, and values within the CUDA bound.
fn made(
    name: &str,
    device: Device,
    make: impl Fn(Device) -> Result<Tensor>,
    expected: &[f64],
    cpu: Bound,
) -> Result<Tensor> {
    let out = make(device).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
    assert_eq!(out.device(), device, "{name}: result device");
    let values = out.to_f64s()?;
    if device != CPU {
        let on_cpu = make(CPU).unwrap_or_else(|e| panic!("{name} on the CPU: {e}"));
        assert_eq!(out.dims(), on_cpu.dims(), "{name}: shape vs CPU");
        assert_eq!(out.dtype(), on_cpu.dtype(), "{name}: dtype vs CPU");
        let name = format!("{name} ({}) vs CPU", out.dtype());
        assert_within(&name, &values, &on_cpu.to_f64s()?, Bound::cuda(out.dtype()));
    }
    let bound = cpu.on(device, out.dtype());
    assert_within(
        &format!("{name} ({})", out.dtype()),
        &values,
        expected,
        bound,
    );
    Ok(out)
}

/// `f` of `inputs` (CPU tensors) moved to `device`, checked as `made` does.
fn check(
    name: &str,
    device: Device,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    expected: &[f64],
    cpu: Bound,
) -> Result<Tensor> {
    let on = |device: Device| -> Result<Tensor> {
        let moved = inputs
            .iter()
            .map(|t| t.to_device(device))
            .collect::<Result<Vec<_>>>()?;
        f(&moved)
    };
    made(name, device, on, expected, cpu)
}

// ---------------------------------------------------------------------------------------------
// Elementwise ops

/// Where an op's inputs are drawn.
#[derive(Debug, Clone, Copy)]
enum Domain {
    /// Uniform in [−4, 4).
    Signed,
    /// Uniform in [0.1, 4): inside the domain of log, sqrt and powf.
    Positive,
}

impl Domain {
    /// Positive for ops defined (or smooth) only for positive inputs, by their own domain.
    fn of(op: UnaryOp) -> Domain {
        if op.domain().iter().all(|&(lo, _)| lo > 0.0) {
            Domain::Positive
        } else {
            Domain::Signed
        }
    }
}

/// A tensor op on one input.
type TensorFn = fn(&Tensor) -> Result<Tensor>;

/// Every unary op (`UnaryOp::ALL`), and the parameterised ones with other parameters.
fn unary_cases() -> Vec<UnaryOp> {
    let mut ops = UnaryOp::ALL.to_vec();
    ops.push(UnaryOp::Powf { exponent: -1.5 });
    ops.push(UnaryOp::Affine {
        mul: -1.5,
        add: 0.25,
    });
    ops.push(UnaryOp::LeakyRelu { slope: -0.2 });
    ops.push(UnaryOp::Elu { alpha: 0.5 });
    // Bounds the wrong way round: every value is `hi`, as PyTorch's min(max(x, lo), hi).
    ops.push(UnaryOp::Clamp { lo: 0.5, hi: -0.5 });
    ops.push(UnaryOp::Between { lo: 0.5, hi: -0.5 });
    ops
}

/// Every unary op in both dtypes equals its scalar reference elementwise, on a rank-3 tensor,
/// a scalar and an empty tensor.
fn unary_ops_values(device: Device) -> Result<()> {
    let mut rng = Rng(11);
    for dtype in DTYPES {
        let dims = [3, 5, 7];
        let signed = rng.uniform(&dims, -4.0, 4.0, dtype)?;
        let positive = rng.uniform(&dims, 0.1, 4.0, dtype)?;
        for op in unary_cases() {
            let (x, xv) = match Domain::of(op) {
                Domain::Signed => &signed,
                Domain::Positive => &positive,
            };
            let expected: Vec<f64> = xv.iter().map(|&v| reference::unary(op, v)).collect();
            let out = check(
                op.name(),
                device,
                std::slice::from_ref(x),
                |v| v[0].unary(op),
                &expected,
                Bound::cuda(dtype),
            )?;
            assert_eq!(out.dims(), &dims);
        }
        let (s, sv) = rng.uniform(&[], -1.0, 1.0, dtype)?;
        let out = check(
            "scalar exp",
            device,
            &[s],
            |v| v[0].exp(),
            &[sv[0].exp()],
            Bound::cuda(dtype),
        )?;
        assert_eq!(out.dims(), &[] as &[usize]);
        let (empty, _) = rng.uniform(&[0, 3], -1.0, 1.0, dtype)?;
        let out = check(
            "empty tanh",
            device,
            &[empty],
            |v| v[0].tanh(),
            &[],
            Bound::Exact,
        )?;
        assert_eq!(out.dims(), &[0, 3]);
    }
    Ok(())
}

/// The scalar forms and unary ops on hand-picked values: exact where f64 arithmetic is, the
/// sigmoid stable at large |x|.
fn scalar_forms_and_unary_values(device: Device) -> Result<()> {
    let x = t64(&[-2.0, -0.5, 0.0, 0.5, 3.0], &[5])?;
    let xs = x.to_vec::<f64>()?;
    let map = |f: fn(f64) -> f64| xs.iter().map(|&v| f(v)).collect::<Vec<_>>();
    let one = std::slice::from_ref(&x);
    let cases: [(&str, TensorFn, Vec<f64>, Bound); 10] = [
        (
            "affine",
            |x| x.affine(3.0, -1.0),
            map(|v| v * 3.0 - 1.0),
            Bound::Exact,
        ),
        (
            "add_scalar",
            |x| x.add_scalar(2.5),
            map(|v| v + 2.5),
            Bound::Exact,
        ),
        (
            "mul_scalar",
            |x| x.mul_scalar(-4.0),
            map(|v| v * -4.0),
            Bound::Exact,
        ),
        (
            "div_scalar",
            |x| x.div_scalar(4.0),
            map(|v| v / 4.0),
            Bound::Abs(1e-15),
        ),
        ("square", |x| x.square(), map(|v| v * v), Bound::Exact),
        ("abs", |x| x.abs(), map(f64::abs), Bound::Exact),
        ("neg", |x| x.neg(), map(|v| -v), Bound::Exact),
        (
            "sign",
            |x| x.sign(),
            vec![-1.0, -1.0, 0.0, 1.0, 1.0],
            Bound::Exact,
        ),
        ("tanh", |x| x.tanh(), map(f64::tanh), Bound::Exact),
        (
            "sigmoid",
            |x| x.sigmoid(),
            map(|v| 1.0 / (1.0 + (-v).exp())),
            Bound::Abs(1e-15),
        ),
    ];
    for (name, op, expected, bound) in cases {
        check(name, device, one, |v| op(&v[0]), &expected, bound)?;
    }
    // The sigmoid is evaluated stably at large |x|.
    let big = t64(&[-800.0, 800.0], &[2])?;
    check(
        "sigmoid at ±800",
        device,
        &[big],
        |v| v[0].sigmoid(),
        &[0.0, 1.0],
        Bound::Exact,
    )?;
    Ok(())
}

/// Every binary op broadcasts like NumPy (same shape, trailing, leading, both-sided and scalar
/// broadcasts) and equals its scalar reference, each operand drawn from the op's domain for it; on the CPU, f64 add, sub, mul and div are exact
/// to the same rounding (bit for bit).
fn binary_broadcast_values(device: Device) -> Result<()> {
    let mut rng = Rng(1);
    let pairs: [(&[usize], &[usize]); 10] = [
        (&[2, 1, 3], &[4, 1]),
        (&[3, 4], &[4]),
        (&[4], &[3, 4]),
        (&[], &[3]),
        (&[2, 3], &[]),
        (&[2, 3], &[2, 3]),
        (&[4, 5], &[4, 5]),
        (&[2, 1, 4], &[3, 1]),
        (&[3, 1], &[2, 1, 4]),
        (&[2, 3, 300], &[]),
    ];
    for dtype in DTYPES {
        for (a_dims, b_dims) in pairs {
            let out_dims = broadcast_dims(a_dims, b_dims);
            for &op in BinaryOp::ALL {
                let [a_domain, b_domain] = op.domains();
                let (a, av) = rng.intervals(a_dims, a_domain, dtype)?;
                let (b, bv) = rng.intervals(b_dims, b_domain, dtype)?;
                let expected = gather(&out_dims, |idx| {
                    reference::binary(
                        op,
                        broadcast_read(&av, a_dims, idx),
                        broadcast_read(&bv, b_dims, idx),
                    )
                });
                let arithmetic = matches!(
                    op,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
                );
                let bound = if dtype == DType::F64 && arithmetic {
                    Bound::Exact
                } else {
                    Bound::cuda(dtype)
                };
                let name = format!("{} {a_dims:?} with {b_dims:?}", op.name());
                let inputs = [a, b];
                let out = check(
                    &name,
                    device,
                    &inputs,
                    |v| v[0].binary(op, &v[1]),
                    &expected,
                    bound,
                )?;
                assert_eq!(out.dims(), out_dims.as_slice(), "{name}");
            }
        }
        // Equal values, so `eq` sees ones as well as zeros.
        let (x, xv) = rng.uniform(&[3, 4], -1.0, 1.0, dtype)?;
        let row = x.narrow(0, 1, 1)?;
        let expected = gather(&[3, 4], |idx| {
            if xv[idx[0] * 4 + idx[1]] == xv[4 + idx[1]] {
                1.0
            } else {
                0.0
            }
        });
        check(
            "eq with ties",
            device,
            &[x, row],
            |v| v[0].eq_mask(&v[1]),
            &expected,
            Bound::Exact,
        )?;
    }
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], CPU)?;
    let b = Tensor::from_vec(vec![10.0f32, 20.0], [2, 1], CPU)?;
    check(
        "f32 add",
        device,
        &[a, b],
        |v| v[0].add(&v[1]),
        &[11.0, 12.0, 13.0, 21.0, 22.0, 23.0],
        Bound::Exact,
    )?;
    Ok(())
}

/// Every ternary op broadcasts its three operands like NumPy and equals its scalar reference,
/// each operand drawn from the op's domain for it.
fn ternary_broadcast_values(device: Device) -> Result<()> {
    let mut rng = Rng(3);
    let triples: [(&[usize], &[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3], &[2, 3]),
        (&[2, 3], &[3], &[2, 1]),
        (&[], &[2, 3], &[3]),
        (&[4, 1, 5], &[3, 1], &[5]),
    ];
    for dtype in DTYPES {
        for &op in TernaryOp::ALL {
            for (a_dims, b_dims, c_dims) in triples {
                let [a_domain, b_domain, c_domain] = op.domains();
                let (a, av) = rng.intervals(a_dims, a_domain, dtype)?;
                let (b, bv) = rng.intervals(b_dims, b_domain, dtype)?;
                let (c, cv) = rng.intervals(c_dims, c_domain, dtype)?;
                let out_dims = broadcast_dims(&broadcast_dims(a_dims, b_dims), c_dims);
                let expected = gather(&out_dims, |idx| {
                    reference::ternary(
                        op,
                        broadcast_read(&av, a_dims, idx),
                        broadcast_read(&bv, b_dims, idx),
                        broadcast_read(&cv, c_dims, idx),
                    )
                });
                let name = format!("{} {a_dims:?} {b_dims:?} {c_dims:?}", op.name());
                let out = check(
                    &name,
                    device,
                    &[a, b, c],
                    |v| v[0].ternary(op, &v[1], &v[2]),
                    &expected,
                    Bound::cuda(dtype),
                )?;
                assert_eq!(out.dims(), out_dims.as_slice(), "{name}");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Matrix products

/// `torch.matmul` written out: 1-D operands promoted (row on the left, column on the right),
/// batch dimensions broadcast, promoted axes removed. Returns the values, the result dims and,
/// per element, Σ|a·b| (the scale of its rounding error).
fn naive_matmul(
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
) -> (Vec<f64>, Vec<usize>, Vec<f64>) {
    let a2: Vec<usize> = if a_dims.len() == 1 {
        vec![1, a_dims[0]]
    } else {
        a_dims.to_vec()
    };
    let b2: Vec<usize> = if b_dims.len() == 1 {
        vec![b_dims[0], 1]
    } else {
        b_dims.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let n = b2[b2.len() - 1];
    assert_eq!(k, b2[b2.len() - 2]);
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let rank = ab.len().max(bb.len());
    let pad = |dims: &[usize]| -> Vec<usize> {
        let mut p = vec![1; rank - dims.len()];
        p.extend_from_slice(dims);
        p
    };
    let (abp, bbp) = (pad(ab), pad(bb));
    let batch: Vec<usize> = abp.iter().zip(&bbp).map(|(&x, &y)| x.max(y)).collect();
    let batch_count: usize = batch.iter().product();
    let mut out = Vec::with_capacity(batch_count * m * n);
    let mut scale = Vec::with_capacity(batch_count * m * n);
    for z in 0..batch_count {
        let idx = unravel(z, &batch);
        let pick = |dims: &[usize]| -> Vec<usize> {
            idx.iter()
                .zip(dims)
                .map(|(&i, &d)| if d == 1 { 0 } else { i })
                .collect()
        };
        let za = ravel(&pick(&abp), &abp);
        let zb = ravel(&pick(&bbp), &bbp);
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut s_abs) = (0.0, 0.0);
                for p in 0..k {
                    let prod = a[za * m * k + i * k + p] * b[zb * k * n + p * n + j];
                    s += prod;
                    s_abs += prod.abs();
                }
                out.push(s);
                scale.push(s_abs);
            }
        }
    }
    let mut dims = batch;
    if a_dims.len() > 1 {
        dims.push(m);
    }
    if b_dims.len() > 1 {
        dims.push(n);
    }
    (out, dims, scale)
}

/// The per-element bound of a product in `dtype` with rounding scales Σ|a·b|.
fn product_bounds(dtype: DType, scale: &[f64]) -> Vec<f64> {
    match dtype {
        DType::F64 => scale.iter().map(|s| 1e-13 * s + 1e-300).collect(),
        DType::F32 => scale.iter().map(|s| 1e-5 * s).collect(),
        half => scale.iter().map(|s| half.epsilon() * s).collect(),
    }
}

/// `a_dims @ b_dims` in `dtype` on `device` equals the naive loop to the rounding bound.
fn check_matmul(
    rng: &mut Rng,
    device: Device,
    dtype: DType,
    a_dims: &[usize],
    b_dims: &[usize],
) -> Result<()> {
    let (a, av) = rng.uniform(a_dims, -1.0, 1.0, dtype)?;
    let (b, bv) = rng.uniform(b_dims, -1.0, 1.0, dtype)?;
    let (expected, dims, scale) = naive_matmul(&av, a_dims, &bv, b_dims);
    let bounds = product_bounds(dtype, &scale);
    let name = format!("matmul {a_dims:?} @ {b_dims:?}");
    let out = check(
        &name,
        device,
        &[a, b],
        |v| v[0].matmul(&v[1]),
        &expected,
        Bound::Each(&bounds),
    )?;
    assert_eq!(out.dims(), dims.as_slice(), "{name}");
    Ok(())
}

/// Dimensions that cover every tile edge: 1, a partial tile, just past 32, just past 128
/// (the f32 tile) and past 64 (the f64 tile), and many tiles.
const DIMS: [usize; 4] = [1, 7, 33, 129];

/// `matmul` equals `torch.matmul` written as loops, in both dtypes: every tile edge, vectors
/// promoted on either side, equal and broadcast batches, dimensions of 1000, and an empty
/// contraction (zeros); a matrix times the identity is itself.
fn matmul_matches_naive_loop(device: Device) -> Result<()> {
    let mut rng = Rng(2);
    for dtype in DTYPES {
        for &m in &DIMS {
            for &k in &DIMS {
                for &n in &DIMS {
                    check_matmul(&mut rng, device, dtype, &[m, k], &[k, n])?;
                }
            }
        }
        for &k in &DIMS {
            check_matmul(&mut rng, device, dtype, &[k], &[k])?;
            check_matmul(&mut rng, device, dtype, &[k], &[k, 7])?;
            check_matmul(&mut rng, device, dtype, &[33, k], &[k])?;
            check_matmul(&mut rng, device, dtype, &[k], &[3, k, 7])?;
            check_matmul(&mut rng, device, dtype, &[2, 7, k], &[k])?;
        }
        for (m, k, n) in [(1, 7, 33), (7, 33, 1), (33, 129, 7), (129, 1, 7)] {
            // Equal batches, broadcast batches, a batch times one shared matrix and vice versa.
            check_matmul(&mut rng, device, dtype, &[2, m, k], &[2, k, n])?;
            check_matmul(&mut rng, device, dtype, &[2, 1, m, k], &[3, k, n])?;
            check_matmul(&mut rng, device, dtype, &[3, m, k], &[k, n])?;
            check_matmul(&mut rng, device, dtype, &[2, 3, m, k], &[k, n])?;
            check_matmul(&mut rng, device, dtype, &[m, k], &[3, k, n])?;
            check_matmul(&mut rng, device, dtype, &[1, m, k], &[2, 3, k, n])?;
            check_matmul(&mut rng, device, dtype, &[2, 3, m, k], &[1, 1, k, n])?;
        }
        for (m, k, n) in [(1000, 7, 33), (7, 33, 1000), (33, 1000, 7)] {
            check_matmul(&mut rng, device, dtype, &[m, k], &[k, n])?;
        }
        check_matmul(&mut rng, device, dtype, &[2, 33, 129], &[129, 7])?;
        check_matmul(&mut rng, device, dtype, &[129], &[129])?;
        // Empty contraction: torch gives zeros.
        check_matmul(&mut rng, device, dtype, &[2, 0], &[0, 3])?;
        check_matmul(&mut rng, device, dtype, &[3, 0], &[0, 4])?;
        let (m, mv) = rng.uniform(&[2, 2], -1.0, 1.0, dtype)?;
        check(
            "m @ I",
            device,
            &[m],
            |v| v[0].matmul(&Tensor::eye(2, 2, dtype, v[0].device())?),
            &mv,
            Bound::Exact,
        )?;
    }
    Ok(())
}

/// The last two axes of `data` (shape `dims`) swapped, and the swapped dims.
fn swap_last_two(data: &[f64], dims: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let r = dims.len();
    let mut out_dims = dims.to_vec();
    out_dims.swap(r - 2, r - 1);
    let out = gather(&out_dims, |idx| {
        let mut src = idx.to_vec();
        src.swap(r - 2, r - 1);
        data[ravel(&src, dims)]
    });
    (out, out_dims)
}

/// `matmul_transposed` equals the naive product of the transposed operands for each pair of
/// flags, with and without a batch.
fn matmul_transposed_values(device: Device) -> Result<()> {
    let mut rng = Rng(10);
    for dtype in DTYPES {
        // op(A) is 33×7, op(B) is 7×129, for each pair of transpose flags.
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for batch in [&[][..], &[3]] {
                let a_dims = [batch, if ta { &[7, 33] } else { &[33, 7] }].concat();
                let b_dims: &[usize] = if tb { &[129, 7] } else { &[7, 129] };
                let (a, av) = rng.uniform(&a_dims, -1.0, 1.0, dtype)?;
                let (b, bv) = rng.uniform(b_dims, -1.0, 1.0, dtype)?;
                let (av, op_a) = if ta {
                    swap_last_two(&av, &a_dims)
                } else {
                    (av, a_dims.clone())
                };
                let (bv, op_b) = if tb {
                    swap_last_two(&bv, b_dims)
                } else {
                    (bv, b_dims.to_vec())
                };
                let (expected, dims, scale) = naive_matmul(&av, &op_a, &bv, &op_b);
                let bounds = product_bounds(dtype, &scale);
                let name = format!("matmul_transposed {batch:?} {ta} {tb}");
                let out = check(
                    &name,
                    device,
                    &[a, b],
                    |v| v[0].matmul_transposed(&v[1], ta, tb),
                    &expected,
                    Bound::Each(&bounds),
                )?;
                assert_eq!(out.dims(), dims.as_slice(), "{name}");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reductions

/// Σ over `axes` of `data` (shape `dims`) by loops, as NumPy's `sum(axis=axes)`.
fn naive_sum(data: &[f64], dims: &[usize], axes: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let kept: Vec<usize> = (0..dims.len())
        .map(|d| if axes.contains(&d) { 1 } else { dims[d] })
        .collect();
    let mut out = vec![0.0; kept.iter().product()];
    for (i, v) in data.iter().enumerate() {
        let mut idx = unravel(i, dims);
        for &a in axes {
            idx[a] = 0;
        }
        out[ravel(&idx, &kept)] += v;
    }
    (out, kept)
}

/// The rows of `data` (shape `dims`) along `axis`, in the order of the kept shape.
fn rows_along(data: &[f64], dims: &[usize], axis: usize) -> Vec<Vec<f64>> {
    let mut kept = dims.to_vec();
    kept[axis] = 1;
    let mut rows = vec![Vec::new(); kept.iter().product()];
    for (i, &v) in data.iter().enumerate() {
        let mut idx = unravel(i, dims);
        idx[axis] = 0;
        rows[ravel(&idx, &kept)].push(v);
    }
    rows
}

/// `dims` without `axis` (keepdim false) or with it set to 1 (keepdim true).
fn reduced_dims(dims: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut out = dims.to_vec();
    if keepdim {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    out
}

/// `sum` and `mean` over every axis set (negative and unordered axes included), with and
/// without keepdim, and the whole-tensor forms, against loops; and on hand values.
fn sum_and_mean_over_axes_values(device: Device) -> Result<()> {
    let mut rng = Rng(4);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    let one = std::slice::from_ref(&x);
    let axis_sets: [&[isize]; 8] = [
        &[0],
        &[1],
        &[2],
        &[-1],
        &[0, 2],
        &[2, 0],
        &[0, 1, 2],
        &[1, -1],
    ];
    for axes in axis_sets {
        let resolved: Vec<usize> = axes.iter().map(|&a| a.rem_euclid(3) as usize).collect();
        let (expected, kept) = naive_sum(&xv, &dims, &resolved);
        let count: usize = resolved.iter().map(|&a| dims[a]).product();
        let dropped: Vec<usize> = (0..3)
            .filter(|d| !resolved.contains(d))
            .map(|d| dims[d])
            .collect();
        let mean: Vec<f64> = expected.iter().map(|v| v / count as f64).collect();
        for keepdim in [true, false] {
            let want_dims = if keepdim { &kept } else { &dropped };
            let name = format!("sum {axes:?} keepdim {keepdim}");
            let s = check(
                &name,
                device,
                one,
                |v| v[0].sum(axes, keepdim),
                &expected,
                Bound::Abs(1e-14),
            )?;
            assert_eq!(s.dims(), want_dims.as_slice(), "{name}");
            let name = format!("mean {axes:?} keepdim {keepdim}");
            let m = check(
                &name,
                device,
                one,
                |v| v[0].mean(axes, keepdim),
                &mean,
                Bound::Abs(1e-14),
            )?;
            assert_eq!(m.dims(), want_dims.as_slice(), "{name}");
        }
    }
    let total: f64 = xv.iter().sum();
    let sum_all = check(
        "sum_all",
        device,
        one,
        |v| v[0].sum_all(),
        &[total],
        Bound::Abs(1e-14),
    )?;
    assert_eq!(sum_all.dims(), &[] as &[usize]);
    let mean_all = [total / 24.0];
    check(
        "mean_all",
        device,
        one,
        |v| v[0].mean_all(),
        &mean_all,
        Bound::Abs(1e-15),
    )?;
    let hand = [t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?];
    let cases: [(&str, TensorFn, &[f64]); 3] = [
        ("sum [0]", |x| x.sum(&[0], false), &[5.0, 7.0, 9.0]),
        ("sum [1] keepdim", |x| x.sum(&[1], true), &[6.0, 15.0]),
        ("mean [0]", |x| x.mean(&[0], false), &[2.5, 3.5, 4.5]),
    ];
    for (name, op, expected) in cases {
        check(name, device, &hand, |v| op(&v[0]), expected, Bound::Exact)?;
    }
    Ok(())
}

/// `sum`, `mean` and `max` over each axis and the whole tensor, and `sum_to`, in both dtypes,
/// against loops: long reduced axes (many partial sums), wide inner axes and an empty axis.
fn reductions_over_each_axis_values(device: Device) -> Result<()> {
    let mut rng = Rng(12);
    for dtype in DTYPES {
        let bound = Bound::cuda(dtype);
        let dims = [4, 5, 6];
        let (x, xv) = rng.uniform(&dims, -1.0, 1.0, dtype)?;
        let one = std::slice::from_ref(&x);
        for axis in 0..3 {
            let (sum, _) = naive_sum(&xv, &dims, &[axis]);
            let n = dims[axis] as f64;
            let mean: Vec<f64> = sum.iter().map(|v| v / n).collect();
            let max: Vec<f64> = rows_along(&xv, &dims, axis)
                .iter()
                .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                .collect();
            for keepdim in [true, false] {
                let want = reduced_dims(&dims, axis, keepdim);
                let a = axis as isize;
                let s = check(
                    &format!("sum {axis} {keepdim}"),
                    device,
                    one,
                    |v| v[0].sum(&[a], keepdim),
                    &sum,
                    bound,
                )?;
                let m = check(
                    &format!("mean {axis} {keepdim}"),
                    device,
                    one,
                    |v| v[0].mean(&[a], keepdim),
                    &mean,
                    bound,
                )?;
                let x = check(
                    &format!("max {axis} {keepdim}"),
                    device,
                    one,
                    |v| v[0].max(a, keepdim),
                    &max,
                    bound,
                )?;
                for out in [s, m, x] {
                    assert_eq!(out.dims(), want.as_slice(), "axis {axis} keepdim {keepdim}");
                }
            }
        }
        let (sum_02, _) = naive_sum(&xv, &dims, &[0, 2]);
        check(
            "sum [0, 2]",
            device,
            one,
            |v| v[0].sum(&[0, 2], false),
            &sum_02,
            bound,
        )?;
        let total: f64 = xv.iter().sum();
        check("sum_all", device, one, |v| v[0].sum_all(), &[total], bound)?;
        check(
            "mean_all",
            device,
            one,
            |v| v[0].mean_all(),
            &[total / 120.0],
            bound,
        )?;
        let max_all = xv.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        check(
            "max_all",
            device,
            one,
            |v| v[0].max_all(),
            &[max_all],
            bound,
        )?;
        let (sum_to, _) = naive_sum(&xv, &dims, &[0, 2]);
        check(
            "sum_to [5, 1]",
            device,
            one,
            |v| v[0].sum_to([5, 1]),
            &sum_to,
            bound,
        )?;
        let (sum_to, _) = naive_sum(&xv, &dims, &[0, 1]);
        check(
            "sum_to [1, 1, 6]",
            device,
            one,
            |v| v[0].sum_to([1, 1, 6]),
            &sum_to,
            bound,
        )?;
        // Long reduced axes (1024-thread blocks, many partial sums) and wide inner axes.
        let (tall, tv) = rng.uniform(&[1000, 3], -1.0, 1.0, dtype)?;
        let tall = std::slice::from_ref(&tall);
        let (sum, _) = naive_sum(&tv, &[1000, 3], &[0]);
        check(
            "sum tall axis 0",
            device,
            tall,
            |v| v[0].sum(&[0], false),
            &sum,
            bound,
        )?;
        let max: Vec<f64> = rows_along(&tv, &[1000, 3], 0)
            .iter()
            .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        check(
            "max tall axis 0",
            device,
            tall,
            |v| v[0].max(0, false),
            &max,
            bound,
        )?;
        let (wide, wv) = rng.uniform(&[3, 1000], -1.0, 1.0, dtype)?;
        let wide = std::slice::from_ref(&wide);
        let (sum, _) = naive_sum(&wv, &[3, 1000], &[1]);
        check(
            "sum wide axis 1",
            device,
            wide,
            |v| v[0].sum(&[1], false),
            &sum,
            bound,
        )?;
        let (sum, _) = naive_sum(&wv, &[3, 1000], &[0]);
        check(
            "sum wide axis 0",
            device,
            wide,
            |v| v[0].sum(&[0], true),
            &sum,
            bound,
        )?;
        let (empty, _) = rng.uniform(&[3, 0, 2], -1.0, 1.0, dtype)?;
        let out = check(
            "sum of empty axis",
            device,
            &[empty],
            |v| v[0].sum(&[1], false),
            &[0.0; 6],
            bound,
        )?;
        assert_eq!(out.dims(), &[3, 2]);
    }
    Ok(())
}

/// `sum_to` undoes every kind of broadcast: it sums the broadcast axes, against loops.
fn sum_to_undoes_broadcast_values(device: Device) -> Result<()> {
    let mut rng = Rng(5);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 1], &[0, 2]),
        (&[4], &[0, 1]),
        (&[1, 3, 4], &[0]),
        (&[2, 1, 1], &[1, 2]),
        (&[], &[0, 1, 2]),
        (&[2, 3, 4], &[]),
    ];
    for (target, axes) in cases {
        let (expected, _) = naive_sum(&xv, &dims, axes);
        let name = format!("sum_to {target:?}");
        let s = check(
            &name,
            device,
            std::slice::from_ref(&x),
            |v| v[0].sum_to(target),
            &expected,
            Bound::Abs(1e-14),
        )?;
        assert_eq!(s.dims(), target, "{name}");
    }
    Ok(())
}

/// `max` over each axis (negative axes included, with and without keepdim) and `max_all`
/// equal the loops exactly.
fn max_values(device: Device) -> Result<()> {
    let mut rng = Rng(6);
    let dims = [3, 4, 5];
    let data: Vec<f64> = rng.values(60, -9.0, -1.0);
    let x = [t64(&data, &dims)?];
    for axis in 0..3 {
        let expected: Vec<f64> = rows_along(&data, &dims, axis)
            .iter()
            .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let a = axis as isize;
        let m = check(
            "max keepdim",
            device,
            &x,
            |v| v[0].max(a, true),
            &expected,
            Bound::Exact,
        )?;
        assert_eq!(m.dims(), reduced_dims(&dims, axis, true).as_slice());
        let dropped = check(
            "max",
            device,
            &x,
            |v| v[0].max(a - 3, false),
            &expected,
            Bound::Exact,
        )?;
        assert_eq!(dropped.rank(), 2);
    }
    let all = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    check(
        "max_all",
        device,
        &x,
        |v| v[0].max_all(),
        &[all],
        Bound::Exact,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// logsumexp and log_softmax

/// Stable log Σ exp of a row: m + ln Σ exp(v − m); −∞ for a row of −∞ only.
fn reference_lse(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// logsumexp of every row of `data` along `axis`, and log_softmax of every element.
fn reference_lse_and_log_softmax(
    data: &[f64],
    dims: &[usize],
    axis: usize,
) -> (Vec<f64>, Vec<f64>) {
    let lse: Vec<f64> = rows_along(data, dims, axis)
        .iter()
        .map(|r| reference_lse(r))
        .collect();
    let mut kept = dims.to_vec();
    kept[axis] = 1;
    let log_softmax = gather(dims, |idx| {
        let mut row = idx.to_vec();
        row[axis] = 0;
        data[ravel(idx, dims)] - lse[ravel(&row, &kept)]
    });
    (lse, log_softmax)
}

/// logsumexp and log_softmax stay finite and exact to 1e-12 where exp overflows (±1000).
fn logsumexp_and_log_softmax_are_stable_with_large_values(device: Device) -> Result<()> {
    let ln2 = std::f64::consts::LN_2;
    let x = [t64(
        &[1000.0, 1000.0, 1000.0, -1000.0, -1000.0, -1000.0],
        &[3, 2],
    )?];
    let lse = [1000.0 + ln2, 1000.0, -1000.0 + ln2];
    check(
        "logsumexp",
        device,
        &x,
        |v| v[0].logsumexp(-1, false),
        &lse,
        Bound::Abs(1e-12),
    )?;
    let ls = [-ln2, -ln2, 0.0, -2000.0, -ln2, -ln2];
    check(
        "log_softmax",
        device,
        &x,
        |v| v[0].log_softmax(-1),
        &ls,
        Bound::Abs(1e-12),
    )?;
    let y = [t64(&[1000.0, 1001.0, 1002.0], &[3])?];
    let tail = (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
    let ls = [-2.0 - tail, -1.0 - tail, -tail];
    check(
        "log_softmax",
        device,
        &y,
        |v| v[0].log_softmax(0),
        &ls,
        Bound::Abs(1e-12),
    )?;
    let lse = check(
        "logsumexp",
        device,
        &y,
        |v| v[0].logsumexp(0, true),
        &[1002.0 + tail],
        Bound::Abs(1e-12),
    )?;
    assert_eq!(lse.dims(), &[1]);
    let f32s = [Tensor::from_vec(vec![1000.0f32, 1000.0], [2], CPU)?];
    let want = [(1000.0 + ln2 as f32) as f64];
    check(
        "f32 logsumexp",
        device,
        &f32s,
        |v| v[0].logsumexp(0, false),
        &want,
        Bound::Abs(1e-3),
    )?;
    Ok(())
}

/// logsumexp (with and without keepdim) and log_softmax over every axis equal the loops.
fn logsumexp_and_log_softmax_over_every_axis_match_loops(device: Device) -> Result<()> {
    let mut rng = Rng(7);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    let one = std::slice::from_ref(&x);
    for axis in 0..3 {
        let (lse, ls) = reference_lse_and_log_softmax(&xv, &dims, axis);
        let a = axis as isize;
        for keepdim in [true, false] {
            let name = format!("logsumexp axis {axis} keepdim {keepdim}");
            let out = check(
                &name,
                device,
                one,
                |v| v[0].logsumexp(a, keepdim),
                &lse,
                Bound::Abs(1e-14),
            )?;
            assert_eq!(
                out.dims(),
                reduced_dims(&dims, axis, keepdim).as_slice(),
                "{name}"
            );
        }
        let out = check(
            "log_softmax",
            device,
            one,
            |v| v[0].log_softmax(a - 3),
            &ls,
            Bound::Abs(1e-14),
        )?;
        assert_eq!(out.dims(), &dims);
    }
    Ok(())
}

/// In both dtypes, logsumexp and log_softmax over every axis, rows longer than one block with
/// values to ±500, and rows holding −∞, equal the loops.
fn logsumexp_and_log_softmax_long_rows_and_infinities(device: Device) -> Result<()> {
    let mut rng = Rng(13);
    for dtype in DTYPES {
        let bound = Bound::cuda(dtype);
        let dims = [3, 4, 5];
        let (x, xv) = rng.uniform(&dims, -3.0, 3.0, dtype)?;
        let one = std::slice::from_ref(&x);
        for a in [0isize, 1, 2, -1] {
            let (lse, ls) = reference_lse_and_log_softmax(&xv, &dims, a.rem_euclid(3) as usize);
            check(
                &format!("log_softmax {a}"),
                device,
                one,
                |v| v[0].log_softmax(a),
                &ls,
                bound,
            )?;
            for keepdim in [true, false] {
                let name = format!("logsumexp {a} {keepdim}");
                check(
                    &name,
                    device,
                    one,
                    |v| v[0].logsumexp(a, keepdim),
                    &lse,
                    bound,
                )?;
            }
        }
        // Rows longer than one block, and large values that overflow without the shift.
        let (long, _) = rng.uniform(&[2, 700], -50.0, 50.0, dtype)?;
        let long = long.mul_scalar(10.0)?;
        let lv = long.to_f64s()?;
        let (lse, ls) = reference_lse_and_log_softmax(&lv, &[2, 700], 1);
        let long = std::slice::from_ref(&long);
        check(
            "log_softmax long rows",
            device,
            long,
            |v| v[0].log_softmax(-1),
            &ls,
            bound,
        )?;
        check(
            "logsumexp long rows",
            device,
            long,
            |v| v[0].logsumexp(-1, false),
            &lse,
            bound,
        )?;
        let inf = [Tensor::from_f64s(
            &[f64::NEG_INFINITY, 1.0, f64::NEG_INFINITY, f64::NEG_INFINITY],
            [2, 2],
            dtype,
            CPU,
        )?];
        let want = [1.0, f64::NEG_INFINITY];
        check(
            "logsumexp with -inf",
            device,
            &inf,
            |v| v[0].logsumexp(-1, false),
            &want,
            bound,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Layout ops

/// `data` (shape `dims`) with its axes permuted: output axis k is input axis perm[k].
fn permuted(data: &[f64], dims: &[usize], perm: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let out = gather(&out_dims, |o| {
        let mut src = vec![0; dims.len()];
        for (k, &p) in perm.iter().enumerate() {
            src[p] = o[k];
        }
        data[ravel(&src, dims)]
    });
    (out, out_dims)
}

/// `permute`, `transpose` and `t` move every element where the loops say.
fn transpose_and_permute_values(device: Device) -> Result<()> {
    let mut rng = Rng(8);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    let one = std::slice::from_ref(&x);
    let perms: [[usize; 3]; 4] = [[2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]];
    for perm in perms {
        let (expected, out_dims) = permuted(&xv, &dims, &perm);
        let name = format!("permute {perm:?}");
        let p = check(
            &name,
            device,
            one,
            |v| v[0].permute(&perm),
            &expected,
            Bound::Exact,
        )?;
        assert_eq!(p.dims(), out_dims.as_slice(), "{name}");
    }
    let (expected, _) = permuted(&xv, &dims, &[2, 1, 0]);
    check(
        "transpose 0 -1",
        device,
        one,
        |v| v[0].transpose(0, -1),
        &expected,
        Bound::Exact,
    )?;
    let (expected, _) = permuted(&xv, &dims, &[0, 2, 1]);
    check("t", device, one, |v| v[0].t(), &expected, Bound::Exact)?;
    let m = [t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?];
    let mt = check(
        "t [2, 3]",
        device,
        &m,
        |v| v[0].t(),
        &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
        Bound::Exact,
    )?;
    assert_eq!(mt.dims(), &[3, 2]);
    Ok(())
}

/// `expand` and `broadcast_to` read every element where NumPy broadcasting does.
fn expand_values(device: Device) -> Result<()> {
    let mut rng = Rng(9);
    let cases: [(&[usize], &[usize]); 4] = [
        (&[3, 1], &[2, 3, 4]),
        (&[4], &[3, 4]),
        (&[], &[2, 2]),
        (&[1, 3, 1], &[2, 3, 5]),
    ];
    for (from, to) in cases {
        let (x, xv) = rng.tensor(from)?;
        let one = std::slice::from_ref(&x);
        let expected = gather(to, |idx| broadcast_read(&xv, from, idx));
        let name = format!("expand {from:?} to {to:?}");
        let e = check(
            &name,
            device,
            one,
            |v| v[0].expand(to),
            &expected,
            Bound::Exact,
        )?;
        assert_eq!(e.dims(), to);
        check(
            &name,
            device,
            one,
            |v| v[0].broadcast_to(to),
            &expected,
            Bound::Exact,
        )?;
    }
    Ok(())
}

/// `cat` and `stack` along every axis, on hand values.
fn cat_and_stack_values(device: Device) -> Result<()> {
    let a = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let b = t64(&[7.0, 8.0], &[2, 1])?;
    let c = t64(&[9.0, 10.0, 11.0], &[1, 3])?;
    let d = a.mul_scalar(10.0)?;
    let ab = [a.clone(), b];
    let along1 = check(
        "cat 1",
        device,
        &ab,
        |v| Tensor::cat(&[&v[0], &v[1]], 1),
        &[1.0, 2.0, 3.0, 7.0, 4.0, 5.0, 6.0, 8.0],
        Bound::Exact,
    )?;
    assert_eq!(along1.dims(), &[2, 4]);
    check(
        "cat -1",
        device,
        &ab,
        |v| Tensor::cat(&[&v[1], &v[0]], -1),
        &[7.0, 1.0, 2.0, 3.0, 8.0, 4.0, 5.0, 6.0],
        Bound::Exact,
    )?;
    let along0 = check(
        "cat 0",
        device,
        &[a.clone(), c],
        |v| Tensor::cat(&[&v[0], &v[1], &v[0]], 0),
        &[
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 10.0, 11.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
        ],
        Bound::Exact,
    )?;
    assert_eq!(along0.dims(), &[5, 3]);
    let ad = [a, d];
    let stacks: [(usize, [usize; 3], [f64; 12]); 3] = [
        (
            0,
            [2, 2, 3],
            [
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0,
            ],
        ),
        (
            1,
            [2, 2, 3],
            [
                1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 4.0, 5.0, 6.0, 40.0, 50.0, 60.0,
            ],
        ),
        (
            2,
            [2, 3, 2],
            [
                1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0,
            ],
        ),
    ];
    for (axis, dims, expected) in stacks {
        let name = format!("stack {axis}");
        let s = check(
            &name,
            device,
            &ad,
            |v| Tensor::stack(&[&v[0], &v[1]], axis),
            &expected,
            Bound::Exact,
        )?;
        assert_eq!(s.dims(), &dims, "{name}");
    }
    Ok(())
}

/// `narrow` and `pad_zeros` on hand values.
fn narrow_and_pad_values(device: Device) -> Result<()> {
    let a = [t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?];
    check(
        "narrow 1 1 2",
        device,
        &a,
        |v| v[0].narrow(1, 1, 2),
        &[2.0, 3.0, 5.0, 6.0],
        Bound::Exact,
    )?;
    check(
        "narrow 0 1 1",
        device,
        &a,
        |v| v[0].narrow(0, 1, 1),
        &[4.0, 5.0, 6.0],
        Bound::Exact,
    )?;
    let p = check(
        "pad_zeros -1 1 2",
        device,
        &a,
        |v| v[0].pad_zeros(-1, 1, 2),
        &[0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0, 0.0],
        Bound::Exact,
    )?;
    assert_eq!(p.dims(), &[2, 6]);
    Ok(())
}

/// `index_select` of rows (repeated), of columns (a negative axis), and of nothing.
fn index_select_values(device: Device) -> Result<()> {
    let x = [t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[3, 4])?];
    let rows = check(
        "index_select rows",
        device,
        &x,
        |v| v[0].index_select(0, &[2, 0, 2]),
        &[
            8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0,
        ],
        Bound::Exact,
    )?;
    assert_eq!(rows.dims(), &[3, 4]);
    let cols = check(
        "index_select columns",
        device,
        &x,
        |v| v[0].index_select(-1, &[3, 1]),
        &[3.0, 1.0, 7.0, 5.0, 11.0, 9.0],
        Bound::Exact,
    )?;
    assert_eq!(cols.dims(), &[3, 2]);
    let none = check(
        "index_select none",
        device,
        &x,
        |v| v[0].index_select(1, &[]),
        &[],
        Bound::Exact,
    )?;
    assert_eq!(none.dims(), &[3, 0]);
    Ok(())
}

/// `eye` (square and not, both dtypes), `diagonal` and `trace` of wide and tall matrices.
fn eye_diagonal_and_trace_values(device: Device) -> Result<()> {
    let e = made(
        "eye 3 4",
        device,
        |d| Tensor::eye(3, 4, DType::F64, d),
        &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        Bound::Exact,
    )?;
    assert_eq!(e.dims(), &[3, 4]);
    let e = made(
        "eye 2 2 f32",
        device,
        |d| Tensor::eye(2, 2, DType::F32, d),
        &[1.0, 0.0, 0.0, 1.0],
        Bound::Exact,
    )?;
    assert_eq!(e.dtype(), DType::F32);
    let x = [t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[3, 4])?];
    check(
        "diagonal",
        device,
        &x,
        |v| v[0].diagonal(),
        &[0.0, 5.0, 10.0],
        Bound::Exact,
    )?;
    let tr = check("trace", device, &x, |v| v[0].trace(), &[15.0], Bound::Exact)?;
    assert_eq!(tr.dims(), &[] as &[usize]);
    let tall = [t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[4, 3])?];
    check(
        "trace tall",
        device,
        &tall,
        |v| v[0].trace(),
        &[0.0 + 4.0 + 8.0],
        Bound::Exact,
    )?;
    Ok(())
}

/// In both dtypes, every layout op on random rank-3 tensors moves each element where the loops
/// say: permute, transpose, t, reshape, narrow, pad_zeros, broadcast_to, expand, index_select
/// along each axis, a batched diagonal, trace, cat (with an empty part) and stack.
fn layout_ops_values(device: Device) -> Result<()> {
    let mut rng = Rng(14);
    for dtype in DTYPES {
        let dims = [3, 4, 5];
        let (x, xv) = rng.uniform(&dims, -1.0, 1.0, dtype)?;
        let one = std::slice::from_ref(&x);
        let exact = Bound::Exact;
        let (want, _) = permuted(&xv, &dims, &[2, 0, 1]);
        check(
            "permute [2, 0, 1]",
            device,
            one,
            |v| v[0].permute(&[2, 0, 1]),
            &want,
            exact,
        )?;
        let (want, _) = permuted(&xv, &dims, &[2, 1, 0]);
        check(
            "transpose 0 2",
            device,
            one,
            |v| v[0].transpose(0, 2),
            &want,
            exact,
        )?;
        let (want, _) = permuted(&xv, &dims, &[0, 2, 1]);
        check("t", device, one, |v| v[0].t(), &want, exact)?;
        check(
            "reshape",
            device,
            one,
            |v| v[0].reshape([12, 5]),
            &xv,
            exact,
        )?;
        let narrow = |axis: usize, start: usize, len: usize| {
            let mut out = dims.to_vec();
            out[axis] = len;
            gather(&out, |idx| {
                let mut src = idx.to_vec();
                src[axis] += start;
                xv[ravel(&src, &dims)]
            })
        };
        check(
            "narrow 1 1 2",
            device,
            one,
            |v| v[0].narrow(1, 1, 2),
            &narrow(1, 1, 2),
            exact,
        )?;
        check(
            "narrow 2 3 2",
            device,
            one,
            |v| v[0].narrow(2, 3, 2),
            &narrow(2, 3, 2),
            exact,
        )?;
        let pad = |axis: usize, before: usize, after: usize| {
            let mut out = dims.to_vec();
            out[axis] += before + after;
            gather(&out, |idx| {
                let mut src = idx.to_vec();
                match idx[axis].checked_sub(before) {
                    Some(i) if i < dims[axis] => {
                        src[axis] = i;
                        xv[ravel(&src, &dims)]
                    }
                    _ => 0.0,
                }
            })
        };
        check(
            "pad_zeros 1 2 1",
            device,
            one,
            |v| v[0].pad_zeros(1, 2, 1),
            &pad(1, 2, 1),
            exact,
        )?;
        check(
            "pad_zeros -1 0 3",
            device,
            one,
            |v| v[0].pad_zeros(-1, 0, 3),
            &pad(2, 0, 3),
            exact,
        )?;
        let (col, cv) = rng.uniform(&[4, 1], -1.0, 1.0, dtype)?;
        let want = gather(&[2, 4, 3], |idx| broadcast_read(&cv, &[4, 1], idx));
        check(
            "broadcast_to",
            device,
            &[col],
            |v| v[0].broadcast_to([2, 4, 3]),
            &want,
            exact,
        )?;
        let (s, sv) = rng.uniform(&[], -1.0, 1.0, dtype)?;
        check(
            "expand scalar",
            device,
            &[s],
            |v| v[0].expand([3, 2]),
            &[sv[0]; 6],
            exact,
        )?;
        let picks = [2, 0, 2, 1];
        for axis in 0..3 {
            let mut out = dims.to_vec();
            out[axis] = picks.len();
            let want = gather(&out, |idx| {
                let mut src = idx.to_vec();
                src[axis] = picks[idx[axis]];
                xv[ravel(&src, &dims)]
            });
            let name = format!("index_select {axis}");
            check(
                &name,
                device,
                one,
                |v| v[0].index_select(axis as isize, &picks),
                &want,
                exact,
            )?;
        }
        check(
            "index_select none",
            device,
            one,
            |v| v[0].index_select(1, &[]),
            &[],
            exact,
        )?;
        let want = gather(&[3, 4], |idx| xv[ravel(&[idx[0], idx[1], idx[1]], &dims)]);
        check(
            "diagonal [3, 4, 5]",
            device,
            one,
            |v| v[0].diagonal(),
            &want,
            exact,
        )?;
        let (m, mv) = rng.uniform(&[6, 4], -1.0, 1.0, dtype)?;
        let trace: f64 = (0..4).map(|i| mv[i * 4 + i]).sum();
        check(
            "trace",
            device,
            &[m],
            |v| v[0].trace(),
            &[trace],
            Bound::cuda(dtype),
        )?;
        let widths = [1, 4, 2];
        let mut parts = Vec::new();
        let mut values = Vec::new();
        for w in widths {
            let (t, tv) = rng.uniform(&[3, w, 5], -1.0, 1.0, dtype)?;
            parts.push(t);
            values.push(tv);
        }
        let want = gather(&[3, 7, 5], |idx| {
            let (mut part, mut j) = (0, idx[1]);
            while j >= widths[part] {
                j -= widths[part];
                part += 1;
            }
            values[part][ravel(&[idx[0], j, idx[2]], &[3, widths[part], 5])]
        });
        check(
            "cat 1",
            device,
            &parts,
            |v| Tensor::cat(&[&v[0], &v[1], &v[2]], 1),
            &want,
            exact,
        )?;
        let mut rows = Vec::new();
        let mut want = Vec::new();
        for n in [1, 3, 0] {
            let (t, tv) = rng.uniform(&[n, 4], -1.0, 1.0, dtype)?;
            rows.push(t);
            want.extend(tv);
        }
        let name = "cat 0 with an empty part";
        check(
            name,
            device,
            &rows,
            |v| Tensor::cat(&[&v[0], &v[1], &v[2]], 0),
            &want,
            exact,
        )?;
        let (p, pv) = rng.uniform(&[2, 3], -1.0, 1.0, dtype)?;
        let (q, qv) = rng.uniform(&[2, 3], -1.0, 1.0, dtype)?;
        let same = [p, q];
        for axis in 0..3 {
            let mut out = vec![2, 3];
            out.insert(axis, 2);
            let want = gather(&out, |idx| {
                let mut src = idx.to_vec();
                let which = src.remove(axis);
                [&pv, &qv][which][ravel(&src, &[2, 3])]
            });
            let name = format!("stack {axis}");
            check(
                &name,
                device,
                &same,
                |v| Tensor::stack(&[&v[0], &v[1]], axis),
                &want,
                exact,
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Constructors and conversions

/// `torch.linspace` on the CPU (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp): the first
/// half counts up from `start`, the second half counts down from `end`, so the last value is
/// exactly `end`.
fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    match steps {
        0 => return Vec::new(),
        1 => return vec![start],
        _ => {}
    }
    let step = (end - start) / (steps - 1) as f64;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f64
            } else {
                end - step * (steps - i - 1) as f64
            }
        })
        .collect()
}

/// `linspace` equals `torch.linspace` bit for bit in f64, and to f32 rounding in f32.
fn linspace_matches_torch(device: Device) -> Result<()> {
    for (start, end, steps) in [
        (-10.0, 10.0, 1000),
        (0.0, 1.0, 10),
        (-1.3, 2.9, 11),
        (0.1, 0.7, 7),
        (5.0, -3.0, 4),
        (2.0, 2.0, 3),
        (3.5, 9.0, 1),
        (0.0, 1.0, 0),
    ] {
        let name = format!("linspace({start}, {end}, {steps})");
        let expected = torch_linspace(start, end, steps);
        let make = |dtype| move |d| Tensor::linspace(start, end, steps, dtype, d);
        let ours = made(&name, device, make(DType::F64), &expected, Bound::Exact)?;
        assert_eq!(ours.dims(), &[steps]);
        // f32 agrees with the f64 values to f32 rounding (torch computes in f32 there).
        let f32_bounds: Vec<f64> = expected.iter().map(|d| 2e-7 * d.abs().max(1.0)).collect();
        made(
            &name,
            device,
            make(DType::F32),
            &expected,
            Bound::Each(&f32_bounds),
        )?;
    }
    let hand = [0.0, 0.25, 0.5, 0.75, 1.0];
    made(
        "linspace(0, 1, 5)",
        device,
        |d| Tensor::linspace(0.0, 1.0, 5, DType::F64, d),
        &hand,
        Bound::Exact,
    )?;
    Ok(())
}

/// `one_hot` rows, and no rows for no labels.
fn one_hot_values(device: Device) -> Result<()> {
    let h = made(
        "one_hot",
        device,
        |d| Tensor::one_hot(&[2, 0, 3], 4, DType::F64, d),
        &[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        Bound::Exact,
    )?;
    assert_eq!(h.dims(), &[3, 4]);
    let empty = made(
        "one_hot of none",
        device,
        |d| Tensor::one_hot(&[], 3, DType::F32, d),
        &[],
        Bound::Exact,
    )?;
    assert_eq!(empty.dims(), &[0, 3]);
    Ok(())
}

/// f64 → f32 narrows like `as f32` (subnormals and large values included), f32 → f64 widens
/// exactly, the same dtype is a no-op, and `from_f64s` narrows like `as f32`.
fn f32_f64_conversion_values(device: Device) -> Result<()> {
    let d = [t64(&[0.1, -2.5, 1e-40, 3.0e38, 1.0 / 3.0], &[5])?];
    let narrowed: Vec<f64> = [0.1f32, -2.5, 1e-40, 3.0e38, 1.0 / 3.0]
        .iter()
        .map(|&v| v as f64)
        .collect();
    let s = check(
        "f64 -> f32",
        device,
        &d,
        |v| v[0].to_dtype(DType::F32),
        &narrowed,
        Bound::Exact,
    )?;
    assert_eq!((s.dtype(), s.dims()), (DType::F32, &[5][..]));
    assert_eq!(
        s.to_vec::<f32>()?,
        vec![0.1f32, -2.5, 1e-40, 3.0e38, 1.0 / 3.0]
    );
    // Widening is exact: f32 → f64 gives the f32 value.
    let back = s.to_dtype(DType::F64)?;
    assert_eq!((back.dtype(), back.device()), (DType::F64, device));
    assert_eq!(back.to_vec::<f64>()?, narrowed);
    assert_eq!(s.to_f64s()?, back.to_vec::<f64>()?);
    let round_trip = |v: &[Tensor]| v[0].to_dtype(DType::F32)?.to_dtype(DType::F64);
    check(
        "f64 -> f32 -> f64",
        device,
        &d,
        round_trip,
        &narrowed,
        Bound::Exact,
    )?;
    // Same dtype is a no-op; from_f64s narrows like `as f32`.
    let same = d[0].to_vec::<f64>()?;
    check(
        "f64 -> f64",
        device,
        &d,
        |v| v[0].to_dtype(DType::F64),
        &same,
        Bound::Exact,
    )?;
    let from = |d| Tensor::from_f64s(&[0.1, 0.2], [2], DType::F32, d);
    let narrowed = made(
        "from_f64s in f32",
        device,
        from,
        &[0.1f32 as f64, 0.2f32 as f64],
        Bound::Exact,
    )?;
    assert_eq!(narrowed.to_vec::<f32>()?, vec![0.1f32, 0.2f32]);
    let mut rng = Rng(15);
    let (x, xv) = rng.uniform(&[5, 7], -1e3, 1e3, DType::F64)?;
    let narrowed: Vec<f64> = xv.iter().map(|&v| v as f32 as f64).collect();
    check(
        "f64 -> f32 of [5, 7]",
        device,
        &[x],
        |v| v[0].to_dtype(DType::F32),
        &narrowed,
        Bound::Exact,
    )?;
    Ok(())
}

/// The bytes of `values` in `dtype`, native-endian: what a tensor's storage holds.
fn bytes_of(values: &[f64], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F64 => values.iter().flat_map(|v| v.to_ne_bytes()).collect(),
        DType::F32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_ne_bytes())
            .collect(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_ne_bytes())
            .collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f64(v).to_ne_bytes())
            .collect(),
    }
}

/// Uploads and downloads are exact, and the constructors (`from_f64s`, `eye`, `full` with −0.0
/// and NaN, `ones_like`, `zeros` of no elements) build exactly the expected bytes on the device.
fn constructors_and_transfers_are_exact(device: Device) -> Result<()> {
    for dtype in DTYPES {
        let data: Vec<f64> = (0..10).map(|i| i as f64 * 0.1 - 0.3).collect();
        let on_device = Tensor::from_f64s(&data, [2, 5], dtype, device)?;
        assert_eq!(on_device.device(), device);
        assert_eq!(on_device.to_bytes()?, bytes_of(&data, dtype));
        let stored = Tensor::from_f64s(&data, [2, 5], dtype, CPU)?.to_f64s()?;
        assert_eq!(on_device.to_f64s()?, stored);
        let eye = Tensor::eye(3, 4, dtype, device)?;
        let want: Vec<f64> = (0..12)
            .map(|i| if i % 4 == i / 4 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(eye.to_bytes()?, bytes_of(&want, dtype));
        // Constants are built on the device: the same bits as on the host, −0.0 and NaN too.
        for value in [0.0, -0.0, 1.0, 2.5, 1e300, f64::NAN] {
            let full = Tensor::full(value, [3, 1000], dtype, device)?;
            assert_eq!(full.device(), device);
            assert!(
                full.to_bytes()? == bytes_of(&[value], dtype).repeat(3000),
                "full({value}) in {dtype}"
            );
            if device != CPU {
                let on_cpu = Tensor::full(value, [3, 1000], dtype, CPU)?;
                assert!(
                    full.to_bytes()? == on_cpu.to_bytes()?,
                    "full({value}) in {dtype} vs CPU"
                );
            }
        }
        let ones = Tensor::ones_like(&on_device)?;
        assert_eq!((ones.device(), ones.to_f64s()?), (device, vec![1.0; 10]));
        let empty = Tensor::zeros([0, 3], dtype, device)?;
        assert_eq!(empty.to_f64s()?, Vec::<f64>::new());
        let back = on_device.to_device(CPU)?;
        assert_eq!(back.device(), CPU);
        assert_eq!(back.to_f64s()?, stored);
    }
    device.synchronize()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An op on two dtypes is an error, not a panic.
fn dtype_mismatch_is_an_error(device: Device) -> Result<()> {
    let f64s = Tensor::ones([2, 2], DType::F64, device)?;
    let f32s = Tensor::ones([2, 2], DType::F32, device)?;
    assert!(matches!(
        f64s.add(&f32s),
        Err(TensorError::DTypeMismatch { .. })
    ));
    Ok(())
}

/// Ops mixing a CPU and a CUDA tensor are device mismatch errors naming both devices and the op.
#[test]
fn ops_mixing_cpu_and_cuda_are_device_mismatch_errors() {
    let device = common::cuda();
    let cpu = Tensor::ones([2, 2], DType::F64, CPU).unwrap();
    let cuda = Tensor::ones([2, 2], DType::F64, device).unwrap();
    let mixed: [(&str, Result<Tensor>); 4] = [
        ("add", cpu.add(&cuda)),
        ("matmul", cuda.matmul(&cpu)),
        ("cat", Tensor::cat(&[&cpu, &cuda], 0)),
        (
            "tanh_backward_grad_y",
            cuda.ternary(TernaryOp::TanhBackwardGradY, &cuda, &cpu),
        ),
    ];
    for (op, result) in mixed {
        match result {
            Err(e @ TensorError::DeviceMismatch { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("cpu") && message.contains("cuda:0") && message.contains(op),
                    "{op}: {message}"
                );
            }
            other => panic!("{op}: expected a device mismatch, got {other:?}"),
        }
    }
}

device_tests! {
    unary_ops_values,
    scalar_forms_and_unary_values,
    binary_broadcast_values,
    ternary_broadcast_values,
    matmul_matches_naive_loop,
    matmul_transposed_values,
    sum_and_mean_over_axes_values,
    reductions_over_each_axis_values,
    sum_to_undoes_broadcast_values,
    max_values,
    logsumexp_and_log_softmax_are_stable_with_large_values,
    logsumexp_and_log_softmax_over_every_axis_match_loops,
    logsumexp_and_log_softmax_long_rows_and_infinities,
    transpose_and_permute_values,
    expand_values,
    cat_and_stack_values,
    narrow_and_pad_values,
    index_select_values,
    eye_diagonal_and_trace_values,
    layout_ops_values,
    linspace_matches_torch,
    one_hot_values,
    f32_f64_conversion_values,
    constructors_and_transfers_are_exact,
    dtype_mismatch_is_an_error,
}
