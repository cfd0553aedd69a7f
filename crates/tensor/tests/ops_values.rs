//! Forward values of the tensor ops on the CPU against independent references: hand-computed
//! values and naive loops written here with NumPy / PyTorch semantics (broadcasting,
//! `torch.matmul`, `torch.linspace`).

use curvature_tensor::{DType, Device, Result, Tensor};

const CPU: Device = Device::Cpu;

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

    fn tensor(&mut self, dims: &[usize]) -> Result<(Tensor, Vec<f64>)> {
        let data = self.values(dims.iter().product(), -1.0, 1.0);
        Ok((Tensor::from_f64s(&data, dims, DType::F64, CPU)?, data))
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

fn assert_close(name: &str, ours: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(ours.len(), expected.len(), "{name}: length");
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "{name}: element {i} is {a}, expected {b} (tolerance {tol})"
        );
    }
}

/// A binary tensor op (e.g. `Tensor::add`), its name and its scalar reference.
type BinaryCase = (
    &'static str,
    fn(&Tensor, &Tensor) -> Result<Tensor>,
    fn(f64, f64) -> f64,
);

#[test]
fn binary_broadcast_values_cpu() -> Result<()> {
    let mut rng = Rng(1);
    let cases: [(&[usize], &[usize], &[usize]); 6] = [
        (&[2, 1, 3], &[4, 1], &[2, 4, 3]),
        (&[3, 4], &[4], &[3, 4]),
        (&[4], &[3, 4], &[3, 4]),
        (&[], &[3], &[3]),
        (&[2, 3], &[], &[2, 3]),
        (&[2, 3], &[2, 3], &[2, 3]),
    ];
    for (a_dims, b_dims, out_dims) in cases {
        let (a, av) = rng.tensor(a_dims)?;
        let (b, bv) = rng.tensor(b_dims)?;
        let ops: [BinaryCase; 4] = [
            ("add", Tensor::add, |x, y| x + y),
            ("sub", Tensor::sub, |x, y| x - y),
            ("mul", Tensor::mul, |x, y| x * y),
            ("div", Tensor::div, |x, y| x / y),
        ];
        for (name, op, reference) in ops {
            let out = op(&a, &b)?;
            assert_eq!(out.dims(), out_dims, "{name} {a_dims:?} with {b_dims:?}");
            let expected: Vec<f64> = (0..out.elem_count())
                .map(|i| {
                    let idx = unravel(i, out_dims);
                    reference(
                        broadcast_read(&av, a_dims, &idx),
                        broadcast_read(&bv, b_dims, &idx),
                    )
                })
                .collect();
            // Elementwise f64 arithmetic is exact to the same rounding: compare bit for bit.
            assert_eq!(
                out.to_vec::<f64>()?,
                expected,
                "{name} {a_dims:?} with {b_dims:?}"
            );
        }
    }
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], CPU)?;
    let b = Tensor::from_vec(vec![10.0f32, 20.0], [2, 1], CPU)?;
    assert_eq!(
        a.add(&b)?.to_vec::<f32>()?,
        vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]
    );
    Ok(())
}

#[test]
fn scalar_forms_and_unary_values_cpu() -> Result<()> {
    let x = t64(&[-2.0, -0.5, 0.0, 0.5, 3.0], &[5])?;
    let xs = x.to_vec::<f64>()?;
    let map = |f: fn(f64) -> f64| xs.iter().map(|&v| f(v)).collect::<Vec<_>>();
    assert_eq!(
        x.affine(3.0, -1.0)?.to_vec::<f64>()?,
        map(|v| v * 3.0 - 1.0)
    );
    assert_eq!(x.add_scalar(2.5)?.to_vec::<f64>()?, map(|v| v + 2.5));
    assert_eq!(x.mul_scalar(-4.0)?.to_vec::<f64>()?, map(|v| v * -4.0));
    assert_close(
        "div_scalar",
        &x.div_scalar(4.0)?.to_vec()?,
        &map(|v| v / 4.0),
        1e-15,
    );
    assert_eq!(x.square()?.to_vec::<f64>()?, map(|v| v * v));
    assert_eq!(x.abs()?.to_vec::<f64>()?, map(f64::abs));
    assert_eq!(x.neg()?.to_vec::<f64>()?, map(|v| -v));
    assert_eq!(x.sign()?.to_vec::<f64>()?, vec![-1.0, -1.0, 0.0, 1.0, 1.0]);
    assert_eq!(x.tanh()?.to_vec::<f64>()?, map(f64::tanh));
    assert_close(
        "sigmoid",
        &x.sigmoid()?.to_vec()?,
        &map(|v| 1.0 / (1.0 + (-v).exp())),
        1e-15,
    );
    // The sigmoid is evaluated stably at large |x|.
    let big = t64(&[-800.0, 800.0], &[2])?.sigmoid()?.to_vec::<f64>()?;
    assert_eq!(big, vec![0.0, 1.0]);
    Ok(())
}

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

