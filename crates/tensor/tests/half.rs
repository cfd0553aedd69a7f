//! The 16-bit storage dtypes (f16, bf16) on the CPU and on `Device::Cuda`: conversions round to
//! nearest even (against a rounding written here from the formats' definitions), every op of
//! the op tables and the structural ops agree with f64 references of the stored inputs within
//! the dtype's rounding, overflow is an error naming the op, and files round-trip.

mod common;

use common::reference;

use curvature_tensor::{io, BinaryOp, TernaryOp, UnaryOp};
use curvature_tensor::{DType, Device, Result, Tensor, TensorError};
use std::sync::{Mutex, MutexGuard};

const CPU: Device = Device::Cpu;
const HALVES: [DType; 2] = [DType::F16, DType::BF16];

/// (significand bits with the hidden one, exponent of the smallest normal, largest finite).
/// A GPU reports a 16-bit overflow at the next download or synchronisation of the device, from
/// whichever thread does it: the tests of this file take turns, so the overflow one test
/// provokes on purpose is never reported to another.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn format(dtype: DType) -> (i32, i32, f64) {
    match dtype {
        DType::F16 => (11, -14, 65504.0),
        DType::BF16 => (8, -126, (2.0 - 2f64.powi(-7)) * 2f64.powi(127)),
        other => panic!("{other} is not a 16-bit dtype"),
    }
}

/// `v` rounded to nearest even in `dtype`: the quantum of v's binade (that of the smallest
/// normal binade for subnormals), ties to the even multiple, beyond the largest finite value
/// infinity.
fn round_to(dtype: DType, v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let (p, min_exp, max) = format(dtype);
    let a = v.abs();
    let exponent = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let quantum = 2f64.powi(exponent.max(min_exp) - (p - 1));
    let q = a / quantum;
    let floor = q.floor();
    let rem = q - floor;
    let up = rem > 0.5 || (rem == 0.5 && floor % 2.0 == 1.0);
    let r = (if up { floor + 1.0 } else { floor }) * quantum;
    let r = if r > max { f64::INFINITY } else { r };
    r.copysign(v)
}

/// The spacing of `dtype`'s values at 1.
fn eps(dtype: DType) -> f64 {
    let (p, _, _) = format(dtype);
    2f64.powi(1 - p)
}

/// Same values bit for bit, NaN where NaN (any payload), −0 distinct from +0.
fn assert_same_bits(name: &str, ours: &[f64], expected: &[f64]) {
    assert_eq!(ours.len(), expected.len(), "{name}: length");
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
        assert!(same, "{name}: element {i} is {a:e}, expected {b:e}");
    }
}

/// |ours − expected| ≤ bound(expected) elementwise, NaN and ±inf in the same places.
fn assert_close(name: &str, ours: &[f64], expected: &[f64], bound: impl Fn(usize, f64) -> f64) {
    assert_eq!(ours.len(), expected.len(), "{name}: length");
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        let ok = if b.is_finite() {
            (a - b).abs() <= bound(i, *b)
        } else {
            (a.is_nan() && b.is_nan()) || a == b
        };
        assert!(
            ok,
            "{name}: element {i} is {a:e}, expected {b:e} (tolerance {:e})",
            bound(i, *b)
        );
    }
}

/// The f32 value nearest `v`.
fn to_f32(v: f64) -> f64 {
    v as f32 as f64
}

