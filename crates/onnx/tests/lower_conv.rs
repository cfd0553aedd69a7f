//! `Conv`, `MaxPool`, `AveragePool` and `GlobalAveragePool` lowered onto the tape, on every
//! device: values against direct loops written here over ONNX's definitions (asymmetric pads,
//! `auto_pad`, strides, dilations, groups, bias; padding that never wins a maximum; averages
//! over the real elements or the whole window), first and second derivatives against f64
//! finite differences, and every unsupported or malformed node refused with an error naming
//! it.

mod common;

use common::{
    assert_close, assert_derivatives, assert_node_error, assert_unsupported, evaluate, int, ints,
    one_node, run_error, seeded, string,
};
use curvature_onnx::ir::Attribute;
use curvature_tensor::Device;

/// A window geometry over an image `[N, C, H, W]` (1-D inputs as height 1).
#[derive(Clone)]
struct Geometry {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    begin: [usize; 2],
    end: [usize; 2],
}

impl Geometry {
    fn output(&self, size: [usize; 2]) -> [usize; 2] {
        [0, 1].map(|a| {
            let span = self.dilations[a] * (self.kernel[a] - 1) + 1;
            (size[a] + self.begin[a] + self.end[a] - span) / self.strides[a] + 1
        })
    }

    /// The input position (in the unpadded image) of tap `t` of window `o` along `axis`.
    fn at(&self, axis: usize, o: usize, t: usize) -> isize {
        (o * self.strides[axis] + t * self.dilations[axis]) as isize - self.begin[axis] as isize
    }
}

