//! `ConvTranspose` (1-D and 2-D) lowered onto the tape, on every device: values against the
//! scatter that defines it (each input pixel times the kernel added into its output window)
//! and against ONNX Runtime, first and second derivatives against f64 finite differences, and
//! the errors of bad nodes.

mod common;

use common::{
    assert_close, assert_derivatives, assert_matches_onnxruntime, assert_node_error,
    assert_unsupported, evaluate, int, ints, one_node, run_error, seeded, string,
};
use curvature_onnx::ir::Attribute;
use curvature_tensor::Device;

/// The attributes of one 2-D transposed convolution.
struct Setup {
    group: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    /// [top, left, bottom, right].
    pads: [usize; 4],
    output_padding: [usize; 2],
}

/// ConvTranspose of `x` [N, C, H, W] with `w` [C, M/g, kh, kw] by its definition:
/// `y[n, g·M/g + m, i·s + a·d − p] += x[n, c, i, j] · w[c, m, a, b]` (same for the columns).
fn conv_transpose_reference(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    s: &Setup,
) -> (Vec<usize>, Vec<f64>) {
    let [n, c, h, wid] = xd;
    let [_, mg, kh, kw] = wd;
    let m = mg * s.group;
    let full = |len: usize, a: usize| s.stride[a] * (len - 1) + s.dilation[a] * (wd[2 + a] - 1) + 1;
    let oh = full(h, 0) + s.output_padding[0] - s.pads[0] - s.pads[2];
    let ow = full(wid, 1) + s.output_padding[1] - s.pads[1] - s.pads[3];
    let mut y = vec![0.0; n * m * oh * ow];
    let cg = c / s.group;
    for b in 0..n {
        for ci in 0..c {
            let g = ci / cg;
            for i in 0..h {
                for j in 0..wid {
                    for mo in 0..mg {
                        for a in 0..kh {
                            for bb in 0..kw {
                                let r =
                                    (i * s.stride[0] + a * s.dilation[0]) as i64 - s.pads[0] as i64;
                                let q = (j * s.stride[1] + bb * s.dilation[1]) as i64
                                    - s.pads[1] as i64;
                                if r < 0 || q < 0 || r >= oh as i64 || q >= ow as i64 {
                                    continue;
                                }
                                let out_c = g * mg + mo;
                                let yi = ((b * m + out_c) * oh + r as usize) * ow + q as usize;
                                let xi = ((b * c + ci) * h + i) * wid + j;
                                let wi = ((ci * mg + mo) * kh + a) * kw + bb;
                                y[yi] += x[xi] * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (vec![n, m, oh, ow], y)
}

fn attributes(s: &Setup) -> Vec<(&'static str, Attribute)> {
    let i = |v: &[usize]| ints(&v.iter().map(|&u| u as i64).collect::<Vec<_>>());
    vec![
        ("group", int(s.group as i64)),
        ("strides", i(&s.stride)),
        ("dilations", i(&s.dilation)),
        ("pads", i(&s.pads)),
        ("output_padding", i(&s.output_padding)),
    ]
}

fn conv_transpose_values(device: Device) {
    let setups = [
        Setup {
            group: 1,
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0, 0, 0, 0],
            output_padding: [0, 0],
        },
        Setup {
            group: 2,
            stride: [2, 3],
            dilation: [1, 2],
            pads: [1, 0, 2, 1],
            output_padding: [1, 2],
        },
        Setup {
            group: 1,
            stride: [1, 2],
            dilation: [2, 1],
            pads: [0, 1, 1, 0],
            output_padding: [1, 0],
        },
    ];
    for (k, s) in setups.iter().enumerate() {
        let (xd, wd) = ([2, 2, 3, 2], [2, 3 - s.group, 2, 3]);
        let x = seeded(&xd, 10 + k as u64, -1.0, 1.0, device);
        let w = seeded(&wd, 20 + k as u64, -1.0, 1.0, device);
        let graph = one_node("ConvTranspose", &["X", "W"], &["Y"], attributes(s), 13);
        let out = evaluate(&graph, &[x.clone(), w.clone()]);
        let (dims, expected) =
            conv_transpose_reference(&x.to_f64s().unwrap(), xd, &w.to_f64s().unwrap(), wd, s);
        assert_eq!(out[0].0, dims, "setup {k}");
        assert_close(
            &format!("ConvTranspose setup {k}"),
            &out[0].1,
            &expected,
            1e-12,
        );
    }
    // 1-D with a bias: the 2-D definition at height 1.
    let x = seeded(&[1, 2, 4], 30, -1.0, 1.0, device);
    let w = seeded(&[2, 3, 2], 31, -1.0, 1.0, device);
    let b = seeded(&[3], 32, -1.0, 1.0, device);
    let graph = one_node(
        "ConvTranspose",
        &["X", "W", "B"],
        &["Y"],
        vec![("strides", ints(&[2])), ("pads", ints(&[1, 0]))],
        13,
    );
    let out = evaluate(&graph, &[x.clone(), w.clone(), b.clone()]);
    let s = Setup {
        group: 1,
        stride: [1, 2],
        dilation: [1, 1],
        pads: [0, 1, 0, 0],
        output_padding: [0, 0],
    };
    let (dims, mut expected) = conv_transpose_reference(
        &x.to_f64s().unwrap(),
        [1, 2, 1, 4],
        &w.to_f64s().unwrap(),
        [2, 3, 1, 2],
        &s,
    );
    let bias = b.to_f64s().unwrap();
    let len = dims[3];
    for (e, v) in expected.iter_mut().enumerate() {
        *v += bias[e / len];
    }
    assert_eq!(out[0].0, [1, 3, len]);
    assert_close("ConvTranspose 1-D", &out[0].1, &expected, 1e-12);
}

fn conv_transpose_derivatives(device: Device) {
    let graph = one_node(
        "ConvTranspose",
        &["X", "W", "B"],
        &["Y"],
        vec![
            ("strides", ints(&[2, 1])),
            ("pads", ints(&[1, 0, 0, 1])),
            ("output_padding", ints(&[1, 0])),
        ],
        13,
    );
    let inputs = [
        seeded(&[1, 2, 2, 2], 1, -1.0, 1.0, device),
        seeded(&[2, 1, 2, 2], 2, -1.0, 1.0, device),
        seeded(&[1], 3, -1.0, 1.0, device),
    ];
    assert_derivatives("ConvTranspose", &graph, &inputs);
}

/// The same nodes run by ONNX Runtime (`scripts/make_onnx_op_fixtures.py`).
fn conv_transpose_match_onnxruntime(device: Device) {
    assert_matches_onnxruntime(
        "conv_transpose2d_groups",
        "ConvTranspose",
        13,
        vec![
            ("group", int(2)),
            ("strides", ints(&[2, 1])),
            ("dilations", ints(&[1, 2])),
            ("pads", ints(&[1, 0, 0, 1])),
            ("output_padding", ints(&[1, 0])),
        ],
        device,
    );
    assert_matches_onnxruntime(
        "conv_transpose1d",
        "ConvTranspose",
        13,
        vec![("strides", ints(&[3])), ("pads", ints(&[1, 2]))],
        device,
    );
}

device_tests!(
    conv_transpose_values,
    conv_transpose_derivatives,
    conv_transpose_match_onnxruntime
);

#[test]
fn conv_transpose_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, Device::Cpu);
    let ct = |attributes: Vec<(&str, Attribute)>| {
        one_node("ConvTranspose", &["X", "W"], &["Y"], attributes, 13)
    };
    let e = run_error(
        &ct(vec![("auto_pad", string("SAME_UPPER"))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "auto_pad = 'SAME_UPPER'");
    let e = run_error(
        &ct(vec![("output_shape", ints(&[4, 4]))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_unsupported(&e, "attribute", "'output_shape'");
    let e = run_error(
        &ct(vec![]),
        &[t(&[1, 2, 2, 3, 3]), t(&[2, 1, 2, 2, 2])],
        &[],
    );
    assert_unsupported(&e, "input", "[N, C, L] or [N, C, H, W]");
    let e = run_error(&ct(vec![]), &[t(&[1, 3, 3, 3]), t(&[2, 1, 2, 2])], &[]);
    assert_node_error(&e, "must have the 3 input channels");
    let e = run_error(&ct(vec![]), &[t(&[1, 2, 3, 3]), t(&[2, 1, 2])], &[]);
    assert_node_error(&e, "of the input's rank");
    let e = run_error(
        &ct(vec![("group", int(3))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(
        &e,
        "'group' must be positive and divide the 2 input channels",
    );
    let e = run_error(
        &ct(vec![("output_padding", ints(&[1, 0]))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(&e, "output_padding [1, 0] must be smaller");
    let e = run_error(
        &ct(vec![("pads", ints(&[2, 0, 2, 0]))]),
        &[t(&[1, 2, 1, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(&e, "crop the whole output extent 2 of axis 0");
    let e = run_error(
        &ct(vec![("kernel_shape", ints(&[3, 3]))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'kernel_shape' [3, 3] differs");
    let e = run_error(
        &ct(vec![("strides", ints(&[0, 1]))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'strides' entries must be at least 1");
    let e = run_error(&ct(vec![]), &[t(&[1, 2, 0, 3]), t(&[2, 1, 2, 2])], &[]);
    assert_node_error(&e, "no output extent");
    let e = run_error(
        &ct(vec![("strides", ints(&[1 << 40, 1]))]),
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2])],
        &[],
    );
    assert_node_error(&e, "more than");
    let with_bias = one_node("ConvTranspose", &["X", "W", "B"], &["Y"], vec![], 13);
    let e = run_error(
        &with_bias,
        &[t(&[1, 2, 3, 3]), t(&[2, 1, 2, 2]), t(&[2])],
        &[],
    );
    assert_node_error(&e, "the bias must be [M] = [1]");
}
