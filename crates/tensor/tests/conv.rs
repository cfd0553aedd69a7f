//! Convolution and pooling on every device: values in f64 (to 1e-12) and f32 against direct
//! nested loops written here, across strides, paddings, dilations and groups; unfold and fold
//! against their definitions and as adjoints; and every rejected input as an error naming the
//! op.
//!
//! The CUDA instances run on a real GPU when present, else on the emulated GPU.

mod common;

use curvature_tensor::{
    Conv1dOptions, Conv2dOptions, DType, Device, Tensor, TensorError, Window2d,
};

/// Seeded values in [−1, 1) (a small linear congruential generator: enough for test data).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(data: &[f64], dims: &[usize], dtype: DType, device: Device) -> Tensor {
    Tensor::from_f64s(data, dims, dtype, device).expect("a test tensor")
}

/// max |a − b| / max |b|.
fn relative_error(ours: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "lengths differ");
    let scale = reference
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    ours.iter()
        .zip(reference)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn assert_close(what: &str, ours: &Tensor, dims: &[usize], reference: &[f64], tolerance: f64) {
    assert_eq!(ours.dims(), dims, "{what}: shape");
    let got = ours.to_f64s().expect("download");
    let error = relative_error(&got, reference);
    assert!(
        error <= tolerance,
        "{what}: relative error {error:.1e}\n{got:?}\nvs {reference:?}"
    );
}

/// The direct 2-D convolution: out[n, o, y, x] = Σ_{c, i, j} w[o, c, i, j] ·
/// in[n, g·Cg + c, y·sh − ph + i·dh, x·sw − pw + j·dw], zero outside the input.
fn conv2d_reference(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    o: &Conv2dOptions,
) -> (Vec<f64>, Vec<usize>) {
    let [n, c, h, wi] = xd;
    let [oc, cg, kh, kw] = wd;
    let oh = (h + 2 * o.padding.0 - o.dilation.0 * (kh - 1) - 1) / o.stride.0 + 1;
    let ow = (wi + 2 * o.padding.1 - o.dilation.1 * (kw - 1) - 1) / o.stride.1 + 1;
    let per_group = oc / o.groups;
    let mut out = vec![0.0; n * oc * oh * ow];
    for b in 0..n {
        for f in 0..oc {
            let group = f / per_group;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let row = (y * o.stride.0 + i * o.dilation.0) as isize
                                    - o.padding.0 as isize;
                                let col = (xx * o.stride.1 + j * o.dilation.1) as isize
                                    - o.padding.1 as isize;
                                if row < 0 || col < 0 || row >= h as isize || col >= wi as isize {
                                    continue;
                                }
                                let channel = group * cg + ci;
                                let input =
                                    x[((b * c + channel) * h + row as usize) * wi + col as usize];
                                acc += w[((f * cg + ci) * kh + i) * kw + j] * input;
                            }
                        }
                    }
                    out[((b * oc + f) * oh + y) * ow + xx] = acc;
                }
            }
        }
    }
    (out, vec![n, oc, oh, ow])
}

/// The direct 1-D convolution: out[n, o, t] = Σ_{c, j} w[o, c, j] · in[n, g·Cg + c, t·s − p + j·d].
fn conv1d_reference(
    x: &[f64],
    xd: [usize; 3],
    w: &[f64],
    wd: [usize; 3],
    o: &Conv1dOptions,
) -> (Vec<f64>, Vec<usize>) {
    let [n, c, l] = xd;
    let [oc, cg, k] = wd;
    let lo = (l + 2 * o.padding - o.dilation * (k - 1) - 1) / o.stride + 1;
    let per_group = oc / o.groups;
    let mut out = vec![0.0; n * oc * lo];
    for b in 0..n {
        for f in 0..oc {
            for t in 0..lo {
                let mut acc = 0.0;
                for ci in 0..cg {
                    for j in 0..k {
                        let at = (t * o.stride + j * o.dilation) as isize - o.padding as isize;
                        if at >= 0 && (at as usize) < l {
                            let channel = f / per_group * cg + ci;
                            acc +=
                                w[(f * cg + ci) * k + j] * x[(b * c + channel) * l + at as usize];
                        }
                    }
                }
                out[(b * oc + f) * lo + t] = acc;
            }
        }
    }
    (out, vec![n, oc, lo])
}

