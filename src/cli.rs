//! The command line's arguments (clap), shared by `main` and the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use curvature::bench::MAX_RUNS;
use curvature::distributed::MAX_IN_PROCESS_RANKS;
use curvature::hessian::{MAX_SIGMA, MIN_SIGMA};
use curvature::nn::Loss;
use curvature::tensor::{DType, Device, Precision};

#[derive(Parser)]
#[command(
    name = "curvature",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (kernels ",
        env!("CURVATURE_KERNELS_FINGERPRINT"),
        ")"
    ),
    about = "Second-order derivatives of neural networks",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand, `curvature` runs `bench` with these flags.
    #[command(flatten)]
    pub bench: BenchArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Benchmark batched Hessian-vector products on the standard workloads (the default).
    Bench(BenchArgs),
    /// Analyse a model (a model file, or an ONNX graph with --data and --loss): loss, gradient,
    /// and the diagonal, trace, top
    /// eigenvalues and spectral density of its Hessian, Gauss–Newton matrix or Fisher
    /// (--curvature), each estimate with its error bar (and the whole matrix when it is small
    /// or --full; per parameter tensor or layer with --per-layer).
    Analyze(AnalyzeArgs),
    /// Time one matrix product C = A·B ([batch, m, k]·[batch, k, n]) of a given shape, dtype
    /// and precision: the median of --runs synchronised products after warm-up, in ms and
    /// TFLOP/s, with the kernels it launched (JSON with --json, the schema of
    /// benches/gemm_cublas.py).
    Gemm(GemmArgs),
}

#[derive(Args, Clone)]
pub struct GemmArgs {
    /// Rows of A and C.
    #[arg(long, value_parser = parse_dim)]
    pub m: usize,
    /// Columns of B and C.
    #[arg(long, value_parser = parse_dim)]
    pub n: usize,
    /// Columns of A, rows of B: the summed dimension.
    #[arg(long, value_parser = parse_dim)]
    pub k: usize,
    /// Products in the batch.
    #[arg(long, default_value = "1", value_parser = parse_dim)]
    pub batch: usize,
    /// Element type: f32, f64, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// Precision of f32 products on a GPU: ieee, tf32 or tf32x3 (the CPU runs only ieee).
    #[arg(long, default_value = "ieee", value_parser = parse_precision)]
    pub precision: Precision,
    /// Device to run on; `auto` picks a CUDA GPU when one is present.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Timed products (the median is reported), 1 to 10000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS as i64))]
    pub runs: u32,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Print one JSON object per workload instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Element type: f32, f64, or the 16-bit storage types f16 and bf16 (computed in f32).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// Precision of f32 matrix products on a GPU: ieee (f32 FMA), tf32 (tensor cores, inputs
    /// rounded to 10 mantissa bits) or tf32x3 (tensor cores, split TF32: f32 accuracy). The
    /// CPU accepts only ieee; f64 ignores it.
    #[arg(long, default_value = "ieee", value_parser = parse_precision)]
    pub precision: Precision,
    /// Comma-separated workloads (seed, mid, large); default: those that fit the device.
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Device to run on; `auto` picks a CUDA GPU when one is present.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Timed repetitions per measurement (the median is reported), 1 to 10000; default: 10
    /// for seed, 3 for mid and large.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS as i64))]
    pub runs: Option<u32>,
    /// Run the large workload on the CPU too (P = 42 M; each measurement takes minutes).
    #[arg(long)]
    pub allow_large: bool,
    /// Split each batch over this many in-process ranks (threads, each with a contiguous shard
    /// of the samples, the results summed by an all-reduce) and report the throughput and the
    /// parallel efficiency against one rank; 2 to 256.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=MAX_IN_PROCESS_RANKS as i64))]
    pub ranks: Option<u32>,
}

