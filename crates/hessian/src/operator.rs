//! [`LinearOperator`], the interface every estimator works through, and [`PreparedHvp`], the
//! Hessian of a recorded function as such an operator.

use std::rc::Rc;

use curvature_tape::{grad, vjp, GradOptions, Tape, Var};
use curvature_tensor::plan::Plan;
use curvature_tensor::{DType, Device, Shape, Tensor};

use crate::error::{check_kind, invalid};
use crate::plans::PlanCache;
use crate::{HessianError, Result};

/// A symmetric linear map on vectors of length [`dim`](LinearOperator::dim), applied to a batch
/// of row vectors at once. The estimators (`hessian_of`, traces, Lanczos, SLQ) only need this,
/// so a distributed operator (each rank a shard of the data, then an all-reduce of `[K, dim]`)
/// plugs in unchanged.
pub trait LinearOperator {
    /// The length of the vectors the operator acts on.
    fn dim(&self) -> usize;
    /// The dtype of the vectors it accepts and returns.
    fn dtype(&self) -> DType;
    /// The device its vectors live on.
    fn device(&self) -> Device;
    /// `V · H` for a batch `V` of shape `[K, dim]` (each row one product), shape `[K, dim]`.
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor>;
}

/// A boxed operator is an operator, so one chosen at run time (`Box<dyn LinearOperator>`) can be
/// wrapped like any other.
impl<O: LinearOperator + ?Sized> LinearOperator for Box<O> {
    fn dim(&self) -> usize {
        (**self).dim()
    }

    fn dtype(&self) -> DType {
        (**self).dtype()
    }

    fn device(&self) -> Device {
        (**self).device()
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        (**self).apply_batch(v)
    }
}

/// Checks that `v` is a non-empty `[K, dim]` batch of `op`'s dtype on its device; returns K.
pub(crate) fn check_batch<O: LinearOperator + ?Sized>(
    name: &'static str,
    op: &O,
    v: &Tensor,
) -> Result<usize> {
    check_kind(name, v, op.dtype(), op.device())?;
    if v.rank() != 2 {
        return Err(invalid(
            name,
            format!(
                "expected a batch of shape [K, {}], got {}",
                op.dim(),
                v.shape()
            ),
        ));
    }
    if v.dims()[1] != op.dim() {
        return Err(HessianError::VectorLength {
            op: name,
            expected: op.dim(),
            got: v.dims()[1],
        });
    }
    if v.dims()[0] == 0 {
        return Err(HessianError::EmptyBatch { op: name });
    }
    Ok(v.dims()[0])
}

/// Applies `op` to the batch `v` (`[K, dim]`) after checking it, and checks the result's shape.
/// Every function of this crate reaches an operator through here.
pub fn apply<O: LinearOperator + ?Sized>(op: &O, v: &Tensor) -> Result<Tensor> {
    let k = check_batch("apply_batch", op, v)?;
    let out = op.apply_batch(v)?;
    if out.dims() != [k, op.dim()] {
        return Err(invalid(
            "apply_batch",
            format!(
                "the operator returned shape {} for a batch of shape {}",
                out.shape(),
                v.shape()
            ),
        ));
    }
    check_kind("apply_batch", &out, op.dtype(), op.device())?;
    Ok(out)
}

/// The Hessian of a scalar function of one or several tensors, recorded once: the function's
/// value and its differentiable gradient (flattened over all inputs, `dim = Σ sizes`) stay on a
/// tape, and every [`apply_batch`](LinearOperator::apply_batch) is one double-backward sweep
/// (a `vjp` of the gradient with a `[K, dim]` cotangent) that records nothing new.
pub struct PreparedHvp {
    tape: Tape,
    inputs: Vec<Var>,
    shapes: Vec<Shape>,
    value: Var,
    gradient: Var,
    dim: usize,
    dtype: DType,
    device: Device,
    plans: PlanCache,
}

impl PreparedHvp {
    /// Records `f(inputs)` and its gradient. Inputs must share one dtype and device; `f` must
    /// return a scalar (one element). Inputs `f` ignores get zero rows and columns.
    pub fn new<F, E>(f: F, inputs: &[Tensor]) -> Result<PreparedHvp>
    where
        F: FnOnce(&[Var]) -> std::result::Result<Var, E>,
        HessianError: From<E>,
    {
        let (dtype, device) = common_kind("PreparedHvp::new", inputs)?;
        let sizes: Vec<usize> = inputs.iter().map(Tensor::elem_count).collect();
        let dim = crate::alloc::sum("PreparedHvp::new", "the flattened inputs", &sizes)?;
        if dim == 0 {
            return Err(invalid("PreparedHvp::new", "the inputs have no elements"));
        }
        let tape = Tape::new();
        let leaves: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
        let value = f(&leaves)?;
        if value.value().elem_count() != 1 {
            return Err(HessianError::NonScalar {
                op: "PreparedHvp::new",
                shape: value.shape().clone(),
            });
        }
        check_kind("PreparedHvp::new", value.value(), dtype, device)?;
        let grads = grad(
            std::slice::from_ref(&value),
            &leaves,
            GradOptions {
                create_graph: true,
                retain_graph: Some(true),
                grad_outputs: None,
                allow_unused: true,
            },
        )?;
        let flat = grads
            .iter()
            .map(|g| g.reshape([g.value().elem_count()]))
            .collect::<curvature_tape::Result<Vec<_>>>()?;
        let gradient = match flat.as_slice() {
            [single] => single.clone(),
            many => Var::cat(&many.iter().collect::<Vec<_>>(), 0)?,
        };
        Ok(PreparedHvp {
            tape,
            shapes: inputs.iter().map(|t| t.shape().clone()).collect(),
            inputs: leaves,
            value,
            gradient,
            dim,
            dtype,
            device,
            plans: PlanCache::new(),
        })
    }

