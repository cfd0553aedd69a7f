//! Products with their epilogues: on a GPU, a product whose only reader scales it, adds to it
//! a row or column bias or another product (or any value that dies there), and applies tanh or
//! sigmoid becomes one `Prim::Gemm` whose epilogue does all of that before the store
//! (`f(α·A·B + β·C + bias)`), so the elementwise steps and their launch disappear.
//!
//! The epilogue computes in the product's dtype, as the fused step it replaces does; the
//! results differ from the unfolded plan only by the order of the roundings (`α·acc + C` in
//! one expression instead of each op rounding its own result).

use crate::backend::{BinaryOp, UnaryOp};
use crate::epilogue::{Activation, Bias, Epilogue};
use crate::gemm::{GemmCall, MatrixLayout};
use crate::plan::{Prim, Source, Trace, TraceStep, ValueId};
use crate::Device;

/// How far a product's epilogue has been filled, in the order the epilogue applies its parts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The plain product.
    Product,
    /// Scaled by α.
    Scaled,
    /// C or a bias (or both) added.
    Added,
    /// Activated: nothing can follow.
    Activated,
}

/// A product with the steps folded into it so far.
struct Folding {
    call: GemmCall,
    a: ValueId,
    b: ValueId,
    c: Option<ValueId>,
    bias: Option<ValueId>,
    stage: Stage,
}

/// Folds into each product of a GPU trace the chain of elementwise steps after it that an
/// epilogue expresses (see the module doc). Each folded step becomes the product, now at the
/// position of the chain's last step (where every operand it reads exists); the steps it
/// absorbed are removed and the values only they produced are left unread, for the caller to
/// drop. CPU traces are returned as they are: the host GEMM applies an epilogue in an extra pass
/// over a scratch product, which the fused step already is.
pub(crate) fn fold_epilogues(mut trace: Trace) -> Trace {
    if trace.device == Device::Cpu {
        return trace;
    }
    let tensor_cores = trace
        .device
        .matmul_precision()
        .map_or(true, |p| p.uses_tensor_cores());
    let (readers, is_output) = readers(&trace);
    let mut removed = vec![false; trace.steps.len()];
    for p in 0..trace.steps.len() {
        if removed[p] {
            continue;
        }
        let Some(mut folding) = product(&trace, &trace.steps[p], tensor_cores) else {
            continue;
        };
        let mut chain = vec![p];
        let mut value = trace.steps[p].out;
        while let [r] = readers[value][..] {
            if is_output[value] || removed[r] {
                break;
            }
            let only_reader = |v: ValueId| readers[v][..] == [r] && !is_output[v];
            if !extend(&trace, &trace.steps[r], value, &mut folding, only_reader) {
                break;
            }
            chain.push(r);
            value = trace.steps[r].out;
        }
        let Some((&last, absorbed)) = chain.split_last() else {
            continue;
        };
        if absorbed.is_empty() {
            continue;
        }
        let mut args = vec![folding.a, folding.b];
        args.extend(folding.c);
        args.extend(folding.bias);
        trace.steps[last] = TraceStep {
            prim: Prim::Gemm(folding.call),
            args,
            out: trace.steps[last].out,
        };
        for &s in absorbed {
            removed[s] = true;
        }
    }
    let mut index = 0;
    trace.steps.retain(|_| {
        index += 1;
        !removed[index - 1]
    });
    for (i, step) in trace.steps.iter().enumerate() {
        trace.values[step.out].source = Source::Step(i);
    }
    trace
}

/// The steps reading each value (each step once), and which values the trace returns.
fn readers(trace: &Trace) -> (Vec<Vec<usize>>, Vec<bool>) {
    let mut readers = vec![Vec::new(); trace.values.len()];
    for (i, step) in trace.steps.iter().enumerate() {
        for &a in &step.args {
            if readers[a].last() != Some(&i) {
                readers[a].push(i);
            }
        }
    }
    let mut is_output = vec![false; trace.values.len()];
    for &(id, _) in &trace.outputs {
        is_output[id] = true;
    }
    (readers, is_output)
}