/// Values that exercise the rounding: exact ones, ties to even in normal and subnormal
/// binades, the largest finite values and their neighbours, signed zeros, NaN and infinities.
fn rounding_cases(dtype: DType) -> Vec<f64> {
    let mut v = vec![
        1.0,
        -2.5,
        1.0 / 3.0,
        0.1,
        -7.3e-6,
        1e-3,
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let (p, min_exp, max) = format(dtype);
    let ulp1 = 2f64.powi(1 - p);
    let tiny = 2f64.powi(min_exp - (p - 1)); // the smallest subnormal
    v.extend([
        1.0 + ulp1 / 2.0,         // tie: down to the even 1
        1.0 + 1.5 * ulp1,         // tie: up to the even 1 + 2ulp
        1.0 + ulp1 / 2.0 + 1e-12, // just above a tie: up
        tiny,
        tiny / 2.0,  // tie between 0 and the smallest subnormal: 0
        0.75 * tiny, // above the tie: the smallest subnormal
        1.5 * tiny,  // tie between 1 and 2 subnormal steps: 2
        -2.5 * tiny, // tie between 2 and 3 steps: 2
        2f64.powi(min_exp) * (1.0 - ulp1 / 4.0), // just below the smallest normal
        max,
        -max,
        max * (1.0 + ulp1 / 8.0), // rounds down to the largest finite value
    ]);
    v
}

/// Conversions from f64 and f32 to f16 and bf16 round to nearest even on both devices (the
/// GPU's rounding kernels and the host's), and widening back is exact.
fn conversions_round_to_nearest_even(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    for dtype in HALVES {
        let cases = rounding_cases(dtype);
        for source in [DType::F64, DType::F32] {
            let stored: Vec<f64> = match source {
                DType::F32 => cases.iter().map(|&v| to_f32(v)).collect(),
                _ => cases.clone(),
            };
            let expected: Vec<f64> = stored.iter().map(|&v| round_to(dtype, v)).collect();
            let wide = Tensor::from_f64s(&stored, [stored.len()], source, device)?;
            let half = wide.to_dtype(dtype)?;
            assert_eq!(half.dtype(), dtype);
            let name = format!("{source} → {dtype} on {device}");
            assert_same_bits(&name, &half.to_f64s()?, &expected);
            for back in [DType::F32, DType::F64] {
                let widened = half.to_dtype(back)?.to_f64s()?;
                assert_same_bits(&format!("{name} → {back}"), &widened, &expected);
            }
        }
        let direct = Tensor::from_f64s(&cases, [cases.len()], dtype, device)?;
        let expected: Vec<f64> = cases.iter().map(|&v| round_to(dtype, v)).collect();
        assert_same_bits(&format!("from_f64s {dtype}"), &direct.to_f64s()?, &expected);
        assert_eq!(direct.to_bytes()?.len(), 2 * cases.len(), "two bytes each");
    }
    // f16 → bf16 and back, both rounding once from the exact f16 value.
    let values = [1.0 + 2f64.powi(-10), 3.0e-5, 60000.0, -1.0 / 3.0];
    let h = Tensor::from_f64s(&values, [4], DType::F16, device)?;
    let hv = h.to_f64s()?;
    let b = h.to_dtype(DType::BF16)?;
    let bv: Vec<f64> = hv.iter().map(|&v| round_to(DType::BF16, v)).collect();
    assert_same_bits("f16 → bf16", &b.to_f64s()?, &bv);
    let back: Vec<f64> = bv.iter().map(|&v| round_to(DType::F16, v)).collect();
    assert_same_bits("bf16 → f16", &b.to_dtype(DType::F16)?.to_f64s()?, &back);
    Ok(())
}

/// Whether `result` is the overflow error of `op` storing `dtype`.
fn is_overflow<T>(result: &Result<T>, op: &str, dtype: DType) -> bool {
    matches!(result, Err(TensorError::Overflow { op: o, dtype: d, .. }) if *o == op && *d == dtype)
}

/// A finite value that rounds to infinity is an error naming the op and the dtype: at once on
/// the CPU, at the next download or synchronize on a GPU (which then carries on).
fn overflow_is_an_error_naming_the_op(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let direct = Tensor::from_f64s(&[1.0, 70000.0], [2], DType::F16, device);
    assert!(is_overflow(&direct, "from_f64s", DType::F16), "{direct:?}");
    let message = direct.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("from_f64s") && message.contains("f16"),
        "{message}"
    );
    let huge = Tensor::from_f64s(&[1e39], [1], DType::BF16, device);
    assert!(is_overflow(&huge, "from_f64s", DType::BF16), "{huge:?}");
    // Infinities already there are values, not overflow.
    let inf = Tensor::from_f64s(&[f64::INFINITY, 1.0], [2], DType::F16, device)?;
    assert_same_bits(
        "exp(inf)",
        &inf.exp()?.to_f64s()?,
        &[f64::INFINITY, round_to(DType::F16, 1f64.exp())],
    );

    let x = Tensor::from_f64s(&[300.0, 2.0], [2], DType::F16, device)?;
    let squared = x.mul(&x);
    let squared = match device {
        Device::Cpu => squared,
        _ => squared?.to_f64s().map(|_| x.clone()),
    };
    assert!(is_overflow(&squared, "mul", DType::F16), "{squared:?}");
    // The flag was reset: the next results read back normally.
    assert_same_bits("after overflow", &x.to_f64s()?, &[300.0, 2.0]);
    let sum = x.sum(&[0], false)?.to_f64s()?;
    assert_same_bits("sum", &sum, &[302.0]);

    let wide = Tensor::from_f64s(&[1e5], [1], DType::F32, device)?;
    let narrowed = wide.to_dtype(DType::F16);
    let narrowed = match device {
        Device::Cpu => narrowed,
        _ => narrowed?.to_f64s().map(|_| wide.clone()),
    };
    assert!(
        is_overflow(&narrowed, "to_dtype", DType::F16),
        "{narrowed:?}"
    );
    // Through a matrix product: 256·256 + 256·256 = 131072.
    let row = Tensor::from_f64s(&[256.0, 256.0], [1, 2], DType::F16, device)?;
    let product = row.matmul(&row.t()?);
    let product = match device {
        Device::Cpu => product,
        _ => product?.to_f64s().map(|_| row.clone()),
    };
    assert!(is_overflow(&product, "matmul", DType::F16), "{product:?}");
    let fine = row.matmul(&row.t()?.mul_scalar(0.25)?)?;
    assert_same_bits("after a matmul overflow", &fine.to_f64s()?, &[32768.0]);
    if device != CPU {
        let _pending = x.square()?; // 300² overflows f16
        let synced = device.synchronize();
        assert!(is_overflow(&synced, "square", DType::F16), "{synced:?}");
        device.synchronize()?;
    }
    Ok(())
}