/// (input, weight, options) of the 2-D cases: every option alone and together.
fn conv2d_cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions)> {
    let o = |stride, padding, dilation, groups| Conv2dOptions {
        stride,
        padding,
        dilation,
        groups,
    };
    vec![
        ([2, 3, 5, 6], [4, 3, 3, 2], Conv2dOptions::default()),
        ([2, 3, 5, 6], [4, 3, 3, 3], o((2, 1), (0, 0), (1, 1), 1)),
        ([1, 2, 4, 5], [3, 2, 3, 3], o((1, 1), (1, 2), (1, 1), 1)),
        ([1, 2, 6, 7], [2, 2, 2, 3], o((1, 1), (0, 0), (2, 2), 1)),
        ([2, 4, 5, 5], [6, 2, 3, 3], o((1, 1), (1, 1), (1, 1), 2)),
        ([1, 6, 7, 6], [6, 1, 3, 2], o((2, 3), (2, 1), (2, 1), 6)),
        ([2, 2, 3, 3], [2, 2, 1, 1], Conv2dOptions::default()),
    ]
}

fn conv1d_cases() -> Vec<([usize; 3], [usize; 3], Conv1dOptions)> {
    let o = |stride, padding, dilation, groups| Conv1dOptions {
        stride,
        padding,
        dilation,
        groups,
    };
    vec![
        ([2, 3, 7], [4, 3, 3], Conv1dOptions::default()),
        ([2, 4, 9], [6, 2, 2], o(2, 1, 3, 2)),
        ([1, 3, 5], [3, 1, 4], o(1, 2, 1, 3)),
    ]
}

fn conv_values_match_direct_loops(device: Device) {
    for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        for (k, (xd, wd, options)) in conv2d_cases().into_iter().enumerate() {
            let (x, w) = (
                values(xd.iter().product(), 2 * k as u64),
                values(wd.iter().product(), 2 * k as u64 + 1),
            );
            let (expected, dims) = conv2d_reference(&x, xd, &w, wd, &options);
            let out = tensor(&x, &xd, dtype, device)
                .conv2d_with(&tensor(&w, &wd, dtype, device), &options)
                .expect("conv2d");
            assert_close(
                &format!("conv2d {xd:?} * {wd:?} {options:?} {dtype}"),
                &out,
                &dims,
                &expected,
                tolerance,
            );
        }
        for (k, (xd, wd, options)) in conv1d_cases().into_iter().enumerate() {
            let (x, w) = (
                values(xd.iter().product(), 50 + k as u64),
                values(wd.iter().product(), 60 + k as u64),
            );
            let (expected, dims) = conv1d_reference(&x, xd, &w, wd, &options);
            let out = tensor(&x, &xd, dtype, device)
                .conv1d_with(&tensor(&w, &wd, dtype, device), &options)
                .expect("conv1d");
            assert_close(
                &format!("conv1d {xd:?} * {wd:?} {options:?} {dtype}"),
                &out,
                &dims,
                &expected,
                tolerance,
            );
        }
    }
    // The short forms are the defaults with stride and padding.
    let (xd, wd) = ([1, 2, 5, 4], [3, 2, 2, 3]);
    let (x, w) = (values(40, 7), values(36, 8));
    let options = Conv2dOptions {
        stride: (2, 1),
        padding: (1, 2),
        ..Conv2dOptions::default()
    };
    let (expected, dims) = conv2d_reference(&x, xd, &w, wd, &options);
    let out = tensor(&x, &xd, DType::F64, device)
        .conv2d(&tensor(&w, &wd, DType::F64, device), (2, 1), (1, 2))
        .expect("conv2d");
    assert_close("conv2d short form", &out, &dims, &expected, 1e-12);
    let options = Conv1dOptions {
        stride: 2,
        padding: 1,
        ..Conv1dOptions::default()
    };
    let (expected, dims) = conv1d_reference(&x[..10], [1, 2, 5], &w[..12], [3, 2, 2], &options);
    let out = tensor(&x[..10], &[1, 2, 5], DType::F64, device)
        .conv1d(&tensor(&w[..12], &[3, 2, 2], DType::F64, device), 2, 1)
        .expect("conv1d");
    assert_close("conv1d short form", &out, &dims, &expected, 1e-12);
}