    /// This operator with compiled plans on or off. On (the default, unless the environment
    /// sets `CURVATURE_PLAN=0`), the first batch of each size K traces the double-backward
    /// sweep and compiles it into a [`Plan`], which every later batch of that size replays (the
    /// plans of the last few sizes are kept); off, every batch walks the tape op by op.
    pub fn with_plan(mut self, on: bool) -> PreparedHvp {
        self.plans.set_enabled(on);
        self
    }

    /// The batch sizes that hold a compiled plan, oldest first.
    pub fn plan_batch_sizes(&self) -> Vec<usize> {
        self.plans.batch_sizes()
    }

    /// The compiled plan that batches of `k` rows replay, if there is one.
    pub fn compiled_plan(&self, k: usize) -> Option<Rc<Plan>> {
        self.plans.plan(k)
    }

    /// One double-backward sweep op by op: `V·H` for the `[k, dim]` batch `v`.
    fn sweep(&self, v: &Tensor, k: usize) -> Result<Tensor> {
        let cotangent = self.tape.constant(v.clone());
        let parts = vjp(
            std::slice::from_ref(&self.gradient),
            &[cotangent],
            &self.inputs,
            false,
        )?;
        let rows = parts
            .iter()
            .map(|p| p.value().reshape([k, p.value().elem_count() / k]))
            .collect::<curvature_tensor::Result<Vec<_>>>()?;
        Ok(match rows.as_slice() {
            [single] => single.clone(),
            many => Tensor::cat(&many.iter().collect::<Vec<_>>(), 1)?,
        })
    }

    /// The function's value at the inputs.
    pub fn value(&self) -> &Tensor {
        self.value.value()
    }

    /// The gradient at the inputs, flattened and concatenated over the inputs (`[dim]`).
    pub fn gradient(&self) -> &Tensor {
        self.gradient.value()
    }

    /// The shapes of the inputs, in order.
    pub fn input_shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// How many nodes the tape holds: constant across `apply_batch` calls, which record nothing.
    pub fn recorded_nodes(&self) -> usize {
        self.tape.len()
    }

    /// One Hessian-vector product `H·v` for a `[dim]` vector.
    pub fn hvp(&self, v: &Tensor) -> Result<Tensor> {
        if v.rank() != 1 {
            return Err(invalid(
                "hvp",
                format!(
                    "expected a vector of shape [{}], got {}",
                    self.dim,
                    v.shape()
                ),
            ));
        }
        let row = v.reshape([1, v.elem_count()])?;
        Ok(self.hvp_batch(&row)?.reshape([self.dim])?)
    }

    /// K Hessian-vector products `V·H` for a `[K, dim]` batch, in one sweep.
    pub fn hvp_batch(&self, v: &Tensor) -> Result<Tensor> {
        apply(self, v)
    }
}

impl LinearOperator for PreparedHvp {
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
        let k = check_batch("hvp_batch", self, v)?;
        self.plans.apply(v, k, |v| self.sweep(v, k))
    }
}

/// The dtype and device shared by `inputs`, or an error naming the first that differs.
pub(crate) fn common_kind(op: &'static str, inputs: &[Tensor]) -> Result<(DType, Device)> {
    let first = inputs
        .first()
        .ok_or_else(|| invalid(op, "needs at least one input tensor"))?;
    for t in inputs {
        check_kind(op, t, first.dtype(), first.device())?;
    }
    Ok((first.dtype(), first.device()))
}

/// [`apply`] in chunks of at most `rows` rows (the default [`HessianOptions`] chunking), the
/// results concatenated on the device.
///
/// [`HessianOptions`]: crate::HessianOptions
pub(crate) fn apply_chunked<O: LinearOperator + ?Sized>(op: &O, v: &Tensor) -> Result<Tensor> {
    let k = check_batch("apply_batch", op, v)?;
    let rows = crate::HessianOptions::default().chunk_rows(op.dim(), op.dtype());
    if k <= rows {
        return apply(op, v);
    }
    let parts = (0..k)
        .step_by(rows)
        .map(|start| apply(op, &v.narrow(0, start, rows.min(k - start))?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?)
}
