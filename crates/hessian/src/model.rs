//! Hessians of `nn` models with respect to their flat parameter vector θ (PyTorch's order:
//! per layer the weight row-major, then the bias): model Hessians, loss Hessians and per-sample
//! loss Hessians.

use curvature_nn::{Loss, Sequential};
use curvature_tape::Tape;
use curvature_tensor::Tensor;

use crate::alloc;
use crate::assemble::{hessian_of, write_matrix, HessianOptions, HostBuffer};
use crate::error::{check_kind, invalid};
use crate::functional::output_hessian;
use crate::model_hvp::ModelHvp;
use crate::operator::PreparedHvp;
use crate::Result;

impl PreparedHvp {
    /// The Hessian of `loss(model(x), y)` with respect to the flat parameters θ (`dim = P`),
    /// recorded once. `x` and `y` must have the parameters' dtype and device.
    ///
    /// Each parameter is its own input (their concatenation is θ's order), so a batch of
    /// vectors is split into per-parameter slices once, instead of every parameter's
    /// cotangent being zero-padded to `[K, P]` and summed.
    pub fn for_model(
        model: &Sequential,
        loss: Loss,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<PreparedHvp> {
        let params = model.parameters();
        let (dtype, device) = crate::operator::common_kind("PreparedHvp::for_model", &params)?;
        check_kind("PreparedHvp::for_model", x, dtype, device)?;
        check_kind("PreparedHvp::for_model", y, dtype, device)?;
        PreparedHvp::new(
            |p| {
                let out = model.forward_with(p, &p[0].constant(x.clone()))?;
                loss.compute(&out, y)
            },
            &params,
        )
    }
}

/// The Hessian of every model output with respect to θ: `[n, out, P, P]` for `x` of shape
/// `[n, in]`. Sample i's outputs depend on row i of `x` only, so each sample is recorded on its
/// own (one row through the model). The result's `n · out · P²` elements are counted and
/// reserved before the first Hessian is computed: a size that overflows or memory the
/// allocator refuses is an error naming both.
pub fn model_hessian(model: &Sequential, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "model_hessian";
    const WHAT: &str = "the n × out × P × P Hessians";
    let theta = model.flat_params()?;
    check_kind(OP, x, theta.dtype(), theta.device())?;
    let n = samples(OP, x)?;
    let p = theta.elem_count();
    let outputs = {
        let tape = Tape::new();
        let leaf = tape.leaf(theta.clone());
        let first = leaf.constant(x.narrow(0, 0, 1)?);
        model.forward_flat(&leaf, &first)?.value().elem_count()
    };
    let block = alloc::product(OP, WHAT, &[outputs, p, p])?;
    let len = alloc::product(OP, WHAT, &[n, outputs, p, p])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, theta.dtype(), len)?;
    let sample_hessian = |i: usize| -> Result<Tensor> {
        let xi = x.narrow(0, i, 1)?;
        output_hessian(
            |v| model.forward_flat(&v[0], &v[0].constant(xi.clone())),
            std::slice::from_ref(&theta),
            &HessianOptions::default(),
        )
    };
    for i in 0..n {
        buf.write(i * block, &sample_hessian(i)?)?;
    }
    buf.into_tensor([n, outputs, p, p], theta.device())
}

/// The Hessian `[P, P]` of `loss(model(x), y)` with respect to θ.
pub fn loss_hessian(model: &Sequential, loss: Loss, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    hessian_of(
        &ModelHvp::new(model, loss, x, y)?,
        &HessianOptions::default(),
    )
}

/// Each sample's loss Hessian `[n, P, P]`: entry i is the Hessian of the loss of the one-sample
/// batch `(x[i], y[i])`. For the mean losses (MSE, cross-entropy) the batch Hessian is their
/// mean; for the sum of squares, their sum. The result's `n · P²` elements are counted and
/// reserved before the first Hessian is computed.
pub fn per_sample_hessian(
    model: &Sequential,
    loss: Loss,
    x: &Tensor,
    y: &Tensor,
) -> Result<Tensor> {
    let n = samples("per_sample_hessian", x)?;
    if y.rank() == 0 || y.dims()[0] != n {
        return Err(invalid(
            "per_sample_hessian",
            format!("x has {n} samples but y has shape {}", y.shape()),
        ));
    }
    const OP: &str = "per_sample_hessian";
    const WHAT: &str = "the n × P × P Hessians";
    let sizes: Vec<usize> = model.parameters().iter().map(Tensor::elem_count).collect();
    let p = alloc::sum(OP, "the parameters", &sizes)?;
    let block = alloc::product(OP, WHAT, &[p, p])?;
    let len = alloc::product(OP, WHAT, &[n, p, p])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, x.dtype(), len)?;
    for i in 0..n {
        let op = ModelHvp::new(model, loss, &x.narrow(0, i, 1)?, &y.narrow(0, i, 1)?)?;
        write_matrix(&op, &HessianOptions::default(), &mut buf, i * block)?;
    }
    buf.into_tensor([n, p, p], x.device())
}

/// The number of samples of a `[n, in]` input, which must be at least one.
fn samples(op: &'static str, x: &Tensor) -> Result<usize> {
    if x.rank() != 2 || x.dims()[0] == 0 {
        return Err(invalid(
            op,
            format!("x must be a non-empty [n, in] batch, got {}", x.shape()),
        ));
    }
    Ok(x.dims()[0])
}
