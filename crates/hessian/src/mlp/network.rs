//! An MLP taken apart for the fused sweep: its dense layers on the host, and the primal pass
//! (forward, loss, backward) over all samples, whose per-layer results every batch of HVPs
//! reuses.

use curvature_nn::{
    labels_from_tensor, softmax_curvature, Activation, Dropout, Linear, Loss, Sequential,
};
use curvature_tensor::host_gemm::{gemm, Gemm, Operand};
use curvature_tensor::{Element, Tensor};
use rayon::prelude::*;

use crate::alloc;
use crate::error::invalid;
use crate::Result;

/// One `Linear` layer and the activation that follows it, if any.
pub(crate) struct Dense<T> {
    pub inputs: usize,
    pub outputs: usize,
    /// `[outputs, inputs]`, row-major (PyTorch's layout).
    pub weight: Vec<T>,
    pub bias: Vec<T>,
    pub activation: Option<Activation>,
    /// Where the weight and the bias start in θ.
    pub weight_offset: usize,
    pub bias_offset: usize,
}

/// What the primal pass leaves for the tangent sweeps, per layer, for all n samples.
pub(crate) struct LayerPrimal<T> {
    /// The layer's input h, `[n, inputs]`.
    pub input: Vec<T>,
    /// σ'(z), `[n, outputs]` (ones without an activation).
    pub slope: Vec<T>,
    /// ∂L/∂h ⊙ σ''(z), `[n, outputs]`: how the gradient's pre-activation part moves with z.
    pub bend: Vec<T>,
    /// ∂L/∂z, `[n, outputs]`.
    pub grad_z: Vec<T>,
}

/// The loss's Hessian with respect to the model output, as a map on output tangents.
pub(crate) enum OutputCurvature<T> {
    /// `scale · I` (MSE: 2/(n·outputs); sum of squares: 2).
    Scaled(T),
    /// Softmax cross-entropy: `(diag(p) − p·pᵀ) / n` per sample, p the softmax `[n, classes]`.
    Softmax { probs: Vec<T>, scale: T },
}

pub(crate) struct Network<T> {
    pub layers: Vec<Dense<T>>,
    pub primal: Vec<LayerPrimal<T>>,
    pub output_curvature: OutputCurvature<T>,
    pub samples: usize,
    pub params: usize,
    pub value: f64,
    /// ∇θ L, `[P]`.
    pub gradient: Vec<T>,
}

const OP: &str = "MlpHvp::new";

/// The model as `Linear` layers each with the activation that follows it (`Dropout`, the
/// identity at evaluation, skipped), or why the fused sweep does not apply to it.
pub(crate) fn dense_chain(model: &Sequential) -> Result<Vec<(&Linear, Option<Activation>)>> {
    let mut chain: Vec<(&Linear, Option<Activation>)> = Vec::new();
    for (index, layer) in model.layers().iter().enumerate() {
        let layer = layer.as_any();
        if let Some(linear) = layer.downcast_ref::<Linear>() {
            let dims = linear.weight.dims();
            if dims.len() != 2 || linear.bias.dims() != [dims[0]] || dims.contains(&0) {
                return Err(invalid(
                    OP,
                    format!(
                        "layer {index} has weight {} and bias {}; the fused sweep needs \
                         [out, in] and [out] with out, in ≥ 1",
                        linear.weight.shape(),
                        linear.bias.shape()
                    ),
                ));
            }
            if let Some((previous, _)) = chain.last() {
                let (inputs, given) = (linear.weight.dims()[1], previous.weight.dims()[0]);
                if inputs != given {
                    return Err(invalid(
                        OP,
                        format!(
                            "layer {index} takes {inputs} inputs but the layer before it gives {given}"
                        ),
                    ));
                }
            }
            chain.push((linear, None));
        } else if let Some(act) = layer.downcast_ref::<Activation>() {
            if act.derivatives(0.0f64).is_none() {
                return Err(invalid(
                    OP,
                    format!(
                        "layer {index} ({}) has no closed-form derivatives in the fused sweep \
                         (tanh and sigmoid do; PreparedHvp::for_model takes any model)",
                        act.name()
                    ),
                ));
            }
            match chain.last_mut() {
                Some((_, slot @ None)) => *slot = Some(*act),
                _ => {
                    return Err(invalid(
                        OP,
                        format!(
                            "layer {index} ({}) does not follow a Linear layer; the fused sweep \
                             needs Linear layers each followed by at most one activation \
                             (PreparedHvp::for_model takes any model)",
                            act.name()
                        ),
                    ))
                }
            }
        } else if layer.downcast_ref::<Dropout>().is_some() {
            // The identity at evaluation.
            continue;
        } else {
            return Err(invalid(
                OP,
                format!(
                    "layer {index} is neither Linear nor an activation; the fused sweep needs \
                     Linear layers each followed by at most one tanh or sigmoid \
                     (PreparedHvp::for_model takes any model)"
                ),
            ));
        }
    }
    if chain.is_empty() {
        return Err(invalid(OP, "the model has no Linear layer"));
    }
    Ok(chain)
}

