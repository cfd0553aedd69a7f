//! Peak heap, measured by a counting allocator (this test binary's global allocator; the tests
//! take a lock so that nothing runs beside the one measuring):
//! - `hessian` of a P = 10,000 function holds the output plus O(chunk × P): the chunk size
//!   comes from the memory budget, and no operator call sees more rows than that;
//! - SLQ holds O(block × steps × P) whatever the number of probes, and Lanczos one basis plus
//!   a block, both within what their `memory_bytes` announce;
//! - the fused MLP operator stays within what [`MlpMemory`] announces.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{Diagonal, Recorded};
use curvature_hessian::{
    hessian_of, probes, spectral_density_with, top_eigenvalues, trace_hutchpp, HessianOptions,
    LanczosOptions, LinearOperator, MlpHvp, MlpMemory, PreparedHvp, Probe, SlqOptions,
};
use curvature_nn::{Activation, Loss, Module, Sequential};
use curvature_tensor::{DType, Device, Tensor};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's layout and pointer
// unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by each test, so that one test's allocations never count in another's peak.
static SERIAL: Mutex<()> = Mutex::new(());

/// `f()` and the peak heap above the current level while it ran.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let baseline = CURRENT.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let result = f();
    (result, PEAK.load(Ordering::SeqCst) - baseline)
}

#[test]
fn hessian_of_ten_thousand_parameters_is_chunked_by_the_budget_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const P: usize = 10_000;
    const CHUNK: usize = 64;
    // f(x) = Σ cᵢ·xᵢ², whose Hessian is diag(2c); f32 keeps the 10⁸-entry output at 400 MB.
    let c: Vec<f64> = (0..P).map(|i| (i % 7 + 1) as f64).collect();
    let coefficients = Tensor::from_f64s(&c, [P], DType::F32, Device::Cpu).unwrap();
    let x = Tensor::from_f64s(&vec![0.5; P], [P], DType::F32, Device::Cpu).unwrap();
    let inner = PreparedHvp::new(
        |v| {
            v[0].square()?
                .mul(&v[0].constant(coefficients.clone()))?
                .sum_all()
        },
        &[x],
    )
    .unwrap();
    let op = Recorded::new(&inner);
    let chunk_bytes = 2 * CHUNK * P * 4;
    let options = HessianOptions {
        memory_budget_bytes: chunk_bytes + 100,
        max_rows: 1024,
    };
    assert_eq!(options.chunk_rows(P, DType::F32), CHUNK);

    let output_bytes = P * P * 4;
    let baseline = CURRENT.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let h = hessian_of(&op, &options).unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - baseline;

    let sizes = op.sizes.borrow();
    assert_eq!(sizes.len(), P.div_ceil(CHUNK));
    assert!(sizes.iter().all(|&rows| rows <= CHUNK), "{sizes:?}");
    // Besides the output: the f64 identity chunk built on the host, its f32 upload, the sweep's
    // few [chunk, P] intermediates and the host copy of one result — a small multiple of a chunk.
    let allowance = 16 * CHUNK * P * 8;
    assert!(
        peak <= output_bytes + allowance,
        "peak {peak} bytes above the output {output_bytes} + {allowance}"
    );

    assert_eq!(h.dims(), &[P, P]);
    let values = h.to_vec::<f32>().unwrap();
    for (i, row) in values.chunks(P).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let want = if i == j { 2.0 * c[i] as f32 } else { 0.0 };
            assert!(v == want, "H[{i}, {j}] = {v}, want {want}");
        }
    }
}

fn diagonal(dim: usize) -> Diagonal {
    let d: Vec<f64> = (0..dim).map(|i| 1.0 + (i % 97) as f64 / 7.0).collect();
    Diagonal::new(&d)
}

#[test]
fn slq_memory_is_one_block_of_bases_whatever_the_probe_count_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const P: usize = 20_000;
    let (probes, steps) = (12, 40);
    let op = diagonal(P);
    let base = SlqOptions {
        probes,
        steps,
        sigma: 0.1,
        ..SlqOptions::default()
    };
    // The smallest budget that holds a block of three recurrences.
    let memory = (0..)
        .map(|i| HessianOptions {
            memory_budget_bytes: i << 16,
            ..HessianOptions::default()
        })
        .find(|m| base.block_probes(P, DType::F64, m) == 3)
        .unwrap();
    let options = base;
    let announced = options.memory_bytes(P, DType::F64, &memory).unwrap();
    let (slq, peak) = peak_of(|| spectral_density_with(&op, &options, &memory).unwrap());
    assert_eq!(slq.nodes.len(), probes);
    // The operator's own share: its [block, P] result.
    let operator = 3 * P * 8;
    let all_bases = probes * (steps + 1) * P * 8;
    println!("SLQ peak {peak} bytes, announced {announced}, unblocked bases {all_bases}");
    assert!(
        peak <= announced + operator,
        "peak {peak} > announced {announced} + {operator}"
    );
    assert!(
        announced <= all_bases / 2,
        "announced {announced} is not a block's worth"
    );
}