/// Deterministic values from a SplitMix64 stream.
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

    /// A tensor of `dtype` on `device` with each element uniform in a random one of
    /// `intervals`, and its values as stored.
    fn tensor(
        &mut self,
        dims: &[usize],
        intervals: &[(f64, f64)],
        dtype: DType,
        device: Device,
    ) -> Result<(Tensor, Vec<f64>)> {
        let data: Vec<f64> = (0..dims.iter().product())
            .map(|_| {
                let pick = (self.next_f64() * intervals.len() as f64) as usize;
                let (lo, hi) = intervals[pick.min(intervals.len() - 1)];
                lo + (hi - lo) * self.next_f64()
            })
            .collect();
        let t = Tensor::from_f64s(&data, dims, dtype, device)?;
        let stored = t.to_f64s()?;
        Ok((t, stored))
    }
}

/// The bound of one elementwise result: the dtype's rounding of the value (half an ulp, so
/// eps·|v| is twice that) and an absolute 4e-6 for f32's own error in cancelling formulas.
fn elementwise_bound(dtype: DType) -> impl Fn(usize, f64) -> f64 {
    move |_, v| eps(dtype) * v.abs() + 4e-6
}

/// Every op of the unary, binary and ternary tables in f16 and bf16 equals its f64 reference
/// of the stored inputs within the dtype's rounding, with broadcasting operands.
fn elementwise_ops_within_the_rounding(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let mut rng = Rng(7);
    for dtype in HALVES {
        let bound = elementwise_bound(dtype);
        for &op in UnaryOp::ALL {
            let (x, xv) = rng.tensor(&[4, 5], op.domain(), dtype, device)?;
            let expected: Vec<f64> = xv.iter().map(|&v| reference::unary(op, v)).collect();
            let out = x.unary(op)?;
            assert_eq!(out.dtype(), dtype);
            let name = format!("{} {dtype} on {device}", op.name());
            assert_close(&name, &out.to_f64s()?, &expected, &bound);
        }
        for &op in BinaryOp::ALL {
            let [da, db] = op.domains();
            let (a, av) = rng.tensor(&[3, 4], da, dtype, device)?;
            let (b, bv) = rng.tensor(&[4], db, dtype, device)?;
            let expected: Vec<f64> = (0..12)
                .map(|i| reference::binary(op, av[i], bv[i % 4]))
                .collect();
            let name = format!("{} {dtype} on {device}", op.name());
            assert_close(&name, &a.binary(op, &b)?.to_f64s()?, &expected, &bound);
        }
        for &op in TernaryOp::ALL {
            let [da, db, dc] = op.domains();
            let (a, av) = rng.tensor(&[3, 4], da, dtype, device)?;
            let (b, bv) = rng.tensor(&[3, 1], db, dtype, device)?;
            let (c, cv) = rng.tensor(&[4], dc, dtype, device)?;
            let expected: Vec<f64> = (0..12)
                .map(|i| reference::ternary(op, av[i], bv[i / 4], cv[i % 4]))
                .collect();
            let name = format!("{} {dtype} on {device}", op.name());
            assert_close(&name, &a.ternary(op, &b, &c)?.to_f64s()?, &expected, &bound);
        }
    }
    Ok(())
}

