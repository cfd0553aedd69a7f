//! The elementwise kernels' machinery against plain Rust references, on the emulated GPU (and a
//! real one when present): the unary, broadcasting and contiguous binary / ternary kernel
//! templates through representative ops (including the inputs where a formula is delicate:
//! σ at ±30, ln and √ near 0, parameters), small and large grids, fill, strided copies, casts.
//! Every op's kernel is tested at the op level: the tensor crate's `cuda_kernels` test ties each
//! op to its kernel and back, and its values and derivatives run on CUDA against references.

mod common;

use common::{
    assert_close, download, grid_1d, launch, rounded, upload, upload_i64, zeros, Elem, Rng,
};
use curvature_kernels::{Dtype, GpuDevice, Indexing, Kernel, KernelArg, Launch};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// f(x, p0, p1) for unary ops, f(a, b, c) for ternary ones.
type Ref3 = fn(f64, f64, f64) -> f64;
/// f(a, b) for binary ops.
type Ref2 = fn(f64, f64) -> f64;

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Representative unary ops: name, input range and reference f(x, p0, p1).
const UNARY: &[(&str, f64, f64, Ref3)] = &[
    ("neg", -3.0, 3.0, |x, _, _| -x),
    ("exp", -3.0, 3.0, |x, _, _| x.exp()),
    ("log", 0.05, 4.0, |x, _, _| x.ln()),
    ("sqrt", 0.0, 4.0, |x, _, _| x.sqrt()),
    ("sigmoid", -30.0, 30.0, |x, _, _| sigmoid(x)),
    ("sign", -3.0, 3.0, |x, _, _| sign(x)),
    ("powf", 0.1, 3.0, |x, p0, _| x.powf(p0)),
    ("affine", -3.0, 3.0, |x, p0, p1| x * p0 + p1),
];

/// Representative binary ops and their references.
const BINARY: &[(&str, Ref2)] = &[
    ("add", |a, b| a + b),
    ("div", |a, b| a / b),
    ("eq_mask", |a, b| f64::from(u8::from(a == b))),
    ("tanh_backward", |a, b| a * (1.0 - b * b)),
];

/// A ternary op and its reference f(a, b, c).
const TERNARY: &[(&str, Ref3)] = &[("tanh_backward_grad_y", |gg, g, y| -2.0 * y * g * gg)];

fn run_unary<T: Elem>(dev: &GpuDevice, op: &'static str, x: &[f64], p0: f64, p1: f64) -> Vec<f64> {
    let xb = upload::<T>(dev, x);
    let out = zeros::<T>(dev, x.len());
    let args = [
        KernelArg::Buffer(&xb),
        KernelArg::Buffer(&out),
        KernelArg::U64(x.len() as u64),
        T::from_f64(p0).arg(),
        T::from_f64(p1).arg(),
    ];
    launch(
        dev,
        Kernel::unary(op, T::DTYPE),
        grid_1d(x.len()),
        (256, 1, 1),
        &args,
    );
    download::<T>(dev, &out)
}

fn unary_all<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(1);
    let (p0, p1) = (1.7, -0.25);
    for &(op, lo, hi, reference) in UNARY {
        let mut x = rounded::<T>(&rng.vec(1000, lo, hi));
        x[3] = 0.0;
        let want: Vec<f64> = x
            .iter()
            .map(|&v| reference(v, rounded::<T>(&[p0])[0], rounded::<T>(&[p1])[0]))
            .collect();
        let got = run_unary::<T>(dev, op, &x, p0, p1);
        assert_close(&format!("unary_{op}_{}", T::DT), &got, &want, T::TOL * 4.0);
    }
}

fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * dims[d + 1];
    }
    s
}

/// Element strides of `dims` broadcast (right-aligned) to `out` dims: 0 where broadcast.
fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<i64> {
    let own = contiguous_strides(dims);
    let lead = out.len() - dims.len();
    (0..out.len())
        .map(|d| {
            if d < lead || dims[d - lead] == 1 {
                0
            } else {
                own[d - lead] as i64
            }
        })
        .collect()
}

