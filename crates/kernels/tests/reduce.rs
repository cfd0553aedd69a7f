//! Reduction-family kernels against plain Rust references: axis sums and maxima under several
//! block shapes, log-softmax and logsumexp (including extreme rows), gather and the strided
//! scatter-copy used for cat / pad.

mod common;

use common::{assert_close, download, rounded, upload, upload_i64, zeros, Elem, Rng};
use curvature_kernels::{Dtype, GpuDevice, Kernel, KernelArg, Launch};

fn launch(dev: &GpuDevice, kernel: Kernel, grid: u32, block: (u32, u32, u32), args: &[KernelArg]) {
    common::launch(dev, kernel, (grid, 1, 1), block, args);
}

/// (outer, red, inner, block, grid)
type AxisCase = (usize, usize, usize, (u32, u32, u32), u32);
const AXIS_CASES: [AxisCase; 6] = [
    (1, 1000, 1, (1, 256, 1), 1),
    (3, 7, 50, (32, 8, 1), 4),
    (2, 5, 3, (4, 3, 1), 2),
    (4, 0, 3, (4, 4, 1), 3),
    (6, 33, 1, (1, 64, 1), 2),
    (1, 257, 40, (8, 100, 1), 3),
];

fn axis_reductions<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(20);
    for (outer, red, inner, block, grid) in AXIS_CASES {
        let x = rounded::<T>(&rng.vec(outer * red * inner, -1.0, 1.0));
        let at = |o: usize, r: usize, i: usize| x[(o * red + r) * inner + i];
        let mut sum = Vec::new();
        let mut max = Vec::new();
        for o in 0..outer {
            for i in 0..inner {
                sum.push((0..red).map(|r| at(o, r, i)).sum::<f64>());
                max.push(
                    (0..red)
                        .map(|r| at(o, r, i))
                        .fold(f64::NEG_INFINITY, f64::max),
                );
            }
        }
        let xb = upload::<T>(dev, &x);
        for (op, want) in [("reduce_sum", &sum), ("reduce_max", &max)] {
            let out = zeros::<T>(dev, outer * inner);
            let args = [
                KernelArg::Buffer(&xb),
                KernelArg::Buffer(&out),
                KernelArg::I64(outer as i64),
                KernelArg::I64(red as i64),
                KernelArg::I64(inner as i64),
            ];
            launch(dev, Kernel::reduce(op, T::DTYPE), grid, block, &args);
            let what = format!("{op}_{} [{outer}, {red}, {inner}] block {block:?}", T::DT);
            assert_close(
                &what,
                &download::<T>(dev, &out),
                want,
                T::TOL * (red as f64).sqrt().max(1.0),
            );
        }
    }
}

fn softmax_rows<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(21);
    for (rows, cols, block) in [(5usize, 1000usize, 256u32), (7, 3, 64), (3, 129, 32)] {
        let mut x = rounded::<T>(&rng.vec(rows * cols, -5.0, 5.0));
        // A far-shifted row (stability) and, when wide enough, a row with a −inf entry.
        for v in &mut x[cols..2 * cols] {
            *v += 80.0;
        }
        x[2 * cols] = f64::NEG_INFINITY;
        let mut lsm = Vec::new();
        let mut lse = Vec::new();
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let l = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            lse.push(l);
            lsm.extend(row.iter().map(|v| v - l));
        }
        let xb = upload::<T>(dev, &x);
        let (out, out_lse) = (zeros::<T>(dev, rows * cols), zeros::<T>(dev, rows));
        let dims = [KernelArg::I64(rows as i64), KernelArg::I64(cols as i64)];
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out),
            dims[0],
            dims[1],
        ];
        launch(dev, Kernel::log_softmax(T::DTYPE), 2, (block, 1, 1), &args);
        let tol = T::TOL * 100.0;
        assert_close("log_softmax", &download::<T>(dev, &out), &lsm, tol);
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out_lse),
            dims[0],
            dims[1],
        ];
        launch(dev, Kernel::logsumexp(T::DTYPE), 3, (block, 1, 1), &args);
        assert_close("logsumexp", &download::<T>(dev, &out_lse), &lse, tol);
    }
}

/// Rows that are all −inf give logsumexp −inf (not NaN); an empty row gives −inf.
fn logsumexp_extremes(dev: &GpuDevice) {
    let x = [f64::NEG_INFINITY, f64::NEG_INFINITY, 1.0, 2.0];
    let xb = upload::<f64>(dev, &x);
    let out = zeros::<f64>(dev, 2);
    let args = [
        KernelArg::Buffer(&xb),
        KernelArg::Buffer(&out),
        KernelArg::I64(2),
        KernelArg::I64(2),
    ];
    launch(dev, Kernel::logsumexp(Dtype::F64), 1, (32, 1, 1), &args);
    let want = [f64::NEG_INFINITY, 2.0 + (1.0 + (-1.0f64).exp()).ln()];
    assert_close(
        "logsumexp extremes",
        &download::<f64>(dev, &out),
        &want,
        1e-12,
    );
    let args = [
        KernelArg::Buffer(&xb),
        KernelArg::Buffer(&out),
        KernelArg::I64(2),
        KernelArg::I64(0),
    ];
    launch(dev, Kernel::logsumexp(Dtype::F64), 1, (32, 1, 1), &args);
    assert_eq!(download::<f64>(dev, &out), vec![f64::NEG_INFINITY; 2]);
}