/// Matmul, reductions, the softmax family, layout and index ops in f16 and bf16 against f64
/// loops over the stored inputs: the moves exact, the sums within f32 accumulation and one
/// rounding to the dtype.
fn structural_ops_within_the_rounding(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let mut rng = Rng(21);
    let signed: &[(f64, f64)] = &[(-2.0, 2.0)];
    for dtype in HALVES {
        let e = eps(dtype);
        let (a, av) = rng.tensor(&[5, 7], signed, dtype, device)?;
        let (b, bv) = rng.tensor(&[7, 3], signed, dtype, device)?;
        let mut expected = vec![0.0; 15];
        let mut magnitude = [0.0; 15];
        for i in 0..5 {
            for j in 0..3 {
                for k in 0..7 {
                    expected[i * 3 + j] += av[i * 7 + k] * bv[k * 3 + j];
                    magnitude[i * 3 + j] += (av[i * 7 + k] * bv[k * 3 + j]).abs();
                }
            }
        }
        let name = format!("matmul {dtype} on {device}");
        let c = a.matmul(&b)?;
        assert_eq!(c.dtype(), dtype);
        assert_close(&name, &c.to_f64s()?, &expected, |i, _| e * magnitude[i]);

        let row_sums: Vec<f64> = (0..5).map(|i| av[i * 7..i * 7 + 7].iter().sum()).collect();
        let row_abs: Vec<f64> = (0..5)
            .map(|i| av[i * 7..i * 7 + 7].iter().map(|v| v.abs()).sum())
            .collect();
        let sums = a.sum(&[1], false)?.to_f64s()?;
        assert_close("sum", &sums, &row_sums, |i, _| e * row_abs[i]);
        let maxes: Vec<f64> = (0..5)
            .map(|i| {
                av[i * 7..i * 7 + 7]
                    .iter()
                    .cloned()
                    .fold(f64::MIN, f64::max)
            })
            .collect();
        assert_same_bits("max", &a.max(1, false)?.to_f64s()?, &maxes);
        let lse: Vec<f64> = (0..5)
            .map(|i| {
                av[i * 7..i * 7 + 7]
                    .iter()
                    .map(|v| v.exp())
                    .sum::<f64>()
                    .ln()
            })
            .collect();
        let bound = elementwise_bound(dtype);
        assert_close(
            "logsumexp",
            &a.logsumexp(1, false)?.to_f64s()?,
            &lse,
            &bound,
        );
        let log_softmax: Vec<f64> = (0..35).map(|i| av[i] - lse[i / 7]).collect();
        let ours = a.log_softmax(1)?.to_f64s()?;
        assert_close("log_softmax", &ours, &log_softmax, |_, v| {
            e * (v.abs() + 4.0)
        });

        let transposed: Vec<f64> = (0..35).map(|i| av[(i % 5) * 7 + i / 5]).collect();
        assert_same_bits("transpose", &a.transpose(0, 1)?.to_f64s()?, &transposed);
        let narrowed: Vec<f64> = (0..5)
            .flat_map(|i| av[i * 7 + 2..i * 7 + 5].to_vec())
            .collect();
        assert_same_bits("narrow", &a.narrow(1, 2, 3)?.to_f64s()?, &narrowed);
        let joined = Tensor::cat(&[&a, &a.narrow(0, 1, 2)?], 0)?;
        let mut cat = av.clone();
        cat.extend_from_slice(&av[7..21]);
        assert_same_bits("cat", &joined.to_f64s()?, &cat);
        let picked = a.index_select(0, &[4, 0, 4])?;
        let mut select = av[28..35].to_vec();
        select.extend_from_slice(&av[0..7]);
        select.extend_from_slice(&av[28..35]);
        assert_same_bits("index_select", &picked.to_f64s()?, &select);
        let added = a.index_add(0, &[1, 0, 1, 1, 0], 2)?.to_f64s()?;
        let mut adds = vec![0.0; 14];
        let mut adds_abs = [0.0; 14];
        for (row, &k) in [1usize, 0, 1, 1, 0].iter().enumerate() {
            for j in 0..7 {
                adds[k * 7 + j] += av[row * 7 + j];
                adds_abs[k * 7 + j] += av[row * 7 + j].abs();
            }
        }
        assert_close("index_add", &added, &adds, |i, _| e * adds_abs[i]);
        let full = Tensor::full(-1.5, [3], dtype, device)?;
        assert_same_bits("full", &full.to_f64s()?, &[-1.5; 3]);
        let expanded = b.narrow(0, 0, 1)?.broadcast_to([2, 3])?.to_f64s()?;
        assert_same_bits(
            "broadcast_to",
            &expanded,
            &[bv[0], bv[1], bv[2], bv[0], bv[1], bv[2]],
        );
    }
    Ok(())
}

