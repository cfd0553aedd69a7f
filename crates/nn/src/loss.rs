//! The losses MSE, sum of squares and softmax cross-entropy of a model output.

use curvature_tape::Var;
use curvature_tensor::Tensor;

use crate::{NnError, Result};

/// The losses of the golden data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Mean over all elements of (output − y)².
    Mse,
    /// Σ output² (y unused).
    SumSq,
    /// Mean over samples of −log_softmax(output)[label]; labels are stored as integral floats.
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
