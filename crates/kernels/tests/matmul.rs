//! The batched GEMM kernels (both tiles, and split-K in one launch when the selection splits)
//! against a plain triple loop: edge sizes, every transpose combination, batch strides
//! including 0 (broadcast), alpha / beta, a dimension of 1000, a grid smaller than the problem
//! (grid-stride loops), split counts the selection never makes (an empty last split), and
//! split-K results bitwise equal run after run with the arrival counters left at zero.

mod common;

use common::{assert_close, download, rounded, upload, Elem, Rng};
use curvature_kernels::gemm_select::{select_gemm, GemmTile, GEMM_BLOCK};
use curvature_kernels::{GpuBuffer, GpuDevice, Kernel, KernelArg, Launch};

struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    /// Batch strides in elements (0 broadcasts).
    strides: (usize, usize, usize),
    trans: (bool, bool),
    alpha: f64,
    beta: f64,
    /// Elements of padding in front of A (a view at an offset, e.g. to misalign it).
    a_offset: usize,
}

impl Gemm {
    fn new(m: usize, n: usize, k: usize, trans: (bool, bool)) -> Gemm {
        Gemm {
            m,
            n,
            k,
            batch: 1,
            strides: (m * k, k * n, m * n),
            trans,
            alpha: 1.0,
            beta: 0.0,
            a_offset: 0,
        }
    }

    fn lens(&self) -> (usize, usize, usize) {
        let last = |s: usize, one: usize| s * (self.batch - 1) + one;
        (
            last(self.strides.0, self.m * self.k),
            last(self.strides.1, self.k * self.n),
            last(self.strides.2, self.m * self.n),
        )
    }

