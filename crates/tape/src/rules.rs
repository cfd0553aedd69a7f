//! Backward rules. Every rule is written with differentiable tape ops, so the gradient graph
//! can itself be differentiated (grad of grad, to any order).
//!
//! Rules accept cotangents with extra leading batch axes `B` (shape `B ++ output shape`) and
//! return gradients of shape `B ++ input shape`: that is what makes a batch of K
//! Hessian-vector products one backward sweep.

use curvature_tensor::{Saves, Shape, Tensor};

use crate::op::Op;
use crate::{Result, TapeError, Var};

/// What a rule sees of its node during a backward pass.
pub(crate) struct RuleCtx {
    pub g: Var,
    pub inputs: Vec<Option<Var>>,
    pub input_shapes: Vec<Shape>,
    pub output: Option<Var>,
    pub out_shape: Shape,
    pub batch: Vec<usize>,
    /// Which inputs need a gradient (PyTorch's `needs_input_grad`): the others are skipped.
    pub needs: Vec<bool>,
}

impl RuleCtx {
    fn input(&self, i: usize, op: &Op) -> Result<&Var> {
        self.inputs[i]
            .as_ref()
            .ok_or(TapeError::BackwardTwice { op: op.name() })
    }

    fn output(&self, op: &Op) -> Result<&Var> {
        self.output
            .as_ref()
            .ok_or(TapeError::BackwardTwice { op: op.name() })
    }

    /// The value an elementwise rule reads in place of input `i`: the input when the op saves
    /// its inputs, the output when it saves that, else the cotangent (which the rule ignores).
    fn saved(&self, i: usize, saves: Saves, op: &Op) -> Result<&Var> {
        match saves {
            Saves::Inputs => self.input(i, op),
            Saves::Output => self.output(op),
            Saves::Nothing => Ok(&self.g),
        }
    }

    /// An unreduced elementwise gradient summed down to input `i`'s shape.
    fn reduced(&self, grad: Option<Var>, i: usize) -> Result<Option<Var>> {
        grad.map(|grad| self.reduce(&grad, i)).transpose()
    }

    /// Computes input `i`'s gradient only when some target depends on that input.
    fn grad_of(&self, i: usize, compute: impl FnOnce() -> Result<Var>) -> Result<Option<Var>> {
        if self.needs[i] {
            compute().map(Some)
        } else {
            Ok(None)
        }
    }

    fn rank(&self) -> usize {
        self.batch.len()
    }

    /// `B ++ dims`.
    fn batched(&self, dims: &[usize]) -> Vec<usize> {
        let mut out = self.batch.clone();
        out.extend_from_slice(dims);
        out
    }

    /// Sums a gradient of shape `B ++ S` (S a broadcast of input `i`'s shape) down to
    /// `B ++ input shape`, keeping the batch axes.
    fn reduce(&self, grad: &Var, i: usize) -> Result<Var> {
        let target = &self.input_shapes[i];
        let full = self.batched(target.dims());
        if grad.dims() == full.as_slice() {
            return Ok(grad.clone());
        }
        let extra = grad.rank() - self.rank() - target.rank();
        let mut aligned = self.batch.clone();
        aligned.extend(std::iter::repeat_n(1, extra));
        aligned.extend_from_slice(target.dims());
        grad.sum_to(aligned)?.reshape(full)
    }

    /// Broadcasts the cotangent of a reduction over `axes` back to `B ++ input shape`.
    fn expand_reduced(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        let input = self.input_shapes[0].dims();
        let g = if keepdim {
            self.g.clone()
        } else {
            let kept: Vec<usize> = (0..input.len())
                .map(|d| if axes.contains(&d) { 1 } else { input[d] })
                .collect();
            self.g.reshape(self.batched(&kept))?
        };
        g.broadcast_to(self.batched(input))
    }

    /// The cotangent's shape with the batch axes merged into its first axis, for a cotangent
    /// of rank `batch + rank`: `[Π B · d0, d1, …]`.
    fn flat_batch(&self, rank: usize) -> Vec<usize> {
        let dims = self.g.dims();
        let (lead, rest) = dims.split_at(dims.len().saturating_sub(rank - 1));
        let mut out = vec![lead.iter().product()];
        out.extend_from_slice(rest);
        out
    }

    fn constant(&self, value: Tensor) -> Var {
        self.g.constant(value)
    }
}