fn check_matmul(rng: &mut Rng, a_dims: &[usize], b_dims: &[usize]) -> Result<()> {
    let (a, av) = rng.tensor(a_dims)?;
    let (b, bv) = rng.tensor(b_dims)?;
    let out = a.matmul(&b)?;
    let (expected, dims, scale) = naive_matmul(&av, a_dims, &bv, b_dims);
    assert_eq!(
        out.dims(),
        dims.as_slice(),
        "matmul {a_dims:?} @ {b_dims:?}"
    );
    let ours = out.to_vec::<f64>()?;
    for (i, ((o, e), s)) in ours.iter().zip(&expected).zip(&scale).enumerate() {
        assert!(
            (o - e).abs() <= 1e-13 * s + 1e-300,
            "matmul {a_dims:?} @ {b_dims:?}: element {i} is {o}, expected {e}"
        );
    }
    Ok(())
}

#[test]
fn matmul_matches_naive_loop_cpu() -> Result<()> {
    let mut rng = Rng(2);
    let sizes = [1, 7, 33, 129];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                check_matmul(&mut rng, &[m, k], &[k, n])?;
            }
        }
    }
    for &k in &sizes {
        check_matmul(&mut rng, &[k], &[k])?;
        check_matmul(&mut rng, &[k], &[k, 7])?;
        check_matmul(&mut rng, &[33, k], &[k])?;
        check_matmul(&mut rng, &[k], &[3, k, 7])?;
        check_matmul(&mut rng, &[2, 7, k], &[k])?;
    }
    for (m, k, n) in [(1, 7, 33), (7, 33, 1), (33, 129, 7), (129, 1, 7)] {
        // Equal batches, broadcast batches, a batch times one shared matrix and vice versa.
        check_matmul(&mut rng, &[2, m, k], &[2, k, n])?;
        check_matmul(&mut rng, &[2, 1, m, k], &[3, k, n])?;
        check_matmul(&mut rng, &[3, m, k], &[k, n])?;
        check_matmul(&mut rng, &[2, 3, m, k], &[k, n])?;
        check_matmul(&mut rng, &[m, k], &[3, k, n])?;
        check_matmul(&mut rng, &[1, m, k], &[2, 3, k, n])?;
        check_matmul(&mut rng, &[2, 3, m, k], &[1, 1, k, n])?;
    }
    // Empty contraction: torch gives zeros.
    check_matmul(&mut rng, &[2, 0], &[0, 3])?;
    Ok(())
}

#[test]
fn matmul_f32_matches_f64_cpu() -> Result<()> {
    let mut rng = Rng(3);
    let (a, av) = rng.tensor(&[2, 33, 129])?;
    let (b, bv) = rng.tensor(&[129, 7])?;
    let ours = a
        .to_dtype(DType::F32)?
        .matmul(&b.to_dtype(DType::F32)?)?
        .to_vec::<f32>()?;
    let (expected, _, scale) = naive_matmul(&av, &[2, 33, 129], &bv, &[129, 7]);
    for ((o, e), s) in ours.iter().zip(&expected).zip(&scale) {
        assert!((*o as f64 - e).abs() <= 1e-5 * s, "{o} vs {e}");
    }
    let (m, _) = rng.tensor(&[2, 2])?;
    assert_eq!(
        m.matmul(&Tensor::eye(2, 2, DType::F64, CPU)?)?
            .to_vec::<f64>()?,
        m.to_vec::<f64>()?
    );
    Ok(())
}

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

