//! Hessians of models (any [`Module`]) with respect to their flat parameter vector θ
//! (parameters in `named_parameters` order, each flattened row-major): model Hessians, loss
//! Hessians and per-sample loss Hessians, for a built-in loss or any closure of the output.

use curvature_nn::{Loss, Module, Objective};
use curvature_tape::{Tape, Var};
use curvature_tensor::{DType, Device, Tensor};

use crate::alloc;
use crate::assemble::{hessian_of, write_matrix, HessianOptions, HostBuffer};
use crate::error::{check_kind, invalid};
use crate::functional::output_hessian;
use crate::model_hvp::ModelHvp;
use crate::operator::{common_kind, PreparedHvp};
use crate::Result;

/// A model's inputs: one tensor (`&x`), or one tensor per input (`&[x, y]`, a slice, a `Vec`).
pub trait ModelInputs {
    /// The input tensors in order.
    fn tensors(&self) -> &[Tensor];
}

impl ModelInputs for Tensor {
    fn tensors(&self) -> &[Tensor] {
        std::slice::from_ref(self)
    }
}

impl ModelInputs for [Tensor] {
    fn tensors(&self) -> &[Tensor] {
        self
    }
}

impl<const N: usize> ModelInputs for [Tensor; N] {
    fn tensors(&self) -> &[Tensor] {
        self
    }
}

impl ModelInputs for Vec<Tensor> {
    fn tensors(&self) -> &[Tensor] {
        self
    }
}

/// Checks a model and its inputs (as many as the model takes, all with the parameters' dtype
/// and device); returns the parameters, their dtype and device.
pub(crate) fn check_model<M: Module + ?Sized>(
    op: &'static str,
    model: &M,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, DType, Device)> {
    let params = model.parameters();
    let (dtype, device) = common_kind(op, &params)?;
    if inputs.len() != model.num_inputs() {
        return Err(invalid(
            op,
            format!(
                "the model takes {} input(s), got {}",
                model.num_inputs(),
                inputs.len()
            ),
        ));
    }
    for t in inputs {
        check_kind(op, t, dtype, device)?;
    }
    Ok((params, dtype, device))
}

/// The inputs as constants on `v`'s tape.
fn constants(v: &Var, inputs: &[Tensor]) -> Vec<Var> {
    inputs.iter().map(|t| v.constant(t.clone())).collect()
}

impl PreparedHvp {
    /// The Hessian of `loss(model(x), y)` with respect to the flat parameters θ (`dim = P`),
    /// recorded once. `x` is the model's input (or `&[x1, x2, …]` for a model with several);
    /// `x` and `y` must have the parameters' dtype and device.
    ///
    /// Each parameter is its own input (their concatenation is θ's order), so a batch of
    /// vectors is split into per-parameter slices once, instead of every parameter's
    /// cotangent being zero-padded to `[K, P]` and summed.
    pub fn for_model<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        loss: Loss,
        x: &I,
        y: &Tensor,
    ) -> Result<PreparedHvp> {
        PreparedHvp::for_model_with(model, x, loss.against(y))
    }

    /// The Hessian of `objective(model(inputs))` with respect to θ, recorded once: a built-in
    /// loss against targets (`Loss::Mse.against(&y)`) or any closure
    /// (`Objective::Closure(&|out| …)`).
    pub fn for_model_with<M: Module + ?Sized, I: ModelInputs + ?Sized>(
        model: &M,
        inputs: &I,
        objective: Objective<'_>,
    ) -> Result<PreparedHvp> {
        const OP: &str = "PreparedHvp::for_model";
        let inputs = inputs.tensors();
        let (params, dtype, device) = check_model(OP, model, inputs)?;
        if let Objective::Loss { target, .. } = objective {
            check_kind(OP, target, dtype, device)?;
        }
        PreparedHvp::new(
            |p| {
                let out = model.forward_inputs(p, &constants(&p[0], inputs))?;
                objective.compute(&out)
            },
            &params,
        )
    }
}

/// The Hessian of every model output with respect to θ: shape `[…output shape, P, P]`
/// (`[n, out, P, P]` for an MLP on `x: [n, in]`). `inputs` is the model's input (or
/// `&[x1, x2, …]`). When the model declares its rows independent
/// ([`Module::rows_independent`]) and every input and the output have the same leading batch
/// axis, each sample is recorded on its own (one row through the model); otherwise each
/// output element is a recording of the whole model. The result's `outputs · P²` elements are
/// counted and reserved before the first Hessian is computed: a size that overflows or memory
/// the allocator refuses is an error naming both.
pub fn model_hessian<M: Module + ?Sized, I: ModelInputs + ?Sized>(
    model: &M,
    inputs: &I,
) -> Result<Tensor> {
    const OP: &str = "model_hessian";
    const WHAT: &str = "the outputs × P × P Hessians";
    let inputs = inputs.tensors();
    let (_, dtype, device) = check_model(OP, model, inputs)?;
    let theta = model.flat_params()?;
    let forward = |theta: &Var, inputs: &[Tensor]| {
        model.forward_flat_inputs(theta, &constants(theta, inputs))
    };
    let out_dims = {
        let tape = Tape::new();
        forward(&tape.leaf(theta.clone()), inputs)?.dims().to_vec()
    };
    let n = inputs.first().and_then(|x| x.dims().first()).copied();
    let by_rows = model.rows_independent()
        && n.is_some_and(|n| n > 1)
        && inputs
            .iter()
            .all(|x| x.rank() >= 2 && x.dims().first() == n.as_ref())
        && out_dims.first() == n.as_ref();
    if !by_rows {
        return output_hessian(
            |v| forward(&v[0], inputs),
            std::slice::from_ref(&theta),
            &HessianOptions::default(),
        );
    }
    let p = theta.elem_count();
    let n = out_dims[0];
    let outputs = alloc::product(OP, "the model's output", &out_dims[1..])?;
    let block = alloc::product(OP, WHAT, &[outputs, p, p])?;
    let len = alloc::product(OP, WHAT, &[n, outputs, p, p])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, dtype, len)?;
    for i in 0..n {
        let rows = sample(inputs, i)?;
        let h = output_hessian(
            |v| forward(&v[0], &rows),
            std::slice::from_ref(&theta),
            &HessianOptions::default(),
        )?;
        buf.write(i * block, &h)?;
    }
    let mut shape = out_dims;
    shape.extend([p, p]);
    buf.into_tensor(shape, device)
}

