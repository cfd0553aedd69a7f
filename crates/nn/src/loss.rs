//! Losses of a model output: MSE, sum of squares, cross-entropy (class labels or
//! probabilities), negative log-likelihood, Gaussian negative log-likelihood and binary
//! cross-entropy with logits, with PyTorch's definitions and mean reduction; and
//! [`Objective`], a built-in loss against targets or any closure of the output.

use curvature_tape::Var;
use curvature_tensor::{Element, Tensor, TensorError};

use crate::{NnError, Result};

/// The built-in losses of a model output against one target tensor y. The first three are
/// the losses of model files (the names [`FromStr`](std::str::FromStr) parses) and of the
/// fused MLP sweep; the others run on the tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Mean over all elements of (output − y)².
    Mse,
    /// Σ output² (y unused).
    SumSq,
    /// Mean over samples of −log_softmax(output)\[label\]; labels are stored as integral floats.
    CrossEntropy,
    /// [`cross_entropy_soft`]: y holds class probabilities shaped like the output.
    SoftCrossEntropy,
    /// [`nll_loss`] of log-probabilities; labels are stored as integral floats.
    Nll,
    /// [`binary_cross_entropy_with_logits`]: y holds targets in [0, 1] shaped like the output.
    BceWithLogits,
}

impl Loss {
    /// The loss's name in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::SumSq => "sum_sq",
            Loss::CrossEntropy => "cross_entropy",
            Loss::SoftCrossEntropy => "cross_entropy_soft",
            Loss::Nll => "nll_loss",
            Loss::BceWithLogits => "binary_cross_entropy_with_logits",
        }
    }

    /// The factor c of the loss's derivatives with respect to a `[samples, outputs]` output:
    /// MSE is c/2 · Σ(h − y)² with c = 2/(samples·outputs), the sum of squares c/2 · Σh² with
    /// c = 2, cross-entropy the mean of the per-sample losses, c = 1/samples. The loss's
    /// Hessian with respect to the output is c·I for the first two and c times the softmax
    /// curvature ([`softmax_curvature`]) for cross-entropy. The other losses are means over
    /// samples (c = 1/samples; soft cross-entropy has cross-entropy's curvature, the negative
    /// log-likelihood none) or, for binary cross-entropy, over elements (c =
    /// 1/(samples·outputs), curvature c·σ(1 − σ) per element).
    pub fn output_scale<T: Element>(self, samples: usize, outputs: usize) -> T {
        match self {
            Loss::Mse => T::from_f64(2.0 / samples.saturating_mul(outputs) as f64),
            Loss::SumSq => T::from_f64(2.0),
            Loss::CrossEntropy | Loss::SoftCrossEntropy | Loss::Nll => {
                T::from_f64(1.0 / samples as f64)
            }
            Loss::BceWithLogits => T::from_f64(1.0 / samples.saturating_mul(outputs) as f64),
        }
    }

    /// ∂L/∂h of one output element, with `scale` the loss's
    /// [`output_scale`](Loss::output_scale): (h − y)·scale for MSE (y the target), h·scale for
    /// the sum of squares (y unused), and h·scale − y·scale for cross-entropy, where h is the
    /// element's softmax probability and y is 1 at the sample's label and 0 elsewhere. The
    /// same expression holds for soft cross-entropy (y the target probability) and binary
    /// cross-entropy (h the element's sigmoid, y its target); the negative log-likelihood's is
    /// −y·scale (y one-hot).
    pub fn output_gradient<T: Element>(self, h: T, y: T, scale: T) -> T {
        match self {
            Loss::Mse => (h - y) * scale,
            Loss::SumSq => h * scale,
            Loss::CrossEntropy | Loss::SoftCrossEntropy | Loss::BceWithLogits => {
                h * scale - y * scale
            }
            Loss::Nll => -(y * scale),
        }
    }

    /// This loss against targets `y`, as an [`Objective`].
    pub fn against(self, y: &Tensor) -> Objective<'_> {
        Objective::Loss {
            loss: self,
            target: y,
        }
    }

    /// The loss of `output` against targets `y`.
    pub fn compute(self, output: &Var, y: &Tensor) -> Result<Var> {
        match self {
            Loss::Mse => mse(output, &output.constant(y.clone())),
            Loss::SumSq => sum_sq(output),
            Loss::CrossEntropy => cross_entropy(output, &labels_from_tensor(y)?),
            Loss::SoftCrossEntropy => cross_entropy_soft(output, &output.constant(y.clone())),
            Loss::Nll => nll_loss(output, &labels_from_tensor(y)?),
            Loss::BceWithLogits => {
                binary_cross_entropy_with_logits(output, &output.constant(y.clone()))
            }
        }
    }

    /// Whether model files name this loss and the fused MLP sweep implements it (MSE, sum of
    /// squares, cross-entropy).
    pub fn is_fused(self) -> bool {
        matches!(self, Loss::Mse | Loss::SumSq | Loss::CrossEntropy)
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

/// What a model's output is scored by: a built-in [`Loss`] against targets, or any closure
/// returning a scalar (which captures its own targets).
#[derive(Clone, Copy)]
pub enum Objective<'a> {
    /// `loss(output, target)`.
    Loss { loss: Loss, target: &'a Tensor },
    /// `f(output)`.
    Closure(&'a dyn Fn(&Var) -> Result<Var>),
}

impl Objective<'_> {
    /// The objective at `output`.
    pub fn compute(&self, output: &Var) -> Result<Var> {
        match self {
            Objective::Loss { loss, target } => loss.compute(output, target),
            Objective::Closure(f) => f(output),
        }
    }
}

impl std::fmt::Debug for Objective<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Objective::Loss { loss, target } => {
                write!(f, "{}(target {})", loss.name(), target.shape())
            }
            Objective::Closure(_) => f.write_str("closure"),
        }
    }
}

