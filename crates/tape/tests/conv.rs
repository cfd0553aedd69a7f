//! Convolution and pooling on the tape, on every device: gradcheck and gradgradcheck (central
//! finite differences in f64) with respect to the input and the weight across strides,
//! paddings, dilations and groups, and the batched-cotangent invariant (one `vjp` with
//! `[K, …]` cotangents equals K separate `vjp`s to 1e-12, for the gradient and for the
//! gradient of the gradient).
//!
//! The CUDA instances run on a real GPU when present, else on the emulated GPU.

mod common;

use common::{assert_batched_cotangents, assert_gradchecks, relative_error, Inputs};
use curvature_tape::{grad, GradOptions, Result, Tape, Var};
use curvature_tensor::{Conv1dOptions, Conv2dOptions, DType, Device, Tensor, Window2d};

/// The op applied to tape variables.
type Apply = Box<dyn Fn(&[Var]) -> Result<Var>>;

/// A case: a name, its input shapes, and the op.
struct Case {
    name: &'static str,
    shapes: Vec<Vec<usize>>,
    apply: Apply,
}

fn case(
    name: &'static str,
    shapes: &[&[usize]],
    apply: impl Fn(&[Var]) -> Result<Var> + 'static,
) -> Case {
    Case {
        name,
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        apply: Box::new(apply),
    }
}

fn cases() -> Vec<Case> {
    let grouped = Conv2dOptions {
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
        groups: 2,
    };
    let dilated = Conv1dOptions {
        stride: 2,
        padding: 1,
        dilation: 2,
        groups: 1,
    };
    let window = Window2d {
        kernel: (2, 2),
        stride: (1, 2),
        padding: (1, 0),
        dilation: (1, 1),
    };
    vec![
        case("conv2d", &[&[2, 2, 4, 3], &[3, 2, 2, 2]], |v| {
            v[0].conv2d(&v[1], (1, 1), (1, 0))
        }),
        case("conv2d groups", &[&[1, 4, 4, 4], &[2, 2, 2, 2]], move |v| {
            v[0].conv2d_with(&v[1], &grouped)
        }),
        case("conv1d", &[&[2, 2, 6], &[2, 2, 2]], move |v| {
            v[0].conv1d_with(&v[1], &dilated)
        }),
        case("unfold2d", &[&[1, 2, 3, 4]], move |v| {
            v[0].unfold2d(&window)
        }),
        case("fold2d", &[&[1, 8, 8]], move |v| {
            v[0].fold2d((3, 4), &window)
        }),
        case("max_pool2d", &[&[1, 2, 4, 5]], |v| {
            v[0].max_pool2d((3, 2), (1, 2), (1, 1))
        }),
        case("avg_pool2d", &[&[1, 2, 4, 5]], |v| {
            v[0].avg_pool2d((3, 2), (2, 1), (1, 0))
        }),
        case("adaptive_avg_pool2d", &[&[1, 2, 5, 4]], |v| {
            v[0].adaptive_avg_pool2d((3, 3))
        }),
    ]
}

impl Case {
    fn inputs(&self, seed: u64, device: Device) -> Vec<Tensor> {
        let mut inputs = Inputs::new(seed, device);
        self.shapes.iter().map(|s| inputs.any(s)).collect()
    }
}

/// gradcheck and gradgradcheck in f64 with respect to every input (input and weight).
fn derivatives_match_finite_differences(device: Device) {
    for (k, case) in cases().iter().enumerate() {
        assert_gradchecks(case.name, &case.inputs(10 + k as u64, device), &case.apply);
    }
}

