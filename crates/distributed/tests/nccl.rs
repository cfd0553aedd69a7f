//! The NCCL back end with one rank on a real GPU, joined through an id file: every collective
//! against its closed form for one rank, in f64 and f32, and a GPU-less machine refused with a
//! clear error. Without a GPU and NCCL the GPU test prints a skip reason, unless
//! `CURVATURE_REQUIRE_NCCL=1` (`scripts/gpu_check.sh run` sets it where libnccl is installed),
//! when it fails.

#![cfg(all(unix, feature = "nccl"))]

use curvature_distributed::nccl::{nccl_available, Nccl};
use curvature_distributed::{Collective, CollectiveError};
use curvature_tensor::{DType, Device, Tensor};

fn gpu_or_skip(test: &str) -> bool {
    if nccl_available() {
        return true;
    }
    if std::env::var("CURVATURE_REQUIRE_NCCL").is_ok_and(|v| v == "1") {
        panic!("{test}: CURVATURE_REQUIRE_NCCL=1 but NCCL, the CUDA driver or a GPU is missing");
    }
    eprintln!("skipping {test}: NCCL, the CUDA driver or a GPU is missing");
    false
}

fn tensor(values: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_f64s(values, shape.to_vec(), dtype, Device::Cpu).unwrap()
}

#[test]
fn nccl_one_rank_collectives_cuda() {
    if !gpu_or_skip("nccl_one_rank_collectives_cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nccl = Nccl::through_file(&dir.path().join("nccl.id"), 0, 0, 1).unwrap();
    assert_eq!((nccl.rank(), nccl.size(), nccl.backend()), (0, 1, "nccl"));
    let values: Vec<f64> = (1..=6).map(|i| i as f64 * 0.5).collect();
    for dtype in [DType::F64, DType::F32] {
        let x = tensor(&values, &[3, 2], dtype);
        // One rank: the sum, the broadcast, the scatter and the gather are x itself.
        for out in [
            nccl.all_reduce_sum(&x).unwrap(),
            nccl.broadcast(&x, 0).unwrap(),
            nccl.reduce_scatter_sum(&x).unwrap(),
            nccl.all_gather(&x).unwrap(),
        ] {
            assert_eq!(out.dims(), &[3, 2]);
            assert_eq!(out.dtype(), dtype);
            assert_eq!(out.to_f64s().unwrap(), values);
        }
    }
    nccl.barrier().unwrap();
    assert!(matches!(
        nccl.broadcast(&tensor(&[1.0], &[1], DType::F64), 1),
        Err(CollectiveError::InvalidArgument { .. })
    ));
}

#[test]
fn nccl_without_a_gpu_is_unavailable() {
    if nccl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let err = Nccl::through_file(&dir.path().join("nccl.id"), 0, 0, 1)
        .err()
        .expect("no GPU");
    assert!(
        matches!(
            err,
            CollectiveError::Unavailable {
                backend: "nccl",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
}
