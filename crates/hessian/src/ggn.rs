//! Gauss–Newton and Fisher curvature of a model: [`Ggn`], the operator `Jᵀ H̃ J` for the
//! model's Jacobian `J = ∂f/∂θ` and an output curvature `H̃` (the loss's exact Hessian with
//! respect to the output, a Monte-Carlo Fisher sample or the empirical Fisher), and its exact
//! diagonal.

use curvature_nn::{labels_from_tensor, Loss, Module};
use curvature_tape::{grad, vjp, GradOptions, Tape, Var};
use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::alloc;
use crate::error::{check_kind, invalid};
use crate::model::{check_model, ModelInputs};
use crate::operator::{check_batch, LinearOperator};
use crate::plans::PlanCache;
use crate::{HessianError, Result};

/// A loss whose Hessian with respect to the model's output `f` (`[n, …]`, n samples, O values
/// per sample) is known in closed form. Every loss is `L = s · Σᵢ NLLᵢ(fᵢ, yᵢ)` for a negative
/// log-likelihood (up to a constant) with the scale `s` below, which is what the Fisher
/// operators sample from:
///
/// | loss | L | s | NLLᵢ | ∇²_f L per sample |
/// |---|---|---|---|---|
/// | `Mse` | mean of (f − y)² | 2/(n·O) | ½‖fᵢ − yᵢ‖² | s·I |
/// | `SumSq` | Σ f² | 2 | (none: y unused) | 2·I |
/// | `CrossEntropy` | mean of −log softmax(fᵢ)\[yᵢ\] | 1/n | −log pᵢ\[yᵢ\] | s·(diag pᵢ − pᵢpᵢᵀ) |
/// | `BinaryCrossEntropyWithLogits` | mean of softplus(f) − f·y | 1/(n·O) | Σ softplus − f·y | s·diag(σ(1 − σ)) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLoss {
    /// [`Loss::Mse`]: targets of the output's shape.
    Mse,
    /// [`Loss::SumSq`]: targets ignored.
    SumSq,
    /// [`Loss::CrossEntropy`]: `[n, C]` logits, `[n]` integral class labels.
    CrossEntropy,
    /// [`curvature_nn::binary_cross_entropy_with_logits`]: targets in \[0, 1\] of the output's
    /// shape.
    BinaryCrossEntropyWithLogits,
}

/// A loss whose output Hessian has the closed form [`OutputLoss`] needs: an [`OutputLoss`], or
/// a [`Loss`] with one (an error names the others).
pub trait IntoOutputLoss {
    /// The loss as an [`OutputLoss`].
    fn into_output_loss(self) -> Result<OutputLoss>;
}

impl IntoOutputLoss for OutputLoss {
    fn into_output_loss(self) -> Result<OutputLoss> {
        Ok(self)
    }
}

impl IntoOutputLoss for Loss {
    fn into_output_loss(self) -> Result<OutputLoss> {
        match self {
            Loss::Mse => Ok(OutputLoss::Mse),
            Loss::SumSq => Ok(OutputLoss::SumSq),
            Loss::CrossEntropy => Ok(OutputLoss::CrossEntropy),
            Loss::BceWithLogits => Ok(OutputLoss::BinaryCrossEntropyWithLogits),
            Loss::SoftCrossEntropy | Loss::Nll => Err(invalid(
                "Ggn",
                format!(
                    "the Gauss–Newton operators support mse, sum_sq, cross_entropy and \
                     bce_with_logits, not {}",
                    self.name()
                ),
            )),
        }
    }
}

impl OutputLoss {
    /// The loss's name (`mse`, `sum_sq`, `cross_entropy`, `bce_with_logits`).
    pub fn name(self) -> &'static str {
        match self {
            OutputLoss::Mse => "mse",
            OutputLoss::SumSq => "sum_sq",
            OutputLoss::CrossEntropy => "cross_entropy",
            OutputLoss::BinaryCrossEntropyWithLogits => "bce_with_logits",
        }
    }

    /// The scale `s` of the table above for `n` samples of `outputs` values each.
    pub fn scale(self, n: usize, outputs: usize) -> f64 {
        let elements = (n as f64) * (outputs as f64);
        match self {
            OutputLoss::Mse => 2.0 / elements,
            OutputLoss::SumSq => 2.0,
            OutputLoss::CrossEntropy => 1.0 / n as f64,
            OutputLoss::BinaryCrossEntropyWithLogits => 1.0 / elements,
        }
    }
}