#[derive(Args, Clone)]
pub struct AnalyzeArgs {
    /// The model: an ONNX graph (`.onnx`, e.g. written by scripts/export_onnx.py; give --data
    /// and --loss) or a model file (safetensors: the layers' tensors, `x`, `y`, metadata
    /// `layers` or `widths`/`activations`/`final_activation`, and `loss`), e.g. written by
    /// scripts/export_torch.py.
    pub model: PathBuf,
    /// ONNX models: the data (safetensors), one tensor per graph input named after it and
    /// the targets `y`, all with the samples along axis 0.
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// ONNX models: the loss of the graph's output against `y`: mse, sum_sq, cross_entropy
    /// (integral class labels), soft_cross_entropy (class probabilities), nll (integral
    /// labels; the output holds log-probabilities) or bce_with_logits (targets in [0, 1]).
    #[arg(long, value_parser = parse_loss)]
    pub loss: Option<Loss>,
    /// ONNX models: the initializers that are parameters, by name (`*` any run of
    /// characters, `?` one character); repeat for several patterns. Default: every
    /// floating-point initializer with more than one element. The others are constants.
    #[arg(long = "params", value_name = "GLOB")]
    pub params: Vec<String>,
    /// Write the results to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the spectral density with the top eigenvalues marked to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Device to run on; `auto` picks a CUDA GPU when one is present.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Element type of the computation: f64, f32, or the 16-bit storage types f16 and bf16
    /// (computed in f32, the Krylov recurrences in f32); the results file holds float64 either
    /// way.
    #[arg(long, default_value = "f64", value_parser = parse_dtype)]
    pub dtype: DType,
    /// Precision of f32 matrix products on a GPU: ieee (f32 FMA), tf32 (tensor cores, inputs
    /// rounded to 10 mantissa bits) or tf32x3 (tensor cores, split TF32: f32 accuracy). The
    /// CPU accepts only ieee; f64 ignores it.
    #[arg(long, default_value = "ieee", value_parser = parse_precision)]
    pub precision: Precision,
    /// How many of the largest eigenvalues to report (at most P).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,
    /// Random probes of the spectral density (SLQ) and of the diagonal and trace estimators
    /// (Hutchinson: probes products; XDiag and XTrace: 2 × probes; Hutch++: 3 × probes); at
    /// least 2, since an error bar needs two. The estimators run only where an exact answer
    /// is too expensive; the density is always estimated.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..))]
    pub probes: u32,
    /// Seed of every random probe.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute the whole matrix (of --curvature) and all its eigenvalues even when P is above
    /// 1024, where the diagonal, trace and top eigenvalues are otherwise estimated (the report
    /// suggests it when that is cheaper than the estimates and fits in memory).
    #[arg(long)]
    pub full: bool,
    /// Width of the Gaussian that broadens each node of the density, in [1e-300, 1e300];
    /// default: 1% of the spectrum's extent.
    #[arg(long, value_parser = parse_sigma)]
    pub sigma: Option<f64>,
    /// The curvature matrix every quantity is computed on: the Hessian, the generalised
    /// Gauss–Newton matrix Jᵀ·∇²_f L·J, the Monte-Carlo Fisher (--fisher-samples targets per
    /// sample drawn from the model's predictive distribution with --seed) or the empirical
    /// Fisher (the mean outer product of the per-sample gradients).
    #[arg(long, value_enum, default_value = "hessian")]
    pub curvature: CurvatureChoice,
    /// Targets drawn per sample by `--curvature fisher` (at least 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub fisher_samples: u32,
    /// The trace's estimator when P is above the exact limit: hutchinson (probes products,
    /// error s/√n of the probes), hutchpp (Hutch++, 3 × probes products, error of its
    /// Hutchinson part) or xtrace (XTrace, 2 × probes products, error of its exchangeable
    /// samples; exact when the rank is below probes).
    #[arg(long, value_enum, default_value = "hutchpp")]
    pub trace_estimator: TraceEstimator,
    /// The diagonal's estimator when P is above the exact limit: hutchinson (probes products)
    /// or xdiag (XDiag, 2 × probes products); each entry gets its standard error.
    #[arg(long, value_enum, default_value = "hutchinson")]
    pub diagonal_estimator: DiagonalEstimator,
    /// Also report, per parameter tensor (`--per-layer` or `--per-layer=tensor`) or per layer
    /// (`--per-layer=layer`), the trace, top eigenvalue and diagonal statistics of the
    /// curvature's diagonal block (exact for blocks of at most `--probes` coordinates, or of
    /// any size when the whole matrix is formed; Hutchinson's estimates otherwise).
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "tensor",
        value_name = "GROUPING"
    )]
    pub per_layer: Option<PerLayerChoice>,
    /// With --per-layer and a Gauss–Newton or Fisher --curvature, on a model whose parameters
    /// all belong to Linear (or Conv2d) layers: each layer's KFAC relative error
    /// ‖G⊗A − B‖_F / ‖B‖_F against its exact block B (p products per layer).
    #[arg(long, requires = "per_layer")]
    pub kfac: bool,
    /// Split the samples over N ranks, threads of this process (at most 64), each computing
    /// its shard's curvature, summed by an all-reduce: the same results as one rank. Under
    /// `mpirun -np N` the MPI processes are the ranks instead.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub ranks: Option<u32>,
    /// The memory the run may use, in GiB (default: the system's available memory); a run
    /// whose planned peak exceeds it is refused before it starts.
    #[arg(long, value_name = "GIB", value_parser = parse_positive)]
    pub memory_limit: Option<f64>,
}