    /// C_z = alpha·op(A_z)·op(B_z) + beta·C_z, written out with plain loops.
    fn reference(&self, a: &[f64], b: &[f64], c: &[f64]) -> Vec<f64> {
        let mut out = c.to_vec();
        for z in 0..self.batch {
            let (az, bz, cz) = (z * self.strides.0, z * self.strides.1, z * self.strides.2);
            for i in 0..self.m {
                for j in 0..self.n {
                    let mut acc = 0.0;
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
                    }
                    let dst = &mut out[cz + i * self.n + j];
                    *dst = if self.beta == 0.0 {
                        self.alpha * acc
                    } else {
                        self.alpha * acc + self.beta * *dst
                    };
                }
            }
        }
        out
    }

    fn check<T: Elem>(&self, dev: &GpuDevice, rng: &mut Rng, grid: Option<(u32, u32, u32)>) {
        self.check_runs::<T>(dev, rng, grid, &[]);
    }

    /// [`Gemm::check`] plus the runs `extra` (tile, splits, grid).
    fn check_runs<T: Elem>(
        &self,
        dev: &GpuDevice,
        rng: &mut Rng,
        grid: Option<(u32, u32, u32)>,
        extra: &[(GemmTile, usize, (u32, u32, u32))],
    ) {
        let (la, lb, lc) = self.lens();
        let a = rounded::<T>(&rng.vec(la, -1.0, 1.0));
        let b = rounded::<T>(&rng.vec(lb, -1.0, 1.0));
        let c = rounded::<T>(&rng.vec(lc, -1.0, 1.0));
        let want = self.reference(&a, &b, &c);
        let padded: Vec<f64> = std::iter::repeat_n(0.0, self.a_offset)
            .chain(a.iter().copied())
            .collect();
        let (ab, bb, cb) = (
            upload::<T>(dev, &padded),
            upload::<T>(dev, &b),
            upload::<T>(dev, &c),
        );
        let c_start = download::<T>(dev, &cb);
        let plan = select_gemm(T::DTYPE, self.m, self.n, self.k, self.batch, dev.sm_count());
        // Each tile without splits (on the suggested or the given grid), then the selected
        // split-K plan when it splits.
        let mut runs: Vec<(GemmTile, usize, (u32, u32, u32))> = [GemmTile::Large, GemmTile::Small]
            .into_iter()
            .map(|tile| {
                let (bm, bn, _) = tile.dims(T::DTYPE);
                let tiles = |d: usize, t: usize| d.div_ceil(t).clamp(1, 65535) as u32;
                let suggested = (tiles(self.n, bn), tiles(self.m, bm), tiles(self.batch, 1));
                (tile, 1, grid.unwrap_or(suggested))
            })
            .collect();
        if plan.splits > 1 {
            runs.push((plan.tile, plan.splits, plan.grid));
        }
        runs.extend_from_slice(extra);
        for (tile, splits, grid) in runs {
            let cb = upload::<T>(dev, &c_start);
            self.launch::<T>(dev, (&ab, &bb, &cb), tile, splits, grid);
            let what = format!(
                "gemm_{}_{} splits={splits} m={} n={} k={} batch={} trans={:?}",
                tile.name(),
                T::DT,
                self.m,
                self.n,
                self.k,
                self.batch,
                self.trans
            );
            // Sums of k products of values in [−1, 1]: error grows like √k·eps.
            let tol = T::TOL * (self.k as f64).sqrt().max(1.0);
            assert_close(&what, &download::<T>(dev, &cb), &want, tol);
        }
    }

    /// One product with `tile` and `splits` (through a workspace and the device's arrival
    /// counters when `splits > 1`), alpha / beta applied, no bias, the identity.
    fn launch<T: Elem>(
        &self,
        dev: &GpuDevice,
        (ab, bb, cb): (&GpuBuffer, &GpuBuffer, &GpuBuffer),
        tile: GemmTile,
        splits: usize,
        grid: (u32, u32, u32),
    ) {
        let size = std::mem::size_of::<T>();
        let (ld_a, ld_b) = (
            if self.trans.0 { self.m } else { self.k },
            if self.trans.1 { self.k } else { self.n },
        );
        let plane = self.m * self.n;
        let workspace = dev
            .alloc((splits * self.batch * plane).max(1) * size)
            .expect("workspace");
        let (bm, bn, _) = tile.dims(T::DTYPE);
        let tiles = self.batch * self.m.div_ceil(bm) * self.n.div_ceil(bn);
        let counters = dev.gemm_tile_counters(tiles).expect("counters");
        let args = [
            KernelArg::BufferAt(ab, self.a_offset * size),
            KernelArg::Buffer(bb),
            KernelArg::Buffer(cb),
            KernelArg::Buffer(cb),
            KernelArg::I32(self.m as i32),
            KernelArg::I32(self.n as i32),
            KernelArg::I32(self.k as i32),
            KernelArg::I64(self.batch as i64),
            KernelArg::I32(splits as i32),
            KernelArg::I64(ld_a as i64),
            KernelArg::I64(ld_b as i64),
            KernelArg::I64(self.n as i64),
            KernelArg::I64(self.strides.0 as i64),
            KernelArg::I64(self.strides.1 as i64),
            KernelArg::I64(self.strides.2 as i64),
            KernelArg::I32(self.trans.0 as i32),
            KernelArg::I32(self.trans.1 as i32),
            T::from_f64(self.alpha).arg(),
            T::from_f64(self.beta).arg(),
            KernelArg::I32(0),
            KernelArg::I32(0),
            KernelArg::I32(0),
            KernelArg::Buffer(&workspace),
            KernelArg::Buffer(&counters),
        ];
        dev.launch(&Launch::new(Kernel::gemm(tile, T::DTYPE), (grid, GEMM_BLOCK)).args(args))
            .expect("gemm launch");
    }
}

const SIZES: [usize; 4] = [1, 7, 33, 129];
const TRANS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// Every (m, n, k) in SIZES³, cycling through the transpose combinations.
fn edge_sizes<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(10);
    let mut t = 0;
    for m in SIZES {
        for n in SIZES {
            for k in SIZES {
                Gemm::new(m, n, k, TRANS[t % 4]).check::<T>(dev, &mut rng, None);
                t += 1;
            }
        }
    }
}