#[test]
fn sum_and_mean_over_axes_values_cpu() -> Result<()> {
    let mut rng = Rng(4);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
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
        for keepdim in [true, false] {
            let want_dims = if keepdim {
                kept.clone()
            } else {
                dropped.clone()
            };
            let s = x.sum(axes, keepdim)?;
            assert_eq!(
                s.dims(),
                want_dims.as_slice(),
                "sum {axes:?} keepdim {keepdim}"
            );
            assert_close("sum", &s.to_vec()?, &expected, 1e-14);
            let m = x.mean(axes, keepdim)?;
            assert_eq!(
                m.dims(),
                want_dims.as_slice(),
                "mean {axes:?} keepdim {keepdim}"
            );
            let mean: Vec<f64> = expected.iter().map(|v| v / count as f64).collect();
            assert_close("mean", &m.to_vec()?, &mean, 1e-14);
        }
    }
    let total: f64 = xv.iter().sum();
    let sum_all = x.sum_all()?;
    assert_eq!(sum_all.dims(), &[] as &[usize]);
    assert!((sum_all.to_scalar()? - total).abs() < 1e-14);
    assert!((x.mean_all()?.to_scalar()? - total / 24.0).abs() < 1e-15);
    let hand = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    assert_eq!(hand.sum(&[0], false)?.to_vec::<f64>()?, vec![5.0, 7.0, 9.0]);
    assert_eq!(hand.sum(&[1], true)?.to_vec::<f64>()?, vec![6.0, 15.0]);
    assert_eq!(
        hand.mean(&[0], false)?.to_vec::<f64>()?,
        vec![2.5, 3.5, 4.5]
    );
    Ok(())
}

#[test]
fn sum_to_undoes_broadcast_values_cpu() -> Result<()> {
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
        let s = x.sum_to(target)?;
        assert_eq!(s.dims(), target);
        assert_close("sum_to", &s.to_vec()?, &expected, 1e-14);
    }
    Ok(())
}

#[test]
fn max_values_cpu() -> Result<()> {
    let mut rng = Rng(6);
    let dims = [3, 4, 5];
    let data: Vec<f64> = rng.values(60, -9.0, -1.0);
    let x = t64(&data, &dims)?;
    for axis in 0..3 {
        let mut kept = dims.to_vec();
        kept[axis] = 1;
        let mut expected = vec![f64::NEG_INFINITY; kept.iter().product()];
        for (i, &v) in data.iter().enumerate() {
            let mut idx = unravel(i, &dims);
            idx[axis] = 0;
            let slot = &mut expected[ravel(&idx, &kept)];
            *slot = slot.max(v);
        }
        let m = x.max(axis as isize, true)?;
        assert_eq!(m.dims(), kept.as_slice());
        assert_eq!(m.to_vec::<f64>()?, expected);
        let dropped = x.max(axis as isize - 3, false)?;
        assert_eq!(dropped.rank(), 2);
        assert_eq!(dropped.to_vec::<f64>()?, expected);
    }
    let all = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(x.max_all()?.to_scalar()?, all);
    Ok(())
}

