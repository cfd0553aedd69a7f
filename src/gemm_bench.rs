//! `curvature gemm`: the time of one matrix product C = A·B of a given shape, dtype and
//! precision on a device, as a line of the schema `benches/gemm_cublas.py` prints for
//! `torch.matmul`, so the two sit side by side (`scripts/gpu_check.sh run`).

use std::time::Instant;

use curvature_kernels::{gemm_tune, GpuDevice};
use curvature_tensor::{DType, Device, Precision, Tensor, TensorError, MAX_ELEMENTS};

use crate::bench::MAX_RUNS;

/// Untimed products before the timed ones: the first compiles and loads the kernels (and, with
/// `CURVATURE_GEMM_TUNE=1`, tunes the shape), the second settles the buffer cache.
pub const WARM_UPS: usize = 2;

/// What `curvature gemm` times: `batch` products of `[m, k]·[k, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmBenchConfig {
    /// Where the product runs.
    pub device: Device,
    /// The element type of A, B and C.
    pub dtype: DType,
    /// The device's f32 product precision for the run (set by the caller).
    pub precision: Precision,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Products in the batch.
    pub batch: usize,
    /// Timed products (the median is reported), 1 to [`MAX_RUNS`].
    pub runs: usize,
}

/// One measurement of [`run_gemm`].
#[derive(Debug, Clone, PartialEq)]
pub struct GemmBenchResult {
    /// What was timed.
    pub config: GemmBenchConfig,
    /// Median milliseconds of one product, synchronised.
    pub ms: f64,
    /// The fastest product's milliseconds.
    pub min_ms: f64,
    /// The kernels one product launched, with their grids (`gemm_large_f32 (32, 64, 1)`), or
    /// `cpu`.
    pub plan: String,
    /// The device's readable name ([`crate::device_description`]).
    pub device_name: String,
    /// Whether GEMM plans came from the autotuner (`CURVATURE_GEMM_TUNE=1`, see
    /// `curvature_kernels::gemm_tune`) rather than the table rule.
    pub tuned: bool,
}

impl GemmBenchResult {
    /// Floating-point operations of one product: 2·batch·m·n·k.
    pub fn flops(&self) -> f64 {
        let c = &self.config;
        2.0 * c.batch as f64 * c.m as f64 * c.n as f64 * c.k as f64
    }

    /// Achieved TFLOP/s at the median time.
    pub fn tflops(&self) -> f64 {
        self.flops() / (self.ms / 1e3) / 1e12
    }

    /// One JSON object, the schema `benches/gemm_cublas.py` shares.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "bench": "gemm",
            "impl": "curvature",
            "m": c.m,
            "n": c.n,
            "k": c.k,
            "batch": c.batch,
            "dtype": c.dtype.as_str(),
            "precision": c.precision.name(),
            "device": c.device.to_string(),
            "device_name": self.device_name,
            "runs": c.runs,
            "ms": self.ms,
            "min_ms": self.min_ms,
            "tflops": self.tflops(),
            "plan": self.plan,
            "tuned": self.tuned,
        })
    }

    /// One human-readable line.
    pub fn to_line(&self) -> String {
        let c = &self.config;
        format!(
            "gemm {}×{}×{}{} {} {} on {}: {:.4} ms (median of {}, min {:.4}), {:.2} TFLOP/s; {}{}",
            c.m,
            c.n,
            c.k,
            if c.batch == 1 {
                String::new()
            } else {
                format!(" ×{}", c.batch)
            },
            c.dtype,
            c.precision,
            self.device_name,
            self.ms,
            c.runs,
            self.min_ms,
            self.tflops(),
            self.plan,
            if self.tuned { " (tuned)" } else { "" }
        )
    }
}

fn invalid(msg: String) -> TensorError {
    TensorError::InvalidArgument { op: "gemm", msg }
}

/// Elements of a `[batch, rows, cols]` operand, or an error naming it.
fn operand_len(
    name: &str,
    batch: usize,
    rows: usize,
    cols: usize,
) -> curvature_tensor::Result<usize> {
    batch
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .filter(|&len| len <= MAX_ELEMENTS)
        .ok_or_else(|| {
            invalid(format!(
                "{name} of {batch}×{rows}×{cols} elements exceeds {MAX_ELEMENTS}"
            ))
        })
}

/// An operand with values in [−0.5, 0.5): a fixed pattern, so runs compare.
fn operand(
    batch: usize,
    rows: usize,
    cols: usize,
    seed: usize,
    config: &GemmBenchConfig,
) -> curvature_tensor::Result<Tensor> {
    let len = operand_len("an operand", batch, rows, cols)?;
    let values: Vec<f64> = (0..len)
        .map(|i| (i.wrapping_mul(7919).wrapping_add(seed) % 1000) as f64 / 1000.0 - 0.5)
        .collect();
    Tensor::from_f64s(&values, [batch, rows, cols], config.dtype, config.device)
}

/// Times `config.runs` products after [`WARM_UPS`] untimed ones, synchronising the device
/// after each. The device's precision must already be `config.precision`.
pub fn run_gemm(config: &GemmBenchConfig) -> curvature_tensor::Result<GemmBenchResult> {
    let c = config;
    if c.runs == 0 || c.runs > MAX_RUNS as usize {
        return Err(invalid(format!(
            "runs is {}, expected 1 to {MAX_RUNS}",
            c.runs
        )));
    }
    if [c.m, c.n, c.k, c.batch].contains(&0) {
        return Err(invalid(format!(
            "m, n, k and batch must be at least 1, got {}×{}×{} ×{}",
            c.m, c.n, c.k, c.batch
        )));
    }
    if c.device.matmul_precision()? != c.precision {
        return Err(invalid(format!(
            "the device computes in {}, not the configured {}",
            c.device.matmul_precision()?,
            c.precision
        )));
    }
    operand_len("the output", c.batch, c.m, c.n)?;
    let a = operand(c.batch, c.m, c.k, 1, c)?;
    let b = operand(c.batch, c.k, c.n, 2, c)?;
    let product = || -> curvature_tensor::Result<()> {
        a.matmul(&b)?;
        c.device.synchronize()
    };
    for _ in 0..WARM_UPS {
        product()?;
    }
    let plan = match c.device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(ordinal) => {
            let gpu = GpuDevice::named(ordinal)
                .ok_or_else(|| invalid(format!("cuda:{ordinal} is not open")))?;
            gpu.start_launch_log();
            let ran = product();
            let log = gpu.take_launch_log();
            ran?;
            log.iter()
                .map(|r| format!("{} {:?}", r.kernel, r.grid))
                .collect::<Vec<_>>()
                .join(" + ")
        }
    };
    let mut times = Vec::with_capacity(c.runs);
    for _ in 0..c.runs {
        let start = Instant::now();
        product()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let ms = match times.len() % 2 {
        0 => (times[mid - 1] + times[mid]) / 2.0,
        _ => times[mid],
    };
    Ok(GemmBenchResult {
        config: *config,
        ms,
        min_ms: times[0],
        plan,
        device_name: crate::device_description(c.device),
        tuned: c.device.is_cuda() && gemm_tune::process_tuner().is_some(),
    })
}