fn gather<T: Elem>(dev: &GpuDevice) {
    let (outer, axis_len, inner) = (2usize, 5usize, 3usize);
    let x: Vec<f64> = (0..outer * axis_len * inner).map(|i| i as f64).collect();
    let idx = [4i64, 0, 0, 2, 1];
    let mut want = Vec::new();
    for o in 0..outer {
        for &j in &idx {
            for i in 0..inner {
                want.push(x[(o * axis_len + j as usize) * inner + i]);
            }
        }
    }
    let (xb, ib, out) = (
        upload::<T>(dev, &x),
        upload_i64(dev, &idx),
        zeros::<T>(dev, want.len()),
    );
    let args = [
        KernelArg::Buffer(&xb),
        KernelArg::Buffer(&ib),
        KernelArg::Buffer(&out),
        KernelArg::I64(outer as i64),
        KernelArg::I64(axis_len as i64),
        KernelArg::I64(inner as i64),
        KernelArg::I64(idx.len() as i64),
    ];
    launch(dev, Kernel::gather(T::DTYPE), 1, (16, 1, 1), &args);
    assert_eq!(download::<T>(dev, &out), want);
}

/// Writes a [2, 3] block into a zeroed [4, 5] at (1, 2): the slice write behind cat / pad.
fn copy_into_strided<T: Elem>(dev: &GpuDevice) {
    let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut want = vec![0.0; 20];
    for r in 0..2 {
        for c in 0..3 {
            want[(1 + r) * 5 + 2 + c] = src[r * 3 + c];
        }
    }
    let (sb, db, tb) = (
        upload::<T>(dev, &src),
        zeros::<T>(dev, 20),
        upload_i64(dev, &[2, 3, 5, 1]),
    );
    let args = [
        KernelArg::Buffer(&sb),
        KernelArg::Buffer(&db),
        KernelArg::U64(6),
        KernelArg::I32(2),
        KernelArg::Buffer(&tb),
        KernelArg::I64(7),
    ];
    launch(
        dev,
        Kernel::copy_into_strided(T::DTYPE),
        1,
        (32, 1, 1),
        &args,
    );
    assert_eq!(download::<T>(dev, &db), want);
}

/// The suggested geometry of `curvature_kernels::geometry` gives the right sums and rows.
fn suggested_geometry(dev: &GpuDevice) {
    use curvature_kernels::geometry::{reduce_axis_launch, row_launch};
    let mut rng = Rng::new(22);
    for (outer, red, inner) in [(1usize, 300usize, 1usize), (2, 9, 5), (3, 4, 70)] {
        let x = rng.vec(outer * red * inner, -1.0, 1.0);
        let want: Vec<f64> = (0..outer * inner)
            .map(|oi| {
                (0..red)
                    .map(|r| x[((oi / inner) * red + r) * inner + oi % inner])
                    .sum()
            })
            .collect();
        let (xb, out) = (upload::<f64>(dev, &x), zeros::<f64>(dev, outer * inner));
        let (grid, block) = reduce_axis_launch(outer, inner);
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out),
            KernelArg::I64(outer as i64),
            KernelArg::I64(red as i64),
            KernelArg::I64(inner as i64),
        ];
        let kernel = Kernel::reduce("reduce_sum", Dtype::F64);
        dev.launch(&Launch::new(kernel, (grid, block)).args(args))
            .expect("reduce_sum");
        assert_close(
            "reduce_sum (suggested geometry)",
            &download::<f64>(dev, &out),
            &want,
            1e-12,
        );
    }
    for (rows, cols) in [(3usize, 5usize), (2, 300)] {
        let x = rng.vec(rows * cols, -3.0, 3.0);
        let want: Vec<f64> = x
            .chunks(cols)
            .map(|row| row.iter().map(|v| v.exp()).sum::<f64>().ln())
            .collect();
        let (xb, out) = (upload::<f64>(dev, &x), zeros::<f64>(dev, rows));
        let (grid, block) = row_launch(rows, cols);
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out),
            KernelArg::I64(rows as i64),
            KernelArg::I64(cols as i64),
        ];
        let kernel = Kernel::logsumexp(Dtype::F64);
        dev.launch(&Launch::new(kernel, (grid, block)).args(args))
            .expect("logsumexp");
        assert_close(
            "logsumexp (suggested geometry)",
            &download::<f64>(dev, &out),
            &want,
            1e-12,
        );
    }
}

device_tests! {
    reduce_with_suggested_geometry => suggested_geometry;
    reduce_axis_f32 => axis_reductions::<f32>;
    reduce_axis_f64 => axis_reductions::<f64>;
    log_softmax_and_logsumexp_f32 => softmax_rows::<f32>;
    log_softmax_and_logsumexp_f64 => softmax_rows::<f64>;
    logsumexp_extremes_f64 => logsumexp_extremes;
    gather_f32 => gather::<f32>;
    gather_f64 => gather::<f64>;
    copy_into_strided_f32 => copy_into_strided::<f32>;
    copy_into_strided_f64 => copy_into_strided::<f64>;
}