/// Which output curvature `H̃` the operator `Jᵀ H̃ J` uses (block-diagonal over samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curvature {
    /// The generalised Gauss–Newton matrix: `H̃ = ∇²_f L`, the loss's exact Hessian with
    /// respect to the output.
    Ggn,
    /// The Monte-Carlo Fisher: `H̃ᵢ = s/M · Σₘ gᵢₘ gᵢₘᵀ` with `gᵢₘ = ∇_f NLLᵢ(fᵢ, ỹᵢₘ)` for
    /// `M = samples` targets drawn from the model's predictive distribution (a class from
    /// softmax(fᵢ), a Bernoulli of σ(fᵢ), or `fᵢ + ε` with ε standard normal for MSE) by
    /// `ChaCha8Rng::seed_from_u64(seed)`. Its expectation is the GGN. Not defined for `SumSq`.
    MonteCarloFisher { samples: usize, seed: u64 },
    /// The empirical Fisher, the mean of the per-sample gradients' outer products:
    /// `F = 1/n · Σᵢ ∇θℓᵢ ∇θℓᵢᵀ` with `ℓᵢ` the loss of the one-sample batch `(xᵢ, yᵢ)`, i.e.
    /// `H̃ᵢ = 1/n · ∇_f ℓᵢ ∇_f ℓᵢᵀ` (with `Jᵢ` the Jacobian of output row i).
    EmpiricalFisher,
}