/// Errors unless `a` and `b` have the same shape.
fn same_shape(op: &'static str, a: &Var, b: &Var) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(TensorError::ShapeMismatch {
            op,
            expected: a.shape().clone(),
            got: b.shape().clone(),
        }
        .into());
    }
    Ok(())
}

/// Errors unless `x` is `[classes]` or `[n, classes]` with at least one element.
fn class_scores(op: &'static str, x: &Var) -> Result<()> {
    if !(1..=2).contains(&x.rank()) || x.value().elem_count() == 0 {
        return Err(NnError::InvalidArgument {
            op,
            msg: format!(
                "needs non-empty [classes] or [n, classes] scores, got {}",
                x.shape()
            ),
        });
    }
    Ok(())
}

/// Mean squared error, mean over all elements of (output − target)².
pub fn mse(output: &Var, target: &Var) -> Result<Var> {
    same_shape("mse", output, target)?;
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

/// Softmax cross-entropy of logits `[n, classes]` (or one sample's `[classes]`) against
/// class probabilities of the same shape (soft targets), mean over samples:
/// −mean_i Σ_c p_ic · log_softmax(logits_i)_c (PyTorch's `cross_entropy` with probabilities).
pub fn cross_entropy_soft(logits: &Var, probs: &Var) -> Result<Var> {
    class_scores("cross_entropy_soft", logits)?;
    same_shape("cross_entropy_soft", logits, probs)?;
    Ok(logits
        .log_softmax(-1)?
        .mul(probs)?
        .sum(&[-1], false)?
        .mean_all()?
        .neg()?)
}

/// Negative log-likelihood of log-probabilities `[n, classes]` against integer labels, mean
/// over samples: −mean_i log_probs\[i, labels\[i\]\] (PyTorch's `nll_loss`).
pub fn nll_loss(log_probs: &Var, labels: &[usize]) -> Result<Var> {
    if log_probs.rank() != 2 || log_probs.value().elem_count() == 0 {
        return Err(NnError::InvalidArgument {
            op: "nll_loss",
            msg: format!(
                "needs non-empty [n, classes] log-probabilities, got {}",
                log_probs.shape()
            ),
        });
    }
    let classes = log_probs.dims()[1];
    if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(NnError::InvalidArgument {
            op: "nll_loss",
            msg: format!("label {bad} is out of range for {classes} classes"),
        });
    }
    Ok(log_probs.gather_labels(labels)?.mean_all()?.neg()?)
}

/// Gaussian negative log-likelihood (PyTorch's `GaussianNLLLoss` with `full=False`, mean
/// reduction): mean of ½(log v + (input − target)² / v), with v the variance clamped below at
/// `eps` (the clamp passes gradients through unchanged, as PyTorch's does). `var` has the
/// input's shape, or its shape with the last axis 1 or dropped (one variance per sample).
/// Negative variances and a non-positive `eps` are errors.
pub fn gaussian_nll(input: &Var, target: &Var, var: &Var, eps: f64) -> Result<Var> {
    const OP: &str = "gaussian_nll";
    same_shape(OP, input, target)?;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(NnError::InvalidArgument {
            op: OP,
            msg: format!("eps must be positive and finite, got {eps}"),
        });
    }
    let dims = input.dims();
    let var = if var.dims() == dims {
        var.clone()
    } else if !dims.is_empty() && var.dims() == &dims[..dims.len() - 1] {
        var.unsqueeze(dims.len() - 1)?
    } else if !dims.is_empty()
        && var.rank() == dims.len()
        && var.dims()[..dims.len() - 1] == dims[..dims.len() - 1]
        && var.dims()[dims.len() - 1] == 1
    {
        var.clone()
    } else {
        return Err(NnError::InvalidArgument {
            op: OP,
            msg: format!(
                "var must have the input's shape {} or that shape with the last axis 1 or dropped, got {}",
                input.shape(),
                var.shape()
            ),
        });
    };
    let values = var.value().to_f64s()?;
    if let Some(bad) = values.iter().find(|v| v.is_nan() || **v < 0.0) {
        return Err(NnError::InvalidArgument {
            op: OP,
            msg: format!("var has a negative or NaN entry ({bad})"),
        });
    }
    let shift: Vec<f64> = values.iter().map(|&v| v.max(eps) - v).collect();
    let shift = Tensor::from_f64s(&shift, var.shape().clone(), var.dtype(), var.device())?;
    let clamped = var.add(&var.constant(shift))?;
    let squared = input.sub(target)?.square()?.div(&clamped)?;
    Ok(clamped.log()?.add(&squared)?.mean_all()?.mul_scalar(0.5)?)
}

/// Binary cross-entropy of logits x against targets y in [0, 1] of the same shape, mean over
/// elements: mean(softplus(x) − x·y), which equals −[y·log σ(x) + (1 − y)·log(1 − σ(x))]
/// without overflow (PyTorch's `binary_cross_entropy_with_logits`).
pub fn binary_cross_entropy_with_logits(logits: &Var, targets: &Var) -> Result<Var> {
    same_shape("binary_cross_entropy_with_logits", logits, targets)?;
    Ok(logits.softplus()?.sub(&logits.mul(targets)?)?.mean_all()?)
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