/// A product with the plain epilogue writing a dense output, as the start of a folding. Half
/// dtypes keep their steps (their products widen to f32 through other kernels), and so do f32
/// `Matmul`s while the device multiplies f32 on tensor cores (a `Gemm` runs the IEEE kernel).
fn product(trace: &Trace, step: &TraceStep, tensor_cores: bool) -> Option<Folding> {
    let dtype = trace.values.get(step.out)?.dtype;
    if dtype.is_half() {
        return None;
    }
    let call = match &step.prim {
        Prim::Matmul(spec) if !(tensor_cores && dtype == crate::DType::F32) => {
            GemmCall::from_spec(spec)
        }
        Prim::Gemm(call) if call.epilogue == Epilogue::default() => *call,
        _ => return None,
    };
    if call.c != MatrixLayout::dense(call.m, call.n) {
        return None;
    }
    let [a, b] = step.args[..] else {
        return None;
    };
    Some(Folding {
        call,
        a,
        b,
        c: None,
        bias: None,
        stage: Stage::Product,
    })
}

/// Folds `step`, which reads the folding's current `value`, into it when the epilogue can
/// express it after what it already holds; `only_reader(v)` says whether `step` is the last
/// reader of `v` (so `v` can serve as C, overwritten in place).
fn extend(
    trace: &Trace,
    step: &TraceStep,
    value: ValueId,
    folding: &mut Folding,
    only_reader: impl Fn(ValueId) -> bool,
) -> bool {
    let epilogue = &mut folding.call.epilogue;
    match (&step.prim, &step.args[..]) {
        (Prim::Unary(UnaryOp::Affine { mul, add }), _)
            if *add == 0.0 && folding.stage == Stage::Product =>
        {
            epilogue.alpha *= *mul;
            folding.stage = Stage::Scaled;
            true
        }
        (Prim::Unary(op @ (UnaryOp::Tanh | UnaryOp::Sigmoid)), _)
            if folding.stage < Stage::Activated =>
        {
            epilogue.activation = if *op == UnaryOp::Tanh {
                Activation::Tanh
            } else {
                Activation::Sigmoid
            };
            folding.stage = Stage::Activated;
            true
        }
        (Prim::Binary(BinaryOp::Add, layout), &[x, y])
            if folding.stage < Stage::Activated && x != y =>
        {
            let call = &folding.call;
            let dims: Vec<usize> = layout.out.dims().to_vec();
            let total = call
                .batch
                .checked_mul(call.m)
                .and_then(|v| v.checked_mul(call.n));
            if total != Some(layout.out.elem_count()) || layout.strides.len() != 2 {
                return false;
            }
            let (mine, other) = if x == value { (0, 1) } else { (1, 0) };
            if !reads_densely(&dims, &layout.strides[mine]) {
                return false;
            }
            let other_value = step.args[other];
            let other_strides = &layout.strides[other];
            let Some(other_info) = trace.values.get(other_value) else {
                return false;
            };
            // C and the bias only when they are in memory anyway (an input, a constant or
            // another product's result): any other value could be fused into its readers, and
            // storing it for the product would cost a launch of its own.
            let materialised = materialised(trace, &other_info.source);
            if folding.c.is_none()
                && materialised
                && other_info.len == layout.out.elem_count()
                && reads_densely(&dims, other_strides)
                && only_reader(other_value)
            {
                folding.call.epilogue.beta = 1.0;
                folding.c = Some(other_value);
                folding.stage = Stage::Added;
                return true;
            }
            if folding.bias.is_some() || !materialised {
                return false;
            }
            let bias = if other_info.len == call.n && reads_rows(&dims, other_strides, call.n) {
                Bias::Row
            } else if other_info.len == call.m
                && reads_columns(&dims, other_strides, call.m, call.n)
            {
                Bias::Column
            } else {
                return false;
            };
            folding.call.epilogue.bias = bias;
            folding.bias = Some(other_value);
            folding.stage = Stage::Added;
            true
        }
        _ => false,
    }
}

/// Whether a value from `source` exists in memory whatever the fusion does: an input, a
/// constant or a product's result.
fn materialised(trace: &Trace, source: &Source) -> bool {
    match source {
        Source::Step(i) => trace
            .steps
            .get(*i)
            .is_some_and(|s| matches!(s.prim, Prim::Matmul(_) | Prim::Gemm(_))),
        _ => true,
    }
}