impl Curvature {
    /// The curvature a command line names: `ggn`, `fisher` (the Monte-Carlo Fisher with
    /// `samples` draws per sample from `seed`) or `empirical-fisher`; any other name is an
    /// error listing these.
    pub fn from_name(name: &str, samples: usize, seed: u64) -> Result<Curvature> {
        match name {
            "ggn" => Ok(Curvature::Ggn),
            "fisher" => Ok(Curvature::MonteCarloFisher { samples, seed }),
            "empirical-fisher" => Ok(Curvature::EmpiricalFisher),
            other => Err(invalid(
                "Curvature::from_name",
                format!(
                    "unknown curvature '{}' (expected ggn, fisher or empirical-fisher)",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    /// The curvature's name, as [`from_name`](Curvature::from_name) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Curvature::Ggn => "ggn",
            Curvature::MonteCarloFisher { .. } => "fisher",
            Curvature::EmpiricalFisher => "empirical-fisher",
        }
    }
}

/// How [`Ggn`] splits its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgnOptions {
    /// Output columns per chunk (the class axis for cross-entropy); 0 takes all columns in one
    /// chunk. With `m` chunks of `c` columns, a batch of K directions holds at most `K · n · c`
    /// output tangents at once (plus `K · n · M` coupling values: M = 1 for cross-entropy, the
    /// Fisher's rank otherwise), instead of `K · n · O`; each chunk costs its own sweeps, so
    /// chunking trades `2m` (MSE, sum of squares, BCE) or `3m` (cross-entropy, Fisher) model
    /// sweeps per batch for that memory, and each chunk's recorded `Jᵀu` keeps one backward
    /// pass's values on the tape.
    pub column_chunk: usize,
    /// Bytes for the cotangents the exact diagonal pushes through the model at once (each row
    /// `n · O + P` elements).
    pub diagonal_budget_bytes: usize,
}

impl Default for GgnOptions {
    /// One chunk; 64 MiB for the diagonal's cotangents.
    fn default() -> Self {
        GgnOptions {
            column_chunk: 0,
            diagonal_budget_bytes: 64 << 20,
        }
    }
}

/// The output curvature `H̃`, per sample, on the device.
enum OutputCurvature {
    /// `c · I`.
    Scaled(f64),
    /// `diag(h)`, `h: [n, O]`.
    Diagonal(Tensor),
    /// `c · (diag p − p pᵀ)` per sample, `p: [n, O]` (softmax probabilities).
    Softmax { probs: Tensor, scale: f64 },
    /// `Fᵢ Fᵢᵀ` per sample, `factors: [n, O, R]`.
    LowRank { factors: Tensor },
}

/// One chunk of output columns: the output's columns `start .. start + len` (`[n, len]`), a
/// cotangent leaf `u` of that shape and the recorded `Jᵀu` per parameter (linear in `u`).
struct Chunk {
    start: usize,
    len: usize,
    output: Var,
    u: Var,
    jt_u: Vec<Var>,
}

/// The Gauss–Newton or Fisher matrix of a model and a loss as a [`LinearOperator`] on the flat
/// parameters θ (`dim = P`): `V ↦ V · Jᵀ H̃ J` for a `[K, P]` batch, in three tape sweeps:
///
/// 1. `T = J V` (`[K, n, O]`, forward mode by the double-vjp trick: `Jᵀu` is recorded once
///    with a cotangent leaf `u`, and the vjp of it with the batch `V` is `J V`);
/// 2. `W = H̃ T` in closed form, per sample (cross-entropy: `p ⊙ (t − pᵀt)·s`, never a
///    `[C, C]` matrix; Fisher: `Fᵢ (Fᵢᵀ tᵢ)`);
/// 3. `Jᵀ W`, one vjp of the output with the batched cotangent `W`.
///
/// With [`GgnOptions::column_chunk`] the output columns are processed in chunks, each with its
/// own recorded `Jᵀu`; the couplings across columns (`pᵀt` of cross-entropy, `Fᵢᵀtᵢ` of a
/// Fisher) are accumulated over a first pass and applied in a second. Works for any
/// [`Module`] whose output is `[n, …]` (n samples; O = the product of the other axes) on any
/// device; the Monte-Carlo targets are drawn on the host.
pub struct Ggn {
    _tape: Tape,
    output: Var,
    params: Vec<Var>,
    chunks: Vec<Chunk>,
    curvature: OutputCurvature,
    /// `H̃` on the host, whose square-root columns the diagonal and the factors read.
    host: HostCurvature,
    sizes: Vec<usize>,
    n: usize,
    outputs: usize,
    dim: usize,
    dtype: DType,
    device: Device,
    options: GgnOptions,
    plans: PlanCache,
}

const OP: &str = "Ggn::new";

impl Ggn {
    /// The GGN (or Fisher, per `curvature`) of `loss(model(x), y)` with respect to θ, with the
    /// default options. `x` is the model's input (or `&[x1, x2, …]`); `y` the targets (see
    /// [`OutputLoss`]; any tensor for `SumSq`).
    pub fn new<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        loss: impl IntoOutputLoss,
        x: &I,
        y: &Tensor,
        curvature: Curvature,
    ) -> Result<Ggn> {
        Ggn::with_options(model, loss, x, y, curvature, GgnOptions::default())
    }

    /// [`Ggn::new`] with explicit options.
    pub fn with_options<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        loss: impl IntoOutputLoss,
        x: &I,
        y: &Tensor,
        curvature: Curvature,
        options: GgnOptions,
    ) -> Result<Ggn> {
        let loss = loss.into_output_loss()?;
        let inputs = x.tensors();
        let (params, dtype, device) = check_model(OP, model, inputs)?;
        let sizes: Vec<usize> = params.iter().map(Tensor::elem_count).collect();
        let dim = alloc::sum(OP, "the parameters", &sizes)?;
        if dim == 0 {
            return Err(invalid(OP, "the model has no parameters"));
        }
        let tape = Tape::new();
        let leaves: Vec<Var> = params.iter().map(|t| tape.leaf(t.clone())).collect();
        let consts: Vec<Var> = inputs.iter().map(|t| tape.constant(t.clone())).collect();
        let raw = model.forward_inputs(&leaves, &consts)?;
        check_kind(OP, raw.value(), dtype, device)?;
        if raw.rank() == 0 || raw.dims()[0] == 0 || raw.value().elem_count() == 0 {
            return Err(invalid(
                OP,
                format!(
                    "the model's output must be [n, …] with n ≥ 1 samples and at least one value, got {}",
                    raw.shape()
                ),
            ));
        }
        let n = raw.dims()[0];
        let outputs = raw.value().elem_count() / n;
        let output = raw.reshape([n, outputs])?;
        let f = output.value().to_f64s()?;
        let target = Target::read(OP, loss, y, raw.dims(), dtype, device)?;
        let host = output_curvature(loss, curvature, &f, n, outputs, &target)?;
        let curvature = upload(&host, n, outputs, dtype, device)?;
        let chunk = match options.column_chunk {
            0 => outputs,
            c => c.min(outputs),
        };
        let mut chunks = Vec::new();
        for start in (0..outputs).step_by(chunk) {
            let len = chunk.min(outputs - start);
            let out = if len == outputs {
                output.clone()
            } else {
                output.narrow(1, start, len)?
            };
            let u = tape.leaf(Tensor::zeros([n, len], dtype, device)?);
            let jt_u = grad(
                std::slice::from_ref(&out),
                &leaves,
                GradOptions {
                    create_graph: true,
                    retain_graph: Some(true),
                    grad_outputs: Some(vec![u.clone()]),
                    allow_unused: true,
                },
            )?;
            chunks.push(Chunk {
                start,
                len,
                output: out,
                u,
                jt_u,
            });
        }
        Ok(Ggn {
            _tape: tape,
            output,
            params: leaves,
            chunks,
            curvature,
            host,
            sizes,
            n,
            outputs,
            dim,
            dtype,
            device,
            options,
            plans: PlanCache::new(),
        })
    }