/// `op(a)·op(b)`; on a GPU with tensor cores it must be one launch of `matmul_h16_{dtype}`
/// (the operands read as stored, no widening casts).
fn multiply_logged(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    let Device::Cuda(ordinal) = a.device() else {
        return a.matmul_transposed(b, trans_a, trans_b);
    };
    let gpu = curvature_kernels::GpuDevice::named(ordinal).expect("the device is open");
    if !gpu.has_tensor_cores() {
        return a.matmul_transposed(b, trans_a, trans_b);
    }
    gpu.start_launch_log();
    let c = a.matmul_transposed(b, trans_a, trans_b);
    let kernels: Vec<String> = gpu
        .take_launch_log()
        .into_iter()
        .map(|r| r.kernel)
        .collect();
    let c = c?;
    let expected = format!("matmul_h16_{}", a.dtype());
    let launches = if c.elem_count() == 0 { 0 } else { 1 };
    assert_eq!(kernels, vec![expected; launches], "{:?}", c.shape());
    Ok(c)
}

/// A product's batch dims of A and of B, m, n, k, and the magnitude of the values.
type ProductCase = (&'static [usize], &'static [usize], usize, usize, usize, f64);

/// Matrix products of f16 and bf16 against f64 loops over the stored values, for every
/// transpose flag, broadcast batches on either side, k = 0 and a long k on a narrow output:
/// within the f32 sum's bound (k + 2)·2⁻²⁴·Σ|a·b| (twice: it may also move the rounding) and one
/// rounding to the dtype. On a GPU they run on tensor cores, reading the 16-bit operands; bf16
/// products far beyond f16's range stay finite.
fn matmul_every_layout_within_the_rounding(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let mut rng = Rng(41);
    let cases: [ProductCase; 5] = [
        (&[2], &[], 7, 33, 9, 2.0),
        (&[], &[3], 33, 1, 7, 2.0),
        (&[2], &[2], 1, 7, 1000, 2.0),
        (&[], &[], 5, 4, 0, 2.0),
        (&[], &[], 9, 7, 20, 1e15),
    ];
    for dtype in HALVES {
        let e = eps(dtype);
        for &(batch_a, batch_b, m, n, k, size) in &cases {
            if size > 1e4 && dtype == DType::F16 {
                continue;
            }
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                let stored = |batch: &[usize], rows, cols, trans| {
                    let mut dims = batch.to_vec();
                    dims.extend(if trans { [cols, rows] } else { [rows, cols] });
                    dims
                };
                let interval = [(-size, size)];
                let (a, av) =
                    rng.tensor(&stored(batch_a, m, k, trans_a), &interval, dtype, device)?;
                let (b, bv) =
                    rng.tensor(&stored(batch_b, k, n, trans_b), &interval, dtype, device)?;
                let c = multiply_logged(&a, &b, trans_a, trans_b)?;
                assert_eq!(c.dtype(), dtype);
                let count = batch_a.iter().chain(batch_b).copied().max().unwrap_or(1);
                let mut expected = vec![0.0; count * m * n];
                let mut bound = vec![0.0; count * m * n];
                for z in 0..count {
                    let (za, zb) = (
                        z % batch_a.first().unwrap_or(&1),
                        z % batch_b.first().unwrap_or(&1),
                    );
                    for i in 0..m {
                        for j in 0..n {
                            let (mut sum, mut magnitude) = (0.0, 0.0);
                            for p in 0..k {
                                let x = if trans_a {
                                    av[za * m * k + p * m + i]
                                } else {
                                    av[za * m * k + i * k + p]
                                };
                                let y = if trans_b {
                                    bv[zb * k * n + j * k + p]
                                } else {
                                    bv[zb * k * n + p * n + j]
                                };
                                sum += x * y;
                                magnitude += (x * y).abs();
                            }
                            let at = (z * m + i) * n + j;
                            expected[at] = sum;
                            bound[at] = e * sum.abs()
                                + 2.0 * (k as f64 + 2.0) * 2f64.powi(-24) * magnitude
                                + 2f64.powi(-24);
                        }
                    }
                }
                let name = format!(
                    "matmul {dtype} {m}×{n}×{k} transposed {trans_a}, {trans_b} on {device}"
                );
                assert_close(&name, &c.to_f64s()?, &expected, |i, _| bound[i]);
            }
        }
    }
    Ok(())
}