fn multi_index(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

fn offset(idx: &[usize], strides: &[i64]) -> usize {
    idx.iter()
        .zip(strides)
        .map(|(&i, &s)| i as i64 * s)
        .sum::<i64>() as usize
}

fn binary_all<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(2);
    let (da, db, dout) = ([3usize, 1, 5], [4usize, 5], [3usize, 4, 5]);
    let n: usize = dout.iter().product();
    let mut a = rounded::<T>(&rng.vec(15, -2.0, 2.0));
    let b = rounded::<T>(&rng.vec(20, 0.5, 2.0));
    a[0] = b[0]; // one equal pair for `eq`
    let (sa, sb) = (broadcast_strides(&da, &dout), broadcast_strides(&db, &dout));
    let mut table: Vec<i64> = dout.iter().map(|&d| d as i64).collect();
    table.extend(&sa);
    table.extend(&sb);
    let (ab, bb) = (upload::<T>(dev, &a), upload::<T>(dev, &b));
    let tb = upload_i64(dev, &table);
    for &(op, reference) in BINARY {
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let idx = multi_index(i, &dout);
                reference(a[offset(&idx, &sa)], b[offset(&idx, &sb)])
            })
            .collect();
        let out = zeros::<T>(dev, n);
        let args = [
            KernelArg::Buffer(&ab),
            KernelArg::Buffer(&bb),
            KernelArg::Buffer(&out),
            KernelArg::U64(n as u64),
            KernelArg::I32(3),
            KernelArg::Buffer(&tb),
        ];
        launch(
            dev,
            Kernel::binary(op, Indexing::Broadcast, T::DTYPE),
            (1, 1, 1),
            (32, 1, 1),
            &args,
        );
        assert_close(
            &format!("binary_{op}"),
            &download::<T>(dev, &out),
            &want,
            T::TOL,
        );

        // Contiguous fast path on same-shape inputs.
        let m = 700;
        let x = rounded::<T>(&rng.vec(m, -2.0, 2.0));
        let y = rounded::<T>(&rng.vec(m, 0.5, 2.0));
        let want: Vec<f64> = x.iter().zip(&y).map(|(&p, &q)| reference(p, q)).collect();
        let (xb, yb, out) = (
            upload::<T>(dev, &x),
            upload::<T>(dev, &y),
            zeros::<T>(dev, m),
        );
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&yb),
            KernelArg::Buffer(&out),
            KernelArg::U64(m as u64),
        ];
        launch(
            dev,
            Kernel::binary(op, Indexing::Contiguous, T::DTYPE),
            grid_1d(m),
            (256, 1, 1),
            &args,
        );
        assert_close(
            &format!("binary_{op}_contig"),
            &download::<T>(dev, &out),
            &want,
            T::TOL,
        );
    }
}

fn ternary_all<T: Elem>(dev: &GpuDevice) {
    let mut rng = Rng::new(3);
    let dout = [2usize, 3];
    let (gg, g, y) = (
        rounded::<T>(&rng.vec(6, -1.0, 1.0)),
        rounded::<T>(&rng.vec(6, -1.0, 1.0)),
        rounded::<T>(&rng.vec(3, 0.0, 1.0)),
    );
    let sy = broadcast_strides(&[3], &dout);
    let full = broadcast_strides(&dout, &dout);
    let mut table: Vec<i64> = dout.iter().map(|&d| d as i64).collect();
    table.extend(&full);
    table.extend(&full);
    table.extend(&sy);
    let (ggb, gb, yb, tb) = (
        upload::<T>(dev, &gg),
        upload::<T>(dev, &g),
        upload::<T>(dev, &y),
        upload_i64(dev, &table),
    );
    for &(op, reference) in TERNARY {
        let want: Vec<f64> = (0..6).map(|i| reference(gg[i], g[i], y[i % 3])).collect();
        let out = zeros::<T>(dev, 6);
        let args = [
            KernelArg::Buffer(&ggb),
            KernelArg::Buffer(&gb),
            KernelArg::Buffer(&yb),
            KernelArg::Buffer(&out),
            KernelArg::U64(6),
            KernelArg::I32(2),
            KernelArg::Buffer(&tb),
        ];
        launch(
            dev,
            Kernel::ternary(op, Indexing::Broadcast, T::DTYPE),
            (1, 1, 1),
            (64, 1, 1),
            &args,
        );
        assert_close(op, &download::<T>(dev, &out), &want, T::TOL);

        let y_full: Vec<f64> = (0..6).map(|i| y[i % 3]).collect();
        let yfb = upload::<T>(dev, &y_full);
        let out = zeros::<T>(dev, 6);
        let args = [
            KernelArg::Buffer(&ggb),
            KernelArg::Buffer(&gb),
            KernelArg::Buffer(&yfb),
            KernelArg::Buffer(&out),
            KernelArg::U64(6),
        ];
        launch(
            dev,
            Kernel::ternary(op, Indexing::Contiguous, T::DTYPE),
            (1, 1, 1),
            (64, 1, 1),
            &args,
        );
        assert_close(op, &download::<T>(dev, &out), &want, T::TOL);
    }
}