    /// The number of samples n (the output's leading axis).
    pub fn samples(&self) -> usize {
        self.n
    }

    /// O, the output values per sample.
    pub fn outputs_per_sample(&self) -> usize {
        self.outputs
    }

    /// The model's output `[n, O]` at θ.
    pub fn output(&self) -> &Tensor {
        self.output.value()
    }

    /// `J V` for a `[K, P]` batch: the output tangents `[K, n, O]`.
    pub fn jvp_batch(&self, v: &Tensor) -> Result<Tensor> {
        let k = check_batch("Ggn::jvp_batch", self, v)?;
        let parts = self
            .chunks
            .iter()
            .map(|c| self.chunk_jvp(c, v, k))
            .collect::<Result<Vec<_>>>()?;
        Ok(match parts.as_slice() {
            [one] => one.clone(),
            many => Tensor::cat(&many.iter().collect::<Vec<_>>(), 2)?,
        })
    }

    /// `Jᵀ W` for output cotangents `W: [K, n, O]`: `[K, P]`.
    pub fn vjp_batch(&self, w: &Tensor) -> Result<Tensor> {
        check_kind("Ggn::vjp_batch", w, self.dtype, self.device)?;
        if w.rank() != 3 || w.dims()[1..] != [self.n, self.outputs] || w.dims()[0] == 0 {
            return Err(invalid(
                "Ggn::vjp_batch",
                format!(
                    "expected cotangents [K, {}, {}] with K ≥ 1, got {}",
                    self.n,
                    self.outputs,
                    w.shape()
                ),
            ));
        }
        self.transpose_product(&self.output, w)
    }

    /// The tangents `[K, n, len]` of one chunk of columns: the vjp of the recorded `Jᵀu` with
    /// the batch `V` split per parameter.
    fn chunk_jvp(&self, chunk: &Chunk, v: &Tensor, k: usize) -> Result<Tensor> {
        let mut offset = 0;
        let mut cotangents = Vec::with_capacity(self.params.len());
        for (p, &size) in self.params.iter().zip(&self.sizes) {
            let mut dims = vec![k];
            dims.extend_from_slice(p.dims());
            let part = v.narrow(1, offset, size)?.reshape(dims)?;
            cotangents.push(p.constant(part));
            offset += size;
        }
        let t = vjp(
            &chunk.jt_u,
            &cotangents,
            std::slice::from_ref(&chunk.u),
            false,
        )?;
        Ok(t[0].value().clone())
    }

    /// `Jᵀ W` through `output` (the full output or a chunk), `[K, P]`.
    fn transpose_product(&self, output: &Var, w: &Tensor) -> Result<Tensor> {
        let k = w.dims()[0];
        let parts = vjp(
            std::slice::from_ref(output),
            &[output.constant(w.clone())],
            &self.params,
            false,
        )?;
        let rows = parts
            .iter()
            .zip(&self.sizes)
            .map(|(p, &size)| p.value().reshape([k, size]))
            .collect::<curvature_tensor::Result<Vec<_>>>()?;
        Ok(match rows.as_slice() {
            [one] => one.clone(),
            many => Tensor::cat(&many.iter().collect::<Vec<_>>(), 1)?,
        })
    }

    /// The part of `H̃ t` local to a chunk's columns, and the chunk's contribution to the
    /// coupling across columns.
    fn local(&self, chunk: &Chunk, t: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok(match &self.curvature {
            OutputCurvature::Scaled(c) => (Some(t.mul_scalar(*c)?), None),
            OutputCurvature::Diagonal(h) => (Some(t.mul(&columns(h, chunk)?)?), None),
            OutputCurvature::Softmax { probs, scale } => {
                let p = columns(probs, chunk)?;
                let pt = t.mul(&p)?;
                let dot = pt.sum(&[-1], true)?; // [K, n, 1]
                (Some(pt.mul_scalar(*scale)?), Some(dot))
            }
            OutputCurvature::LowRank { factors } => {
                // [K, n, len] → [n, K, len] @ [n, len, R] → [n, K, R]
                let f = factors.narrow(1, chunk.start, chunk.len)?;
                let a = t.permute(&[1, 0, 2])?.matmul(&f)?;
                (None, Some(a))
            }
        })
    }