fn all_transposes<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(11);
    for trans in TRANS {
        Gemm::new(33, 7, 129, trans).check::<T>(dev, &mut rng, None);
        Gemm::new(65, 70, 17, trans).check::<T>(dev, &mut rng, None);
    }
}

fn large_dimension<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(12);
    Gemm::new(1000, 7, 33, (false, false)).check::<T>(dev, &mut rng, None);
    Gemm::new(5, 33, 1000, (true, true)).check::<T>(dev, &mut rng, None);
    Gemm::new(3, 1000, 9, (false, true)).check::<T>(dev, &mut rng, None);
}

fn batched<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(13);
    for trans in TRANS {
        // A strided per batch, B broadcast (stride 0), C strided; alpha / beta applied.
        let mut g = Gemm::new(20, 9, 13, trans);
        g.batch = 3;
        g.strides = (20 * 13, 0, 20 * 9);
        g.alpha = 0.5;
        g.beta = -2.0;
        g.check::<T>(dev, &mut rng, None);
        // A broadcast, B strided, batch 4.
        let mut g = Gemm::new(7, 33, 5, trans);
        g.batch = 4;
        g.strides = (0, 33 * 5, 7 * 33);
        g.check::<T>(dev, &mut rng, None);
    }
    // Fewer blocks than tiles and batches: every grid dimension is a grid-stride loop.
    let mut g = Gemm::new(257, 260, 40, (false, false));
    g.batch = 3;
    g.strides = (257 * 40, 40 * 260, 257 * 260);
    g.check::<T>(dev, &mut rng, Some((1, 2, 2)));
}

/// Dimensions that are multiples of 4 take the float4 path in f32 (both dtypes checked); an
/// A misaligned by one element must fall back to scalar loads.
fn vectorized_loads<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(16);
    for trans in TRANS {
        Gemm::new(132, 260, 36, trans).check::<T>(dev, &mut rng, None);
        Gemm::new(4, 4, 4, trans).check::<T>(dev, &mut rng, None);
        Gemm::new(8, 200, 1000, trans).check::<T>(dev, &mut rng, None);
        let mut g = Gemm::new(36, 20, 12, trans);
        g.batch = 3;
        g.strides = (36 * 12, 0, 36 * 20);
        g.beta = 0.5;
        g.check::<T>(dev, &mut rng, None);
        let mut g = Gemm::new(64, 68, 16, trans);
        g.a_offset = 1;
        g.check::<T>(dev, &mut rng, None);
    }
}

/// k spans more slices than the cp.async pipeline has stages and ends inside a slice, on the
/// element and the 16-byte copy paths (m, n multiples of 4 or not), and one block runs several
/// tiles in turn, so its stages are refilled for the next tile: a missing or too-weak wait
/// leaves never-landed shared memory in the product.
fn pipeline_depth<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(17);
    for trans in TRANS {
        Gemm::new(130, 67, 83, trans).check::<T>(dev, &mut rng, None);
        Gemm::new(132, 72, 147, trans).check::<T>(dev, &mut rng, Some((1, 1, 1)));
    }
}

/// With beta = 0, C is never read: NaN garbage in C must not leak into the result.
fn beta_zero_ignores_nan(dev: &GpuDevice) {
    let (m, n, k) = (9, 10, 11);
    let a = Rng::new(14).vec(m * k, -1.0, 1.0);
    let b = Rng::new(15).vec(k * n, -1.0, 1.0);
    let g = Gemm::new(m, n, k, (false, false));
    let want = g.reference(&a, &b, &vec![0.0; m * n]);
    let (ab, bb, cb) = (
        upload::<f64>(dev, &a),
        upload::<f64>(dev, &b),
        upload::<f64>(dev, &vec![f64::NAN; m * n]),
    );
    g.launch::<f64>(dev, (&ab, &bb, &cb), GemmTile::Small, 1, (1, 1, 1));
    assert_close("beta = 0", &download::<f64>(dev, &cb), &want, 1e-12);
}

