//! The tensor-core GEMMs of 16-bit operands (`matmul_h16_f16`, `matmul_h16_bf16` of
//! `kernels/matmul_h16.cu`) against an f64 triple loop over the stored values: every transpose
//! combination, sizes 1, 7, 33, 129, k = 0 and k = 1000 on a narrow output, batch strides
//! including 0 (broadcast), alpha / beta, each copy width (16-byte and 4-byte `cp.async`, 2-byte
//! loads) and a grid smaller than the problem. Each result is within the f32 summation's bound
//! (k + 2)·2⁻²⁴·Σ|a·b| plus the dtype's rounding of the result; an f16 result past 65504 raises
//! the overflow flag, and large bf16 values do not.

mod common;

use common::Rng;
use curvature_kernels::{geometry, Dtype, GpuBuffer, GpuDevice, Kernel, KernelArg, Launch};

const HALVES: [Dtype; 2] = [Dtype::F16, Dtype::BF16];
const TRANS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];
/// The code the tests pass for the overflow flag.
const CODE: u32 = 7;

/// The value of the 16-bit pattern `h` in `dtype`, from the formats' definitions.
fn value(dtype: Dtype, h: u16) -> f64 {
    match dtype {
        Dtype::F16 => {
            let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let exp = i32::from((h >> 10) & 0x1f);
            let man = f64::from(h & 0x3ff);
            match exp {
                0 => sign * man * 2f64.powi(-24),
                0x1f if man == 0.0 => sign * f64::INFINITY,
                0x1f => f64::NAN,
                _ => sign * (1.0 + man / 1024.0) * 2f64.powi(exp - 15),
            }
        }
        _ => f64::from(f32::from_bits(u32::from(h) << 16)),
    }
}

/// A random pattern of `dtype` with magnitude in [2⁻⁵, 2) and a random sign and significand.
fn random_bits(rng: &mut Rng, dtype: Dtype) -> u16 {
    let r = rng.next_u64();
    let sign = ((r & 1) as u16) << 15;
    let exp_step = ((r >> 1) % 6) as u16;
    match dtype {
        Dtype::F16 => sign | ((10 + exp_step) << 10) | ((r >> 8) as u16 & 0x3ff),
        _ => sign | ((122 + exp_step) << 7) | ((r >> 8) as u16 & 0x7f),
    }
}

/// The exact pattern of `v`, which must be representable in `dtype` (test data only).
fn exact_bits(dtype: Dtype, v: f64) -> u16 {
    let found = (0..=u16::MAX).find(|&h| value(dtype, h) == v && (v != 0.0 || h == 0));
    found.unwrap_or_else(|| panic!("{v} is not a {dtype} value"))
}

/// (unit roundoff, half the smallest subnormal) of the dtype's rounding to nearest.
fn rounding(dtype: Dtype) -> (f64, f64) {
    match dtype {
        Dtype::F16 => (2f64.powi(-11), 2f64.powi(-25)),
        _ => (2f64.powi(-8), 2f64.powi(-134)),
    }
}

fn upload_bits(dev: &GpuDevice, bits: &[u16]) -> GpuBuffer {
    let bytes: Vec<u8> = bits.iter().flat_map(|h| h.to_ne_bytes()).collect();
    dev.upload(&bytes).expect("upload")
}

fn download_bits(dev: &GpuDevice, buffer: &GpuBuffer) -> Vec<u16> {
    let mut bytes = vec![0u8; buffer.len_bytes()];
    dev.download(buffer, &mut bytes).expect("download");
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_ne_bytes([c[0], c[1]]))
        .collect()
}

fn download_flag(dev: &GpuDevice, flag: &GpuBuffer) -> u32 {
    let mut word = [0u8; 4];
    dev.download(flag, &mut word).expect("download");
    u32::from_ne_bytes(word)
}