    /// The coupled part of `H̃ t` on a chunk's columns, from the accumulated coupling.
    fn coupled(&self, chunk: &Chunk, coupling: &Tensor) -> Result<Tensor> {
        Ok(match &self.curvature {
            OutputCurvature::Softmax { probs, scale } => {
                let p = columns(probs, chunk)?;
                coupling.mul(&p)?.mul_scalar(-*scale)?
            }
            OutputCurvature::LowRank { factors } => {
                // [n, K, R] @ [n, R, len] → [n, K, len] → [K, n, len]
                let f = factors.narrow(1, chunk.start, chunk.len)?;
                coupling.matmul(&f.transpose(1, 2)?)?.permute(&[1, 0, 2])?
            }
            OutputCurvature::Scaled(_) | OutputCurvature::Diagonal(_) => {
                return Err(invalid(
                    "Ggn::apply_batch",
                    "no coupling for this curvature",
                ))
            }
        })
    }

    /// Square-root columns of the output curvature, `H̃ᵢ = Σ_r lᵢᵣ lᵢᵣᵀ`: `[n, O, R]` on the
    /// host, row-major, with R (MSE, sum of squares, BCE: the O scaled unit vectors;
    /// cross-entropy: `√(s·p_r) (e_r − p)` for each class r; a Fisher: its M samples). Built
    /// on demand: `n · O · R` elements.
    pub fn curvature_factors(&self) -> Result<Tensor> {
        const FACTORS: &str = "Ggn::curvature_factors";
        let r = self.host.rank(self.outputs);
        let data = self.host.columns(FACTORS, self.n, self.outputs)?;
        Ok(Tensor::from_f64s(
            &data,
            [self.n, self.outputs, r],
            self.dtype,
            self.device,
        )?)
    }

    /// The exact diagonal of this operator, `[P]`: `diag(Jᵀ H̃ J)_p = Σᵢ Σ_r (Jᵢᵀ lᵢᵣ)_p²` over
    /// the square-root columns `lᵢᵣ` of [`curvature_factors`](Ggn::curvature_factors), one
    /// vjp row per (sample, column) — `n · O` rows for the GGN, `n · M` for a Monte-Carlo
    /// Fisher (whose diagonal is the Monte-Carlo estimate of the GGN's diagonal), n for the
    /// empirical Fisher — pushed through the model in batches of cotangents `[K, n, O]` sized
    /// by [`GgnOptions::diagonal_budget_bytes`].
    pub fn diagonal(&self) -> Result<Tensor> {
        const DIAG: &str = "Ggn::diagonal";
        let (n, o) = (self.n, self.outputs);
        let r = self.host.rank(o);
        let mut col = alloc::filled(DIAG, "one column", o, 0.0)?;
        let total = alloc::product(DIAG, "the diagonal's cotangent rows", &[n, r])?;
        let per_row = alloc::product(
            DIAG,
            "one cotangent row",
            &[
                alloc::sum(
                    DIAG,
                    "one cotangent row",
                    &[
                        alloc::product(DIAG, "one cotangent row", &[n, o])?,
                        self.dim,
                    ],
                )?,
                self.dtype.size_in_bytes(),
            ],
        )?;
        let rows = (self.options.diagonal_budget_bytes / per_row.max(1)).clamp(1, total);
        let mut sum: Option<Tensor> = None;
        for start in (0..total).step_by(rows) {
            let k = rows.min(total - start);
            let len = alloc::product(DIAG, "the diagonal's cotangents", &[k, n, o])?;
            let mut cot = alloc::filled(DIAG, "the diagonal's cotangents", len, 0.0)?;
            for (row, index) in (start..start + k).enumerate() {
                let (i, j) = (index / r, index % r);
                self.host.column(i, j, &mut col);
                let at = (row * n + i) * o;
                cot[at..at + o].copy_from_slice(&col);
            }
            let w = Tensor::from_f64s(&cot, [k, n, o], self.dtype, self.device)?;
            let squares = self
                .transpose_product(&self.output, &w)?
                .square()?
                .sum(&[0], false)?;
            sum = Some(match sum {
                None => squares,
                Some(s) => s.add(&squares)?,
            });
        }
        sum.ok_or(HessianError::EmptyBatch { op: DIAG })
    }
}

