//! The GPU work of one batch of HVPs of the benchmark's seed and mid workloads, on `cuda:0` (a
//! real GPU when present, else the emulated one): after warm-up a batch allocates nothing,
//! zeroes nothing, makes a fixed number of launches and few driver calls besides them.
//!
//! The launch count of a batch depends on the model's layers, not on the sample count or the
//! number of directions, so the workloads run here with few samples and directions to keep the
//! emulated GPU quick.

use curvature::bench::{run_workload, BatchCounters, BenchConfig};
use curvature::tensor::{DType, Device};
use curvature::workloads::{by_name, Workload};

/// `name`'s layers with `samples` samples and `k` directions.
fn shrunk(name: &str, samples: usize, k: usize) -> Workload {
    let workload = by_name(name).expect("a standard workload");
    Workload {
        samples,
        k,
        ..workload
    }
}

/// The counters of the timed batches of `workload` (2 runs after a warm-up) on `device`.
fn batch_counters(workload: &Workload, device: Device) -> BatchCounters {
    let config = BenchConfig {
        device,
        dtype: DType::F32,
        workloads: vec![workload.clone()],
        runs: 2,
    };
    let result = run_workload(workload, &config).expect("the benchmark runs on CUDA");
    let counters = result.gpu_counters.expect("counters on a CUDA device");
    let json = result.to_json();
    assert_eq!(
        json["gpu_counters"]["launches"],
        counters.per_batch(counters.total.launches),
        "{json}"
    );
    counters
}

/// The per-batch expectations: `launches` exactly, no allocations or zeroing, at most four
/// driver calls besides the launches.
fn check(name: &str, counters: &BatchCounters, launches: u64) {
    let t = &counters.total;
    let b = counters.batches;
    assert_eq!(t.launches, launches * b, "{name}: launches per batch");
    assert_eq!(t.allocations, 0, "{name}: allocations after warm-up");
    assert_eq!(
        t.bytes_allocated, 0,
        "{name}: bytes allocated after warm-up"
    );
    assert_eq!(t.memsets, 0, "{name}: memsets after warm-up");
    assert!(
        t.driver_calls <= (launches + 4) * b,
        "{name}: {} driver calls for {} launches in {b} batches",
        t.driver_calls,
        t.launches
    );
}

/// Launches per batch of the op-by-op sweep (`CURVATURE_PLAN=0`): one per op, a product being
/// one launch even when it is split over k (its splits are summed in the same launch).
const OP_BY_OP: (u64, u64) = (51, 71);
/// Launches per batch of the compiled plan (seed, mid): each elementwise chain one fused
/// launch, the products reading the directions' slices in place, the `[K, P]` result written
/// by one fused pass instead of one copy per parameter block, and a sum of two products one
/// product accumulating into the other's result (β = 1 in its epilogue) instead of a fused
/// launch. One launch per step: seed's plan has 23 steps, mid's 32, and the products split
/// over k (small outputs with a long k, see `gemm_select`) sum their splits in the same
/// launch, so no step adds a reduction.
const PLANNED: (u64, u64) = (23, 32);

#[test]
fn hvp_batches_of_seed_and_mid_allocate_nothing_after_warm_up() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    // One test, so no other test's work on cuda:0 lands between the snapshots (and nothing
    // else reads the environment while it changes).
    for (plan, (seed_launches, mid_launches)) in [("0", OP_BY_OP), ("1", PLANNED)] {
        std::env::set_var("CURVATURE_PLAN", plan);
        let seed = batch_counters(&shrunk("seed", 16, 8), device);
        let mid = batch_counters(&shrunk("mid", 4, 4), device);
        eprintln!("CURVATURE_PLAN={plan}\nseed: {seed:?}\nmid: {mid:?}");
        check(
            &format!("seed, CURVATURE_PLAN={plan}"),
            &seed,
            seed_launches,
        );
        check(&format!("mid, CURVATURE_PLAN={plan}"), &mid, mid_launches);
    }
}