/// Max pooling's derivative goes to each window's maximum (found here by a direct loop), and
/// its second derivative is zero: the gradient does not depend on the input.
fn max_pool_derivatives_go_to_the_maximum(device: Device) -> Result<()> {
    let (h, w) = (4, 5);
    let x = Inputs::new(30, device).any(&[1, 1, h, w]);
    let weights = Inputs::new(31, device).any(&[1, 1, 3, 4]);
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let pooled = xv.max_pool2d((2, 2), (1, 1), (0, 0))?;
    let loss = pooled.mul(&tape.constant(weights.clone()))?.sum_all()?;
    let g = grad(
        &[loss],
        std::slice::from_ref(&xv),
        GradOptions::create_graph(),
    )?;
    let (xs, ws) = (x.to_f64s()?, weights.to_f64s()?);
    let mut expected = vec![0.0; h * w];
    for y in 0..3 {
        for c in 0..4 {
            let taps = [(y, c), (y, c + 1), (y + 1, c), (y + 1, c + 1)];
            let best = taps
                .iter()
                .map(|&(r, q)| r * w + q)
                .fold(None, |best: Option<usize>, at| match best {
                    Some(b) if xs[b] >= xs[at] => Some(b),
                    _ => Some(at),
                })
                .expect("four taps");
            expected[best] += ws[y * 4 + c];
        }
    }
    let error = relative_error(&g[0].value().to_f64s()?, &expected);
    assert!(
        error <= 1e-15,
        "max_pool2d gradient: relative error {error:.1e}"
    );
    let direction = tape.constant(Inputs::new(32, device).any(&[1, 1, h, w]));
    let second = grad(
        &[g[0].mul(&direction)?.sum_all()?],
        &[xv],
        GradOptions {
            allow_unused: true,
            ..GradOptions::default()
        },
    )?;
    let values = second[0].value().to_f64s()?;
    assert!(
        values.iter().all(|&v| v == 0.0),
        "max_pool2d second derivative: {values:?}"
    );
    Ok(())
}

/// K stacked cotangents in one `vjp` equal K separate `vjp`s, for the op's gradient and for
/// the gradient of `Σ w·op(x)`'s gradient (a batch of Hessian-vector products).
fn batched_cotangents_equal_separate_ones(device: Device) {
    for (k, case) in cases().iter().enumerate() {
        assert_batched_cotangents(case.name, &case.inputs(40 + k as u64, device), &case.apply);
    }
}

device_tests!(
    derivatives_match_finite_differences,
    max_pool_derivatives_go_to_the_maximum,
    batched_cotangents_equal_separate_ones,
);

/// Errors on the tape name the op: variables of two tapes, wrong ranks, mismatched dtypes.
#[test]
fn tape_convolution_errors_name_the_op() {
    let zeros = |dims: &[usize], dtype| Tensor::zeros(dims, dtype, Device::Cpu).expect("zeros");
    let (a, b) = (Tape::new(), Tape::new());
    let x = a.leaf(zeros(&[1, 2, 4, 4], DType::F64));
    let w = b.leaf(zeros(&[1, 2, 2, 2], DType::F64));
    let message = |r: Result<Var>| r.expect_err("an error").to_string();
    assert!(message(x.conv2d(&w, (1, 1), (0, 0))).contains("conv2d"));
    let w = a.leaf(zeros(&[1, 2, 2, 2], DType::F32));
    let text = message(x.conv2d(&w, (1, 1), (0, 0)));
    assert!(text.contains("conv2d") && text.contains("f32"), "{text}");
    let w = a.leaf(zeros(&[1, 2, 2], DType::F64));
    let text = message(x.conv1d(&w, 1, 0));
    assert!(
        text.contains("conv1d") && text.contains("[1, 2, 4, 4]"),
        "{text}"
    );
    let flat = a.leaf(zeros(&[2, 4, 4], DType::F64));
    assert!(message(flat.max_pool2d((2, 2), (2, 2), (0, 0))).contains("max_pool2d"));
    assert!(message(flat.unfold2d(&Window2d::new((2, 2)))).contains("unfold2d"));
    assert!(message(flat.fold2d((2, 2), &Window2d::new((2, 2)))).contains("fold2d"));
}