#[derive(Clone, Copy)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    /// Batch strides of A, B, C in elements (0 broadcasts).
    strides: (usize, usize, usize),
    trans: (bool, bool),
    alpha: f64,
    beta: f64,
    /// Elements in front of A and B: 1 leaves 2-byte alignment, 2 leaves 4-byte alignment.
    offset: usize,
}

/// What one launch produced: C's patterns, the reference, and the overflow flag.
struct Outcome {
    got: Vec<u16>,
    want: Vec<f64>,
    scale: Vec<f64>,
    flag: u32,
}

impl Case {
    fn new(m: usize, n: usize, k: usize, trans: (bool, bool)) -> Case {
        Case {
            m,
            n,
            k,
            batch: 1,
            strides: (m * k, k * n, m * n),
            trans,
            alpha: 1.0,
            beta: 0.0,
            offset: 0,
        }
    }

    fn len(stride: usize, batch: usize, one: usize) -> usize {
        stride * (batch - 1) + one
    }

    /// (C_z = alpha·op(A_z)·op(B_z) + beta·C_z, alpha·Σ|a·b| + |beta·c|) in f64.
    fn reference(&self, a: &[f64], b: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut out = c.to_vec();
        let mut scale = vec![0.0; c.len()];
        for z in 0..self.batch {
            let (az, bz, cz) = (z * self.strides.0, z * self.strides.1, z * self.strides.2);
            for i in 0..self.m {
                for j in 0..self.n {
                    let (mut acc, mut abs) = (0.0, 0.0);
                    for p in 0..self.k {
                        let av = if self.trans.0 {
                            a[az + p * self.m + i]
                        } else {
                            a[az + i * self.k + p]
                        };
                        let bv = if self.trans.1 {
                            b[bz + j * self.k + p]
                        } else {
                            b[bz + p * self.n + j]
                        };
                        acc += av * bv;
                        abs += (av * bv).abs();
                    }
                    let idx = cz + i * self.n + j;
                    let kept = if self.beta == 0.0 {
                        0.0
                    } else {
                        self.beta * c[idx]
                    };
                    out[idx] = self.alpha * acc + kept;
                    scale[idx] = self.alpha.abs() * abs + kept.abs();
                }
            }
        }
        (out, scale)
    }

    /// Launches the kernel of `dtype` on A and B's patterns (C random, or NaN when beta == 0:
    /// it must not be read).
    fn launch(
        &self,
        dev: &GpuDevice,
        dtype: Dtype,
        a: &[u16],
        b: &[u16],
        grid: Option<(u32, u32, u32)>,
    ) -> Outcome {
        let mut rng = Rng::new(99);
        let lc = Case::len(self.strides.2, self.batch, self.m * self.n);
        let nan = if dtype == Dtype::F16 { 0x7e00 } else { 0x7fc0 };
        let c: Vec<u16> = (0..lc)
            .map(|_| {
                if self.beta == 0.0 {
                    nan
                } else {
                    random_bits(&mut rng, dtype)
                }
            })
            .collect();
        let pad = |v: &[u16]| [vec![0u16; self.offset], v.to_vec()].concat();
        let (ab, bb, cb) = (
            upload_bits(dev, &pad(a)),
            upload_bits(dev, &pad(b)),
            upload_bits(dev, &c),
        );
        let flag = dev.alloc_zeros(4).expect("flag");
        let (full, block) = geometry::matmul_tensor_core_launch(self.m, self.n, self.batch);
        let launch = Launch::new(Kernel::matmul_h16(dtype), (grid.unwrap_or(full), block)).args([
            KernelArg::BufferAt(&ab, 2 * self.offset),
            KernelArg::BufferAt(&bb, 2 * self.offset),
            KernelArg::Buffer(&cb),
            KernelArg::I32(self.m as i32),
            KernelArg::I32(self.n as i32),
            KernelArg::I32(self.k as i32),
            KernelArg::I64(self.batch as i64),
            KernelArg::I64(self.strides.0 as i64),
            KernelArg::I64(self.strides.1 as i64),
            KernelArg::I64(self.strides.2 as i64),
            KernelArg::I32(i32::from(self.trans.0)),
            KernelArg::I32(i32::from(self.trans.1)),
            KernelArg::F32(self.alpha as f32),
            KernelArg::F32(self.beta as f32),
            KernelArg::Buffer(&flag),
            KernelArg::U32(CODE),
        ]);
        dev.launch(&launch).unwrap_or_else(|e| panic!("{e}"));
        let decode = |v: &[u16]| -> Vec<f64> { v.iter().map(|&h| value(dtype, h)).collect() };
        let (want, scale) = self.reference(&decode(a), &decode(b), &decode(&c));
        Outcome {
            got: download_bits(dev, &cb),
            want,
            scale,
            flag: download_flag(dev, &flag),
        }
    }