/// Stable log Σ exp of a row: m + ln Σ exp(v − m).
fn reference_lse(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[test]
fn logsumexp_and_log_softmax_are_stable_with_large_values_cpu() -> Result<()> {
    let ln2 = std::f64::consts::LN_2;
    let x = t64(
        &[1000.0, 1000.0, 1000.0, -1000.0, -1000.0, -1000.0],
        &[3, 2],
    )?;
    let lse = x.logsumexp(-1, false)?.to_vec::<f64>()?;
    assert_close(
        "logsumexp",
        &lse,
        &[1000.0 + ln2, 1000.0, -1000.0 + ln2],
        1e-12,
    );
    let ls = x.log_softmax(-1)?.to_vec::<f64>()?;
    assert_close(
        "log_softmax",
        &ls,
        &[-ln2, -ln2, 0.0, -2000.0, -ln2, -ln2],
        1e-12,
    );
    let y = t64(&[1000.0, 1001.0, 1002.0], &[3])?;
    let tail = (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
    assert_close(
        "log_softmax",
        &y.log_softmax(0)?.to_vec()?,
        &[-2.0 - tail, -1.0 - tail, -tail],
        1e-12,
    );
    assert_close(
        "logsumexp",
        &y.logsumexp(0, true)?.to_vec()?,
        &[1002.0 + tail],
        1e-12,
    );
    assert_eq!(y.logsumexp(0, true)?.dims(), &[1]);
    let f32_lse = Tensor::from_vec(vec![1000.0f32, 1000.0], [2], CPU)?
        .logsumexp(0, false)?
        .to_vec::<f32>()?;
    assert!(
        (f32_lse[0] - (1000.0 + ln2 as f32)).abs() < 1e-3,
        "{f32_lse:?}"
    );
    Ok(())
}

#[test]
fn logsumexp_and_log_softmax_over_every_axis_match_loops_cpu() -> Result<()> {
    let mut rng = Rng(7);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    for axis in 0..3 {
        let mut kept = dims.to_vec();
        kept[axis] = 1;
        let dropped: Vec<usize> = (0..3).filter(|&d| d != axis).map(|d| dims[d]).collect();
        // Gather each reduced row by loops.
        let mut rows = vec![Vec::new(); kept.iter().product()];
        for (i, &v) in xv.iter().enumerate() {
            let mut idx = unravel(i, &dims);
            idx[axis] = 0;
            rows[ravel(&idx, &kept)].push(v);
        }
        let expected: Vec<f64> = rows.iter().map(|r| reference_lse(r)).collect();
        for (keepdim, want) in [(true, &kept), (false, &dropped)] {
            let lse = x.logsumexp(axis as isize, keepdim)?;
            assert_eq!(
                lse.dims(),
                want.as_slice(),
                "logsumexp axis {axis} keepdim {keepdim}"
            );
            assert_close("logsumexp", &lse.to_vec()?, &expected, 1e-14);
        }
        let ls = x.log_softmax(axis as isize - 3)?;
        assert_eq!(ls.dims(), &dims);
        let want: Vec<f64> = xv
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut idx = unravel(i, &dims);
                idx[axis] = 0;
                v - expected[ravel(&idx, &kept)]
            })
            .collect();
        assert_close("log_softmax", &ls.to_vec()?, &want, 1e-14);
    }
    Ok(())
}

