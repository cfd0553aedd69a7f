//! `DistributedOperator` on 2, 3 and 4 in-process ranks with an uneven split of 7 samples
//! against the single-process operator on all samples, to 1e-12 in f64: the loss and gradient,
//! dense Hessians and GGNs, a Hutchinson trace, Lanczos' top eigenvalues, the SLQ density and a
//! CG solve. Also the split itself, the fingerprint check and a failing local operator.

mod common;

use std::sync::Arc;

use common::{assert_close, inputs, labels, mlp, targets, within, SAMPLES};
use curvature_distributed::{
    Collective, DistributedError, DistributedOperator, Fingerprint, InProcess, Reduction, Shard,
};
use curvature_hessian::{
    hessian_of, solve_cg, spectral_density, top_eigenvalues, trace_hutchinson, CgOptions,
    Curvature, Ggn, HessianOptions, LanczosOptions, LinearOperator, ModelHvp, Probe, SlqOptions,
};
use curvature_nn::{Loss, Sequential};
use curvature_tensor::{DType, Device, Tensor, UnaryOp};

const TOL: f64 = 1e-12;

#[test]
fn contiguous_split_gives_the_remainder_to_the_first_ranks() {
    let lens = |total, ranks| -> Vec<(usize, usize)> {
        (0..ranks)
            .map(|r| {
                let s = Shard::contiguous(total, ranks, r).unwrap();
                (s.start, s.len)
            })
            .collect()
    };
    assert_eq!(lens(7, 2), vec![(0, 4), (4, 3)]);
    assert_eq!(lens(7, 3), vec![(0, 3), (3, 2), (5, 2)]);
    assert_eq!(lens(7, 4), vec![(0, 2), (2, 2), (4, 2), (6, 1)]);
    assert_eq!(lens(8, 4), vec![(0, 2), (2, 2), (4, 2), (6, 2)]);
    assert_eq!(lens(5, 5), vec![(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]);
    let s = Shard::contiguous(7, 3, 1).unwrap();
    assert_eq!(s.range(), 3..5);
    assert_eq!(s.weight(Reduction::Mean), 2.0 / 7.0);
    assert_eq!(s.weight(Reduction::Sum), 1.0);
    assert_eq!(Reduction::of_loss(Loss::SumSq), Reduction::Sum);
    assert_eq!(Reduction::of_loss(Loss::CrossEntropy), Reduction::Mean);
    let rows = s.select(&inputs()).unwrap();
    assert_eq!(rows.dims(), &[2, common::FEATURES]);
    assert_eq!(
        rows.to_f64s().unwrap(),
        inputs().to_f64s().unwrap()[3 * common::FEATURES..5 * common::FEATURES]
    );
}

#[test]
fn bad_splits_are_errors() {
    let e = Shard::contiguous(3, 4, 0).unwrap_err();
    assert!(
        matches!(
            e,
            DistributedError::TooFewSamples {
                samples: 3,
                ranks: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = Shard::contiguous(8, 4, 4).unwrap_err();
    assert!(
        e.to_string()
            .contains("rank 4 is not a rank of a group of 4"),
        "{e}"
    );
    let e = Shard::contiguous(8, 4, 1)
        .unwrap()
        .select(&inputs())
        .unwrap_err();
    assert!(
        e.to_string().contains("the 8 samples, got shape [7, 3]"),
        "{e}"
    );
}

/// Which local operator each rank builds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The loss Hessian by `ModelHvp` (the fused sweep for a tanh MLP, the tape for gelu).
    Hessian(UnaryOp),
    /// A GGN or Fisher of the tanh MLP.
    Ggn(Curvature),
}

fn model(kind: Kind) -> Sequential {
    match kind {
        Kind::Hessian(act) => mlp(4, act, 3),
        Kind::Ggn(_) => mlp(4, UnaryOp::Tanh, 3),
    }
}

fn local_operator(kind: Kind, loss: Loss, x: &Tensor, y: &Tensor) -> Box<dyn LinearOperator> {
    let model = model(kind);
    match kind {
        Kind::Hessian(_) => Box::new(ModelHvp::new(&model, loss, x, y).unwrap()),
        Kind::Ggn(c) => Box::new(Ggn::new(&model, loss, x, y, c).unwrap()),
    }
}

fn targets_for(loss: Loss) -> Tensor {
    match loss {
        Loss::CrossEntropy => labels(),
        _ => targets(),
    }
}

/// What every estimator gives, flattened to compare.
#[derive(Debug)]
struct Results {
    dense: Vec<f64>,
    trace: f64,
    top: Vec<f64>,
    density: Vec<f64>,
    nodes: Vec<f64>,
    solution: Vec<f64>,
}

fn estimate(op: &dyn LinearOperator) -> curvature_hessian::Result<Results> {
    let dense = hessian_of(op, &HessianOptions::default())?.to_f64s()?;
    let trace = trace_hutchinson(op, 6, Probe::Rademacher, 11)?;
    let top = top_eigenvalues(
        op,
        &LanczosOptions {
            k: 3,
            tol: 1e-10,
            seed: 5,
            ..Default::default()
        },
    )?
    .values;
    let slq = spectral_density(
        op,
        &SlqOptions {
            probes: 3,
            steps: 8,
            seed: 9,
            grid_points: 40,
            sigma: 0.05,
            ..Default::default()
        },
    )?;
    let b = Tensor::from_f64s(
        &common::wave(op.dim(), 0.2),
        [op.dim()],
        DType::F64,
        Device::Cpu,
    )?;
    let solution = solve_cg(
        op,
        &b,
        &CgOptions {
            damping: gershgorin_bound(&dense, op.dim()) + 0.5,
            tolerance: 1e-10,
            ..Default::default()
        },
    )?
    .x
    .to_f64s()?;
    Ok(Results {
        dense,
        trace,
        top,
        density: slq.density,
        nodes: slq.nodes.concat(),
        solution,
    })
}

/// The largest absolute row sum of the `dim × dim` matrix `h`, which bounds every eigenvalue's
/// magnitude: damping by more makes the curvature positive definite.
fn gershgorin_bound(h: &[f64], dim: usize) -> f64 {
    h.chunks(dim)
        .map(|row| row.iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

fn assert_same(label: &str, got: &Results, want: &Results) {
    assert_close(&format!("{label}: dense"), &got.dense, &want.dense, TOL);
    assert_close(&format!("{label}: trace"), &[got.trace], &[want.trace], TOL);
    assert_close(
        &format!("{label}: top eigenvalues"),
        &got.top,
        &want.top,
        TOL,
    );
    assert_close(&format!("{label}: SLQ nodes"), &got.nodes, &want.nodes, TOL);
    assert_close(
        &format!("{label}: SLQ density"),
        &got.density,
        &want.density,
        TOL,
    );
    assert_close(
        &format!("{label}: CG solution"),
        &got.solution,
        &want.solution,
        TOL,
    );
}

/// Every rank's `Results` for `kind` and `loss` on `ranks` ranks.
fn distributed(kind: Kind, loss: Loss, ranks: usize) -> Vec<Results> {
    within(120, move || {
        InProcess::run(ranks, |c: InProcess| -> Result<Results, DistributedError> {
            let (x, y) = (inputs(), targets_for(loss));
            let shard = Shard::of(&c, SAMPLES)?;
            let (xs, ys) = (shard.select(&x)?, shard.select(&y)?);
            let fingerprint = Fingerprint::of_model(&model(kind), std::slice::from_ref(&xs), &ys)?;
            let op = DistributedOperator::new(
                local_operator(kind, loss, &xs, &ys),
                Arc::new(c),
                shard,
                Reduction::of_loss(loss),
                &fingerprint,
            )?;
            Ok(estimate(&op)?)
        })
        .unwrap_or_else(|e| panic!("{kind:?} {loss:?} on {ranks} ranks: {e}"))
    })
}

#[test]
fn hessians_and_estimators_match_one_process() {
    for (kind, loss) in [
        (Kind::Hessian(UnaryOp::Tanh), Loss::CrossEntropy),
        (Kind::Hessian(UnaryOp::Tanh), Loss::SumSq),
        (Kind::Hessian(UnaryOp::Gelu), Loss::Mse),
    ] {
        let (x, y) = (inputs(), targets_for(loss));
        let want = estimate(local_operator(kind, loss, &x, &y).as_ref()).unwrap();
        for ranks in [2, 3, 4] {
            for (rank, got) in distributed(kind, loss, ranks).iter().enumerate() {
                assert_same(
                    &format!("{kind:?} {loss:?}, rank {rank} of {ranks}"),
                    got,
                    &want,
                );
            }
        }
    }
}

#[test]
fn ggn_and_empirical_fisher_match_one_process() {
    for (curvature, loss) in [
        (Curvature::Ggn, Loss::CrossEntropy),
        (Curvature::Ggn, Loss::Mse),
        (Curvature::EmpiricalFisher, Loss::CrossEntropy),
    ] {
        let kind = Kind::Ggn(curvature);
        let (x, y) = (inputs(), targets_for(loss));
        let want = estimate(local_operator(kind, loss, &x, &y).as_ref()).unwrap();
        for ranks in [2, 3, 4] {
            for (rank, got) in distributed(kind, loss, ranks).iter().enumerate() {
                assert_same(
                    &format!("{kind:?} {loss:?}, rank {rank} of {ranks}"),
                    got,
                    &want,
                );
            }
        }
    }
}

#[test]
fn loss_value_and_gradient_match_one_process() {
    for loss in [Loss::CrossEntropy, Loss::SumSq] {
        let (x, y) = (inputs(), targets_for(loss));
        let whole = ModelHvp::new(&model(Kind::Hessian(UnaryOp::Tanh)), loss, &x, &y).unwrap();
        let (value, gradient) = (
            whole.value().unwrap(),
            whole.gradient().unwrap().to_f64s().unwrap(),
        );
        for ranks in [2, 3, 4] {
            let out = within(60, move || {
                InProcess::run(ranks, |c: InProcess| -> Result<_, DistributedError> {
                    let m = model(Kind::Hessian(UnaryOp::Tanh));
                    let shard = Shard::of(&c, SAMPLES)?;
                    let (xs, ys) = (shard.select(&inputs())?, shard.select(&targets_for(loss))?);
                    let op = DistributedOperator::new(
                        ModelHvp::new(&m, loss, &xs, &ys)?,
                        Arc::new(c),
                        shard,
                        Reduction::of_loss(loss),
                        &Fingerprint::of_model(&m, std::slice::from_ref(&xs), &ys)?,
                    )?;
                    Ok((op.value()?, op.gradient()?.to_f64s()?))
                })
                .unwrap()
            });
            for (rank, (v, g)) in out.iter().enumerate() {
                assert_close(
                    &format!("{loss:?} value, rank {rank} of {ranks}"),
                    &[*v],
                    &[value],
                    TOL,
                );
                assert_close(
                    &format!("{loss:?} gradient, rank {rank} of {ranks}"),
                    g,
                    &gradient,
                    TOL,
                );
            }
        }
    }
}

/// A change one rank makes to its model or its sample count.
type Change = fn(&mut Sequential, &mut usize);

/// Every rank's error when rank `odd` builds its problem with `change` applied.
fn mismatch(ranks: usize, odd: usize, change: Change) -> Vec<String> {
    within(60, move || {
        InProcess::run_each(ranks, |c: InProcess| -> Result<(), DistributedError> {
            let mut m = model(Kind::Hessian(UnaryOp::Tanh));
            let x = inputs();
            let mut total = SAMPLES;
            if c.rank() == odd {
                change(&mut m, &mut total);
            }
            let shard = Shard::of(&c, total)?;
            let n = x.dims()[0].min(shard.start + shard.len) - shard.start;
            let xs = x.narrow(0, shard.start, n)?;
            let ys = labels().narrow(0, shard.start, n)?;
            DistributedOperator::new(
                ModelHvp::new(&m, Loss::CrossEntropy, &xs, &ys)?,
                Arc::new(c),
                shard,
                Reduction::Mean,
                &Fingerprint::of_model(&m, std::slice::from_ref(&xs), &ys)?,
            )?;
            Ok(())
        })
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect()
    })
}

#[test]
fn mismatched_models_and_data_are_detected_before_any_product() {
    let cases: [(&str, Change); 3] = [
        ("the parameter count is", |m, _| {
            *m = mlp(5, UnaryOp::Tanh, 3);
        }),
        ("the parameter checksum is", |m, _| {
            *m = mlp(4, UnaryOp::Tanh, 4);
        }),
        ("the number of samples is", |_, total| {
            *total = SAMPLES - 1;
        }),
    ];
    for (ranks, odd) in [(2, 1), (3, 2), (4, 1)] {
        for (field, change) in cases {
            let errors = mismatch(ranks, odd, change);
            for (rank, e) in errors.iter().enumerate() {
                assert!(
                    e.starts_with(&format!(
                        "rank {rank}: the ranks do not hold the same problem: {field}"
                    )) && e.contains(&format!("on rank {odd} but")),
                    "{ranks} ranks, rank {rank}: {e}"
                );
            }
        }
    }
}

#[test]
fn mismatched_per_sample_shapes_and_dtypes_are_detected() {
    let errors: Vec<String> = within(60, || {
        InProcess::run_each(3, |c: InProcess| -> Result<(), DistributedError> {
            let m = model(Kind::Hessian(UnaryOp::Tanh));
            let (features, dtype) = match c.rank() {
                1 => (2, DType::F64),
                2 => (3, DType::F32),
                _ => (3, DType::F64),
            };
            let x = Tensor::zeros([2, features], dtype, Device::Cpu)?;
            Fingerprint::of_model(&m, &[x], &labels())?.check(&c)
        })
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect()
    });
    for (rank, e) in errors.iter().enumerate() {
        assert!(
            e.starts_with(&format!(
                "rank {rank}: the ranks do not hold the same problem: the per-sample shape of \
                 input 0 is"
            )) && e.contains("on rank 1 but"),
            "rank {rank}: {e}"
        );
    }
}

#[test]
fn a_failing_local_operator_ends_every_rank_with_its_error() {
    for ranks in [2, 3, 4] {
        let failing = ranks / 2;
        let errors: Vec<String> = within(60, move || {
            InProcess::run_each(ranks, |c: InProcess| -> Result<(), DistributedError> {
                let rank = c.rank();
                let shard = Shard::of(&c, SAMPLES)?;
                let (xs, ys) = (shard.select(&inputs())?, shard.select(&labels())?);
                let m = model(Kind::Hessian(UnaryOp::Tanh));
                let op = DistributedOperator::new(
                    Faulty {
                        inner: ModelHvp::new(&m, Loss::CrossEntropy, &xs, &ys)?,
                        fails: rank == failing,
                    },
                    Arc::new(c),
                    shard,
                    Reduction::Mean,
                    &Fingerprint::of_model(&m, std::slice::from_ref(&xs), &ys)?,
                )?;
                top_eigenvalues(&op, &LanczosOptions::default())?;
                Ok(())
            })
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap_err().to_string())
            .collect()
        });
        for (rank, e) in errors.iter().enumerate() {
            if rank == failing {
                assert_eq!(e, "apply_batch: the device ran out of memory");
            } else {
                assert_eq!(
                    e,
                    &format!(
                        "all_reduce_sum on rank {rank}: rank {failing} failed: apply_batch: the \
                         device ran out of memory"
                    )
                );
            }
        }
    }
}

/// A local operator whose every product fails where `fails`.
struct Faulty {
    inner: ModelHvp,
    fails: bool,
}

impl LinearOperator for Faulty {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn apply_batch(&self, v: &Tensor) -> curvature_hessian::Result<Tensor> {
        if self.fails {
            return Err(curvature_hessian::HessianError::InvalidArgument {
                op: "apply_batch",
                msg: "the device ran out of memory".into(),
            });
        }
        self.inner.apply_batch(v)
    }
}