impl Op {
    /// Gradients with respect to each input (`None` where an input gets none).
    pub(crate) fn backward(&self, ctx: &RuleCtx) -> Result<Vec<Option<Var>>> {
        let g = &ctx.g;
        let r = ctx.rank();
        let one = |v: Var| Ok(vec![Some(v)]);
        match self {
            Op::Leaf => Ok(Vec::new()),
            Op::Unary(op) => {
                let saved = ctx.saved(0, op.saves(), self)?;
                one(op.backward(g, saved)?)
            }
            Op::Binary(op) => {
                let saved = [0, 1].map(|i| ctx.saved(i, op.saves(), self));
                let [a, b] = saved;
                let [ga, gb] = op.backward(g, [a?, b?], [ctx.needs[0], ctx.needs[1]])?;
                Ok(vec![ctx.reduced(ga, 0)?, ctx.reduced(gb, 1)?])
            }
            Op::Ternary(op) => {
                let [a, b, c] = [0, 1, 2].map(|i| ctx.saved(i, op.saves(), self));
                let needs = [ctx.needs[0], ctx.needs[1], ctx.needs[2]];
                let [ga, gb, gc] = op.backward(g, [a?, b?, c?], needs)?;
                Ok(vec![
                    ctx.reduced(ga, 0)?,
                    ctx.reduced(gb, 1)?,
                    ctx.reduced(gc, 2)?,
                ])
            }
            Op::MatMul { trans_a, trans_b } => {
                // C = op(A)·op(B); each gradient is one product with transpose flags.
                let (a, b) = (ctx.input(0, self)?, ctx.input(1, self)?);
                let (ta, tb) = (*trans_a, *trans_b);
                Ok(vec![
                    ctx.grad_of(0, || {
                        let ga = match (ta, tb) {
                            (false, false) => g.matmul_transposed(b, false, true)?,
                            (true, false) => b.matmul_transposed(g, false, true)?,
                            (false, true) => g.matmul_transposed(b, false, false)?,
                            (true, true) => b.matmul_transposed(g, true, true)?,
                        };
                        ctx.reduce(&ga, 0)
                    })?,
                    ctx.grad_of(1, || {
                        let gb = match (ta, tb) {
                            (false, false) => a.matmul_transposed(g, true, false)?,
                            (true, false) => a.matmul_transposed(g, false, false)?,
                            (false, true) => g.matmul_transposed(a, true, false)?,
                            (true, true) => g.matmul_transposed(a, true, true)?,
                        };
                        ctx.reduce(&gb, 1)
                    })?,
                ])
            }
            Op::Sum { axes, keepdim } => one(ctx.expand_reduced(axes, *keepdim)?),
            Op::SumTo => {
                let input = ctx.input_shapes[0].dims();
                let mut aligned = ctx.batch.clone();
                aligned.extend(std::iter::repeat_n(1, input.len() - ctx.out_shape.rank()));
                aligned.extend_from_slice(ctx.out_shape.dims());
                one(g.reshape(aligned)?.broadcast_to(ctx.batched(input))?)
            }
            Op::BroadcastTo => one(ctx.reduce(g, 0)?),
            Op::Reshape => one(g.reshape(ctx.batched(ctx.input_shapes[0].dims()))?),
            Op::Permute(perm) => {
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                let full: Vec<usize> = (0..r).chain(inverse.iter().map(|&p| p + r)).collect();
                one(g.permute(&full)?)
            }
            Op::Max { axis, keepdim } => {
                let x = ctx.input(0, self)?.value();
                let mut y = ctx.output(self)?.value().clone();
                if !keepdim {
                    y = y.unsqueeze(*axis)?;
                }
                let mask = x.eq_mask(&y)?;
                let share = mask.div(&mask.sum(&[*axis as isize], true)?)?;
                let spread = ctx.expand_reduced(&[*axis], *keepdim)?;
                one(spread.mul(&ctx.constant(share))?)
            }
            Op::LogSumExp { axis, keepdim } => {
                let x = ctx.input(0, self)?;
                let mut y = ctx.output(self)?.clone();
                if !keepdim {
                    y = y.unsqueeze(*axis)?;
                }
                let softmax = x.sub(&y)?.exp()?;
                one(ctx.expand_reduced(&[*axis], *keepdim)?.mul(&softmax)?)
            }
            Op::LogSoftmax { axis } => {
                let softmax = ctx.output(self)?.exp()?;
                let total = g.sum(&[(axis + r) as isize], true)?;
                one(g.sub(&softmax.mul(&total)?)?)
            }
            Op::Narrow { axis, start } => {
                let input_len = ctx.input_shapes[0].dims()[*axis];
                let len = ctx.out_shape.dims()[*axis];
                one(g.pad_zeros((axis + r) as isize, *start, input_len - start - len)?)
            }
            Op::Pad { axis, before } => {
                let len = ctx.input_shapes[0].dims()[*axis];
                one(g.narrow((axis + r) as isize, *before, len)?)
            }
            Op::Cat { axis } => {
                let mut offset = 0;
                let mut grads = Vec::with_capacity(ctx.input_shapes.len());
                for shape in &ctx.input_shapes {
                    let len = shape.dims()[*axis];
                    grads.push(Some(g.narrow((axis + r) as isize, offset, len)?));
                    offset += len;
                }
                Ok(grads)
            }
            Op::Unfold { window, size } => {
                // The batch axes join N, so one fold serves a whole batch of cotangents.
                let columns = g.reshape(ctx.flat_batch(3))?;
                one(columns
                    .fold2d(*size, window)?
                    .reshape(ctx.batched(ctx.input_shapes[0].dims()))?)
            }
            Op::Fold { window } => {
                let image = g.reshape(ctx.flat_batch(4))?;
                one(image
                    .unfold2d(window)?
                    .reshape(ctx.batched(ctx.input_shapes[0].dims()))?)
            }
            Op::Trace => {
                let dims = ctx.input_shapes[0].dims();
                let eye = Tensor::eye(dims[0], dims[1], g.dtype(), g.device())?;
                one(g.reshape(ctx.batched(&[1, 1]))?.mul(&ctx.constant(eye))?)
            }
            Op::IndexSelect { axis, indices } => {
                let len = ctx.input_shapes[0].dims()[*axis];
                one(g.index_add_shared(axis + r, indices.clone(), len)?)
            }
            Op::IndexAdd { axis, indices } => {
                one(g.index_select_shared(axis + r, indices.clone())?)
            }
        }
    }
}