#[test]
fn lanczos_memory_is_one_basis_plus_a_block_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const P: usize = 20_000;
    let op = diagonal(P);
    // tol = 0 never converges, so all 60 steps run and the basis reaches 61 vectors.
    let options = LanczosOptions {
        k: 2,
        tol: 0.0,
        max_iter: 60,
        ..LanczosOptions::default()
    };
    let announced = options.memory_bytes(P, DType::F64).unwrap();
    let (eig, peak) = peak_of(|| top_eigenvalues(&op, &options).unwrap());
    assert_eq!(eig.iterations, 60);
    let basis = 61 * P * 8;
    println!("Lanczos peak {peak} bytes, announced {announced}, basis {basis}");
    assert!(peak <= announced, "peak {peak} > announced {announced}");
    // No second copy of the basis (a transposed copy or a re-concatenation) is ever made.
    assert!(peak <= basis * 3 / 2, "peak {peak} for a basis of {basis}");
}

#[test]
fn hutchpp_holds_a_few_sketch_blocks_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const P: usize = 20_000;
    let op = diagonal(P);
    let sketch = 40;
    let (trace, peak) = peak_of(|| trace_hutchpp(&op, 3 * sketch, 5).unwrap());
    assert!(trace.is_finite());
    // Five [sketch, P] blocks on the device and the host's f64 draw of one (what `analyze`
    // plans for Hutch++); the operator's products are part of the five.
    let bound = sketch * P * (5 * 8 + 8);
    println!("Hutch++ peak {peak} bytes, bound {bound}");
    assert!(peak <= bound, "peak {peak} > {bound}");
}

#[test]
fn fused_mlp_stays_within_its_announced_memory_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Wide layers (the wide sweep) and a small model with many directions (the narrow one).
    for (widths, samples, k) in [
        (&[16, 384, 384, 4][..], 256, 3),
        (&[1, 10, 10, 1][..], 300, 32),
    ] {
        let hidden = vec![Activation::Tanh; widths.len() - 2];
        let model = Sequential::mlp(widths, &hidden, None, DType::F64, Device::Cpu, 1).unwrap();
        let (inputs, outputs) = (widths[0], widths[widths.len() - 1]);
        let x = probes(samples, inputs, Probe::Gaussian, 1, DType::F64, Device::Cpu).unwrap();
        let y = probes(
            samples,
            outputs,
            Probe::Gaussian,
            2,
            DType::F64,
            Device::Cpu,
        )
        .unwrap();
        let plan = MlpMemory::new(widths, samples, DType::F64).unwrap();
        assert_eq!(plan.params(), model.num_params());
        let (op, built) = peak_of(|| MlpHvp::new(&model, Loss::Mse, &x, &y).unwrap());
        let v = probes(
            k,
            plan.params(),
            Probe::Gaussian,
            3,
            DType::F64,
            Device::Cpu,
        )
        .unwrap();
        let (_, batch) = peak_of(|| op.apply_batch(&v).unwrap());
        let (held, construction) = (
            plan.held_bytes().unwrap(),
            plan.construction_bytes().unwrap(),
        );
        let announced_batch = plan.batch_bytes(k).unwrap();
        println!(
            "{widths:?}: primal peak {built} (announced {construction}, held {held}), \
             batch of {k} peak {batch} (announced {announced_batch})"
        );
        assert!(
            built <= construction,
            "{widths:?}: primal {built} > {construction}"
        );
        assert!(
            batch <= announced_batch,
            "{widths:?}: batch {batch} > {announced_batch}"
        );
        // The held figure is what the operator really keeps, not a loose bound: every byte of
        // it is allocated while the primal pass runs (the softmax term aside, absent for MSE).
        let probs = samples * outputs * 8;
        assert!(
            built + probs >= held,
            "{widths:?}: held {held} above the primal peak {built}"
        );
    }
}
