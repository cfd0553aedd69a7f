//! Softmax, the normalisations, `index_add` and `gather` on the CPU and on `Device::Cuda`, in
//! f64 and f32, against references written here as plain loops with PyTorch's semantics; and
//! every bad argument of theirs as an error naming the op.

mod common;

use curvature_tensor::{DType, Device, Indices, Result, Tensor, TensorError};

/// Deterministic values in [lo, hi) (a SplitMix64 stream).
fn values(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + (hi - lo) * ((z >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// A tensor of `dims` on `device` in `dtype`, and its values as stored (rounded to the dtype),
/// so the references see exactly the op's inputs.
fn input(
    seed: u64,
    dims: &[usize],
    lo: f64,
    hi: f64,
    dtype: DType,
    device: Device,
) -> (Tensor, Vec<f64>) {
    let data = values(seed, dims.iter().product(), lo, hi);
    let t = Tensor::from_f64s(&data, dims, dtype, device).expect("input");
    let stored = t.to_f64s().expect("download");
    (t, stored)
}

/// |ours − reference| ≤ tol · max(1, max |reference|), elementwise.
fn assert_close(name: &str, ours: &Tensor, reference: &[f64], dims: &[usize]) {
    assert_eq!(ours.dims(), dims, "{name}: shape");
    let tol = match ours.dtype() {
        DType::F64 => 1e-12,
        DType::F32 => 2e-6,
        half => half.epsilon(),
    };
    let ours = ours.to_f64s().expect("download");
    let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{name}: element {i}: {a} vs reference {b}"
        );
    }
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

/// Mean and biased variance of `xs`.
fn moments(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

const DTYPES: [DType; 2] = [DType::F64, DType::F32];

/// softmax over each axis of `[2, 3, 4]` (scores up to ±30, so an unshifted exp would lose
/// everything in f32): out = e^(x − max) / Σ e^(x − max) along the axis.
fn softmax_matches_loops(device: Device) {
    let dims = [2, 3, 4];
    for dtype in DTYPES {
        let (x, xs) = input(1, &dims, -30.0, 30.0, dtype, device);
        for axis in 0..3 {
            let reference: Vec<f64> = (0..xs.len())
                .map(|e| {
                    let at = unravel(e, &dims);
                    let along: Vec<f64> = (0..dims[axis])
                        .map(|j| {
                            let mut idx = at.clone();
                            idx[axis] = j;
                            xs[ravel(&idx, &dims)]
                        })
                        .collect();
                    let max = along.iter().fold(f64::MIN, |m, &v| m.max(v));
                    let total: f64 = along.iter().map(|v| (v - max).exp()).sum();
                    (xs[e] - max).exp() / total
                })
                .collect();
            let ours = x.softmax(axis as isize - 3).expect("softmax");
            assert_close(
                &format!("softmax axis {axis} {dtype:?}"),
                &ours,
                &reference,
                &dims,
            );
        }
    }
}

/// layer_norm over the last axis of `[2, 3, 5]`: (x − mean) / √(var + eps) per row.
fn layer_norm_matches_loops(device: Device) {
    let (dims, eps) = ([2, 3, 5], 1e-5);
    for dtype in DTYPES {
        let (x, xs) = input(2, &dims, -2.0, 3.0, dtype, device);
        let mut reference = Vec::new();
        for row in xs.chunks(5) {
            let (mean, var) = moments(row);
            reference.extend(row.iter().map(|v| (v - mean) / (var + eps).sqrt()));
        }
        let ours = x.layer_norm(eps).expect("layer_norm");
        assert_close(&format!("layer_norm {dtype:?}"), &ours, &reference, &dims);
    }
}

/// batch_norm of `[2, 3, 2, 2]` with `[3]` statistics: (x − mean[c]) / √(var[c] + eps).
fn batch_norm_matches_loops(device: Device) {
    let (dims, eps) = ([2, 3, 2, 2], 1e-3);
    for dtype in DTYPES {
        let (x, xs) = input(3, &dims, -2.0, 2.0, dtype, device);
        let (mean, ms) = input(4, &[3], -1.0, 1.0, dtype, device);
        let (var, vs) = input(5, &[3], 0.5, 2.0, dtype, device);
        let reference: Vec<f64> = (0..xs.len())
            .map(|e| {
                let c = unravel(e, &dims)[1];
                (xs[e] - ms[c]) / (vs[c] + eps).sqrt()
            })
            .collect();
        let ours = x.batch_norm(&mean, &var, eps).expect("batch_norm");
        assert_close(&format!("batch_norm {dtype:?}"), &ours, &reference, &dims);
        // Rank 2 (`[N, C]`, as after a linear layer) has the channels on axis 1 too.
        let (x2, xs2) = input(6, &[4, 3], -2.0, 2.0, dtype, device);
        let reference: Vec<f64> = (0..12)
            .map(|e| (xs2[e] - ms[e % 3]) / (vs[e % 3] + eps).sqrt())
            .collect();
        let ours = x2.batch_norm(&mean, &var, eps).expect("batch_norm");
        assert_close(
            &format!("batch_norm [N, C] {dtype:?}"),
            &ours,
            &reference,
            &[4, 3],
        );
    }
}

/// group_norm of `[2, 6, 3]` in 1, 2, 3 and 6 groups: each (sample, group) normalised over its
/// channels and positions.
fn group_norm_matches_loops(device: Device) {
    let (dims, eps) = ([2, 6, 3], 1e-5);
    for dtype in DTYPES {
        let (x, xs) = input(7, &dims, -1.0, 2.0, dtype, device);
        for groups in [1, 2, 3, 6] {
            let per = 6 / groups;
            let mut reference = vec![0.0; xs.len()];
            for n in 0..2 {
                for g in 0..groups {
                    let members: Vec<usize> = (g * per..(g + 1) * per)
                        .flat_map(|c| (0..3).map(move |l| ravel(&[n, c, l], &dims)))
                        .collect();
                    let group: Vec<f64> = members.iter().map(|&e| xs[e]).collect();
                    let (mean, var) = moments(&group);
                    for &e in &members {
                        reference[e] = (xs[e] - mean) / (var + eps).sqrt();
                    }
                }
            }
            let ours = x.group_norm(groups, eps).expect("group_norm");
            assert_close(
                &format!("group_norm {groups} {dtype:?}"),
                &ours,
                &reference,
                &dims,
            );
        }
    }
}

/// index_add along each axis of `[2, 3, 2]` with repeated, missing and unordered indices:
/// out[.., k, ..] = Σ over j with indices[j] = k of x[.., j, ..]; and index_select of it
/// against the same loops.
fn index_add_matches_loops(device: Device) {
    let dims = [2, 3, 2];
    let cases: [(usize, &[usize], usize); 4] = [
        (0, &[1, 1], 3),
        (1, &[2, 0, 2], 4),
        (2, &[0, 0], 1),
        (1, &[4, 1, 4], 5),
    ];
    for dtype in DTYPES {
        let (x, xs) = input(8, &dims, -1.0, 1.0, dtype, device);
        for &(axis, indices, len) in &cases {
            let mut out_dims = dims.to_vec();
            out_dims[axis] = len;
            let n: usize = out_dims.iter().product();
            let mut reference = vec![0.0; n];
            for (e, &v) in xs.iter().enumerate() {
                let mut idx = unravel(e, &dims);
                idx[axis] = indices[idx[axis]];
                reference[ravel(&idx, &out_dims)] += v;
            }
            let ours = x.index_add(axis as isize, indices, len).expect("index_add");
            assert_close(
                &format!("index_add axis {axis} {indices:?} {dtype:?}"),
                &ours,
                &reference,
                &out_dims,
            );
        }
    }
    // Every output element is written (the emulated GPU fills fresh buffers with NaN): entries
    // no index selects are exactly zero.
    let x = Tensor::ones([2, 3], DType::F64, device).expect("ones");
    let out = x
        .index_add(1, &[0, 0, 3], 5)
        .expect("index_add")
        .to_f64s()
        .expect("download");
    assert_eq!(out, vec![2.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0]);
}

/// A larger index_add (many blocks of the CUDA kernel, up to 9 slices summed into one entry)
/// against the loops, and on CUDA equal to the CPU's bit for bit: both sum in increasing index
/// order, so the result does not depend on the device or on thread scheduling.
fn index_add_is_deterministic(device: Device) {
    let (outer, n, len, inner) = (4, 300, 40, 3);
    let indices: Vec<usize> = (0..n).map(|j| (j * 7 + j / 13) % len).collect();
    for dtype in DTYPES {
        let (x, xs) = input(11, &[outer, n, inner], -1.0, 1.0, dtype, device);
        let mut reference = vec![0.0; outer * len * inner];
        for o in 0..outer {
            for (j, &k) in indices.iter().enumerate() {
                for i in 0..inner {
                    reference[(o * len + k) * inner + i] += xs[(o * n + j) * inner + i];
                }
            }
        }
        let ours = x.index_add(1, &indices, len).expect("index_add");
        assert_close(
            &format!("index_add {dtype:?}"),
            &ours,
            &reference,
            &[outer, len, inner],
        );
        let cpu = x.to_device(Device::Cpu).expect("download");
        let on_cpu = cpu.index_add(1, &indices, len).expect("index_add");
        assert_eq!(
            ours.to_bytes().expect("bytes"),
            on_cpu.to_bytes().expect("bytes"),
            "index_add {dtype:?}: {device} and the CPU differ"
        );
    }
}

/// gather along each axis of `[2, 3, 4]` with index tensors smaller than the source in the
/// other axes: out[e] = x[e with its axis coordinate replaced by index[e]].
fn gather_matches_loops(device: Device) {
    let dims = [2, 3, 4];
    for dtype in DTYPES {
        let (x, xs) = input(9, &dims, -1.0, 1.0, dtype, device);
        for axis in 0..3 {
            let index_dims: [usize; 3] = match axis {
                0 => [3, 2, 3],
                1 => [2, 5, 2],
                _ => [1, 3, 6],
            };
            let count: usize = index_dims.iter().product();
            let positions: Vec<usize> = values(10 + axis as u64, count, 0.0, dims[axis] as f64)
                .iter()
                .map(|v| *v as usize)
                .collect();
            let index = Indices::new(positions.clone(), index_dims).expect("indices");
            let reference: Vec<f64> = (0..count)
                .map(|e| {
                    let mut idx = unravel(e, &index_dims);
                    idx[axis] = positions[e];
                    xs[ravel(&idx, &dims)]
                })
                .collect();
            let ours = x.gather(axis as isize, &index).expect("gather");
            assert_close(
                &format!("gather axis {axis} {dtype:?}"),
                &ours,
                &reference,
                &index_dims,
            );
        }
    }
}

fn error_of<T: std::fmt::Debug>(result: Result<T>) -> TensorError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(e) => e,
    }
}

/// Asserts that the error's message names every one of `parts`.
fn assert_mentions(err: &TensorError, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} does not mention {part:?}"
        );
    }
}

