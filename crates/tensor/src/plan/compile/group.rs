//! Grouping: traced elementwise steps joined into chains that share one iteration shape, each
//! operand read through a view composed with the layout steps before it, and the `sum` that
//! consumes a chain's last value joined as its reduction.

use std::collections::BTreeMap;

use crate::plan::compile::view;
use crate::plan::fused::MAX_RANK;
use crate::plan::{BroadcastLayout, OperandView, Prim, Reduction, Source, Trace, ValueId};
use crate::{DType, ReduceOp};

/// One member of a group: a traced step evaluated per element of the group's iteration shape.
pub(super) struct Member {
    /// Index of the step in the trace.
    pub step: usize,
    /// The operands as views over the iteration shape (the reduced value for a reduction).
    pub views: Vec<OperandView>,
    /// Set for the `sum` that ends a group.
    pub reduction: Option<Reduction>,
}

/// Traced steps to be evaluated in one pass over `dims`.
pub(super) struct Group {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub members: Vec<Member>,
    open: bool,
}

/// The groups of `trace`, in the order of their first members.
pub(super) fn group(trace: &Trace) -> Vec<Group> {
    let uses = use_counts(trace);
    let mut groups: Vec<Group> = Vec::new();
    // The group computing each value over its iteration shape (never a reduction's sums).
    let mut group_of: BTreeMap<ValueId, usize> = BTreeMap::new();
    for (index, step) in trace.steps.iter().enumerate() {
        let Some(dtype) = trace.values.get(step.out).map(|v| v.dtype) else {
            continue;
        };
        // 16-bit steps round every result on store, so they run as traced.
        if dtype.is_half() {
            close_readers(&mut groups, &group_of, &step.args);
            continue;
        }
        match &step.prim {
            Prim::Unary(_) | Prim::Binary(..) | Prim::Ternary(..) => {
                let Some((dims, views)) = member_views(trace, index, &groups, &group_of) else {
                    close_readers(&mut groups, &group_of, &step.args);
                    continue;
                };
                let read: Vec<ValueId> = views.iter().map(|v| v.value).collect();
                let joinable = |g: usize, groups: &[Group]| {
                    let candidate = &groups[g];
                    candidate.open
                        && candidate.dims == dims
                        && candidate.dtype == dtype
                        && views
                            .iter()
                            .filter(|v| group_of.get(&v.value) == Some(&g))
                            .all(|v| view::is_contiguous(v, &dims))
                };
                let mut candidates: Vec<usize> = read
                    .iter()
                    .filter_map(|v| group_of.get(v).copied())
                    .filter(|&g| joinable(g, &groups))
                    .collect();
                candidates.sort_unstable();
                candidates.dedup();
                let target = candidates.first().copied();
                // Open groups this step reads from all join it: none has a reader outside yet.
                for &other in candidates.iter().skip(1) {
                    let moved = std::mem::take(&mut groups[other].members);
                    groups[other].open = false;
                    for m in &moved {
                        if let Some(out) = trace.steps.get(m.step).map(|s| s.out) {
                            group_of.insert(out, candidates[0]);
                        }
                    }
                    let into = &mut groups[candidates[0]].members;
                    into.extend(moved);
                    into.sort_by_key(|m| m.step);
                }
                for v in &read {
                    if let Some(&g) = group_of.get(v) {
                        if Some(g) != target {
                            groups[g].open = false;
                        }
                    }
                }
                let member = Member {
                    step: index,
                    views,
                    reduction: None,
                };
                let g = match target {
                    Some(g) => {
                        groups[g].members.push(member);
                        g
                    }
                    None => {
                        groups.push(Group {
                            dims,
                            dtype,
                            members: vec![member],
                            open: true,
                        });
                        groups.len() - 1
                    }
                };
                group_of.insert(step.out, g);
            }
            Prim::Reduce {
                op: ReduceOp::Sum,
                outer,
                reduced,
                inner,
            } => {
                let x = step.args.first().copied();
                let target = x.and_then(|x| {
                    let g = *group_of.get(&x)?;
                    let candidate = &groups[g];
                    let total = outer.checked_mul(*reduced)?.checked_mul(*inner)?;
                    let fits = candidate.open
                        && uses.get(x) == Some(&1)
                        && total == candidate.dims.iter().product::<usize>();
                    fits.then_some((g, x))
                });
                match target {
                    Some((g, x)) => {
                        let dims = groups[g].dims.clone();
                        groups[g].members.push(Member {
                            step: index,
                            views: vec![view::contiguous(x, &dims)],
                            reduction: Some(Reduction {
                                outer: *outer,
                                reduced: *reduced,
                                inner: *inner,
                            }),
                        });
                        // The sums have the reduced shape, not the group's: readers find
                        // their dims from the trace, and the closed group takes no more.
                        groups[g].open = false;
                    }
                    None => close_readers(&mut groups, &group_of, &step.args),
                }
            }
            _ => close_readers(&mut groups, &group_of, &step.args),
        }
    }
    groups
}