impl LinearOperator for Ggn {
    fn dim(&self) -> usize {
        self.dim
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> Device {
        self.device
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        let k = check_batch("Ggn::apply_batch", self, v)?;
        self.plans.apply(v, k, |v| self.sweep(v, k))
    }
}

impl Ggn {
    /// This operator with compiled plans on or off, as [`PreparedHvp::with_plan`]
    /// (on by default unless `CURVATURE_PLAN=0`): each batch size's product `Jᵀ H̃ J V` is
    /// traced once and replayed.
    ///
    /// [`PreparedHvp::with_plan`]: crate::PreparedHvp::with_plan
    pub fn with_plan(mut self, on: bool) -> Ggn {
        self.plans.set_enabled(on);
        self
    }

    /// The batch sizes that hold a compiled plan, oldest first.
    pub fn plan_batch_sizes(&self) -> Vec<usize> {
        self.plans.batch_sizes()
    }

    /// One product op by op for the `[k, dim]` batch `v`.
    fn sweep(&self, v: &Tensor, k: usize) -> Result<Tensor> {
        if let [chunk] = self.chunks.as_slice() {
            let t = self.chunk_jvp(chunk, v, k)?;
            let w = match self.local(chunk, &t)? {
                (Some(w), None) => w,
                (local, Some(coupling)) => {
                    let c = self.coupled(chunk, &coupling)?;
                    match local {
                        Some(l) => l.add(&c)?,
                        None => c,
                    }
                }
                (None, None) => return Err(invalid("Ggn::apply_batch", "empty curvature")),
            };
            return self.transpose_product(&chunk.output, &w);
        }
        let mut acc: Option<Tensor> = None;
        let mut coupling: Option<Tensor> = None;
        let add = |acc: Option<Tensor>, x: Tensor| -> Result<Option<Tensor>> {
            Ok(Some(match acc {
                None => x,
                Some(a) => a.add(&x)?,
            }))
        };
        for chunk in &self.chunks {
            let t = self.chunk_jvp(chunk, v, k)?;
            let (local, c) = self.local(chunk, &t)?;
            if let Some(w) = local {
                acc = add(acc, self.transpose_product(&chunk.output, &w)?)?;
            }
            if let Some(c) = c {
                coupling = add(coupling, c)?;
            }
        }
        if let Some(coupling) = coupling {
            for chunk in &self.chunks {
                let w = self.coupled(chunk, &coupling)?;
                acc = add(acc, self.transpose_product(&chunk.output, &w)?)?;
            }
        }
        acc.ok_or(HessianError::EmptyBatch {
            op: "Ggn::apply_batch",
        })
    }
}

/// Columns `start .. start + len` of an `[n, O]` tensor.
fn columns(t: &Tensor, chunk: &Chunk) -> Result<Tensor> {
    Ok(if chunk.len == t.dims()[1] {
        t.clone()
    } else {
        t.narrow(1, chunk.start, chunk.len)?
    })
}

/// Targets read on the host and checked against the loss.
enum Target {
    None,
    Values(Vec<f64>),
    Labels(Vec<usize>),
}

impl Target {
    fn read(
        op: &'static str,
        loss: OutputLoss,
        y: &Tensor,
        out_dims: &[usize],
        dtype: DType,
        device: Device,
    ) -> Result<Target> {
        if loss == OutputLoss::SumSq {
            return Ok(Target::None);
        }
        check_kind(op, y, dtype, device)?;
        match loss {
            OutputLoss::CrossEntropy => {
                if out_dims.len() != 2 {
                    return Err(invalid(
                        op,
                        format!("cross-entropy needs [n, C] logits, got {out_dims:?}"),
                    ));
                }
                // One label per output row, in row-major order, as the loss reads them (a
                // sequence model's [batch, t] labels for its [batch·t, C] logits).
                if y.elem_count() != out_dims[0] {
                    return Err(invalid(
                        op,
                        format!(
                            "cross-entropy needs {} labels (one per row of the logits), got {}",
                            out_dims[0],
                            y.shape()
                        ),
                    ));
                }
                let labels = labels_from_tensor(y)?;
                if let Some(bad) = labels.iter().find(|&&l| l >= out_dims[1]) {
                    return Err(invalid(
                        op,
                        format!("label {bad} is out of range for {} classes", out_dims[1]),
                    ));
                }
                Ok(Target::Labels(labels))
            }
            _ => {
                if y.dims() != out_dims {
                    return Err(invalid(
                        op,
                        format!(
                            "{} needs targets of the output's shape {out_dims:?}, got {}",
                            loss.name(),
                            y.shape()
                        ),
                    ));
                }
                let values = y.to_f64s()?;
                if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                    return Err(invalid(op, format!("target {bad} is not finite")));
                }
                if loss == OutputLoss::BinaryCrossEntropyWithLogits {
                    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                        return Err(invalid(op, format!("target {bad} is outside [0, 1]")));
                    }
                }
                Ok(Target::Values(values))
            }
        }
    }
}

