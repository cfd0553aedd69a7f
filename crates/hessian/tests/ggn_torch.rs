//! The Gauss–Newton matrix, its diagonal and the empirical Fisher of every golden model against
//! PyTorch in float64 (`tests/fixtures/torch/ggn_*.safetensors`, made by
//! `scripts/make_ggn_fixtures.py` from `torch.func.jacrev` and `torch.func.hessian`), to 1e-10,
//! on the CPU and on the CUDA device.

mod common;

use std::path::PathBuf;

use common::{load_as, rel_err, GOLDEN};
use curvature_hessian::{hessian_of, Curvature, Ggn, HessianOptions};
use curvature_tensor::{DType, Device, Tensor};

const TOL: f64 = 1e-10;

fn reference(name: &str, key: &str) -> Tensor {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/torch");
    let path = PathBuf::from(dir).join(format!("ggn_{name}.safetensors"));
    curvature_tensor::io::load(&path, Device::Cpu).unwrap()[key].clone()
}

/// The GGN (dense and its diagonal) and the empirical Fisher of the golden models `names`.
fn check(names: &[&str], device: Device) {
    for &name in names {
        let file = load_as(name, DType::F64, device);
        let operator =
            |curvature| Ggn::new(&file.model, file.loss, &file.x, &file.y, curvature).unwrap();
        let ggn = operator(Curvature::Ggn);
        let fisher = operator(Curvature::EmpiricalFisher);
        let options = HessianOptions::default();
        let results = [
            ("GGN", hessian_of(&ggn, &options).unwrap(), "ggn"),
            ("GGN diagonal", ggn.diagonal().unwrap(), "ggn_diag"),
            (
                "empirical Fisher",
                hessian_of(&fisher, &options).unwrap(),
                "empirical_fisher",
            ),
        ];
        for (what, ours, key) in results {
            assert_eq!(ours.device(), device, "{name} {what}: left the device");
            let err = rel_err(&ours, &reference(name, key));
            assert!(err <= TOL, "{name} {what}: {err:e} relative to PyTorch");
        }
    }
}

#[test]
fn golden_models_match_torch_cpu() {
    check(&GOLDEN, Device::Cpu);
}

#[test]
fn small_golden_models_match_torch_cuda() {
    // The 1000-sample seed model is left to the CPU: the emulated GPU is slow.
    let small: Vec<&str> = GOLDEN
        .into_iter()
        .filter(|name| *name != "seed_simplenet_tanh_mse")
        .collect();
    check(&small, common::cuda());
}