/// The model's dense layers with their data on the host, and their places in θ (offsets
/// summed with checked arithmetic).
pub(crate) fn dense_layers<T: Element>(model: &Sequential) -> Result<Vec<Dense<T>>> {
    let mut offset = 0;
    dense_chain(model)?
        .into_iter()
        .map(|(linear, activation)| {
            let (outputs, inputs) = (linear.weight.dims()[0], linear.weight.dims()[1]);
            let weights = alloc::product(OP, "a layer's weight", &[outputs, inputs])?;
            let bias_offset = alloc::sum(OP, "the parameters", &[offset, weights])?;
            let dense = Dense {
                inputs,
                outputs,
                weight: linear.weight.to_vec()?,
                bias: linear.bias.to_vec()?,
                activation,
                weight_offset: offset,
                bias_offset,
            };
            offset = alloc::sum(OP, "the parameters", &[bias_offset, outputs])?;
            Ok(dense)
        })
        .collect()
}

/// `len` zeros, allocated fallibly (the primal pass's buffers are sized by the data).
pub(crate) fn zeros<T: Element>(what: &'static str, len: usize) -> Result<Vec<T>> {
    alloc::filled(OP, what, len, T::zero())
}

/// A fallibly allocated vector of the `len` values of `values`.
fn collect<T>(what: &'static str, len: usize, values: impl Iterator<Item = T>) -> Result<Vec<T>> {
    let mut out = alloc::with_capacity(OP, what, len)?;
    out.extend(values.take(len));
    Ok(out)
}