    /// Runs the case on random operands and returns the largest error relative to its bound
    /// (at most 1 passes).
    fn run(&self, dev: &GpuDevice, dtype: Dtype, grid: Option<(u32, u32, u32)>) -> f64 {
        let mut rng = Rng::new((self.m * 31 + self.n * 7 + self.k) as u64);
        let la = Case::len(self.strides.0, self.batch, self.m * self.k);
        let lb = Case::len(self.strides.1, self.batch, self.k * self.n);
        let a: Vec<u16> = (0..la).map(|_| random_bits(&mut rng, dtype)).collect();
        let b: Vec<u16> = (0..lb).map(|_| random_bits(&mut rng, dtype)).collect();
        let outcome = self.launch(dev, dtype, &a, &b, grid);
        assert_eq!(outcome.flag, 0, "no result overflows");
        worst_error(dtype, self.k, &outcome)
    }

    fn check(&self, dev: &GpuDevice, what: &str) {
        for dtype in HALVES {
            let worst = self.run(dev, dtype, None);
            assert!(worst <= 1.0, "{what} {dtype}: error {worst} of the bound");
        }
    }
}

/// The largest |got − want| over its bound u·|want| + 2·(k + 2)·2⁻²⁴·scale + half a subnormal:
/// the f32 sum is within (k + 2)·2⁻²⁴·scale of the exact value, and rounding it to the dtype
/// moves it by at most u of its magnitude.
fn worst_error(dtype: Dtype, k: usize, outcome: &Outcome) -> f64 {
    let (u, tiny) = rounding(dtype);
    let mut worst: f64 = 0.0;
    for (i, ((&h, w), s)) in outcome
        .got
        .iter()
        .zip(&outcome.want)
        .zip(&outcome.scale)
        .enumerate()
    {
        let g = value(dtype, h);
        assert!(g.is_finite(), "C[{i}] = {g} (want {w})");
        let sum_bound = (k as f64 + 2.0) * 2f64.powi(-24) * s;
        let bound = u * w.abs() + 2.0 * sum_bound + tiny;
        worst = worst.max((g - w).abs() / bound);
    }
    worst
}

fn odd_sizes_every_transpose(dev: &GpuDevice) {
    for trans in TRANS {
        for (m, n, k) in [
            (1, 1, 1),
            (7, 33, 7),
            (33, 7, 129),
            (129, 33, 33),
            (1, 129, 7),
        ] {
            Case::new(m, n, k, trans).check(dev, &format!("{m}×{n}×{k} {trans:?}"));
        }
    }
}

fn every_copy_width(dev: &GpuDevice) {
    for trans in TRANS {
        // Every contiguous dimension a multiple of 8: 16-byte copies, then 2-byte aligned
        // (2-byte loads) and 4-byte aligned (4-byte copies) views of the same operands.
        for offset in [0, 1, 2] {
            let mut c = Case::new(72, 40, 48, trans);
            c.offset = offset;
            c.check(dev, &format!("72×40×48 {trans:?} at offset {offset}"));
        }
        // Even dimensions, not multiples of 8: 4-byte copies.
        Case::new(66, 34, 42, trans).check(dev, &format!("66×34×42 {trans:?}"));
    }
}

