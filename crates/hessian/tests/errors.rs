//! Bad input gives a structured error that says what is wrong, never a panic.

mod common;

use common::f64s;
use curvature_hessian::{
    apply, hvp, hvp_batch, probes, spectral_density, top_eigenvalues, trace_hutchinson,
    trace_hutchpp, HessianError, LanczosOptions, LinearOperator, PreparedHvp, Probe, Result,
    SlqOptions,
};
use curvature_tape::nn::{Activation, Loss, Sequential};
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