/// A direct convolution: `y[n, o, i, j] = b[o] + Σ x[n, c, …]·w[o, c − g·cg, p, q]` over the
/// taps inside the input.
fn conv_reference(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    weight: &[f64],
    [m, cg, kh, kw]: [usize; 4],
    bias: Option<&[f64]>,
    g: &Geometry,
) -> Vec<f64> {
    let [oh, ow] = g.output([h, w]);
    let per_group = m / (c / cg);
    let mut y = Vec::new();
    for b in 0..n {
        for o in 0..m {
            let group = o / per_group;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bias.map_or(0.0, |bias| bias[o]);
                    for ci in 0..cg {
                        for p in 0..kh {
                            for q in 0..kw {
                                let (r, s) = (g.at(0, i, p), g.at(1, j, q));
                                if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                                    continue;
                                }
                                let channel = group * cg + ci;
                                acc += x[((b * c + channel) * h + r as usize) * w + s as usize]
                                    * weight[((o * cg + ci) * kh + p) * kw + q];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// Max or average pooling written out: the taps inside the input, averaged over their count
/// or over the whole window.
fn pool_reference(x: &[f64], [n, c, h, w]: [usize; 4], g: &Geometry, reduce: &str) -> Vec<f64> {
    let [oh, ow] = g.output([h, w]);
    let mut y = Vec::new();
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut taps = Vec::new();
                for p in 0..g.kernel[0] {
                    for q in 0..g.kernel[1] {
                        let (r, s) = (g.at(0, i, p), g.at(1, j, q));
                        if r >= 0 && s >= 0 && r < h as isize && s < w as isize {
                            taps.push(x[(plane * h + r as usize) * w + s as usize]);
                        }
                    }
                }
                y.push(match reduce {
                    "max" => taps.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    "mean of real" => taps.iter().sum::<f64>() / taps.len() as f64,
                    _ => taps.iter().sum::<f64>() / (g.kernel[0] * g.kernel[1]) as f64,
                });
            }
        }
    }
    y
}

fn conv_case(
    device: Device,
    name: &str,
    x_dims: &[usize],
    w_dims: &[usize],
    with_bias: bool,
    attributes: Vec<(&str, Attribute)>,
    g: &Geometry,
) {
    let x = seeded(x_dims, 1, -1.0, 1.0, device);
    let w = seeded(w_dims, 2, -1.0, 1.0, device);
    let b = seeded(&w_dims[..1], 3, -1.0, 1.0, device);
    let group = attributes
        .iter()
        .find(|(n, _)| *n == "group")
        .map_or(1, |(_, a)| match a {
            Attribute::Int(v) => *v as usize,
            _ => 1,
        });
    let (graph, inputs) = if with_bias {
        (
            one_node("Conv", &["X", "W", "B"], &["Y"], attributes, 13),
            vec![x.clone(), w.clone(), b.clone()],
        )
    } else {
        (
            one_node("Conv", &["X", "W"], &["Y"], attributes, 13),
            vec![x.clone(), w.clone()],
        )
    };
    let out = evaluate(&graph, &inputs);
    let image = |d: &[usize]| match d {
        [a, b, l] => [*a, *b, 1, *l],
        [a, b, h, w] => [*a, *b, *h, *w],
        _ => unreachable!(),
    };
    let (xi, wi) = (image(x_dims), image(w_dims));
    let bias = b.to_f64s().unwrap();
    let reference = conv_reference(
        &x.to_f64s().unwrap(),
        xi,
        &w.to_f64s().unwrap(),
        wi,
        with_bias.then_some(&bias[..]),
        g,
    );
    let [oh, ow] = g.output([xi[2], xi[3]]);
    let mut dims = vec![x_dims[0], w_dims[0]];
    if x_dims.len() == 4 {
        dims.push(oh);
    }
    dims.push(ow);
    assert_eq!(out[0].0, dims, "{name}: group {group}");
    assert_close(name, &out[0].1, &reference, 1e-12);
}

fn conv_values(device: Device) {
    conv_case(
        device,
        "2-D, groups, asymmetric pads",
        &[2, 4, 5, 6],
        &[6, 2, 3, 2],
        true,
        vec![
            ("group", int(2)),
            ("strides", ints(&[2, 1])),
            ("dilations", ints(&[1, 2])),
            ("pads", ints(&[1, 0, 2, 1])),
            ("kernel_shape", ints(&[3, 2])),
        ],
        &Geometry {
            kernel: [3, 2],
            strides: [2, 1],
            dilations: [1, 2],
            begin: [1, 0],
            end: [2, 1],
        },
    );
    conv_case(
        device,
        "1-D, dilated, asymmetric pads",
        &[1, 2, 7],
        &[3, 2, 3],
        false,
        vec![
            ("strides", ints(&[2])),
            ("dilations", ints(&[2])),
            ("pads", ints(&[2, 1])),
        ],
        &Geometry {
            kernel: [1, 3],
            strides: [1, 2],
            dilations: [1, 2],
            begin: [0, 2],
            end: [0, 1],
        },
    );
    // SAME: ceil(5 / 2) = 3 windows per axis; height (kernel 2) needs 1 padded row, width
    // (kernel 3) 2 padded columns; the odd one goes after (UPPER) or before (LOWER).
    for (mode, begin, end) in [
        ("SAME_UPPER", [0, 1], [1, 1]),
        ("SAME_LOWER", [1, 1], [0, 1]),
    ] {
        conv_case(
            device,
            mode,
            &[1, 2, 5, 5],
            &[2, 2, 2, 3],
            true,
            vec![("auto_pad", string(mode)), ("strides", ints(&[2, 2]))],
            &Geometry {
                kernel: [2, 3],
                strides: [2, 2],
                dilations: [1, 1],
                begin,
                end,
            },
        );
    }
    conv_case(
        device,
        "VALID",
        &[1, 1, 4, 5],
        &[2, 1, 2, 2],
        false,
        vec![("auto_pad", string("VALID")), ("strides", ints(&[1, 2]))],
        &Geometry {
            kernel: [2, 2],
            strides: [1, 2],
            dilations: [1, 1],
            begin: [0, 0],
            end: [0, 0],
        },
    );
}

fn pool_case(
    device: Device,
    op: &str,
    x_dims: &[usize],
    attributes: Vec<(&str, Attribute)>,
    opset: i64,
    g: &Geometry,
    reduce: &str,
) {
    let x = seeded(x_dims, 7, -1.0, 1.0, device);
    let graph = one_node(op, &["X"], &["Y"], attributes, opset);
    let out = evaluate(&graph, std::slice::from_ref(&x));
    let xi = match x_dims {
        [a, b, l] => [*a, *b, 1, *l],
        [a, b, h, w] => [*a, *b, *h, *w],
        _ => unreachable!(),
    };
    let reference = pool_reference(&x.to_f64s().unwrap(), xi, g, reduce);
    let [oh, ow] = g.output([xi[2], xi[3]]);
    let mut dims = x_dims[..2].to_vec();
    if x_dims.len() == 4 {
        dims.push(oh);
    }
    dims.push(ow);
    let name = format!("{op} {reduce} {x_dims:?}");
    assert_eq!(out[0].0, dims, "{name}");
    assert_close(&name, &out[0].1, &reference, 1e-12);
}

fn geometry(
    kernel: [usize; 2],
    strides: [usize; 2],
    begin: [usize; 2],
    end: [usize; 2],
) -> Geometry {
    Geometry {
        kernel,
        strides,
        dilations: [1, 1],
        begin,
        end,
    }
}

fn max_pool_values(device: Device) {
    let mut dilated = geometry([3, 2], [2, 2], [1, 0], [1, 1]);
    dilated.dilations = [1, 2];
    pool_case(
        device,
        "MaxPool",
        &[1, 2, 5, 6],
        vec![
            ("kernel_shape", ints(&[3, 2])),
            ("strides", ints(&[2, 2])),
            ("pads", ints(&[1, 0, 1, 1])),
            ("dilations", ints(&[1, 2])),
        ],
        13,
        &dilated,
        "max",
    );
    pool_case(
        device,
        "MaxPool",
        &[2, 3, 7],
        vec![
            ("kernel_shape", ints(&[3])),
            ("strides", ints(&[2])),
            ("pads", ints(&[1, 2])),
        ],
        13,
        &geometry([1, 3], [1, 2], [0, 1], [0, 2]),
        "max",
    );
    // ceil_mode = 1 where the windows fit exactly: the same as floor.
    pool_case(
        device,
        "MaxPool",
        &[1, 1, 5, 5],
        vec![
            ("kernel_shape", ints(&[3, 3])),
            ("strides", ints(&[2, 2])),
            ("ceil_mode", int(1)),
        ],
        13,
        &geometry([3, 3], [2, 2], [0, 0], [0, 0]),
        "max",
    );
}

fn average_pool_values(device: Device) {
    let padded = vec![
        ("kernel_shape", ints(&[3, 3])),
        ("strides", ints(&[2, 2])),
        ("pads", ints(&[1, 1, 1, 1])),
    ];
    let g = geometry([3, 3], [2, 2], [1, 1], [1, 1]);
    // ONNX's default count_include_pad = 0 averages the real elements only.
    pool_case(
        device,
        "AveragePool",
        &[1, 2, 5, 5],
        padded.clone(),
        13,
        &g,
        "mean of real",
    );
    let mut counted = padded;
    counted.push(("count_include_pad", int(1)));
    pool_case(
        device,
        "AveragePool",
        &[1, 2, 5, 5],
        counted,
        13,
        &g,
        "mean of window",
    );
    for (count, reduce) in [(0, "mean of real"), (1, "mean of window")] {
        pool_case(
            device,
            "AveragePool",
            &[2, 1, 6],
            vec![
                ("kernel_shape", ints(&[3])),
                ("pads", ints(&[2, 0])),
                ("count_include_pad", int(count)),
            ],
            11,
            &geometry([1, 3], [1, 1], [0, 2], [0, 0]),
            reduce,
        );
    }
    // SAME_LOWER, kernel 2 stride 1: one padded row and column before the input.
    pool_case(
        device,
        "AveragePool",
        &[1, 1, 3, 4],
        vec![
            ("kernel_shape", ints(&[2, 2])),
            ("auto_pad", string("SAME_LOWER")),
        ],
        13,
        &geometry([2, 2], [1, 1], [1, 1], [0, 0]),
        "mean of real",
    );
    // Dilated averages, part of AveragePool from opset 19.
    let mut dilated = geometry([2, 2], [1, 1], [0, 1], [0, 1]);
    dilated.dilations = [2, 2];
    pool_case(
        device,
        "AveragePool",
        &[1, 1, 4, 4],
        vec![
            ("kernel_shape", ints(&[2, 2])),
            ("dilations", ints(&[2, 2])),
            ("pads", ints(&[0, 1, 0, 1])),
        ],
        19,
        &dilated,
        "mean of real",
    );
}

fn global_average_pool_values(device: Device) {
    let graph = one_node("GlobalAveragePool", &["X"], &["Y"], vec![], 13);
    for dims in [vec![2, 3, 4], vec![1, 2, 3, 2], vec![1, 2, 2, 3, 2]] {
        let x = seeded(&dims, 9, -1.0, 1.0, device);
        let out = evaluate(&graph, std::slice::from_ref(&x));
        let values = x.to_f64s().unwrap();
        let planes = dims[0] * dims[1];
        let per_plane = values.len() / planes;
        let reference: Vec<f64> = values
            .chunks(per_plane)
            .map(|c| c.iter().sum::<f64>() / per_plane as f64)
            .collect();
        let mut expected = dims[..2].to_vec();
        expected.resize(dims.len(), 1);
        assert_eq!(out[0].0, expected);
        assert_close(
            &format!("GlobalAveragePool {dims:?}"),
            &out[0].1,
            &reference,
            1e-12,
        );
    }
}

fn conv_derivatives(device: Device) {
    let graph = one_node(
        "Conv",
        &["X", "W", "B"],
        &["Y"],
        vec![
            ("group", int(2)),
            ("pads", ints(&[1, 0, 0, 1])),
            ("strides", ints(&[1, 2])),
        ],
        13,
    );
    let inputs = [
        seeded(&[1, 2, 3, 3], 1, -1.0, 1.0, device),
        seeded(&[2, 1, 2, 2], 2, -1.0, 1.0, device),
        seeded(&[2], 3, -1.0, 1.0, device),
    ];
    assert_derivatives("Conv", &graph, &inputs);
}

fn pool_derivatives(device: Device) {
    let x = [seeded(&[1, 1, 3, 4], 4, -1.0, 1.0, device)];
    let max = one_node(
        "MaxPool",
        &["X"],
        &["Y"],
        vec![
            ("kernel_shape", ints(&[2, 2])),
            ("pads", ints(&[1, 0, 0, 1])),
        ],
        13,
    );
    assert_derivatives("MaxPool", &max, &x);
    let average = one_node(
        "AveragePool",
        &["X"],
        &["Y"],
        vec![
            ("kernel_shape", ints(&[2, 3])),
            ("pads", ints(&[1, 1, 0, 1])),
        ],
        13,
    );
    assert_derivatives("AveragePool", &average, &x);
    let global = one_node("GlobalAveragePool", &["X"], &["Y"], vec![], 13);
    assert_derivatives("GlobalAveragePool", &global, &x);
}

device_tests!(
    conv_values,
    max_pool_values,
    average_pool_values,
    global_average_pool_values,
    conv_derivatives,
    pool_derivatives,
);

#[test]
fn conv_errors() {
    let t = |dims: &[usize]| seeded(dims, 1, -1.0, 1.0, Device::Cpu);
    let conv =
        |attributes: Vec<(&str, Attribute)>| one_node("Conv", &["X", "W"], &["Y"], attributes, 13);
    let e = run_error(
        &conv(vec![]),
        &[t(&[1, 1, 2, 2, 2]), t(&[1, 1, 1, 1, 1])],
        &[],
    );
    assert_unsupported(&e, "input", "3-D");
    let e = run_error(&conv(vec![]), &[t(&[2, 3]), t(&[1, 3])], &[]);
    assert_node_error(&e, "needs an input [N, C, L] or [N, C, H, W]");
    let e = run_error(&conv(vec![]), &[t(&[1, 2, 4, 4]), t(&[1, 2, 2])], &[]);
    assert_node_error(&e, "of the input's rank");
    let e = run_error(
        &conv(vec![("kernel_shape", ints(&[3, 3]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "differs from the weight's kernel");
    let e = run_error(
        &conv(vec![("group", int(2))]),
        &[t(&[1, 4, 4, 4]), t(&[2, 4, 2, 2])],
        &[],
    );
    assert_node_error(&e, "with group = 2");
    let e = run_error(
        &conv(vec![("group", int(0))]),
        &[t(&[1, 4, 4, 4]), t(&[2, 4, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'group' must be positive");
    let e = run_error(
        &conv(vec![("pads", ints(&[1, 1]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'pads' needs 4 entries");
    let e = run_error(
        &conv(vec![("pads", ints(&[1, -1, 1, 1]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "must be at least 0");
    let e = run_error(
        &conv(vec![("strides", ints(&[0, 1]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'strides' entries must be at least 1");
    let e = run_error(
        &conv(vec![("auto_pad", string("SAME"))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "'auto_pad' = 'SAME'");
    let e = run_error(
        &conv(vec![
            ("auto_pad", string("SAME_UPPER")),
            ("pads", ints(&[1, 1, 1, 1])),
        ]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "cannot be combined with auto_pad");
    let e = run_error(
        &conv(vec![("dilations", ints(&[4, 1]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "the padded input has only 4");
    let e = run_error(
        &conv(vec![("dilations", ints(&[i64::MAX, 1]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 4, 2])],
        &[],
    );
    assert_node_error(&e, "overflows");
    let e = run_error(
        &conv(vec![("pads", ints(&[i64::MAX, 0, i64::MAX, 0]))]),
        &[t(&[1, 2, 4, 4]), t(&[1, 2, 2, 2])],
        &[],
    );
    assert_node_error(&e, "overflows");
    let biased = one_node("Conv", &["X", "W", "B"], &["Y"], vec![], 13);
    let e = run_error(&biased, &[t(&[1, 2, 4, 4]), t(&[3, 2, 2, 2]), t(&[2])], &[]);
    assert_node_error(&e, "the bias must be [M] = [3]");
}

#[test]
fn pool_errors() {
    let x = || seeded(&[1, 1, 6, 6], 1, -1.0, 1.0, Device::Cpu);
    let pool = |op: &str, attributes: Vec<(&str, Attribute)>, opset: i64| {
        one_node(op, &["X"], &["Y"], attributes, opset)
    };
    let k = || ("kernel_shape", ints(&[3, 3]));
    let e = run_error(
        &one_node("MaxPool", &["X"], &["Y", "I"], vec![k()], 13),
        &[x()],
        &[],
    );
    assert_unsupported(&e, "output", "output 1");
    let e = run_error(
        &pool(
            "MaxPool",
            vec![k(), ("strides", ints(&[2, 2])), ("ceil_mode", int(1))],
            13,
        ),
        &[x()],
        &[],
    );
    assert_unsupported(
        &e,
        "attribute",
        "ceil_mode = 1 gives [3, 3] outputs where floor gives [2, 2]",
    );
    let e = run_error(&pool("MaxPool", vec![], 13), &[x()], &[]);
    assert_node_error(&e, "'kernel_shape' is required");
    let e = run_error(
        &pool("MaxPool", vec![k(), ("dilations", ints(&[2, 2]))], 8),
        &[x()],
        &[],
    );
    assert_unsupported(&e, "attribute", "'dilations'");
    let e = run_error(
        &pool("AveragePool", vec![k(), ("dilations", ints(&[2, 2]))], 18),
        &[x()],
        &[],
    );
    assert_unsupported(&e, "attribute", "'dilations'");
    let e = run_error(
        &pool("AveragePool", vec![k(), ("count_include_pad", int(2))], 13),
        &[x()],
        &[],
    );
    assert_node_error(&e, "must be 0 or 1");
    let e = run_error(
        &pool("MaxPool", vec![k(), ("pads", ints(&[3, 0, 0, 0]))], 13),
        &[x()],
        &[],
    );
    assert_node_error(&e, "lies entirely in the padding");
    let e = run_error(
        &pool(
            "AveragePool",
            vec![
                ("kernel_shape", ints(&[2, 2])),
                ("pads", ints(&[0, 0, 0, 2])),
            ],
            13,
        ),
        &[x()],
        &[],
    );
    assert_node_error(&e, "lies entirely in the padding");
    let e = run_error(
        &pool("MaxPool", vec![("kernel_shape", ints(&[3]))], 13),
        &[x()],
        &[],
    );
    assert_node_error(&e, "'kernel_shape' needs 2 entries");
    let e = run_error(
        &pool("AveragePool", vec![("kernel_shape", ints(&[7, 1]))], 13),
        &[x()],
        &[],
    );
    assert_node_error(&e, "the window spans 7");
    let e = run_error(
        &pool("GlobalAveragePool", vec![], 13),
        &[seeded(&[2, 3], 1, -1.0, 1.0, Device::Cpu)],
        &[],
    );
    assert_node_error(&e, "needs an input [N, C, D1, …]");
    let e = run_error(&pool("GlobalAveragePool", vec![k()], 13), &[x()], &[]);
    assert_unsupported(&e, "attribute", "kernel_shape");
    let e = run_error(
        &pool("MaxPool", vec![k()], 13),
        &[seeded(&[1, 1, 3, 3, 3], 1, -1.0, 1.0, Device::Cpu)],
        &[],
    );
    assert_unsupported(&e, "input", "3-D");
}