/// Mixing a 16-bit tensor with another dtype is a dtype mismatch naming both.
fn mixing_dtypes_is_an_error(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let h = Tensor::ones([2], DType::F16, device)?;
    let b = Tensor::ones([2], DType::BF16, device)?;
    let f = Tensor::ones([2], DType::F32, device)?;
    for (lhs, rhs) in [(&h, &b), (&h, &f), (&b, &f)] {
        let err = lhs.add(rhs).expect_err("mixed dtypes");
        assert!(
            matches!(err, TensorError::DTypeMismatch { op: "add", .. }),
            "{err}"
        );
    }
    let wrong = h.to_vec::<f32>();
    assert!(
        matches!(wrong, Err(TensorError::WrongElementType { .. })),
        "{wrong:?}"
    );
    assert_eq!(h.to_vec::<half::f16>()?, vec![half::f16::ONE; 2]);
    Ok(())
}

/// f16 and bf16 tensors save as F16 and BF16 and load back as themselves, bit for bit.
fn files_round_trip(device: Device) -> Result<()> {
    let _turn = one_at_a_time();
    let values = [1.0, -2.5, 1.0 / 3.0, 6.0e-8, 60000.0];
    let h = Tensor::from_f64s(&values, [5], DType::F16, device)?;
    let b = Tensor::from_f64s(&values, [5], DType::BF16, device)?;
    let bytes = io::to_bytes(&[("h", &h), ("b", &b)])?;
    let loaded = io::load_bytes(&bytes, None, device)?;
    for (name, t) in [("h", &h), ("b", &b)] {
        assert_eq!(loaded[name].dtype(), t.dtype(), "{name}");
        assert_eq!(loaded[name].device(), device, "{name}");
        assert_eq!(loaded[name].to_bytes()?, t.to_bytes()?, "{name}");
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes")) as usize;
    let header = String::from_utf8_lossy(&bytes[8..8 + n]);
    assert!(
        header.contains(r#""dtype":"F16""#) && header.contains(r#""dtype":"BF16""#),
        "{header}"
    );
    let f16_bits: Vec<u8> = values
        .iter()
        .flat_map(|&v| {
            half::f16::from_f64(round_to(DType::F16, v))
                .to_bits()
                .to_le_bytes()
        })
        .collect();
    assert_eq!(&bytes[8 + n..8 + n + 10], &f16_bits[..]);
    Ok(())
}

device_tests!(
    conversions_round_to_nearest_even,
    overflow_is_an_error_naming_the_op,
    elementwise_ops_within_the_rounding,
    structural_ops_within_the_rounding,
    matmul_every_layout_within_the_rounding,
    mixing_dtypes_is_an_error,
    files_round_trip,
);

#[test]
fn the_reference_rounding_is_that_of_the_formats() {
    // Spot values of the formats' definitions, independent of the rounding function's code.
    assert_eq!(round_to(DType::F16, 65519.0), 65504.0);
    assert_eq!(round_to(DType::F16, 65520.0), f64::INFINITY);
    assert_eq!(round_to(DType::F16, 2f64.powi(-25)), 0.0);
    assert_eq!(
        round_to(DType::F16, 2f64.powi(-25) * 1.0001),
        2f64.powi(-24)
    );
    assert_eq!(round_to(DType::F16, 1.0 + 2f64.powi(-11)), 1.0);
    assert_eq!(
        round_to(DType::F16, 1.0 + 3.0 * 2f64.powi(-11)),
        1.0 + 2f64.powi(-9)
    );
    assert_eq!(round_to(DType::BF16, 1.0 + 2f64.powi(-8)), 1.0);
    assert_eq!(round_to(DType::BF16, 1.0 / 3.0), 171.0 / 512.0);
    assert_eq!(DType::F16.to_string(), "f16");
    assert_eq!("bf16".parse::<DType>(), Ok(DType::BF16));
    assert_eq!(DType::BF16.size_in_bytes(), 2);
}