/// Split counts the selection never makes: 4 splits of k = 65 (small tile, 32-wide slices:
/// [0, 32), [32, 64), [64, 65) and an empty last split), more splits than slices, and grids
/// with fewer blocks than work items (a block computes several splits and tiles in turn), with
/// alpha / beta and batch strides.
fn forced_splits<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(17);
    let small = GemmTile::Small;
    for trans in TRANS {
        let mut g = Gemm::new(33, 7, 65, trans);
        g.alpha = 1.5;
        g.beta = -0.5;
        let full = (1, 2, 4);
        g.check_runs::<T>(
            dev,
            &mut rng,
            None,
            &[(small, 4, full), (small, 9, (1, 2, 9))],
        );
        let mut g = Gemm::new(70, 65, 100, trans);
        g.batch = 3;
        g.strides = (70 * 100, 0, 70 * 65);
        g.beta = 2.0;
        let (large_grid, small_grid) = ((1, 1, 2), (3, 3, 5));
        g.check_runs::<T>(
            dev,
            &mut rng,
            None,
            &[
                (GemmTile::Large, 3, large_grid),
                (small, 4, small_grid),
                (small, 2, (3, 3, 6)),
            ],
        );
    }
}

/// A split product run twice gives bitwise the same C (whichever split arrives last), equal to
/// the reference, and leaves every arrival counter at 0.
fn split_runs_are_bitwise_equal<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(18);
    let mut g = Gemm::new(45, 37, 1000, (false, true));
    g.batch = 2;
    g.strides = (45 * 1000, 37 * 1000, 45 * 37);
    let (la, lb, lc) = g.lens();
    let a = rounded::<T>(&rng.vec(la, -1.0, 1.0));
    let b = rounded::<T>(&rng.vec(lb, -1.0, 1.0));
    let want = g.reference(&a, &b, &vec![0.0; lc]);
    let (ab, bb) = (upload::<T>(dev, &a), upload::<T>(dev, &b));
    let plan = select_gemm(T::DTYPE, g.m, g.n, g.k, g.batch, dev.sm_count());
    assert!(plan.splits > 1, "{plan:?}");
    let mut results = Vec::new();
    for _ in 0..2 {
        let cb = upload::<T>(dev, &vec![0.0; lc]);
        g.launch::<T>(dev, (&ab, &bb, &cb), plan.tile, plan.splits, plan.grid);
        results.push(download::<T>(dev, &cb));
    }
    let tol = T::TOL * (g.k as f64).sqrt();
    assert_close("split-K", &results[0], &want, tol);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&results[0]), bits(&results[1]), "two runs of {plan:?}");
    let counters = dev.gemm_tile_counters(1).expect("counters");
    let mut raw = vec![0xa5u8; counters.len_bytes()];
    dev.download(&counters, &mut raw)
        .expect("download counters");
    assert!(raw.iter().all(|&byte| byte == 0), "counters left non-zero");
}

device_tests! {
    matmul_forced_splits_f32 => forced_splits::<f32>;
    matmul_forced_splits_f64 => forced_splits::<f64>;
    matmul_split_runs_bitwise_f32 => split_runs_are_bitwise_equal::<f32>;
    matmul_split_runs_bitwise_f64 => split_runs_are_bitwise_equal::<f64>;
    matmul_edge_sizes_f32 => edge_sizes::<f32>;
    matmul_edge_sizes_f64 => edge_sizes::<f64>;
    matmul_transposes_f32 => all_transposes::<f32>;
    matmul_transposes_f64 => all_transposes::<f64>;
    matmul_large_dimension_f32 => large_dimension::<f32>;
    matmul_large_dimension_f64 => large_dimension::<f64>;
    matmul_batched_f32 => batched::<f32>;
    matmul_batched_f64 => batched::<f64>;
    matmul_beta_zero_ignores_nan => beta_zero_ignores_nan;
    matmul_vectorized_loads_f32 => vectorized_loads::<f32>;
    matmul_vectorized_loads_f64 => vectorized_loads::<f64>;
    matmul_pipeline_depth_f32 => pipeline_depth::<f32>;
    matmul_pipeline_depth_f64 => pipeline_depth::<f64>;
}
