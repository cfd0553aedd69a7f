//! Bad input gives a structured error that says what is wrong, never a panic.

mod common;

use common::f64s;
use curvature_hessian::{
    apply, hessian, hessian_diagonal_hutchinson, hessian_of, hvp, hvp_batch, loss_hessian,
    model_hessian, output_hessian, per_sample_hessian, probes, spectral_density, top_eigenvalues,
    trace_hutchinson, trace_hutchpp, HessianError, HessianOptions, LanczosOptions, LinearOperator,
    PreparedHvp, Probe, Result, SlqOptions, MAX_KRYLOV_STEPS, MAX_PROBES, MAX_SIGMA, MIN_SIGMA,
};
use curvature_nn::{Activation, Loss, Module, Sequential};
use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

fn cube(v: &[Var]) -> curvature_tape::Result<Var> {
    v[0].powf(3.0)?.sum_all()
}

fn x3() -> Tensor {
    f64s(&[1.0, 2.0, 3.0], &[3])
}

#[test]
fn vector_of_the_wrong_length_is_rejected_cpu() {
    let err = hvp(cube, &[x3()], &[f64s(&[1.0; 4], &[4])]).unwrap_err();
    assert!(
        matches!(
            err,
            HessianError::VectorLength {
                op: "hvp",
                expected: 3,
                got: 4
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "hvp: vectors must have length 3, got 4");
    let op = PreparedHvp::new(cube, &[x3()]).unwrap();
    let err = op.hvp_batch(&f64s(&[1.0; 10], &[2, 5])).unwrap_err();
    assert!(
        matches!(
            err,
            HessianError::VectorLength {
                expected: 3,
                got: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_batch_is_rejected_cpu() {
    let empty = Tensor::zeros([0, 3], DType::F64, Device::Cpu).unwrap();
    let err = hvp_batch(cube, &[x3()], std::slice::from_ref(&empty)).unwrap_err();
    assert!(
        matches!(err, HessianError::EmptyBatch { op: "hvp_batch" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("K = 0"), "{err}");
    let op = PreparedHvp::new(cube, &[x3()]).unwrap();
    assert!(matches!(
        op.hvp_batch(&empty),
        Err(HessianError::EmptyBatch { .. })
    ));
    let err = trace_hutchinson(&op, 0, Probe::Rademacher, 0).unwrap_err();
    assert!(matches!(err, HessianError::EmptyBatch { .. }), "{err:?}");
    let err = probes(0, 3, Probe::Gaussian, 0, DType::F64, Device::Cpu).unwrap_err();
    assert!(
        matches!(err, HessianError::EmptyBatch { op: "probes" }),
        "{err:?}"
    );
}

#[test]
fn non_scalar_loss_is_rejected_cpu() {
    let err = hvp(|v| v[0].square(), &[x3()], &[x3()]).unwrap_err();
    match &err {
        HessianError::NonScalar { shape, .. } => assert_eq!(shape.dims(), &[3]),
        other => panic!("expected NonScalar, got {other:?}"),
    }
    assert!(err.to_string().contains("must return a scalar"), "{err}");
}

#[test]
fn mismatched_dtypes_are_rejected_cpu() {
    let v32 = Tensor::from_f64s(&[1.0, 1.0, 1.0], [3], DType::F32, Device::Cpu).unwrap();
    let err = hvp(cube, &[x3()], std::slice::from_ref(&v32)).unwrap_err();
    assert!(
        matches!(
            err,
            HessianError::DTypeMismatch {
                expected: DType::F64,
                got: DType::F32,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "hvp: dtype mismatch, expected f64 got f32");
    // Inputs of different dtypes.
    let err = PreparedHvp::new(|v| v[0].sum_all(), &[x3(), v32.clone()])
        .err()
        .unwrap();
    assert!(matches!(err, HessianError::DTypeMismatch { .. }), "{err:?}");
    // Data of another dtype than the model's parameters.
    let model = Sequential::mlp(
        &[3, 2, 1],
        &[Activation::Tanh],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )
    .unwrap();
    let x = Tensor::zeros([4, 3], DType::F32, Device::Cpu).unwrap();
    let y = Tensor::zeros([4, 1], DType::F64, Device::Cpu).unwrap();
    let err = PreparedHvp::for_model(&model, Loss::Mse, &x, &y)
        .err()
        .unwrap();
    assert!(matches!(err, HessianError::DTypeMismatch { .. }), "{err:?}");
}

/// An operator that lives on a CUDA device (it is never applied: the check comes first).
struct OnCuda;

impl LinearOperator for OnCuda {
    fn dim(&self) -> usize {
        3
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn device(&self) -> Device {
        Device::Cuda(0)
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        Ok(v.clone())
    }
}

#[test]
fn mismatched_devices_are_rejected_cpu() {
    // This build cannot place a tensor on a GPU, so the operator claims one and the vectors
    // stay on the CPU: the device check every operator call goes through must refuse them.
    let v = f64s(&[1.0; 6], &[2, 3]);
    let err = apply(&OnCuda, &v).unwrap_err();
    assert!(
        matches!(
            err,
            HessianError::DeviceMismatch {
                expected: Device::Cuda(0),
                got: Device::Cpu,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "apply_batch: device mismatch, expected cuda:0 got cpu"
    );
}

#[test]
fn lanczos_asked_for_more_eigenvalues_than_dimensions_is_rejected_cpu() {
    let op = PreparedHvp::new(cube, &[x3()]).unwrap();
    let options = LanczosOptions {
        k: 4,
        ..LanczosOptions::default()
    };
    let err = top_eigenvalues(&op, &options).unwrap_err();
    assert!(
        matches!(err, HessianError::TooManyEigenvalues { k: 4, dim: 3 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "top_eigenvalues: asked for 4 eigenvalues of a 3-dimensional operator"
    );
    let zero = LanczosOptions {
        k: 0,
        ..LanczosOptions::default()
    };
    assert!(matches!(
        top_eigenvalues(&op, &zero),
        Err(HessianError::InvalidArgument { .. })
    ));
}

#[test]
fn estimator_arguments_out_of_range_are_rejected_cpu() {
    let op = PreparedHvp::new(cube, &[x3()]).unwrap();
    let err = trace_hutchpp(&op, 2, 0).unwrap_err();
    assert!(
        matches!(
            err,
            HessianError::InvalidArgument {
                op: "trace_hutchpp",
                ..
            }
        ),
        "{err:?}"
    );
    for bad in [
        SlqOptions {
            sigma: 0.0,
            ..SlqOptions::default()
        },
        SlqOptions {
            sigma: f64::NAN,
            ..SlqOptions::default()
        },
        SlqOptions {
            steps: 0,
            ..SlqOptions::default()
        },
        SlqOptions {
            grid_points: 1,
            ..SlqOptions::default()
        },
    ] {
        let err = spectral_density(&op, &bad).unwrap_err();
        assert!(
            matches!(
                err,
                HessianError::InvalidArgument {
                    op: "spectral_density",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = spectral_density(
        &op,
        &SlqOptions {
            probes: 0,
            ..SlqOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, HessianError::EmptyBatch { .. }), "{err:?}");
}

/// An operator of any dimension that is never applied: every size check must come before the
/// first product, and a product would fail the test.
struct Unapplied {
    dim: usize,
    calls: std::cell::Cell<usize>,
}

impl Unapplied {
    fn new(dim: usize) -> Unapplied {
        Unapplied {
            dim,
            calls: std::cell::Cell::new(0),
        }
    }
}

impl LinearOperator for Unapplied {
    fn dim(&self) -> usize {
        self.dim
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        Ok(v.clone())
    }
}

#[test]
fn dense_hessians_too_large_to_hold_are_refused_before_any_product_cpu() {
    // 2²⁰ dimensions: 2⁴⁰ entries, 8 TiB in f64.
    let op = Unapplied::new(1 << 20);
    let err = hessian_of(&op, &HessianOptions::default()).unwrap_err();
    match &err {
        HessianError::OutOfMemory {
            op: "hessian_of",
            elements,
            bytes,
            ..
        } => {
            assert_eq!(*elements, 1 << 40);
            assert_eq!(*bytes, 8 << 40);
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert!(err.to_string().contains("8.0 TiB"), "{err}");
    assert_eq!(op.calls.get(), 0);
    // 2³³ dimensions: dim² overflows usize.
    let op = Unapplied::new(1 << 33);
    let err = hessian_of(&op, &HessianOptions::default()).unwrap_err();
    assert!(
        matches!(&err, HessianError::SizeOverflow { op: "hessian_of", sizes, .. } if sizes == &[1 << 33, 1 << 33]),
        "{err:?}"
    );
    assert_eq!(op.calls.get(), 0);

    // The functional API on a real 2²⁰-dimensional function (8 MiB of input).
    let x = Tensor::zeros([1 << 20], DType::F64, Device::Cpu).unwrap();
    let err = hessian(
        |v| v[0].square()?.sum_all(),
        &[x],
        &HessianOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { elements, .. } if elements == 1 << 40),
        "{err:?}"
    );
    // 2²⁰ outputs of a 2¹⁰-dimensional function: 2⁴⁰ entries.
    let x = Tensor::zeros([1 << 10], DType::F32, Device::Cpu).unwrap();
    let err = output_hessian(
        |v| {
            v[0].reshape([1 << 10, 1])?
                .matmul(&v[0].reshape([1, 1 << 10])?)
        },
        &[x],
        &HessianOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { op: "output_hessian", elements, bytes, .. }
            if elements == 1 << 40 && bytes == 4 << 40),
        "{err:?}"
    );
}

#[test]
fn model_hessians_too_large_to_hold_are_refused_before_any_product_cpu() {
    // P = 1 004 001: one sample's P² entries alone need 7.3 TiB.
    let model = Sequential::mlp(
        &[1, 1000, 1000, 1],
        &[Activation::Tanh, Activation::Tanh],
        None,
        DType::F64,
        Device::Cpu,
        0,
    )
    .unwrap();
    let p: usize = 1_004_001;
    assert_eq!(model.num_params(), p);
    let x = f64s(&[0.5, -0.5], &[2, 1]);
    let y = f64s(&[1.0, 0.0], &[2, 1]);
    let err = model_hessian(&model, &x).unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { op: "model_hessian", elements, .. }
            if elements == 2 * p * p),
        "{err:?}"
    );
    let err = per_sample_hessian(&model, Loss::Mse, &x, &y).unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { op: "per_sample_hessian", elements, .. }
            if elements == 2 * p * p),
        "{err:?}"
    );
    let err = loss_hessian(&model, Loss::Mse, &x, &y).unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { op: "hessian_of", elements, .. }
            if elements == p * p),
        "{err:?}"
    );
}

#[test]
fn huge_probe_and_step_counts_are_typed_errors_not_aborts_or_hangs_cpu() {
    let op = Unapplied::new(3);
    let err = trace_hutchpp(&op, usize::MAX, 0).unwrap_err();
    assert!(
        matches!(err, HessianError::TooLarge { op: "trace_hutchpp", value, limit, .. }
            if value == usize::MAX && limit == 3 * MAX_PROBES),
        "{err:?}"
    );
    for probes in [usize::MAX, MAX_PROBES + 1] {
        let err = hessian_diagonal_hutchinson(&op, probes, 0).unwrap_err();
        assert!(
            matches!(err, HessianError::TooLarge { op: "hessian_diagonal_hutchinson", value, limit, .. }
                if value == probes && limit == MAX_PROBES),
            "{err:?}"
        );
        let err = trace_hutchinson(&op, probes, Probe::Gaussian, 0).unwrap_err();
        assert!(matches!(err, HessianError::TooLarge { .. }), "{err:?}");
    }
    // A sketch of 2³⁰ rows of 2⁴⁰ entries: the probe block overflows usize.
    let wide = Unapplied::new(1 << 40);
    let err = trace_hutchpp(&wide, 3 << 30, 0).unwrap_err();
    assert!(
        matches!(&err, HessianError::SizeOverflow { op: "trace_hutchpp", sizes, .. }
            if sizes == &[1 << 30, 1 << 40]),
        "{err:?}"
    );
    // 2⁴⁰ probes of length 2¹⁰: 2⁵³ bytes, refused by the allocator.
    let err = probes(
        1 << 40,
        1 << 10,
        Probe::Rademacher,
        0,
        DType::F64,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(err, HessianError::OutOfMemory { op: "probes", bytes, .. } if bytes == 1 << 53),
        "{err:?}"
    );
    let err = probes(usize::MAX, 2, Probe::Rademacher, 0, DType::F64, Device::Cpu).unwrap_err();
    assert!(matches!(err, HessianError::SizeOverflow { .. }), "{err:?}");

    let bad_slq = [
        SlqOptions {
            grid_points: 1 << 40,
            ..SlqOptions::default()
        },
        SlqOptions {
            probes: usize::MAX,
            ..SlqOptions::default()
        },
        SlqOptions {
            steps: 1 << 40,
            ..SlqOptions::default()
        },
    ];
    for options in bad_slq {
        let err = spectral_density(&wide, &options).unwrap_err();
        assert!(
            matches!(
                err,
                HessianError::TooLarge {
                    op: "spectral_density",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = top_eigenvalues(
        &wide,
        &LanczosOptions {
            max_iter: usize::MAX,
            ..LanczosOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, HessianError::TooLarge { op: "top_eigenvalues", value, limit, .. }
            if value == 1 << 40 && limit == MAX_KRYLOV_STEPS),
        "{err:?}"
    );
    assert_eq!(op.calls.get() + wide.calls.get(), 0);
}

#[test]
fn sigma_outside_its_range_is_refused_before_any_product_cpu() {
    let op = Unapplied::new(3);
    for sigma in [
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        0.0,
        -1.0,
        1e-320,
        MIN_SIGMA / 2.0,
        1e308,
        MAX_SIGMA * 2.0,
    ] {
        let options = SlqOptions {
            sigma,
            ..SlqOptions::default()
        };
        let err = spectral_density(&op, &options).unwrap_err();
        assert!(
            matches!(
                err,
                HessianError::InvalidArgument {
                    op: "spectral_density",
                    ..
                }
            ),
            "σ = {sigma}: {err:?}"
        );
        assert!(err.to_string().contains("σ must be a number in"), "{err}");
    }
    assert_eq!(op.calls.get(), 0);
}