/// The curvature matrix of `analyze --curvature`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CurvatureChoice {
    Hessian,
    Ggn,
    Fisher,
    EmpiricalFisher,
}

/// The trace estimator of `analyze --trace-estimator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceEstimator {
    Hutchinson,
    Hutchpp,
    Xtrace,
}

/// The diagonal estimator of `analyze --diagonal-estimator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiagonalEstimator {
    Hutchinson,
    Xdiag,
}

/// The blocks of `analyze --per-layer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PerLayerChoice {
    Tensor,
    Layer,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    /// The device this choice names; `cuda` without a usable GPU is an error, and so is an
    /// unknown value of `CURVATURE_CUDA`, whatever the choice.
    pub fn select(self) -> Result<Device, String> {
        curvature_kernels::emulation_requested().map_err(|e| e.to_string())?;
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available(0)),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => Device::cuda(0).map_err(|e| e.to_string()),
        }
    }

    /// [`DeviceChoice::select`], with the device's f32 matrix products set to `precision`
    /// (`--precision`): an error when the device cannot run it (the CPU runs only ieee).
    pub fn select_with_precision(self, precision: Precision) -> Result<Device, String> {
        let device = self.select()?;
        device
            .set_matmul_precision(precision)
            .map_err(|e| format!("--precision {precision}: {e}"))?;
        Ok(device)
    }
}

/// The losses `--loss` names, with their spellings.
pub const LOSSES: [(&str, Loss); 6] = [
    ("mse", Loss::Mse),
    ("sum_sq", Loss::SumSq),
    ("cross_entropy", Loss::CrossEntropy),
    ("soft_cross_entropy", Loss::SoftCrossEntropy),
    ("nll", Loss::Nll),
    ("bce_with_logits", Loss::BceWithLogits),
];

/// A loss by its `--loss` spelling or by [`Loss::name`] (`cross_entropy_soft`, `nll_loss`,
/// `binary_cross_entropy_with_logits`).
fn parse_loss(s: &str) -> Result<Loss, String> {
    LOSSES
        .iter()
        .find(|(name, loss)| *name == s || loss.name() == s)
        .map(|&(_, loss)| loss)
        .ok_or_else(|| {
            let names: Vec<&str> = LOSSES.iter().map(|(name, _)| *name).collect();
            format!("expected one of {}", names.join(", "))
        })
}

/// A matrix dimension: 1 to 2³¹ − 257 (what the GPU kernels' `int` loops allow).
fn parse_dim(s: &str) -> Result<usize, String> {
    const MAX_DIM: u64 = i32::MAX as u64 - 256;
    match s.parse::<u64>() {
        Ok(v) if (1..=MAX_DIM).contains(&v) => Ok(v as usize),
        _ => Err(format!(
            "expected an integer from 1 to {MAX_DIM}, got '{s}'"
        )),
    }
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    s.parse()
}

/// `ieee`, `tf32` or `tf32x3`; the error names the accepted values.
fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse::<Precision>().map_err(|e| e.to_string())
}

/// A σ the spectral density accepts: finite, within [`MIN_SIGMA`, `MAX_SIGMA`] (the density's
/// peak and the grid's margin stay inside the f64 range).
fn parse_sigma(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (MIN_SIGMA..=MAX_SIGMA).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number in [{MIN_SIGMA:e}, {MAX_SIGMA:e}], got '{s}'"
        )),
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got '{s}'")),
    }
}