#[test]
fn transpose_and_permute_values_cpu() -> Result<()> {
    let mut rng = Rng(8);
    let dims = [2, 3, 4];
    let (x, xv) = rng.tensor(&dims)?;
    let perms: [[usize; 3]; 4] = [[2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]];
    for perm in perms {
        let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
        let expected: Vec<f64> = (0..24)
            .map(|i| {
                let o = unravel(i, &out_dims);
                let mut src = [0; 3];
                for (k, &p) in perm.iter().enumerate() {
                    src[p] = o[k];
                }
                xv[ravel(&src, &dims)]
            })
            .collect();
        let p = x.permute(&perm)?;
        assert_eq!(p.dims(), out_dims.as_slice());
        assert_eq!(p.to_vec::<f64>()?, expected, "permute {perm:?}");
    }
    assert_eq!(
        x.transpose(0, -1)?.to_vec::<f64>()?,
        x.permute(&[2, 1, 0])?.to_vec::<f64>()?
    );
    assert_eq!(
        x.t()?.to_vec::<f64>()?,
        x.permute(&[0, 2, 1])?.to_vec::<f64>()?
    );
    let m = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let mt = m.t()?;
    assert_eq!(mt.dims(), &[3, 2]);
    assert_eq!(mt.to_vec::<f64>()?, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    Ok(())
}

#[test]
fn expand_values_cpu() -> Result<()> {
    let mut rng = Rng(9);
    let cases: [(&[usize], &[usize]); 4] = [
        (&[3, 1], &[2, 3, 4]),
        (&[4], &[3, 4]),
        (&[], &[2, 2]),
        (&[1, 3, 1], &[2, 3, 5]),
    ];
    for (from, to) in cases {
        let (x, xv) = rng.tensor(from)?;
        let e = x.expand(to)?;
        assert_eq!(e.dims(), to);
        let expected: Vec<f64> = (0..e.elem_count())
            .map(|i| broadcast_read(&xv, from, &unravel(i, to)))
            .collect();
        assert_eq!(e.to_vec::<f64>()?, expected, "expand {from:?} to {to:?}");
        assert_eq!(x.broadcast_to(to)?.to_vec::<f64>()?, expected);
    }
    Ok(())
}

#[test]
fn cat_and_stack_values_cpu() -> Result<()> {
    let a = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let b = t64(&[7.0, 8.0], &[2, 1])?;
    let c = t64(&[9.0, 10.0, 11.0], &[1, 3])?;
    let along1 = Tensor::cat(&[&a, &b], 1)?;
    assert_eq!(along1.dims(), &[2, 4]);
    assert_eq!(
        along1.to_vec::<f64>()?,
        vec![1.0, 2.0, 3.0, 7.0, 4.0, 5.0, 6.0, 8.0]
    );
    assert_eq!(
        Tensor::cat(&[&b, &a], -1)?.to_vec::<f64>()?,
        vec![7.0, 1.0, 2.0, 3.0, 8.0, 4.0, 5.0, 6.0]
    );
    let along0 = Tensor::cat(&[&a, &c, &a], 0)?;
    assert_eq!(along0.dims(), &[5, 3]);
    assert_eq!(
        along0.to_vec::<f64>()?,
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 10.0, 11.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    let d = a.mul_scalar(10.0)?;
    let s0 = Tensor::stack(&[&a, &d], 0)?;
    assert_eq!(s0.dims(), &[2, 2, 3]);
    assert_eq!(
        s0.to_vec::<f64>()?,
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    );
    let s1 = Tensor::stack(&[&a, &d], 1)?;
    assert_eq!(s1.dims(), &[2, 2, 3]);
    assert_eq!(
        s1.to_vec::<f64>()?,
        vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 4.0, 5.0, 6.0, 40.0, 50.0, 60.0]
    );
    let s2 = Tensor::stack(&[&a, &d], 2)?;
    assert_eq!(s2.dims(), &[2, 3, 2]);
    assert_eq!(
        s2.to_vec::<f64>()?,
        vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0]
    );
    Ok(())
}

#[test]
fn narrow_and_pad_values_cpu() -> Result<()> {
    let a = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    assert_eq!(
        a.narrow(1, 1, 2)?.to_vec::<f64>()?,
        vec![2.0, 3.0, 5.0, 6.0]
    );
    assert_eq!(a.narrow(0, 1, 1)?.to_vec::<f64>()?, vec![4.0, 5.0, 6.0]);
    let p = a.pad_zeros(-1, 1, 2)?;
    assert_eq!(p.dims(), &[2, 6]);
    assert_eq!(
        p.to_vec::<f64>()?,
        vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0, 0.0]
    );
    Ok(())
}

#[test]
fn index_select_values_cpu() -> Result<()> {
    let x = t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[3, 4])?;
    let rows = x.index_select(0, &[2, 0, 2])?;
    assert_eq!(rows.dims(), &[3, 4]);
    assert_eq!(
        rows.to_vec::<f64>()?,
        vec![8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]
    );
    let cols = x.index_select(-1, &[3, 1])?;
    assert_eq!(cols.dims(), &[3, 2]);
    assert_eq!(cols.to_vec::<f64>()?, vec![3.0, 1.0, 7.0, 5.0, 11.0, 9.0]);
    let none = x.index_select(1, &[])?;
    assert_eq!(none.dims(), &[3, 0]);
    assert!(none.to_vec::<f64>()?.is_empty());
    Ok(())
}