/// The output curvature on the host, before upload.
enum HostCurvature {
    Scaled(f64),
    Diagonal(Vec<f64>),
    Softmax(Vec<f64>, f64),
    LowRank(Vec<f64>, usize),
}

impl HostCurvature {
    /// R, the number of square-root columns per sample.
    fn rank(&self, o: usize) -> usize {
        match self {
            HostCurvature::LowRank(_, r) => *r,
            _ => o,
        }
    }

    /// Column r of sample i's square root `Lᵢ` (`H̃ᵢ = Lᵢ Lᵢᵀ`) into `out` (length O):
    /// `√c e_r`, `√hᵢᵣ e_r`, `√(s pᵢᵣ) (e_r − pᵢ)`, or the stored column.
    fn column(&self, i: usize, r: usize, out: &mut [f64]) {
        let o = out.len();
        out.fill(0.0);
        match self {
            HostCurvature::Scaled(c) => out[r] = c.sqrt(),
            HostCurvature::Diagonal(h) => out[r] = h[i * o + r].sqrt(),
            HostCurvature::Softmax(p, s) => {
                let pi = &p[i * o..(i + 1) * o];
                let w = (s * pi[r]).sqrt();
                for (c, v) in out.iter_mut().enumerate() {
                    *v = -w * pi[c];
                }
                out[r] += w;
            }
            HostCurvature::LowRank(g, m) => {
                for (c, v) in out.iter_mut().enumerate() {
                    *v = g[(i * o + c) * m + r];
                }
            }
        }
    }

    /// Every column, `[n, O, R]` row-major, allocated with checked sizes.
    fn columns(&self, op: &'static str, n: usize, o: usize) -> Result<Vec<f64>> {
        let r = self.rank(o);
        let len = alloc::product(op, "the curvature's square-root columns", &[n, o, r])?;
        let mut all = alloc::filled(op, "the curvature's square-root columns", len, 0.0)?;
        let mut col = alloc::filled(op, "one column", o, 0.0)?;
        for i in 0..n {
            for j in 0..r {
                self.column(i, j, &mut col);
                for (c, &v) in col.iter().enumerate() {
                    all[(i * o + c) * r + j] = v;
                }
            }
        }
        Ok(all)
    }
}

fn softmax_rows(f: &[f64], o: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(f.len());
    for row in f.chunks_exact(o) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
        let z: f64 = e.iter().sum();
        p.extend(e.iter().map(|v| v / z));
    }
    p
}

fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