/// How often each value is read by a traced step or returned.
pub(super) fn use_counts(trace: &Trace) -> Vec<usize> {
    let mut uses = vec![0usize; trace.values.len()];
    let args = trace.steps.iter().flat_map(|s| s.args.iter());
    for &v in args.chain(trace.outputs.iter().map(|(v, _)| v)) {
        if let Some(u) = uses.get_mut(v) {
            *u += 1;
        }
    }
    uses
}

/// Closes the groups that produce any of `args` (read from outside them).
fn close_readers(groups: &mut [Group], group_of: &BTreeMap<ValueId, usize>, args: &[ValueId]) {
    for v in args {
        if let Some(&g) = group_of.get(v) {
            groups[g].open = false;
        }
    }
}

/// The iteration dims of the elementwise step `index` and its operands' views, composed through
/// the layout steps that produced them; `None` when the step cannot be fused.
fn member_views(
    trace: &Trace,
    index: usize,
    groups: &[Group],
    group_of: &BTreeMap<ValueId, usize>,
) -> Option<(Vec<usize>, Vec<OperandView>)> {
    let step = &trace.steps[index];
    let layout: &BroadcastLayout = match &step.prim {
        Prim::Unary(_) => {
            let x = *step.args.first()?;
            let dims = match group_of.get(&x) {
                Some(&g) => groups[g].dims.clone(),
                None => natural_dims(trace, x),
            };
            if dims.len() > MAX_RANK * 2 {
                return None;
            }
            let views = vec![fold_layout(trace, view::contiguous(x, &dims), &dims)];
            return Some((dims, views));
        }
        Prim::Binary(_, layout) | Prim::Ternary(_, layout) => layout,
        _ => return None,
    };
    let dims = layout.out.dims().to_vec();
    if dims.len() > MAX_RANK * 2 || layout.strides.len() != step.args.len() {
        return None;
    }
    let views = step
        .args
        .iter()
        .zip(&layout.strides)
        .map(|(&value, strides)| {
            let strides = strides
                .iter()
                .map(|&s| i64::try_from(s).ok())
                .collect::<Option<Vec<_>>>()?;
            let direct = OperandView {
                value,
                offset: 0,
                strides,
                bounds: None,
            };
            Some(fold_layout(trace, direct, &dims))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((dims, views))
}

/// The dims a value was made with: its producer's output shape (through unary steps; a
/// reduction's input dims with the reduced ones as one unit dimension), or the shape of the
/// input or constant it is; flat when unknown.
fn natural_dims(trace: &Trace, value: ValueId) -> Vec<usize> {
    let len = trace.values.get(value).map_or(0, |v| v.len);
    match made_with_dims(trace, value) {
        Some(d) if d.iter().product::<usize>() == len => d,
        _ => vec![len],
    }
}

/// [`natural_dims`] where the trace tells them; the walk through unary steps and reductions is
/// bounded by the trace's length (each step reads values made before it).
fn made_with_dims(trace: &Trace, mut value: ValueId) -> Option<Vec<usize>> {
    // Reductions met on the way, innermost last: applied to the dims found below them.
    let mut reductions: Vec<(usize, usize, usize)> = Vec::new();
    let mut dims = loop {
        break match trace.values.get(value).map(|v| &v.source)? {
            Source::Input(i) => trace.inputs.get(*i).map(|(_, s)| s.dims().to_vec())?,
            Source::Constant(t) => t.dims().to_vec(),
            Source::Step(i) => match trace.steps.get(*i).map(|s| (&s.prim, s.args.first()))? {
                (Prim::Unary(_), Some(&x)) if x < value => {
                    value = x;
                    continue;
                }
                (
                    Prim::Reduce {
                        outer,
                        reduced,
                        inner,
                        ..
                    },
                    Some(&x),
                ) if x < value => {
                    reductions.push((*outer, *reduced, *inner));
                    value = x;
                    continue;
                }
                (Prim::Binary(_, layout) | Prim::Ternary(_, layout), _) => {
                    layout.out.dims().to_vec()
                }
                (Prim::CopyStrided(copy), _) => copy.out.dims().to_vec(),
                _ => return None,
            },
        };
    };
    while let Some((outer, reduced, inner)) = reductions.pop() {
        dims = reduced_dims(&dims, outer, reduced, inner)?;
    }
    Some(dims)
}

/// `dims` summed as `[outer, reduced, inner]`, the reduced dimensions kept as one of length 1;
/// `None` when no run of dimensions is the reduced axis.
fn reduced_dims(dims: &[usize], outer: usize, reduced: usize, inner: usize) -> Option<Vec<usize>> {
    let mut before = 1usize;
    for a in 0..=dims.len() {
        if before == outer {
            let mut span = 1usize;
            for b in a..=dims.len() {
                let after: usize = dims[b..]
                    .iter()
                    .try_fold(1usize, |p, &n| p.checked_mul(n))?;
                if span == reduced && after == inner {
                    let mut out = dims[..a].to_vec();
                    out.push(1);
                    out.extend_from_slice(&dims[b..]);
                    return Some(out);
                }
                match dims.get(b) {
                    Some(&n) => span = span.checked_mul(n)?,
                    None => break,
                }
            }
        }
        before = before.checked_mul(*dims.get(a)?)?;
    }
    None
}

/// `view` composed through the strided copies and zero paddings that produced its value, as far
/// as each composition is exact.
fn fold_layout(trace: &Trace, mut view: OperandView, dims: &[usize]) -> OperandView {
    let dtype = trace.values.get(view.value).map(|v| v.dtype);
    loop {
        let Some(step) = producer(trace, view.value) else {
            return view;
        };
        let next = match &step.prim {
            Prim::CopyStrided(copy) => step.args.first().and_then(|&src| {
                view::through_strided(
                    &view,
                    dims,
                    copy.out.dims(),
                    &copy.strides,
                    copy.offset,
                    src,
                )
            }),
            Prim::Cat { outer, widths } if widths.len() == step.args.len() => {
                let nonzero: Vec<usize> = (0..step.args.len())
                    .filter(|&i| !is_zeros(trace, step.args[i]))
                    .collect();
                match nonzero.as_slice() {
                    [part] => {
                        view::through_cat(&view, dims, *outer, widths, *part, step.args[*part])
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match next {
            Some(next) if trace.values.get(next.value).map(|v| v.dtype) == dtype => view = next,
            _ => return view,
        }
    }
}

/// The traced step that computed `value`, if any.
fn producer(trace: &Trace, value: ValueId) -> Option<&crate::plan::TraceStep> {
    match trace.values.get(value)?.source {
        Source::Step(i) => trace.steps.get(i),
        _ => None,
    }
}

/// True for a value filled with +0: made by a traced `full`, or a constant (one folded from
/// such a `full`) whose every element is +0.
fn is_zeros(trace: &Trace, value: ValueId) -> bool {
    match trace.values.get(value).map(|v| &v.source) {
        Some(Source::Constant(t)) => t
            .to_f64s()
            .is_ok_and(|v| v.iter().all(|x| x.to_bits() == 0)),
        _ => matches!(
            producer(trace, value).map(|s| &s.prim),
            Some(Prim::Full { value: v, .. }) if v.to_bits() == 0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::reduced_dims;

    #[test]
    fn reduced_axes_become_one_unit_dimension() {
        assert_eq!(reduced_dims(&[3, 5, 4], 15, 4, 1), Some(vec![3, 5, 1]));
        assert_eq!(reduced_dims(&[3, 5, 4], 1, 3, 20), Some(vec![1, 5, 4]));
        assert_eq!(reduced_dims(&[3, 5, 4], 3, 5, 4), Some(vec![3, 1, 4]));
        assert_eq!(reduced_dims(&[3, 5, 4], 1, 15, 4), Some(vec![1, 4]));
        assert_eq!(reduced_dims(&[3, 5, 4], 1, 60, 1), Some(vec![1]));
        // No run of dimensions spans 2 of the 5: the sum's dims are not stated by these.
        assert_eq!(reduced_dims(&[3, 5, 4], 6, 2, 5), None);
        assert_eq!(reduced_dims(&[3, 5, 4], 3, 5, 5), None);
    }
}
