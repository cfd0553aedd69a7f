//! The in-process back end's collectives against closed forms, its ordered reductions, and its
//! failures: bad arguments, mismatched ranks, and a failing rank ending every rank (under a
//! watchdog, so a hang fails the test).

mod common;

use common::{tensor, within};
use curvature_distributed::{
    Collective, CollectiveError, InProcess, RunError, MAX_IN_PROCESS_RANKS,
};
use curvature_tensor::{DType, Device, Tensor};

/// Rank r's tensor `[2, 3]`: element i is `10·r + i`.
fn rank_tensor(rank: usize) -> Tensor {
    let v: Vec<f64> = (0..6).map(|i| (10 * rank + i) as f64).collect();
    tensor(&v, &[2, 3])
}

#[test]
fn all_reduce_broadcast_gather_and_scatter_match_closed_forms() {
    for ranks in [1, 2, 3, 4] {
        let out = within(30, move || {
            InProcess::run(ranks, |c: InProcess| -> Result<_, CollectiveError> {
                let mine = rank_tensor(c.rank());
                let sum = c.all_reduce_sum(&mine)?.to_f64s().unwrap();
                let root = ranks - 1;
                let bcast = c.broadcast(&mine, root)?.to_f64s().unwrap();
                c.barrier()?;
                let gathered = c.all_gather(&mine)?;
                let rows: Vec<f64> = (0..2 * ranks)
                    .map(|i| (100 * c.rank() + i) as f64)
                    .collect();
                let scattered = c.reduce_scatter_sum(&tensor(&rows, &[2 * ranks]))?;
                Ok((
                    sum,
                    bcast,
                    gathered.dims().to_vec(),
                    gathered.to_f64s().unwrap(),
                    scattered.to_f64s().unwrap(),
                ))
            })
            .map_err(|e| e.to_string())
        })
        .unwrap();
        let r = ranks as f64;
        // Σ_r (10 r + i) = 10·R(R−1)/2 + R·i.
        let sum: Vec<f64> = (0..6).map(|i| 5.0 * r * (r - 1.0) + r * i as f64).collect();
        let bcast: Vec<f64> = (0..6).map(|i| (10 * (ranks - 1) + i) as f64).collect();
        let gathered: Vec<f64> = (0..ranks)
            .flat_map(|q| (0..6).map(move |i| (10 * q + i) as f64))
            .collect();
        for (rank, (s, b, dims, g, scattered)) in out.iter().enumerate() {
            assert_eq!(s, &sum, "{ranks} ranks: all_reduce_sum on rank {rank}");
            assert_eq!(b, &bcast, "{ranks} ranks: broadcast on rank {rank}");
            assert_eq!(dims, &[2 * ranks, 3]);
            assert_eq!(g, &gathered, "{ranks} ranks: all_gather on rank {rank}");
            // Element j of the summed rows is Σ_q (100 q + j) = 50·R(R−1) + R·j; rank r gets
            // j = 2r, 2r + 1.
            let block: Vec<f64> = (2 * rank..2 * rank + 2)
                .map(|j| 50.0 * r * (r - 1.0) + r * j as f64)
                .collect();
            assert_eq!(
                scattered, &block,
                "{ranks} ranks: reduce_scatter_sum on rank {rank}"
            );
        }
    }
}

#[test]
fn sums_add_in_rank_order_whatever_the_timing() {
    // ((1e16 + 1) − 1e16) + 1 = 1 in rank order; other orders give 0 or 2.
    let values = [1e16, 1.0, -1e16, 1.0];
    for trial in 0..20 {
        let sums = within(30, move || {
            InProcess::run(4, |c: InProcess| -> Result<f64, CollectiveError> {
                if (c.rank() + trial) % 4 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Ok(c.all_reduce_f64s(&[values[c.rank()]])?[0])
            })
            .map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(sums, vec![1.0; 4], "trial {trial}");
    }
}

#[test]
fn results_stay_on_the_callers_device_and_dtype() {
    let out = InProcess::run(2, |c: InProcess| -> Result<_, CollectiveError> {
        let t = Tensor::from_f64s(&[1.5, c.rank() as f64], [2], DType::F32, Device::Cpu).unwrap();
        let sum = c.all_reduce_sum(&t)?;
        Ok((sum.dtype(), sum.device(), sum.to_f64s().unwrap()))
    })
    .unwrap();
    for (dtype, device, values) in out {
        assert_eq!((dtype, device), (DType::F32, Device::Cpu));
        assert_eq!(values, vec![3.0, 1.0]);
    }
}

/// Every rank's outcome of `work` on `ranks` ranks, as error strings, under a watchdog.
fn outcomes<F>(ranks: usize, work: F) -> Vec<Result<(), String>>
where
    F: Fn(InProcess) -> Result<(), CollectiveError> + Send + Sync + 'static,
{
    within(30, move || {
        InProcess::run_each(ranks, work)
            .unwrap()
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    })
}

#[test]
fn shape_dtype_order_and_root_mismatches_fail_on_every_rank() {
    let shapes = outcomes(3, |c| {
        let len = if c.rank() == 2 { 4 } else { 3 };
        c.all_reduce_sum(&Tensor::zeros([len], DType::F64, Device::Cpu).unwrap())
            .map(|_| ())
    });
    for (rank, r) in shapes.iter().enumerate() {
        let e = r.as_ref().unwrap_err();
        assert!(
            e.contains(&format!("all_reduce_sum on rank {rank}"))
                && e.contains("rank 2 passed a f64 tensor of shape [4]"),
            "{e}"
        );
    }
    let dtypes = outcomes(2, |c| {
        let dtype = if c.rank() == 1 {
            DType::F32
        } else {
            DType::F64
        };
        c.all_gather(&Tensor::zeros([2], dtype, Device::Cpu).unwrap())
            .map(|_| ())
    });
    for r in &dtypes {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("rank 1 passed a f32 tensor"),
            "{r:?}"
        );
    }
    let order = outcomes(2, |c| {
        if c.rank() == 0 {
            c.barrier()
        } else {
            c.all_reduce_f64s(&[1.0]).map(|_| ())
        }
    });
    for r in &order {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("rank 1 called all_reduce_sum at the same step"),
            "{r:?}"
        );
    }
    let roots = outcomes(2, |c| {
        c.broadcast(
            &Tensor::zeros([1], DType::F64, Device::Cpu).unwrap(),
            c.rank(),
        )
        .map(|_| ())
    });
    for r in &roots {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("rank 1 passed root 1, rank 0 root 0"),
            "{r:?}"
        );
    }
}