/// The Hessian `[P, P]` of `loss(model(x), y)` with respect to θ (`x` one input or
/// `&[x1, x2, …]`), by [`ModelHvp`] (the fused sweep for plain MLPs on the CPU).
pub fn loss_hessian<M: Module + ?Sized, I: ModelInputs + ?Sized>(
    model: &M,
    loss: Loss,
    x: &I,
    y: &Tensor,
) -> Result<Tensor> {
    loss_hessian_with(model, x, loss.against(y))
}

/// The Hessian `[P, P]` of `objective(model(inputs))` with respect to θ, for a built-in loss
/// against targets or any closure of the output.
pub fn loss_hessian_with<M: Module + ?Sized, I: ModelInputs + ?Sized>(
    model: &M,
    inputs: &I,
    objective: Objective<'_>,
) -> Result<Tensor> {
    hessian_of(
        &ModelHvp::with_objective(model, inputs, objective)?,
        &HessianOptions::default(),
    )
}

/// Each sample's loss Hessian `[n, P, P]`: entry i is the Hessian of the loss of the one-sample
/// batch `(x[i], y[i])` (row i of every input). For the mean losses (MSE, cross-entropy) the
/// batch Hessian of a model with independent rows is their mean; for the sum of squares, their
/// sum. The result's `n · P²` elements are counted and reserved before the first Hessian is
/// computed.
pub fn per_sample_hessian<M: Module + ?Sized, I: ModelInputs + ?Sized>(
    model: &M,
    loss: Loss,
    x: &I,
    y: &Tensor,
) -> Result<Tensor> {
    let n = samples("per_sample_hessian", x.tensors())?;
    if y.rank() == 0 || y.dims()[0] != n {
        return Err(invalid(
            "per_sample_hessian",
            format!("the inputs have {n} samples but y has shape {}", y.shape()),
        ));
    }
    per_sample(model, x.tensors(), n, |i| {
        let yi = y.narrow(0, i, 1)?;
        let op = ModelHvp::new(model, loss, &sample(x.tensors(), i)?, &yi)?;
        Ok(op)
    })
}

/// Each sample's Hessian `[n, P, P]` of `objective(i, model(row i of the inputs))`, for a
/// closure given the sample's index and the model's output on the one-sample batch.
pub fn per_sample_hessian_with<M: Module + ?Sized, I: ModelInputs + ?Sized>(
    model: &M,
    inputs: &I,
    objective: &dyn Fn(usize, &Var) -> curvature_nn::Result<Var>,
) -> Result<Tensor> {
    let inputs = inputs.tensors();
    let n = samples("per_sample_hessian", inputs)?;
    per_sample(model, inputs, n, |i| {
        let f = |out: &Var| objective(i, out);
        ModelHvp::with_objective(model, &sample(inputs, i)?, Objective::Closure(&f))
    })
}

/// The `[n, P, P]` Hessians of the operators `op_for(i)`, written into one reserved buffer.
fn per_sample<M: Module + ?Sized>(
    model: &M,
    inputs: &[Tensor],
    n: usize,
    op_for: impl Fn(usize) -> Result<ModelHvp>,
) -> Result<Tensor> {
    const OP: &str = "per_sample_hessian";
    const WHAT: &str = "the n × P × P Hessians";
    let (params, dtype, device) = check_model(OP, model, inputs)?;
    let sizes: Vec<usize> = params.iter().map(Tensor::elem_count).collect();
    let p = alloc::sum(OP, "the parameters", &sizes)?;
    let block = alloc::product(OP, WHAT, &[p, p])?;
    let len = alloc::product(OP, WHAT, &[n, p, p])?;
    let mut buf = HostBuffer::with_capacity(OP, WHAT, dtype, len)?;
    for i in 0..n {
        write_matrix(&op_for(i)?, &HessianOptions::default(), &mut buf, i * block)?;
    }
    buf.into_tensor([n, p, p], device)
}

/// Row `i` of every input, each a one-sample batch.
fn sample(inputs: &[Tensor], i: usize) -> Result<Vec<Tensor>> {
    Ok(inputs
        .iter()
        .map(|x| x.narrow(0, i, 1))
        .collect::<curvature_tensor::Result<Vec<_>>>()?)
}

/// The number of samples: the leading axis every input shares, which must be at least one.
fn samples(op: &'static str, inputs: &[Tensor]) -> Result<usize> {
    let n = inputs.first().and_then(|x| x.dims().first()).copied();
    match n {
        Some(n) if n > 0 && inputs.iter().all(|x| x.dims().first() == Some(&n)) => Ok(n),
        _ => Err(invalid(
            op,
            format!(
                "every input needs the same non-empty leading batch axis, got shapes {:?}",
                inputs.iter().map(|x| x.dims().to_vec()).collect::<Vec<_>>()
            ),
        )),
    }
}