/// Row-major strides of `dims`.
fn dense_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; dims.len()];
    let mut acc = 1usize;
    for d in (0..dims.len()).rev() {
        strides[d] = acc;
        acc = acc.saturating_mul(dims[d]);
    }
    strides
}

/// Whether `strides` read a value of `dims`' element count in row-major order (dimensions of
/// size 1 read nothing, whatever their stride).
fn reads_densely(dims: &[usize], strides: &[usize]) -> bool {
    strides.len() == dims.len()
        && dense_strides(dims)
            .iter()
            .zip(strides)
            .zip(dims)
            .all(|((want, got), &d)| d == 1 || want == got)
}

/// Whether `strides` are 0 on every dimension larger than 1 of `dims`.
fn reads_nothing(dims: &[usize], strides: &[usize]) -> bool {
    strides.iter().zip(dims).all(|(&s, &d)| d == 1 || s == 0)
}

/// The first index `s` where the dimensions `dims[s..]` hold exactly `count` elements.
fn split(dims: &[usize], count: usize) -> Option<usize> {
    let mut acc = 1usize;
    for s in (0..=dims.len()).rev() {
        if acc == count {
            return Some(s);
        }
        if s > 0 {
            acc = acc.checked_mul(dims[s - 1])?;
            if acc > count && count > 0 {
                return None;
            }
        }
    }
    None
}

/// Whether an operand read with `strides` over `dims` (viewed as `[…, n]` with the last `n`
/// elements a row) is a vector of `n` elements repeated for every row.
fn reads_rows(dims: &[usize], strides: &[usize], n: usize) -> bool {
    if strides.len() != dims.len() {
        return false;
    }
    let Some(s) = split(dims, n) else {
        return false;
    };
    reads_nothing(&dims[..s], &strides[..s]) && reads_densely(&dims[s..], &strides[s..])
}

/// Whether an operand read with `strides` over `dims` (viewed as `[batch, m, n]`) is a vector
/// of `m` elements, element `i` read on all of row `i` of every matrix.
fn reads_columns(dims: &[usize], strides: &[usize], m: usize, n: usize) -> bool {
    if strides.len() != dims.len() {
        return false;
    }
    let (Some(inner), Some(outer)) = (
        split(dims, n),
        m.checked_mul(n).and_then(|mn| split(dims, mn)),
    ) else {
        return false;
    };
    outer <= inner
        && reads_nothing(&dims[..outer], &strides[..outer])
        && reads_densely(&dims[outer..inner], &strides[outer..inner])
        && reads_nothing(&dims[inner..], &strides[inner..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_vector_over_batched_matrices_is_a_row_bias() {
        // [3, 4, 10]: three 4 × 10 matrices, the bias read as [10] on every row.
        assert!(reads_rows(&[3, 4, 10], &[0, 0, 1], 10));
        // The same elements over [12, 10] and [2, 6, 2, 5].
        assert!(reads_rows(&[12, 10], &[0, 1], 10));
        assert!(reads_rows(&[2, 6, 2, 5], &[0, 0, 5, 1], 10));
        // A bias per matrix (the directions' own slice) is no row bias.
        assert!(!reads_rows(&[3, 4, 10], &[10, 0, 1], 10));
        // A row length that splits a dimension.
        assert!(!reads_rows(&[3, 40], &[0, 1], 10));
    }

    #[test]
    fn a_column_vector_over_batched_matrices_is_a_column_bias() {
        assert!(reads_columns(&[3, 4, 10], &[0, 1, 0], 4, 10));
        assert!(reads_columns(&[4, 10], &[1, 0], 4, 10));
        assert!(reads_columns(&[3, 4, 1], &[0, 1, 0], 4, 1));
        assert!(!reads_columns(&[3, 4, 10], &[4, 1, 0], 4, 10));
        assert!(!reads_columns(&[3, 4, 10], &[0, 0, 1], 4, 10));
    }

    #[test]
    fn dense_reads_ignore_dimensions_of_one() {
        assert!(reads_densely(&[3, 1, 10], &[10, 0, 1]));
        assert!(!reads_densely(&[3, 4, 10], &[40, 0, 1]));
        assert_eq!(split(&[3, 4, 10], 40), Some(1));
        assert_eq!(split(&[3, 4, 10], 1), Some(3));
        assert_eq!(split(&[3, 4, 10], 20), None);
    }
}