#[test]
fn eye_diagonal_and_trace_values_cpu() -> Result<()> {
    let e = Tensor::eye(3, 4, DType::F64, CPU)?;
    assert_eq!(e.dims(), &[3, 4]);
    assert_eq!(
        e.to_vec::<f64>()?,
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(
        Tensor::eye(2, 2, DType::F32, CPU)?.to_vec::<f32>()?,
        vec![1.0, 0.0, 0.0, 1.0]
    );
    let x = t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[3, 4])?;
    assert_eq!(x.diagonal()?.to_vec::<f64>()?, vec![0.0, 5.0, 10.0]);
    let tr = x.trace()?;
    assert_eq!(tr.dims(), &[] as &[usize]);
    assert_eq!(tr.to_scalar()?, 15.0);
    let tall = t64(&(0..12).map(f64::from).collect::<Vec<_>>(), &[4, 3])?;
    assert_eq!(tall.trace()?.to_scalar()?, 0.0 + 4.0 + 8.0);
    Ok(())
}

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

#[test]
fn linspace_matches_torch_cpu() -> Result<()> {
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
        let ours = Tensor::linspace(start, end, steps, DType::F64, CPU)?;
        assert_eq!(ours.dims(), &[steps]);
        let expected = torch_linspace(start, end, steps);
        let mismatch = ours
            .to_vec::<f64>()?
            .into_iter()
            .zip(&expected)
            .enumerate()
            .find(|(_, (o, e))| o != *e);
        assert!(
            mismatch.is_none(),
            "linspace({start}, {end}, {steps}): (index, (ours, torch)) {mismatch:?}"
        );
        // f32 agrees with the f64 values to f32 rounding (torch computes in f32 there).
        let single = Tensor::linspace(start, end, steps, DType::F32, CPU)?.to_vec::<f32>()?;
        for (s, d) in single.iter().zip(torch_linspace(start, end, steps)) {
            assert!(
                (*s as f64 - d).abs() <= 2e-7 * d.abs().max(1.0),
                "{s} vs {d}"
            );
        }
    }
    let hand = Tensor::linspace(0.0, 1.0, 5, DType::F64, CPU)?.to_vec::<f64>()?;
    assert_eq!(hand, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    Ok(())
}

#[test]
fn one_hot_values_cpu() -> Result<()> {
    let h = Tensor::one_hot(&[2, 0, 3], 4, DType::F64, CPU)?;
    assert_eq!(h.dims(), &[3, 4]);
    assert_eq!(
        h.to_vec::<f64>()?,
        vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
    let empty = Tensor::one_hot(&[], 3, DType::F32, CPU)?;
    assert_eq!(empty.dims(), &[0, 3]);
    Ok(())
}

#[test]
fn f32_f64_conversion_values_cpu() -> Result<()> {
    let d = t64(&[0.1, -2.5, 1e-40, 3.0e38, 1.0 / 3.0], &[5])?;
    let s = d.to_dtype(DType::F32)?;
    assert_eq!(s.dtype(), DType::F32);
    assert_eq!(s.dims(), &[5]);
    assert_eq!(
        s.to_vec::<f32>()?,
        vec![0.1f32, -2.5, 1e-40, 3.0e38, 1.0 / 3.0]
    );
    // Widening is exact: f32 → f64 gives the f32 value.
    let back = s.to_dtype(DType::F64)?;
    assert_eq!(back.dtype(), DType::F64);
    assert_eq!(
        back.to_vec::<f64>()?,
        vec![
            0.1f32 as f64,
            -2.5,
            1e-40f32 as f64,
            3.0e38f32 as f64,
            (1.0f32 / 3.0) as f64
        ]
    );
    assert_eq!(s.to_f64s()?, back.to_vec::<f64>()?);
    // Same dtype is a no-op; from_f64s narrows like `as f32`.
    assert_eq!(d.to_dtype(DType::F64)?.to_vec::<f64>()?, d.to_vec::<f64>()?);
    let narrowed = Tensor::from_f64s(&[0.1, 0.2], [2], DType::F32, CPU)?;
    assert_eq!(narrowed.to_vec::<f32>()?, vec![0.1f32, 0.2f32]);
    Ok(())
}