#[test]
fn bad_arguments_are_errors_and_end_the_group() {
    let out = outcomes(2, |c| {
        c.broadcast(&Tensor::zeros([1], DType::F64, Device::Cpu).unwrap(), 2)
            .map(|_| ())
    });
    for (rank, r) in out.iter().enumerate() {
        let e = r.as_ref().unwrap_err();
        assert!(
            e.contains("root 2 is not a rank of a group of 2"),
            "rank {rank}: {e}"
        );
    }
    let out = outcomes(3, |c| {
        c.reduce_scatter_sum(&Tensor::zeros([4, 2], DType::F64, Device::Cpu).unwrap())
            .map(|_| ())
    });
    for r in &out {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("shape [4, 2] is not divisible by 3 ranks"),
            "{r:?}"
        );
    }
    let out = outcomes(2, |c| {
        c.all_gather(&Tensor::scalar(1.0, DType::F64, Device::Cpu).unwrap())
            .map(|_| ())
    });
    for r in &out {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("needs a tensor with a leading axis"),
            "{r:?}"
        );
    }
    for ranks in [0, MAX_IN_PROCESS_RANKS + 1] {
        let e = InProcess::run(ranks, |_c: InProcess| -> Result<(), CollectiveError> {
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, RunError::Setup(_)), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "must be in 1..={MAX_IN_PROCESS_RANKS}, got {ranks}"
            )),
            "{e}"
        );
    }
}

#[derive(Debug)]
struct Fault(String);

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CollectiveError> for Fault {
    fn from(e: CollectiveError) -> Fault {
        Fault(e.to_string())
    }
}

#[test]
fn a_failing_rank_ends_every_rank_with_its_number_and_error() {
    for ranks in [2, 3, 4] {
        let failing = ranks - 1;
        let each = within(30, move || {
            InProcess::run_each(ranks, |c: InProcess| -> Result<(), Fault> {
                c.all_reduce_f64s(&[1.0])?;
                if c.rank() == failing {
                    return Err(Fault("the shard's data file is truncated".into()));
                }
                // The others wait in collectives that can never complete.
                for _ in 0..3 {
                    c.all_reduce_f64s(&[2.0])?;
                }
                Ok(())
            })
            .unwrap()
        });
        for (rank, outcome) in each.iter().enumerate() {
            let e = outcome.as_ref().unwrap_err().to_string();
            if rank == failing {
                assert_eq!(e, "the shard's data file is truncated");
            } else {
                assert_eq!(
                    e,
                    format!(
                        "all_reduce_sum on rank {rank}: rank {failing} failed: the shard's data \
                         file is truncated"
                    )
                );
            }
        }
        let first = within(30, move || {
            InProcess::run(ranks, |c: InProcess| -> Result<(), Fault> {
                if c.rank() == failing {
                    return Err(Fault("boom".into()));
                }
                c.barrier()?;
                Ok(())
            })
            .unwrap_err()
            .to_string()
        });
        assert_eq!(first, format!("rank {failing} failed: boom"));
    }
}

#[test]
fn a_panicking_rank_ends_every_rank() {
    let each = within(30, || {
        InProcess::run_each(3, |c: InProcess| -> Result<(), CollectiveError> {
            if c.rank() == 1 {
                panic!("index out of bounds in the loader");
            }
            c.barrier()
        })
        .unwrap()
    });
    for (rank, outcome) in each.iter().enumerate() {
        let e = outcome.as_ref().unwrap_err().to_string();
        assert!(
            e.contains("rank 1 failed: panicked: index out of bounds in the loader"),
            "rank {rank}: {e}"
        );
    }
}

#[test]
fn a_rank_that_returns_early_ends_the_others_collectives() {
    let each = outcomes(3, |c| {
        if c.rank() == 0 {
            return Ok(());
        }
        c.barrier()
    });
    assert!(each[0].is_ok());
    for r in &each[1..] {
        assert!(
            r.as_ref()
                .unwrap_err()
                .contains("rank 0 finished without calling it"),
            "{r:?}"
        );
    }
}

#[test]
fn abort_fails_the_current_and_later_collectives() {
    let each = outcomes(2, |c| {
        if c.rank() == 0 {
            c.abort("out of memory on the device");
        }
        c.barrier()
    });
    for (rank, r) in each.iter().enumerate() {
        assert_eq!(
            r.as_ref().unwrap_err(),
            &format!("barrier on rank {rank}: rank 0 failed: out of memory on the device")
        );
    }
}