/// unfold2d against its definition, fold2d against the adjoint identity
/// ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩, and the fill of the padding.
fn unfold_and_fold_match_their_definitions(device: Device) {
    let window = Window2d {
        kernel: (2, 3),
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
    };
    let (n, c, h, w) = (2, 2, 4, 5);
    let (oh, ow) = ((h + 2 - 2) / 2 + 1, (w + 2 - 5) + 1);
    let x = values(n * c * h * w, 11);
    for fill in [0.0, f64::NEG_INFINITY] {
        let cols = tensor(&x, &[n, c, h, w], DType::F64, device)
            .unfold2d_filled(&window, fill)
            .expect("unfold2d");
        let mut expected = Vec::new();
        for b in 0..n {
            for ch in 0..c {
                for i in 0..2 {
                    for j in 0..3 {
                        for y in 0..oh {
                            for xx in 0..ow {
                                let row = (y * 2 + i) as isize - 1;
                                let col = (xx + 2 * j) as isize - 1;
                                let inside =
                                    row >= 0 && col >= 0 && row < h as isize && col < w as isize;
                                expected.push(if inside {
                                    x[((b * c + ch) * h + row as usize) * w + col as usize]
                                } else {
                                    fill
                                });
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cols.dims(), &[n, c * 6, oh * ow]);
        assert_eq!(
            cols.to_f64s().expect("download"),
            expected,
            "unfold2d fill {fill}"
        );
    }
    let columns = values(n * c * 6 * oh * ow, 12);
    let folded = tensor(&columns, &[n, c * 6, oh * ow], DType::F64, device)
        .fold2d((h, w), &window)
        .expect("fold2d");
    assert_eq!(folded.dims(), &[n, c, h, w]);
    let unfolded = tensor(&x, &[n, c, h, w], DType::F64, device)
        .unfold2d(&window)
        .expect("unfold2d");
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let lhs = dot(&unfolded.to_f64s().expect("download"), &columns);
    let rhs = dot(&x, &folded.to_f64s().expect("download"));
    assert!(
        (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
        "adjoint: {lhs} vs {rhs}"
    );
    // Every element of the image is covered as often as windows read it: fold of ones.
    let ones = Tensor::ones([1, 6, oh * ow], DType::F64, device).expect("ones");
    let counts = ones
        .fold2d((h, w), &window)
        .expect("fold2d")
        .to_f64s()
        .expect("download");
    for y in 0..h {
        for xx in 0..w {
            let mut reads = 0.0;
            for (i, j, oy, ox) in itertools(2, 3, oh, ow) {
                if oy * 2 + i == y + 1 && ox + 2 * j == xx + 1 {
                    reads += 1.0;
                }
            }
            assert_eq!(counts[y * w + xx], reads, "fold of ones at ({y}, {xx})");
        }
    }
}

/// unfold2d and fold2d against direct loops over many small geometries: every window tap
/// inside, partly inside or wholly in the padding, strided and dilated.
fn unfold_and_fold_match_direct_loops_over_many_geometries(device: Device) {
    let mut seed = 100;
    for size in [(1, 3), (3, 2), (4, 5), (2, 1)] {
        for kernel in [(1, 2), (3, 1), (2, 3), (1, 5)] {
            for stride in [(1, 1), (2, 3)] {
                for padding in [(0, 0), (1, 2), (0, 3)] {
                    for dilation in [(1, 1), (2, 1)] {
                        let window = Window2d {
                            kernel,
                            stride,
                            padding,
                            dilation,
                        };
                        let Ok(out) = window.output_size("test", size) else {
                            continue;
                        };
                        seed += 1;
                        check_unfold_and_fold(device, size, &window, out, seed);
                    }
                }
            }
        }
    }
}

/// One geometry of [`unfold_and_fold_match_direct_loops_over_many_geometries`], two channels.
fn check_unfold_and_fold(
    device: Device,
    (h, w): (usize, usize),
    window: &Window2d,
    (oh, ow): (usize, usize),
    seed: u64,
) {
    let (kh, kw) = window.kernel;
    let image = values(2 * h * w, seed);
    let columns = values(2 * kh * kw * oh * ow, seed + 1000);
    let mut unfolded = Vec::new();
    let mut folded = vec![0.0; 2 * h * w];
    for c in 0..2 {
        for (i, j, y, x) in itertools(kh, kw, oh, ow) {
            let row =
                (y * window.stride.0 + i * window.dilation.0) as isize - window.padding.0 as isize;
            let col =
                (x * window.stride.1 + j * window.dilation.1) as isize - window.padding.1 as isize;
            let inside = row >= 0 && col >= 0 && row < h as isize && col < w as isize;
            let at = (c * h + row.max(0) as usize) * w + col.max(0) as usize;
            unfolded.push(if inside { image[at] } else { 0.0 });
            if inside {
                folded[at] += columns[unfolded.len() - 1];
            }
        }
    }
    let what = format!("{window:?} over {h} × {w}");
    let ours = tensor(&image, &[1, 2, h, w], DType::F64, device)
        .unfold2d(window)
        .expect("unfold2d");
    assert_close(
        &format!("unfold2d {what}"),
        &ours,
        &[1, 2 * kh * kw, oh * ow],
        &unfolded,
        0.0,
    );
    let ours = tensor(&columns, &[1, 2 * kh * kw, oh * ow], DType::F64, device)
        .fold2d((h, w), window)
        .expect("fold2d");
    assert_close(
        &format!("fold2d {what}"),
        &ours,
        &[1, 2, h, w],
        &folded,
        1e-15,
    );
}

/// Every (i, j, oy, ox) in row-major order.
fn itertools(
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..kh).flat_map(move |i| {
        (0..kw).flat_map(move |j| (0..oh).flat_map(move |y| (0..ow).map(move |x| (i, j, y, x))))
    })
}

/// Max and average pooling over windows, written directly: −∞ (max) or 0 (average, divided by
/// kh·kw) outside the input.
fn pool_reference(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    max: bool,
) -> (Vec<f64>, Vec<usize>) {
    let oh = (h + 2 * padding.0 - kernel.0) / stride.0 + 1;
    let ow = (w + 2 * padding.1 - kernel.1) / stride.1 + 1;
    let mut out = Vec::new();
    for plane in 0..n * c {
        for y in 0..oh {
            for xx in 0..ow {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for i in 0..kernel.0 {
                    for j in 0..kernel.1 {
                        let row = (y * stride.0 + i) as isize - padding.0 as isize;
                        let col = (xx * stride.1 + j) as isize - padding.1 as isize;
                        if row < 0 || col < 0 || row >= h as isize || col >= w as isize {
                            continue;
                        }
                        let v = x[(plane * h + row as usize) * w + col as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.push(if max {
                    acc
                } else {
                    acc / (kernel.0 * kernel.1) as f64
                });
            }
        }
    }
    (out, vec![n, c, oh, ow])
}

/// Adaptive average pooling written directly: output (i, j) is the mean of rows
/// floor(i·H/oh) .. ceil((i+1)·H/oh) and the matching columns.
fn adaptive_reference(x: &[f64], [n, c, h, w]: [usize; 4], (oh, ow): (usize, usize)) -> Vec<f64> {
    let mut out = Vec::new();
    for plane in 0..n * c {
        for i in 0..oh {
            let (r0, r1) = ((i * h) as f64 / oh as f64, ((i + 1) * h) as f64 / oh as f64);
            let (r0, r1) = (r0.floor() as usize, r1.ceil() as usize);
            for j in 0..ow {
                let (c0, c1) = ((j * w) as f64 / ow as f64, ((j + 1) * w) as f64 / ow as f64);
                let (c0, c1) = (c0.floor() as usize, c1.ceil() as usize);
                let mut sum = 0.0;
                for row in r0..r1 {
                    for col in c0..c1 {
                        sum += x[(plane * h + row) * w + col];
                    }
                }
                out.push(sum / ((r1 - r0) * (c1 - c0)) as f64);
            }
        }
    }
    out
}

fn pooling_values_match_direct_loops(device: Device) {
    let dims = [2, 3, 5, 7];
    let x = values(dims.iter().product(), 21);
    let cases = [
        ((2, 2), (2, 2), (0, 0)),
        ((3, 3), (1, 2), (1, 1)),
        ((3, 2), (2, 1), (1, 0)),
        ((5, 7), (1, 1), (0, 0)),
    ];
    for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
        let input = tensor(&x, &dims, dtype, device);
        for (kernel, stride, padding) in cases {
            let (expected, out_dims) = pool_reference(&x, dims, kernel, stride, padding, true);
            let ours = input
                .max_pool2d(kernel, stride, padding)
                .expect("max_pool2d");
            assert_close(
                &format!("max_pool2d {kernel:?} {stride:?} {padding:?} {dtype}"),
                &ours,
                &out_dims,
                &expected,
                tolerance,
            );
            let (expected, out_dims) = pool_reference(&x, dims, kernel, stride, padding, false);
            let ours = input
                .avg_pool2d(kernel, stride, padding)
                .expect("avg_pool2d");
            assert_close(
                &format!("avg_pool2d {kernel:?} {stride:?} {padding:?} {dtype}"),
                &ours,
                &out_dims,
                &expected,
                tolerance,
            );
        }
        for size in [(1, 1), (2, 3), (3, 4), (5, 7), (4, 2)] {
            let expected = adaptive_reference(&x, dims, size);
            let ours = input
                .adaptive_avg_pool2d(size)
                .expect("adaptive_avg_pool2d");
            assert_close(
                &format!("adaptive_avg_pool2d {size:?} {dtype}"),
                &ours,
                &[2, 3, size.0, size.1],
                &expected,
                tolerance,
            );
        }
    }
}

/// An empty batch gives an empty output of the right shape.
fn empty_batches_give_empty_outputs(device: Device) {
    let x = Tensor::zeros([0, 2, 4, 4], DType::F64, device).expect("zeros");
    let w = Tensor::zeros([3, 2, 3, 3], DType::F64, device).expect("zeros");
    assert_eq!(
        x.conv2d(&w, (1, 1), (1, 1)).expect("conv2d").dims(),
        &[0, 3, 4, 4]
    );
    assert_eq!(
        x.max_pool2d((2, 2), (2, 2), (0, 0))
            .expect("max_pool2d")
            .dims(),
        &[0, 2, 2, 2]
    );
    assert_eq!(
        x.avg_pool2d((2, 2), (2, 2), (1, 1))
            .expect("avg_pool2d")
            .dims(),
        &[0, 2, 3, 3]
    );
    assert_eq!(
        x.adaptive_avg_pool2d((1, 1)).expect("adaptive").dims(),
        &[0, 2, 1, 1]
    );
}

device_tests!(
    conv_values_match_direct_loops,
    unfold_and_fold_match_their_definitions,
    unfold_and_fold_match_direct_loops_over_many_geometries,
    pooling_values_match_direct_loops,
    empty_batches_give_empty_outputs,
);

fn error_of<T: std::fmt::Debug>(result: curvature_tensor::Result<T>) -> String {
    let e: TensorError = result.expect_err("an error");
    e.to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} does not mention {part:?}"
        );
    }
}

#[test]
fn conv_rejects_bad_inputs_with_errors_naming_op_and_shapes() {
    let cpu = Device::Cpu;
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F64, cpu).expect("zeros");
    let x = z(&[1, 4, 5, 5]);
    let conv = |x: &Tensor, w: &Tensor, o: Conv2dOptions| error_of(x.conv2d_with(w, &o));
    let d = Conv2dOptions::default();
    // Ranks.
    assert_mentions(
        &conv(&z(&[4, 5, 5]), &z(&[2, 4, 3, 3]), d),
        &["conv2d", "[4, 5, 5]", "[N, C, H, W]"],
    );
    assert_mentions(&conv(&x, &z(&[2, 4, 3]), d), &["conv2d", "[2, 4, 3]"]);
    assert_mentions(
        &error_of(z(&[1, 4, 5, 5]).conv1d(&z(&[2, 4, 3]), 1, 0)),
        &["conv1d", "[N, C, L]"],
    );
    // Channels against weight × groups, out channels against groups, zero groups.
    assert_mentions(
        &conv(&x, &z(&[2, 3, 3, 3]), d),
        &["conv2d", "[1, 4, 5, 5]", "[2, 3, 3, 3]", "4 channels"],
    );
    let g2 = Conv2dOptions { groups: 2, ..d };
    assert_mentions(&conv(&x, &z(&[2, 4, 3, 3]), g2), &["conv2d", "2 groups"]);
    assert_mentions(
        &conv(&x, &z(&[3, 2, 3, 3]), g2),
        &["conv2d", "[3, 2, 3, 3]", "not divisible by 2"],
    );
    assert_mentions(
        &conv(&x, &z(&[2, 4, 3, 3]), Conv2dOptions { groups: 0, ..d }),
        &["conv2d", "groups"],
    );
    // Zero stride and dilation, kernel larger than the padded input, zero channels.
    assert_mentions(
        &conv(
            &x,
            &z(&[2, 4, 3, 3]),
            Conv2dOptions {
                stride: (0, 1),
                ..d
            },
        ),
        &["conv2d", "height", "stride 0"],
    );
    assert_mentions(
        &conv(
            &x,
            &z(&[2, 4, 3, 3]),
            Conv2dOptions {
                dilation: (1, 0),
                ..d
            },
        ),
        &["conv2d", "width", "dilation 0"],
    );
    assert_mentions(
        &conv(&x, &z(&[2, 4, 6, 3]), d),
        &["conv2d", "height", "kernel spans 6", "padded input has 5"],
    );
    assert_mentions(
        &conv(
            &x,
            &z(&[2, 4, 3, 3]),
            Conv2dOptions {
                dilation: (3, 1),
                ..d
            },
        ),
        &["conv2d", "kernel spans 7"],
    );
    assert!(x
        .conv2d_with(
            &z(&[2, 4, 3, 3]),
            &Conv2dOptions {
                dilation: (3, 1),
                padding: (1, 0),
                ..d
            }
        )
        .is_ok());
    assert_mentions(
        &conv(&z(&[1, 0, 5, 5]), &z(&[2, 0, 3, 3]), d),
        &["conv2d", "channel"],
    );
    assert_mentions(
        &conv(&z(&[1, 2, 0, 5]), &z(&[2, 2, 1, 1]), d),
        &["conv2d", "input size 0"],
    );
    // Overflowing geometry: padding and dilation near usize::MAX.
    let huge = Conv2dOptions {
        padding: (usize::MAX / 2 + 1, 0),
        ..d
    };
    assert_mentions(&conv(&x, &z(&[2, 4, 3, 3]), huge), &["conv2d", "overflows"]);
    let huge = Conv2dOptions {
        dilation: (usize::MAX / 2, 1),
        ..d
    };
    assert_mentions(&conv(&x, &z(&[2, 4, 4, 3]), huge), &["conv2d", "overflows"]);
    // An output too large for a tensor.
    let wide = Conv2dOptions {
        padding: (usize::MAX / 8, 0),
        ..d
    };
    assert!(matches!(
        x.conv2d_with(&z(&[2, 4, 1, 1]), &wide),
        Err(TensorError::ShapeTooLarge { op: "conv2d", .. })
    ));
    // Dtypes.
    let w32 = Tensor::zeros([2, 4, 3, 3], DType::F32, cpu).expect("zeros");
    assert_mentions(
        &error_of(x.conv2d(&w32, (1, 1), (0, 0))),
        &["conv2d", "f64", "f32"],
    );
    assert_mentions(
        &error_of(z(&[1, 4, 5]).conv1d(
            &Tensor::zeros([2, 4, 3], DType::F32, cpu).expect("zeros"),
            1,
            0,
        )),
        &["conv1d", "f64", "f32"],
    );
}

#[test]
fn conv_rejects_mixed_devices() {
    let cuda = common::cuda();
    let x = Tensor::zeros([1, 2, 3, 3], DType::F64, Device::Cpu).expect("zeros");
    let w = Tensor::zeros([1, 2, 1, 1], DType::F64, cuda).expect("zeros");
    assert_mentions(
        &error_of(x.conv2d(&w, (1, 1), (0, 0))),
        &["conv2d", "device mismatch"],
    );
}

#[test]
fn pooling_and_unfold_reject_bad_inputs_with_errors_naming_op_and_shapes() {
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F64, Device::Cpu).expect("zeros");
    let x = z(&[1, 2, 4, 4]);
    for (op, result) in [
        (
            "max_pool2d",
            z(&[2, 4, 4]).max_pool2d((2, 2), (2, 2), (0, 0)),
        ),
        (
            "avg_pool2d",
            z(&[2, 4, 4]).avg_pool2d((2, 2), (2, 2), (0, 0)),
        ),
        (
            "adaptive_avg_pool2d",
            z(&[2, 4, 4]).adaptive_avg_pool2d((1, 1)),
        ),
    ] {
        assert_mentions(&error_of(result), &[op, "[2, 4, 4]", "[N, C, H, W]"]);
    }
    assert_mentions(
        &error_of(x.max_pool2d((2, 2), (0, 1), (0, 0))),
        &["max_pool2d", "stride 0"],
    );
    assert_mentions(
        &error_of(x.avg_pool2d((5, 2), (1, 1), (0, 0))),
        &["avg_pool2d", "kernel spans 5"],
    );
    assert_mentions(
        &error_of(x.max_pool2d((2, 2), (1, 1), (2, 0))),
        &["max_pool2d", "at most half"],
    );
    assert_mentions(
        &error_of(x.avg_pool2d((0, 2), (1, 1), (0, 0))),
        &["avg_pool2d", "kernel 0"],
    );
    assert_mentions(
        &error_of(x.adaptive_avg_pool2d((0, 1))),
        &["adaptive_avg_pool2d", "output size 0"],
    );
    assert_mentions(
        &error_of(z(&[1, 2, 0, 4]).adaptive_avg_pool2d((1, 1))),
        &["adaptive_avg_pool2d", "input size 0"],
    );
    let window = Window2d::new((2, 2));
    assert_mentions(
        &error_of(z(&[2, 4, 4]).unfold2d(&window)),
        &["unfold2d", "[2, 4, 4]"],
    );
    assert_mentions(
        &error_of(z(&[1, 8]).fold2d((3, 3), &window)),
        &["fold2d", "[1, 8]"],
    );
    assert_mentions(
        &error_of(z(&[1, 6, 4]).fold2d((3, 3), &window)),
        &["fold2d", "multiple of 2 × 2"],
    );
    assert_mentions(
        &error_of(z(&[1, 8, 5]).fold2d((3, 3), &window)),
        &["fold2d", "2 × 2 window positions"],
    );
    assert_mentions(
        &error_of(z(&[1, 8, 4]).fold2d((1, 3), &window)),
        &["fold2d", "kernel spans 2"],
    );
}
