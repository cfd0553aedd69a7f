//! Softmax, the normalisations and attention on variables: compositions of recorded ops, so
//! their derivatives of every order come from those ops' rules. The argument checks are the
//! tensor ops' own (`curvature_tensor::norm_checks`).

use curvature_tensor::{norm_checks, Tensor, TensorError};

use crate::{Result, TapeError, Var};

/// What a hidden score becomes in causal attention: finite, so no `inf · 0` can turn a
/// derivative into NaN, and so negative that its softmax weight is exactly 0 in f32 and f64.
const MASKED: f64 = -1e30;

impl Var {
    /// Softmax over `axis`: `exp(log_softmax(x))`, stable for any magnitudes; derivative
    /// `s·(g − Σ g·s)` through the two ops' rules.
    pub fn softmax(&self, axis: isize) -> Result<Var> {
        self.log_softmax(axis)?.exp()
    }

    /// Layer normalisation over the last axis without affine parameters (see
    /// `Tensor::layer_norm`): `(x − mean) / √(var + eps)`, biased variance.
    pub fn layer_norm(&self, eps: f64) -> Result<Var> {
        norm_checks::layer_norm(self.shape(), eps)?;
        let centred = self.sub(&self.mean(&[-1], true)?)?;
        let var = centred.square()?.mean(&[-1], true)?;
        centred.mul(&var.add_scalar(eps)?.powf(-0.5)?)
    }

    /// Batch normalisation in inference form over the channel axis 1 of `[N, C, …]` (see
    /// `Tensor::batch_norm`); the `[C]` statistics are constants.
    pub fn batch_norm(&self, running_mean: &Tensor, running_var: &Tensor, eps: f64) -> Result<Var> {
        let stats = norm_checks::batch_norm(
            self.shape(),
            self.dtype(),
            self.device(),
            running_mean,
            running_var,
            eps,
        )?;
        let scale = running_var
            .add_scalar(eps)?
            .powf(-0.5)?
            .reshape(stats.clone())?;
        let mean = running_mean.reshape(stats)?;
        self.sub(&self.constant(mean))?.mul(&self.constant(scale))
    }

    /// Group normalisation of `[N, C, …]` in `groups` groups without affine parameters (see
    /// `Tensor::group_norm`).
    pub fn group_norm(&self, groups: usize, eps: f64) -> Result<Var> {
        let grouped = norm_checks::group_norm(self.shape(), groups, eps)?;
        self.reshape(grouped)?
            .layer_norm(eps)?
            .reshape(self.shape().clone())
    }
}

/// Scaled dot-product attention (PyTorch's `F.scaled_dot_product_attention` without dropout):
/// `softmax(q·kᵀ/√d + mask)·v` for `q: [..., L, d]`, `k: [..., S, d]`, `v: [..., S, dv]`, with
/// leading axes broadcast as in `matmul`; the result is `[..., L, dv]`. With `causal`, query
/// `i` sees only keys `j ≤ i`: the hidden scores get a large negative finite value, so their
/// weights are exactly 0 and so is every derivative through them (no NaN).
pub fn scaled_dot_product_attention(q: &Var, k: &Var, v: &Var, causal: bool) -> Result<Var> {
    const OP: &str = "scaled_dot_product_attention";
    for other in [k, v] {
        q.check_tape(OP, other)?;
        if other.dtype() != q.dtype() {
            return Err(TensorError::DTypeMismatch {
                op: OP,
                lhs: q.dtype(),
                rhs: other.dtype(),
            }
            .into());
        }
        if other.device() != q.device() {
            return Err(TensorError::DeviceMismatch {
                op: OP,
                lhs: q.device(),
                rhs: other.device(),
            }
            .into());
        }
    }
    let [(q_rows, d), (k_rows, k_d), (v_rows, _)] = [q, k, v].map(|x| match x.dims() {
        [.., rows, cols] => (*rows, *cols),
        _ => (0, 0),
    });
    let invalid = |msg: String| TapeError::InvalidArgument { op: OP, msg };
    if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        return Err(invalid(format!(
            "q, k and v need at least 2 axes [..., L, d], got {}, {} and {}",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    if d != k_d || k_rows != v_rows || d == 0 || k_rows == 0 {
        return Err(invalid(format!(
            "needs q [..., L, d], k [..., S, d] and v [..., S, dv] with d > 0 and S > 0, got {}, \
             {} and {}",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    let mut scores = q
        .matmul_transposed(k, false, true)?
        .mul_scalar(1.0 / (d as f64).sqrt())?;
    if causal {
        let mask = Tensor::from_fn([q_rows, k_rows], q.dtype(), q.device(), |e| {
            let (i, j) = (e / k_rows, e % k_rows);
            if j > i {
                MASKED
            } else {
                0.0
            }
        })?;
        scores = scores.add(&q.constant(mask))?;
    }
    scores.softmax(-1)?.matmul(v)
}