impl<T: Element> Network<T> {
    /// Runs the primal pass of `loss(model(x), y)`: `x` is `[n, inputs]` on the host. Every
    /// `n × width` buffer is sized with checked arithmetic (so the later sweeps' offsets, all
    /// below these sizes, cannot overflow) and allocated fallibly.
    pub fn new(layers: Vec<Dense<T>>, loss: Loss, x: &Tensor, y: &Tensor) -> Result<Network<T>> {
        let first = &layers[0];
        let last = &layers[layers.len() - 1];
        if x.rank() != 2 || x.dims()[1] != first.inputs || x.dims()[0] == 0 {
            return Err(invalid(
                OP,
                format!(
                    "x must be [n, {}] with n ≥ 1 for this model, got {}",
                    first.inputs,
                    x.shape()
                ),
            ));
        }
        let samples = x.dims()[0];
        let params = alloc::sum(OP, "the parameters", &[last.bias_offset, last.outputs])?;
        for dense in &layers {
            alloc::product(OP, "a layer's activations", &[samples, dense.inputs])?;
            alloc::product(OP, "a layer's activations", &[samples, dense.outputs])?;
        }

        // Forward: h₀ = x, z = h·Wᵀ + b, h' = σ(z).
        let mut inputs = Vec::with_capacity(layers.len());
        let mut slopes = Vec::with_capacity(layers.len());
        let mut curvatures = Vec::with_capacity(layers.len());
        let x = x.host_slice::<T>()?;
        let mut h = collect("the input activations", x.len(), x.iter().copied())?;
        for dense in &layers {
            let mut z = zeros("a layer's pre-activations", samples * dense.outputs)?;
            for row in z.chunks_exact_mut(dense.outputs) {
                row.copy_from_slice(&dense.bias);
            }
            gemm(Gemm {
                m: samples,
                n: dense.outputs,
                k: dense.inputs,
                dst: Operand::row_major(&mut z, dense.outputs),
                accumulate: true,
                lhs: Operand::row_major(&h, dense.inputs),
                rhs: Operand::transposed(&dense.weight, dense.inputs),
                parallel: true,
            })?;
            let (out, slope, curvature) = activate(dense.activation, &z)?;
            inputs.push(std::mem::replace(&mut h, out));
            slopes.push(slope);
            curvatures.push(curvature);
        }

        // Loss, its gradient and its curvature with respect to the output h.
        let (value, mut grad_h, output_curvature) = loss_terms(loss, &h, y, samples, last.outputs)?;
        drop(h);

        // Backward: ∂L/∂z = ∂L/∂h ⊙ σ'(z), ∂L/∂h_prev = ∂L/∂z · W.
        let mut primal: Vec<LayerPrimal<T>> = Vec::with_capacity(layers.len());
        let mut gradient = zeros("the gradient", params)?;
        for (index, dense) in layers.iter().enumerate().rev() {
            let slope = std::mem::take(&mut slopes[index]);
            let curvature = std::mem::take(&mut curvatures[index]);
            let n = grad_h.len();
            let bend = collect(
                "a layer's curvature terms",
                n,
                grad_h.iter().zip(&curvature).map(|(&g, &c)| g * c),
            )?;
            drop(curvature);
            let grad_z = collect(
                "a layer's gradient",
                n,
                grad_h.iter().zip(&slope).map(|(&g, &s)| g * s),
            )?;
            let input = std::mem::take(&mut inputs[index]);
            let (w, b) = gradient[dense.weight_offset..dense.bias_offset + dense.outputs]
                .split_at_mut(dense.outputs * dense.inputs);
            gemm(Gemm {
                m: dense.outputs,
                n: dense.inputs,
                k: samples,
                dst: Operand::row_major(w, dense.inputs),
                accumulate: false,
                lhs: Operand::transposed(&grad_z, dense.outputs),
                rhs: Operand::row_major(&input, dense.inputs),
                parallel: true,
            })?;
            for row in grad_z.chunks_exact(dense.outputs) {
                for (b, &g) in b.iter_mut().zip(row) {
                    *b = *b + g;
                }
            }
            if index > 0 {
                grad_h = zeros("a layer's input gradient", samples * dense.inputs)?;
                gemm(Gemm {
                    m: samples,
                    n: dense.inputs,
                    k: dense.outputs,
                    dst: Operand::row_major(&mut grad_h, dense.inputs),
                    accumulate: false,
                    lhs: Operand::row_major(&grad_z, dense.outputs),
                    rhs: Operand::row_major(&dense.weight, dense.inputs),
                    parallel: true,
                })?;
            }
            primal.push(LayerPrimal {
                input,
                slope,
                bend,
                grad_z,
            });
        }
        primal.reverse();
        Ok(Network {
            layers,
            primal,
            output_curvature,
            samples,
            params,
            value,
            gradient,
        })
    }

    /// The widest layer output.
    pub fn max_width(&self) -> usize {
        self.layers.iter().map(|d| d.outputs).max().unwrap_or(0)
    }

    /// Overwrites the output tangents `dh` (`[samples, outputs, directions]`, samples from
    /// `row` on) with the loss curvature applied to them.
    pub fn apply_output_curvature(&self, dh: &mut [T], row: usize, directions: usize) {
        match &self.output_curvature {
            OutputCurvature::Scaled(scale) => dh.iter_mut().for_each(|v| *v = *v * *scale),
            OutputCurvature::Softmax { probs, scale } => {
                let classes = self.layers[self.layers.len() - 1].outputs;
                let Some(width) = classes.checked_mul(directions).filter(|&w| w > 0) else {
                    return;
                };
                for (s, sample) in dh.chunks_exact_mut(width).enumerate() {
                    let p = &probs[(row + s) * classes..][..classes];
                    softmax_curvature(p, sample, directions, *scale);
                }
            }
        }
    }
}

/// The primal's per-layer results: the activations, σ'(z) and σ''(z).
type Activated<T> = (Vec<T>, Vec<T>, Vec<T>);

