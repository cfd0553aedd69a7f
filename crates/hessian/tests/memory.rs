//! `hessian` of a P = 10,000 function holds the output plus O(chunk × P): the chunk size comes
//! from the memory budget, no operator call sees more rows than that, and a counting allocator
//! (this test binary's global allocator, one test so nothing else runs beside it) bounds the
//! peak heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use curvature_hessian::{hessian_of, HessianOptions, LinearOperator, PreparedHvp, Result};
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

/// Wraps an operator, recording how often it is called and the largest batch it receives.
struct CountingOperator<O> {
    inner: O,
    calls: Cell<usize>,
    max_rows: Cell<usize>,
}

impl<O: LinearOperator> LinearOperator for CountingOperator<O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        self.max_rows.set(self.max_rows.get().max(v.dims()[0]));
        self.inner.apply_batch(v)
    }
}

#[test]
fn hessian_of_ten_thousand_parameters_is_chunked_by_the_budget_cpu() {
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
    let op = CountingOperator {
        inner,
        calls: Cell::new(0),
        max_rows: Cell::new(0),
    };
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

    assert_eq!(op.calls.get(), P.div_ceil(CHUNK));
    assert!(
        op.max_rows.get() <= CHUNK,
        "a call got {} rows",
        op.max_rows.get()
    );
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