/// The curvature `H̃` and its square-root columns `[n, O, R]` (row-major) with R.
fn output_curvature(
    loss: OutputLoss,
    curvature: Curvature,
    f: &[f64],
    n: usize,
    o: usize,
    target: &Target,
) -> Result<HostCurvature> {
    if f.iter().any(|v| !v.is_finite()) {
        return Err(invalid(OP, "the model's output has non-finite values"));
    }
    let s = loss.scale(n, o);
    let factor_len = |r: usize| alloc::product(OP, "the curvature's factors", &[n, o, r]);
    match curvature {
        Curvature::Ggn => Ok(match loss {
            OutputLoss::Mse | OutputLoss::SumSq => HostCurvature::Scaled(s),
            OutputLoss::BinaryCrossEntropyWithLogits => HostCurvature::Diagonal(
                f.iter()
                    .map(|&v| {
                        let q = sigmoid(v);
                        s * q * (1.0 - q)
                    })
                    .collect(),
            ),
            OutputLoss::CrossEntropy => HostCurvature::Softmax(softmax_rows(f, o), s),
        }),
        Curvature::EmpiricalFisher => {
            let labels = match target {
                Target::Labels(l) => Some(l),
                _ => None,
            };
            let scale = 1.0 / (n as f64).sqrt();
            let p = (loss == OutputLoss::CrossEntropy).then(|| softmax_rows(f, o));
            let mut g = alloc::filled(OP, "the curvature's factors", factor_len(1)?, 0.0)?;
            for i in 0..n {
                for c in 0..o {
                    let idx = i * o + c;
                    let y = match target {
                        Target::Values(v) => v[idx],
                        _ => 0.0,
                    };
                    // ∇_f of the one-sample batch's loss.
                    g[idx] = scale
                        * match loss {
                            OutputLoss::Mse => 2.0 / o as f64 * (f[idx] - y),
                            OutputLoss::SumSq => 2.0 * f[idx],
                            OutputLoss::BinaryCrossEntropyWithLogits => {
                                (sigmoid(f[idx]) - y) / o as f64
                            }
                            OutputLoss::CrossEntropy => {
                                let hit = labels.is_some_and(|l| l[i] == c);
                                p.as_ref().map_or(0.0, |p| p[idx]) - if hit { 1.0 } else { 0.0 }
                            }
                        };
                }
            }
            Ok(HostCurvature::LowRank(g, 1))
        }
        Curvature::MonteCarloFisher { samples, seed } => {
            if samples == 0 {
                return Err(invalid(
                    OP,
                    "the Monte-Carlo Fisher needs at least one sample",
                ));
            }
            if loss == OutputLoss::SumSq {
                return Err(invalid(
                    OP,
                    "the sum of squares has no predictive distribution to sample a Fisher from",
                ));
            }
            let m = samples;
            let mut g = alloc::filled(OP, "the curvature's factors", factor_len(m)?, 0.0)?;
            let w = (s / m as f64).sqrt();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let p = (loss == OutputLoss::CrossEntropy).then(|| softmax_rows(f, o));
            for i in 0..n {
                for j in 0..m {
                    match loss {
                        OutputLoss::CrossEntropy => {
                            let pi = &p.as_ref().map_or(&[][..], |p| &p[i * o..(i + 1) * o]);
                            let u: f64 = rng.random();
                            let mut acc = 0.0;
                            let mut label = o - 1;
                            for (c, &pc) in pi.iter().enumerate() {
                                acc += pc;
                                if u < acc {
                                    label = c;
                                    break;
                                }
                            }
                            for c in 0..o {
                                let e = if c == label { 1.0 } else { 0.0 };
                                g[(i * o + c) * m + j] = w * (pi[c] - e);
                            }
                        }
                        OutputLoss::Mse => {
                            for c in 0..o {
                                let eps: f64 = rng.sample(StandardNormal);
                                g[(i * o + c) * m + j] = -w * eps;
                            }
                        }
                        OutputLoss::BinaryCrossEntropyWithLogits => {
                            for c in 0..o {
                                let q = sigmoid(f[i * o + c]);
                                let u: f64 = rng.random();
                                let y = if u < q { 1.0 } else { 0.0 };
                                g[(i * o + c) * m + j] = w * (q - y);
                            }
                        }
                        OutputLoss::SumSq => unreachable_sum_sq()?,
                    }
                }
            }
            Ok(HostCurvature::LowRank(g, m))
        }
    }
}

/// The square-root columns `[n, O, R]` (row-major, with R) of the output curvature of `loss`
/// and `curvature` at the model output `out` (`[n, …]`) and targets `y`, after checking them.
pub(crate) fn curvature_columns(
    op: &'static str,
    loss: OutputLoss,
    curvature: Curvature,
    out: &Tensor,
    y: &Tensor,
) -> Result<(Vec<f64>, usize)> {
    if out.rank() == 0 || out.dims()[0] == 0 || out.elem_count() == 0 {
        return Err(invalid(
            op,
            format!(
                "the model's output must be [n, …] with n ≥ 1, got {}",
                out.shape()
            ),
        ));
    }
    let n = out.dims()[0];
    let o = out.elem_count() / n;
    let target = Target::read(op, loss, y, out.dims(), out.dtype(), out.device())?;
    let host = output_curvature(loss, curvature, &out.to_f64s()?, n, o, &target)?;
    Ok((host.columns(op, n, o)?, host.rank(o)))
}

fn unreachable_sum_sq() -> Result<()> {
    Err(invalid(OP, "the sum of squares has no Fisher"))
}

fn upload(
    host: &HostCurvature,
    n: usize,
    o: usize,
    dtype: DType,
    device: Device,
) -> Result<OutputCurvature> {
    Ok(match host {
        HostCurvature::Scaled(c) => OutputCurvature::Scaled(*c),
        HostCurvature::Diagonal(h) => {
            OutputCurvature::Diagonal(Tensor::from_f64s(h, [n, o], dtype, device)?)
        }
        HostCurvature::Softmax(p, scale) => OutputCurvature::Softmax {
            probs: Tensor::from_f64s(p, [n, o], dtype, device)?,
            scale: *scale,
        },
        HostCurvature::LowRank(g, r) => OutputCurvature::LowRank {
            factors: Tensor::from_f64s(g, [n, o, *r], dtype, device)?,
        },
    })
}
