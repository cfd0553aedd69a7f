//! The tensor-core GEMMs (`matmul_tf32_f32`, `matmul_tf32x3_f32` of `kernels/matmul_tc.cu`)
//! against an f64 triple loop: every transpose combination, sizes 1, 7, 33, 129 and k = 0, batch
//! strides including 0 (broadcast), alpha / beta, 4-byte and 16-byte copies, and a grid smaller
//! than the problem. TF32 within its rounding (1e-3 of the scale Σ|a·b|), 3xTF32 within f32
//! accuracy (1e-6 of it), and TF32 measurably less accurate than 3xTF32.

mod common;

use common::{download, upload, Rng};
use curvature_kernels::{geometry, GpuDevice, Kernel, KernelArg, Launch};

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
    /// Elements in front of A and B (breaks the 16-byte alignment when odd).
    offset: usize,
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
                    (out[idx], scale[idx]) = if self.beta == 0.0 {
                        (self.alpha * acc, self.alpha.abs() * abs)
                    } else {
                        (
                            self.alpha * acc + self.beta * c[idx],
                            self.alpha.abs() * abs + (self.beta * c[idx]).abs(),
                        )
                    };
                }
            }
        }
        (out, scale)
    }

    /// The largest |got − want| / max(scale, 1e-30) of the kernel against the reference.
    fn run(&self, dev: &GpuDevice, split: bool, grid: Option<(u32, u32, u32)>) -> f64 {
        let mut rng = Rng::new((self.m * 31 + self.n * 7 + self.k) as u64);
        let f32s = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
        let la = Case::len(self.strides.0, self.batch, self.m * self.k);
        let lb = Case::len(self.strides.1, self.batch, self.k * self.n);
        let lc = Case::len(self.strides.2, self.batch, self.m * self.n);
        let a = f32s(rng.vec(la, -1.0, 1.0));
        let b = f32s(rng.vec(lb, -1.0, 1.0));
        // C holds NaN where beta == 0: it must not be read.
        let c = if self.beta == 0.0 {
            vec![f64::NAN; lc]
        } else {
            f32s(rng.vec(lc, -1.0, 1.0))
        };
        let pad = |v: &[f64]| [vec![0.0; self.offset], v.to_vec()].concat();
        let (ab, bb, cb) = (
            upload::<f32>(dev, &pad(&a)),
            upload::<f32>(dev, &pad(&b)),
            upload::<f32>(dev, &c),
        );
        let (full, block) = geometry::matmul_tensor_core_launch(self.m, self.n, self.batch);
        let launch = Launch::new(
            Kernel::matmul_tensor_core(split),
            (grid.unwrap_or(full), block),
        )
        .args([
            KernelArg::BufferAt(&ab, 4 * self.offset),
            KernelArg::BufferAt(&bb, 4 * self.offset),
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
        ]);
        dev.launch(&launch).unwrap_or_else(|e| panic!("{e}"));
        let got = download::<f32>(dev, &cb);
        let (want, scale) = self.reference(&a, &b, &c);
        let mut worst: f64 = 0.0;
        for (i, ((g, w), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
            assert!(g.is_finite(), "C[{i}] = {g} (want {w})");
            worst = worst.max((g - w).abs() / s.max(1e-30));
        }
        worst
    }

    fn check(&self, dev: &GpuDevice, what: &str) {
        let tf32 = self.run(dev, false, None);
        let tf32x3 = self.run(dev, true, None);
        assert!(tf32 <= 1e-3, "{what}: tf32 error {tf32:e}");
        assert!(tf32x3 <= 1e-6, "{what}: tf32x3 error {tf32x3:e}");
    }
}

const TRANS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

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

fn aligned_sizes_use_vector_copies(dev: &GpuDevice) {
    for trans in TRANS {
        Case::new(68, 36, 40, trans).check(dev, &format!("68×36×40 {trans:?}"));
        // The same shape misaligned by one element: 4-byte copies.
        let mut c = Case::new(68, 36, 40, trans);
        c.offset = 1;
        c.check(dev, &format!("68×36×40 {trans:?} at an odd offset"));
    }
}

fn empty_k_gives_beta_c(dev: &GpuDevice) {
    let mut c = Case::new(7, 9, 0, (false, false));
    assert_eq!(c.run(dev, false, None), 0.0);
    c.beta = 0.5;
    c.alpha = 2.0;
    assert_eq!(c.run(dev, true, None), 0.0);
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
    let mut c = Case::new(129, 130, 20, (false, false));
    c.batch = 2;
    c.strides = (129 * 20, 20 * 130, 129 * 130);
    assert!(c.run(dev, true, Some((1, 1, 1))) <= 1e-6);
}

fn tf32x3_is_more_accurate_than_tf32(dev: &GpuDevice) {
    let c = Case::new(33, 33, 129, (false, false));
    let (tf32, tf32x3) = (c.run(dev, false, None), c.run(dev, true, None));
    // TF32 keeps 11 significant bits: random products lose ~1e-4 of the scale.
    assert!(tf32 > 1e-5, "tf32 error {tf32:e} is too small to be TF32");
    assert!(tf32x3 * 50.0 < tf32, "tf32x3 {tf32x3:e} vs tf32 {tf32:e}");
}

device_tests! {
    tensor_core_gemm_odd_sizes_every_transpose => odd_sizes_every_transpose;
    tensor_core_gemm_aligned_and_misaligned => aligned_sizes_use_vector_copies;
    tensor_core_gemm_empty_k => empty_k_gives_beta_c;
    tensor_core_gemm_batches => batches_broadcast_and_scale;
    tensor_core_gemm_small_grid => small_grid_strides_over_tiles;
    tensor_core_gemm_tf32x3_beats_tf32 => tf32x3_is_more_accurate_than_tf32;
}