fn fill_and_cast<T: Elem>(dev: &GpuDevice) {
    let n = 1025;
    let out = zeros::<T>(dev, n);
    let args = [
        KernelArg::Buffer(&out),
        KernelArg::U64(n as u64),
        T::from_f64(2.5).arg(),
    ];
    launch(dev, Kernel::fill(T::DTYPE), (3, 1, 1), (128, 1, 1), &args);
    assert_eq!(download::<T>(dev, &out), vec![2.5; n]);

    let x = Rng::new(4).vec(300, -1e3, 1e3);
    let x32 = rounded::<f32>(&x);
    let (b32, b64) = (upload::<f32>(dev, &x32), zeros::<f64>(dev, 300));
    launch(
        dev,
        Kernel::cast(Dtype::F32, Dtype::F64),
        grid_1d(300),
        (256, 1, 1),
        &[
            KernelArg::Buffer(&b32),
            KernelArg::Buffer(&b64),
            KernelArg::U64(300),
        ],
    );
    assert_eq!(download::<f64>(dev, &b64), x32);
    let (src, dst) = (upload::<f64>(dev, &x), zeros::<f32>(dev, 300));
    launch(
        dev,
        Kernel::cast(Dtype::F64, Dtype::F32),
        grid_1d(300),
        (256, 1, 1),
        &[
            KernelArg::Buffer(&src),
            KernelArg::Buffer(&dst),
            KernelArg::U64(300),
        ],
    );
    assert_eq!(download::<f32>(dev, &dst), x32);
}

/// copy_strided for a permute, a narrow (offset) and an expand (stride 0).
fn copy_strided<T: Elem>(dev: &GpuDevice) {
    let src_dims = [3usize, 4, 5];
    let x: Vec<f64> = (0..60).map(|i| i as f64).collect();
    let xb = upload::<T>(dev, &x);
    let sx = contiguous_strides(&src_dims);
    // (out dims, src strides, offset)
    let cases: [(Vec<usize>, Vec<i64>, usize); 3] = [
        (
            vec![5, 3, 4],
            vec![sx[2] as i64, sx[0] as i64, sx[1] as i64],
            0,
        ), // permute (2, 0, 1)
        (
            vec![2, 2, 5],
            vec![sx[0] as i64, sx[1] as i64, 1],
            sx[0] + 2 * sx[1],
        ), // x[1.., 2.., :]
        (vec![2, 3, 4, 5], vec![0, sx[0] as i64, sx[1] as i64, 1], 0), // expand to [2, 3, 4, 5]
    ];
    for (dims, strides, off) in cases {
        let n: usize = dims.iter().product();
        let want: Vec<f64> = (0..n)
            .map(|i| x[off + offset(&multi_index(i, &dims), &strides)])
            .collect();
        let mut table: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        table.extend(&strides);
        let tb = upload_i64(dev, &table);
        let out = zeros::<T>(dev, n);
        let args = [
            KernelArg::Buffer(&xb),
            KernelArg::Buffer(&out),
            KernelArg::U64(n as u64),
            KernelArg::I32(dims.len() as i32),
            KernelArg::Buffer(&tb),
            KernelArg::I64(off as i64),
        ];
        launch(
            dev,
            Kernel::copy_strided(T::DTYPE),
            (2, 1, 1),
            (32, 1, 1),
            &args,
        );
        assert_eq!(download::<T>(dev, &out), want, "copy_strided to {dims:?}");
    }
}

/// `KernelArg::BufferAt` passes views: neg of x[3..10] written into out[2..9].
fn buffer_views<T: Elem>(dev: &GpuDevice) {
    let size = std::mem::size_of::<T>();
    let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let (xb, out) = (upload::<T>(dev, &x), zeros::<T>(dev, 10));
    let args = [
        KernelArg::BufferAt(&xb, 3 * size),
        KernelArg::BufferAt(&out, 2 * size),
        KernelArg::U64(7),
        T::from_f64(0.0).arg(),
        T::from_f64(0.0).arg(),
    ];
    launch(
        dev,
        Kernel::unary("neg", T::DTYPE),
        (1, 1, 1),
        (32, 1, 1),
        &args,
    );
    let mut want = vec![0.0; 10];
    for i in 0..7 {
        want[2 + i] = -x[3 + i];
    }
    assert_eq!(download::<T>(dev, &out), want);
    let past_end = [KernelArg::BufferAt(&xb, 10 * size + 1)];
    let fill = Launch::new(Kernel::fill(Dtype::F32), ((1, 1, 1), (1, 1, 1))).args(past_end);
    assert!(dev.launch(&fill).is_err());
}

device_tests! {
    buffer_views_f32 => buffer_views::<f32>;
    buffer_views_f64 => buffer_views::<f64>;
    unary_ops_f32 => unary_all::<f32>;
    unary_ops_f64 => unary_all::<f64>;
    binary_ops_f32 => binary_all::<f32>;
    binary_ops_f64 => binary_all::<f64>;
    ternary_ops_f32 => ternary_all::<f32>;
    ternary_ops_f64 => ternary_all::<f64>;
    fill_and_cast_f32 => fill_and_cast::<f32>;
    fill_and_cast_f64 => fill_and_cast::<f64>;
    copy_strided_f32 => copy_strided::<f32>;
    copy_strided_f64 => copy_strided::<f64>;
}