/// Every bad argument is an error naming the op (and the offending value or shapes).
fn bad_arguments_are_errors(device: Device) -> Result<()> {
    let zeros = |dims: &[usize]| Tensor::zeros(dims, DType::F64, device);
    let x = zeros(&[2, 4, 3])?;
    // Softmax: axes out of range, an empty axis.
    let err = error_of(x.softmax(3));
    assert!(
        matches!(err, TensorError::AxisOutOfRange { axis: 3, .. }),
        "{err:?}"
    );
    assert!(matches!(
        error_of(zeros(&[2, 0])?.softmax(1)),
        TensorError::Empty { .. }
    ));
    // Normalisations: bad eps.
    for eps in [-1e-5, f64::NAN, f64::INFINITY] {
        for err in [
            error_of(x.layer_norm(eps)),
            error_of(x.group_norm(2, eps)),
            error_of(x.batch_norm(&zeros(&[4])?, &zeros(&[4])?, eps)),
        ] {
            assert!(
                matches!(err, TensorError::InvalidArgument { .. }),
                "{err:?}"
            );
            assert_mentions(&err, &["eps", &eps.to_string()]);
        }
    }
    // layer_norm of a scalar or over an empty axis.
    let err = error_of(Tensor::scalar(1.0, DType::F64, device)?.layer_norm(1e-5));
    assert_mentions(&err, &["layer_norm", "scalar"]);
    let err = error_of(zeros(&[3, 0])?.layer_norm(1e-5));
    assert!(
        matches!(err, TensorError::Empty { op: "layer_norm" }),
        "{err:?}"
    );
    // batch_norm: statistics of the wrong length, dtype or device; an input without channels.
    let err = error_of(x.batch_norm(&zeros(&[3])?, &zeros(&[4])?, 1e-5));
    assert!(
        matches!(
            err,
            TensorError::ShapeMismatch {
                op: "batch_norm",
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err, &["batch_norm", "[4]", "[3]"]);
    let err = error_of(x.batch_norm(&zeros(&[4])?, &zeros(&[4, 1])?, 1e-5));
    assert!(
        matches!(
            err,
            TensorError::ShapeMismatch {
                op: "batch_norm",
                ..
            }
        ),
        "{err:?}"
    );
    let f32_stats = Tensor::zeros([4], DType::F32, device)?;
    let err = error_of(x.batch_norm(&f32_stats, &zeros(&[4])?, 1e-5));
    assert!(
        matches!(
            err,
            TensorError::DTypeMismatch {
                op: "batch_norm",
                ..
            }
        ),
        "{err:?}"
    );
    if device != Device::Cpu {
        let cpu_stats = Tensor::zeros([4], DType::F64, Device::Cpu)?;
        let err = error_of(x.batch_norm(&zeros(&[4])?, &cpu_stats, 1e-5));
        assert!(
            matches!(
                err,
                TensorError::DeviceMismatch {
                    op: "batch_norm",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = error_of(zeros(&[4])?.batch_norm(&zeros(&[4])?, &zeros(&[4])?, 1e-5));
    assert_mentions(&err, &["batch_norm", "rank"]);
    // group_norm: groups that do not divide C, zero groups, no channel axis, empty groups.
    for groups in [0, 3, 5] {
        let err = error_of(x.group_norm(groups, 1e-5));
        assert_mentions(
            &err,
            &["group_norm", &format!("{groups} groups"), "4 channels"],
        );
    }
    let err = error_of(zeros(&[4])?.group_norm(2, 1e-5));
    assert_mentions(&err, &["group_norm", "rank"]);
    let err = error_of(zeros(&[2, 4, 0])?.group_norm(2, 1e-5));
    assert!(
        matches!(err, TensorError::Empty { op: "group_norm" }),
        "{err:?}"
    );
    // index_add: an index at or past len, the wrong number of indices, a bad axis.
    let err = error_of(x.index_add(1, &[0, 5, 1, 2], 5));
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "index_add",
                index: 5,
                len: 5
            }
        ),
        "{err:?}"
    );
    let err = error_of(x.index_add(1, &[0, 1], 5));
    assert_mentions(&err, &["index_add", "2 indices", "[2, 4, 3]"]);
    assert!(matches!(
        error_of(x.index_add(-4, &[0, 1], 2)),
        TensorError::AxisOutOfRange { .. }
    ));
    // gather: an index outside the axis, mismatched ranks, a dimension larger than the source's.
    let err = error_of(x.gather(1, &Indices::new(vec![0, 4], [1, 2, 1])?));
    assert!(
        matches!(
            err,
            TensorError::IndexOutOfRange {
                op: "gather",
                index: 4,
                len: 4
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err, &["gather", "index 4", "length 4"]);
    let err = error_of(x.gather(1, &Indices::new(vec![0, 1], [2])?));
    assert_mentions(&err, &["gather", "[2]", "[2, 4, 3]"]);
    let err = error_of(x.gather(1, &Indices::new(vec![0; 3], [3, 1, 1])?));
    assert_mentions(&err, &["gather", "[3, 1, 1]"]);
    assert!(matches!(
        error_of(x.gather(3, &Indices::new(vec![0], [1, 1, 1])?)),
        TensorError::AxisOutOfRange { .. }
    ));
    // Indices that do not fill their shape.
    let err = error_of(Indices::new(vec![0, 1, 2], [2, 2]));
    assert!(
        matches!(
            err,
            TensorError::DataLength {
                len: 3,
                expected: 4,
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

device_tests!(
    softmax_matches_loops,
    layer_norm_matches_loops,
    batch_norm_matches_loops,
    group_norm_matches_loops,
    index_add_matches_loops,
    index_add_is_deterministic,
    gather_matches_loops,
    bad_arguments_are_errors,
);
