//! The in-process collectives and the distributed operator on every device: the CUDA instances
//! (a real GPU, else the emulated one) keep their results on the device and agree with one CPU
//! process in f64.

mod common;

use std::sync::Arc;

use common::{assert_close, inputs, labels, mlp, mlp_on, within, SAMPLES};
use curvature_distributed::{
    Collective, DistributedError, DistributedOperator, Fingerprint, InProcess, Reduction, Shard,
};
use curvature_hessian::{hessian_of, HessianOptions, ModelHvp};
use curvature_nn::Loss;
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

fn all_reduce_and_gather_stay_on_the_device(device: Device) {
    let out = within(60, move || {
        InProcess::run(3, |c: InProcess| -> Result<_, DistributedError> {
            let r = c.rank() as f64;
            let t = Tensor::from_f64s(&[r, 2.0 * r], [2], DType::F64, device)?;
            let sum = c.all_reduce_sum(&t)?;
            let gathered = c.all_gather(&t)?;
            Ok((
                sum.device(),
                sum.to_f64s()?,
                gathered.device(),
                gathered.to_f64s()?,
            ))
        })
        .unwrap()
    });
    for (sum_device, sum, gathered_device, gathered) in out {
        assert_eq!((sum_device, gathered_device), (device, device));
        assert_eq!(sum, vec![3.0, 6.0]);
        assert_eq!(gathered, vec![0.0, 0.0, 1.0, 2.0, 2.0, 4.0]);
    }
}

fn the_distributed_hessian_matches_one_cpu_process(device: Device) {
    let model = mlp(3, UnaryOp::Tanh, 3);
    let cpu = ModelHvp::new(&model, Loss::CrossEntropy, &inputs(), &labels()).unwrap();
    let want = hessian_of(&cpu, &HessianOptions::default())
        .unwrap()
        .to_f64s()
        .unwrap();
    let out = within(300, move || {
        InProcess::run(2, |c: InProcess| -> Result<_, DistributedError> {
            let m = mlp_on(3, UnaryOp::Tanh, 3, device);
            let shard = Shard::of(&c, SAMPLES)?;
            let xs = shard.select(&inputs().to_device(device)?)?;
            let ys = shard.select(&labels().to_device(device)?)?;
            let op = DistributedOperator::new(
                ModelHvp::new(&m, Loss::CrossEntropy, &xs, &ys)?,
                Arc::new(c),
                shard,
                Reduction::Mean,
                &Fingerprint::of_model(&m, std::slice::from_ref(&xs), &ys)?,
            )?;
            let h = hessian_of(&op, &HessianOptions::default())?;
            Ok((h.device(), h.to_f64s()?))
        })
        .unwrap()
    });
    for (rank, (h_device, h)) in out.iter().enumerate() {
        assert_eq!(*h_device, device);
        assert_close(&format!("{device} Hessian, rank {rank}"), h, &want, 1e-12);
    }
}

device_tests!(
    all_reduce_and_gather_stay_on_the_device,
    the_distributed_hessian_matches_one_cpu_process,
);