/// σ(z), σ'(z) and σ''(z), elementwise, in parallel blocks (each element on its own, so the
/// values do not depend on the thread count).
fn activate<T: Element>(act: Option<Activation>, z: &[T]) -> Result<Activated<T>> {
    const BLOCK: usize = 4096;
    let mut out = zeros("a layer's activations", z.len())?;
    let mut slope = zeros("a layer's activation slopes", z.len())?;
    let mut curvature = zeros("a layer's activation curvatures", z.len())?;
    out.par_chunks_mut(BLOCK)
        .zip(slope.par_chunks_mut(BLOCK))
        .zip(curvature.par_chunks_mut(BLOCK))
        .zip(z.par_chunks(BLOCK))
        .for_each(|(((out, slope), curvature), z)| {
            for (((h, d1), d2), &z) in out.iter_mut().zip(slope).zip(curvature).zip(z) {
                (*h, *d1, *d2) = derivatives(act, z);
            }
        });
    Ok((out, slope, curvature))
}

/// σ(z), σ'(z) and σ''(z); the identity without an activation (or, never reached, an
/// activation without closed forms, which [`dense_chain`] rejects).
fn derivatives<T: Element>(act: Option<Activation>, z: T) -> (T, T, T) {
    act.and_then(|act| act.derivatives(z))
        .unwrap_or((z, T::one(), T::zero()))
}

/// The loss value, ∂L/∂h `[n, outputs]` and the loss curvature, for output `h`.
fn loss_terms<T: Element>(
    loss: Loss,
    h: &[T],
    y: &Tensor,
    samples: usize,
    outputs: usize,
) -> Result<(f64, Vec<T>, OutputCurvature<T>)> {
    match loss {
        Loss::SoftCrossEntropy | Loss::Nll | Loss::BceWithLogits => Err(invalid(
            OP,
            format!(
                "the fused sweep implements mse, sum_sq and cross_entropy, not {} \
                 (PreparedHvp::for_model takes every loss)",
                loss.name()
            ),
        )),
        Loss::Mse => {
            if y.dims() != [samples, outputs] {
                return Err(invalid(
                    OP,
                    format!(
                        "mse needs y of shape [{samples}, {outputs}] (the model output), got {}",
                        y.shape()
                    ),
                ));
            }
            let y = y.host_slice::<T>()?;
            let scale = loss.output_scale(samples, outputs);
            let value = h
                .iter()
                .zip(y)
                .map(|(&h, &y)| (h - y).to_f64().powi(2))
                .sum::<f64>()
                / (samples * outputs) as f64;
            let grad = collect(
                "the output gradient",
                h.len(),
                h.iter()
                    .zip(y)
                    .map(|(&h, &y)| loss.output_gradient(h, y, scale)),
            )?;
            Ok((value, grad, OutputCurvature::Scaled(scale)))
        }
        Loss::SumSq => {
            let scale = loss.output_scale(samples, outputs);
            let value = h.iter().map(|&h| h.to_f64().powi(2)).sum();
            let grad = collect(
                "the output gradient",
                h.len(),
                h.iter().map(|&h| loss.output_gradient(h, T::zero(), scale)),
            )?;
            Ok((value, grad, OutputCurvature::Scaled(scale)))
        }
        Loss::CrossEntropy => {
            let labels = labels_from_tensor(y)?;
            if labels.len() != samples {
                return Err(invalid(
                    OP,
                    format!("cross_entropy needs {samples} labels, got {}", labels.len()),
                ));
            }
            if let Some(&bad) = labels.iter().find(|&&l| l >= outputs) {
                return Err(invalid(
                    OP,
                    format!("label {bad} is out of range for {outputs} classes"),
                ));
            }
            let scale = loss.output_scale(samples, outputs);
            let mut probs = alloc::with_capacity(OP, "the softmax probabilities", h.len())?;
            let mut value = 0.0;
            for (row, &label) in h.chunks_exact(outputs).zip(&labels) {
                let max = row.iter().copied().fold(T::neg_infinity(), T::max);
                let sum: T = row.iter().map(|&v| (v - max).exp()).sum();
                let log_sum = max + sum.ln();
                value -= (row[label] - log_sum).to_f64();
                probs.extend(row.iter().map(|&v| (v - log_sum).exp()));
            }
            let one_hot = labels
                .iter()
                .flat_map(|&label| (0..outputs).map(move |c| T::from_f64(f64::from(c == label))));
            let grad = collect(
                "the output gradient",
                probs.len(),
                probs
                    .iter()
                    .zip(one_hot)
                    .map(|(&p, y)| loss.output_gradient(p, y, scale)),
            )?;
            Ok((
                value / samples as f64,
                grad,
                OutputCurvature::Softmax { probs, scale },
            ))
        }
    }
}
