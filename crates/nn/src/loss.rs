//! The losses MSE, sum of squares and softmax cross-entropy of a model output.

use curvature_tape::Var;
use curvature_tensor::{Element, Tensor};

use crate::{NnError, Result};

/// The losses of the golden data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Mean over all elements of (output − y)².
    Mse,
    /// Σ output² (y unused).
    SumSq,
    /// Mean over samples of −log_softmax(output)\[label\]; labels are stored as integral floats.
    CrossEntropy,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::SumSq => "sum_sq",
            Loss::CrossEntropy => "cross_entropy",
        }
    }

    /// The factor c of the loss's derivatives with respect to a `[samples, outputs]` output:
    /// MSE is c/2 · Σ(h − y)² with c = 2/(samples·outputs), the sum of squares c/2 · Σh² with
    /// c = 2, cross-entropy the mean of the per-sample losses, c = 1/samples. The loss's
    /// Hessian with respect to the output is c·I for the first two and c times the softmax
    /// curvature ([`softmax_curvature`]) for cross-entropy.
    pub fn output_scale<T: Element>(self, samples: usize, outputs: usize) -> T {
        match self {
            Loss::Mse => T::from_f64(2.0 / samples.saturating_mul(outputs) as f64),
            Loss::SumSq => T::from_f64(2.0),
            Loss::CrossEntropy => T::from_f64(1.0 / samples as f64),
        }
    }

    /// ∂L/∂h of one output element, with `scale` the loss's
    /// [`output_scale`](Loss::output_scale): (h − y)·scale for MSE (y the target), h·scale for
    /// the sum of squares (y unused), and h·scale − y·scale for cross-entropy, where h is the
    /// element's softmax probability and y is 1 at the sample's label and 0 elsewhere.
    pub fn output_gradient<T: Element>(self, h: T, y: T, scale: T) -> T {
        match self {
            Loss::Mse => (h - y) * scale,
            Loss::SumSq => h * scale,
            Loss::CrossEntropy => h * scale - y * scale,
        }
    }

    /// The loss of `output` against targets `y`.
    pub fn compute(self, output: &Var, y: &Tensor) -> Result<Var> {
        match self {
            Loss::Mse => mse(output, &output.constant(y.clone())),
            Loss::SumSq => sum_sq(output),
            Loss::CrossEntropy => cross_entropy(output, &labels_from_tensor(y)?),
        }
    }
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mse" => Ok(Loss::Mse),
            "sum_sq" => Ok(Loss::SumSq),
            "cross_entropy" => Ok(Loss::CrossEntropy),
            other => Err(format!(
                "unknown loss '{other}' (expected mse, sum_sq or cross_entropy)"
            )),
        }
    }
}

/// Mean squared error, mean over all elements of (output − target)².
pub fn mse(output: &Var, target: &Var) -> Result<Var> {
    if output.shape() != target.shape() {
        return Err(curvature_tensor::TensorError::ShapeMismatch {
            op: "mse",
            expected: output.shape().clone(),
            got: target.shape().clone(),
        }
        .into());
    }
    Ok(output.sub(target)?.square()?.mean_all()?)
}

/// Σ output².
pub fn sum_sq(output: &Var) -> Result<Var> {
    Ok(output.square()?.sum_all()?)
}

/// Softmax cross-entropy of `[n, classes]` logits against integer labels, mean over samples.
pub fn cross_entropy(logits: &Var, labels: &[usize]) -> Result<Var> {
    Ok(logits
        .log_softmax(-1)?
        .gather_labels(labels)?
        .mean_all()?
        .neg()?)
}

/// Class labels stored as integral floats, validated.
pub fn labels_from_tensor(y: &Tensor) -> Result<Vec<usize>> {
    y.to_f64s()?
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 && v.is_finite() {
                Ok(v as usize)
            } else {
                Err(NnError::InvalidArgument {
                    op: "cross_entropy",
                    msg: format!("label {v} is not a non-negative integer"),
                })
            }
        })
        .collect()
}

/// Softmax cross-entropy's Hessian with respect to one sample's logits, times `scale`, applied
/// to `directions` tangents stored side by side (`tangents[c·directions + d]` is class c of
/// direction d): `t ← p ⊙ (t − (p·t)) · scale` for the softmax probabilities `p`. Only the
/// first `probs.len() · directions` values of `tangents` are read and changed.
pub fn softmax_curvature<T: Element>(probs: &[T], tangents: &mut [T], directions: usize, scale: T) {
    if directions == 0 {
        return;
    }
    let mut dot = vec![T::zero(); directions];
    for (&p, tangent) in probs.iter().zip(tangents.chunks_exact(directions)) {
        for (d, &t) in dot.iter_mut().zip(tangent) {
            *d = *d + p * t;
        }
    }
    for (&p, tangent) in probs.iter().zip(tangents.chunks_exact_mut(directions)) {
        for (t, &d) in tangent.iter_mut().zip(&dot) {
            *t = p * (*t - d) * scale;
        }
    }
}