fn empty_and_long_k(dev: &GpuDevice) {
    for dtype in HALVES {
        let mut c = Case::new(7, 9, 0, (false, false));
        assert_eq!(c.run(dev, dtype, None), 0.0, "k = 0 gives zeros");
        c.beta = 0.5;
        c.alpha = 2.0;
        assert!(c.run(dev, dtype, None) <= 1.0, "k = 0 gives beta·C");
    }
    for (m, n) in [(10, 1), (10, 10)] {
        for trans in [(false, false), (true, true)] {
            Case::new(m, n, 1000, trans).check(dev, &format!("{m}×{n}×1000 {trans:?}"));
        }
    }
}

fn batches_broadcast_and_scale(dev: &GpuDevice) {
    let mut c = Case::new(33, 20, 24, (false, true));
    c.batch = 3;
    c.strides = (0, 20 * 24, 33 * 20);
    c.alpha = -1.5;
    c.beta = 0.25;
    c.check(dev, "broadcast A, alpha, beta");
    let mut c = Case::new(9, 17, 12, (true, false));
    c.batch = 2;
    c.strides = (9 * 12, 0, 9 * 17);
    c.check(dev, "broadcast B");
}

fn small_grid_strides_over_tiles(dev: &GpuDevice) {
    let mut c = Case::new(129, 130, 40, (false, false));
    c.batch = 2;
    c.strides = (129 * 40, 40 * 130, 129 * 130);
    for dtype in HALVES {
        assert!(c.run(dev, dtype, Some((1, 1, 1))) <= 1.0, "{dtype}");
    }
}

/// 256·256 + 256·256 = 131072 overflows f16 (flag raised, +inf stored); 256·255.875 = 65504,
/// the largest f16, does not. In bf16, A 2¹⁰⁰ times larger gives 2¹¹⁷: finite, no flag.
fn overflow_raises_the_flag_for_f16_only(dev: &GpuDevice) {
    let a = [256.0, 256.0, 255.875, 0.0];
    let b = [256.0, 1.0, 256.0, 1.0];
    let c = Case::new(2, 2, 2, (false, false));
    let bits = |dtype, v: &[f64]| -> Vec<u16> { v.iter().map(|&x| exact_bits(dtype, x)).collect() };
    let f16 = c.launch(
        dev,
        Dtype::F16,
        &bits(Dtype::F16, &a),
        &bits(Dtype::F16, &b),
        None,
    );
    assert_eq!(f16.flag, CODE, "131072 overflows f16");
    assert_eq!(f16.got[0], 0x7c00, "stored as +inf");
    let rest: Vec<f64> = f16.got[1..].iter().map(|&h| value(Dtype::F16, h)).collect();
    assert_eq!(rest, [512.0, 65504.0, 255.875]);

    let only_max = Case::new(1, 1, 1, (false, false));
    let max = only_max.launch(
        dev,
        Dtype::F16,
        &bits(Dtype::F16, &[255.875]),
        &bits(Dtype::F16, &[256.0]),
        None,
    );
    assert_eq!((max.flag, value(Dtype::F16, max.got[0])), (0, 65504.0));

    let huge = 2f64.powi(100);
    let big_a = [256.0 * huge, 256.0 * huge, 255.0 * huge, 0.0];
    let bf16 = c.launch(
        dev,
        Dtype::BF16,
        &bits(Dtype::BF16, &big_a),
        &bits(Dtype::BF16, &b),
        None,
    );
    assert_eq!(bf16.flag, 0, "bf16 holds 2^117");
    assert!(worst_error(Dtype::BF16, 2, &bf16) <= 1.0);
}

device_tests! {
    h16_gemm_odd_sizes_every_transpose => odd_sizes_every_transpose;
    h16_gemm_every_copy_width => every_copy_width;
    h16_gemm_empty_and_long_k => empty_and_long_k;
    h16_gemm_batches => batches_broadcast_and_scale;
    h16_gemm_small_grid => small_grid_strides_over_tiles;
    h16_gemm_overflow => overflow_raises_the_flag_for_f16_only;
}
