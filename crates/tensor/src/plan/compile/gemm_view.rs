//! Matrix products read their operands in place: a product whose operand is a strided copy
//! (a slice of the `[K, P]` directions, a transposed block) reads the copy's source through a
//! [`MatrixLayout`] instead, and the copy disappears when nothing else reads it.

use crate::gemm::{GemmCall, MatrixLayout};
use crate::plan::{Prim, Source, StridedCopy, Trace};
use crate::Device;

/// Rewrites every `Matmul` step of `trace` whose operand comes from a `CopyStrided` step that a
/// layout can express into a `Gemm` step reading the copy's source. On a GPU that saves the
/// copy's launch; on the CPU the copy is one cheap pass and the contiguous operand is the
/// faster one to multiply, so CPU traces are left as they are.
pub(crate) fn read_copies_in_place(mut trace: Trace) -> Trace {
    if trace.device == Device::Cpu {
        return trace;
    }
    for index in 0..trace.steps.len() {
        let Prim::Matmul(spec) = trace.steps[index].prim else {
            continue;
        };
        let mut call = GemmCall::from_spec(&spec);
        let ((a_rows, a_cols), (b_rows, b_cols)) = call.stored_dims();
        let mut args = trace.steps[index].args.clone();
        let mut changed = false;
        for (operand, rows, cols, layout) in [
            (0, a_rows, a_cols, &mut call.a),
            (1, b_rows, b_cols, &mut call.b),
        ] {
            let Some((source, copy)) = copy_of(&trace, args[operand]) else {
                continue;
            };
            if trace.values[source].dtype.is_half() {
                continue;
            }
            let dense = rows.checked_mul(cols);
            if layout.batch_stride != 0 && Some(layout.batch_stride) != dense {
                continue;
            }
            let matrices = if layout.batch_stride == 0 {
                1
            } else {
                spec.batch
            };
            if let Some(found) = layout_of(copy, matrices, rows, cols) {
                *layout = MatrixLayout {
                    batch_stride: if layout.batch_stride == 0 {
                        0
                    } else {
                        found.batch_stride
                    },
                    ..found
                };
                args[operand] = source;
                changed = true;
            }
        }
        let lens = [
            trace.values[args[0]].len,
            trace.values[args[1]].len,
            trace.values[trace.steps[index].out].len,
        ];
        if changed && call.check(lens, None).is_ok() {
            trace.steps[index].prim = Prim::Gemm(call);
            trace.steps[index].args = args;
        }
    }
    trace
}

/// The source and the copy of a value made by a `CopyStrided` step.
fn copy_of(trace: &Trace, value: usize) -> Option<(usize, &StridedCopy)> {
    let Source::Step(step) = trace.values.get(value)?.source else {
        return None;
    };
    let step = trace.steps.get(step)?;
    match &step.prim {
        Prim::CopyStrided(copy) => Some((*step.args.first()?, copy)),
        _ => None,
    }
}

/// The layout of `matrices` dense `rows × cols` matrices, one after another, in the copy's
/// output, as positions in its source: `None` unless the copy reads them with unit column
/// stride and one row and one batch stride each.
fn layout_of(
    copy: &StridedCopy,
    matrices: usize,
    rows: usize,
    cols: usize,
) -> Option<MatrixLayout> {
    let wanted = [matrices, rows, cols];
    if wanted.iter().product::<usize>() != copy.out.elem_count() {
        return None;
    }
    let strides = view_strides(copy.out.dims(), &copy.strides, &wanted)?;
    if cols > 1 && strides[2] != 1 {
        return None;
    }
    Some(MatrixLayout {
        offset: copy.offset,
        ld: if rows > 1 { strides[1] } else { cols },
        batch_stride: if matrices > 1 { strides[0] } else { 0 },
    })
}

/// The strides of `new` dims viewing the same elements as `old` dims with `old_strides` (row-
/// major order), or `None` when no strides can (the rule `torch.Tensor.view` follows: each new
/// dimension lies within one run of old dimensions that are contiguous with each other).
fn view_strides(old: &[usize], old_strides: &[usize], new: &[usize]) -> Option<Vec<usize>> {
    let mut strides = vec![0usize; new.len()];
    if old.is_empty() {
        return new.iter().all(|&d| d == 1).then_some(strides);
    }
    let mut view_d = new.len();
    let mut chunk_base = *old_strides.last()?;
    let mut tensor_numel = 1usize;
    let mut view_numel = 1usize;
    for d in (0..old.len()).rev() {
        tensor_numel = tensor_numel.checked_mul(old[d])?;
        let chunk_ends = d == 0
            || (old[d - 1] != 1 && old_strides[d - 1] != tensor_numel.checked_mul(chunk_base)?);
        if chunk_ends {
            while view_d > 0 && (view_numel < tensor_numel || new[view_d - 1] == 1) {
                strides[view_d - 1] = view_numel.checked_mul(chunk_base)?;
                view_numel = view_numel.checked_mul(new[view_d - 1])?;
                view_d -= 1;
            }
            if view_numel != tensor_numel {
                return None;
            }
            if d > 0 {
                chunk_base = old_strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    (view_d == 0).then_some(strides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    #[test]
    fn a_column_block_of_a_row_major_matrix_is_a_layout() {
        // Columns 20..120 of an [8, 141] matrix, read as 8 matrices of 10 × 10.
        let copy = StridedCopy {
            out: Shape::new([8, 100]),
            strides: vec![141, 1],
            offset: 20,
        };
        let layout = layout_of(&copy, 8, 10, 10).expect("a layout");
        assert_eq!(
            layout,
            MatrixLayout {
                offset: 20,
                ld: 10,
                batch_stride: 141
            }
        );
    }

    #[test]
    fn a_transposing_copy_is_not_a_layout() {
        let copy = StridedCopy {
            out: Shape::new([4, 3]),
            strides: vec![1, 4],
            offset: 0,
        };
        assert_eq!(layout_of(&copy, 1, 4, 3), None);
    }

    #[test]
    fn view_strides_split_and_merge_like_torch_view() {
        assert_eq!(
            view_strides(&[8, 100], &[141, 1], &[8, 10, 10]),
            Some(vec![141, 10, 1])
        );
        assert_eq!(view_strides(&[2, 3], &[3, 1], &[6]), Some(vec![1]));
        assert_eq!(view_strides(&[2, 3], &[4, 1], &[6]), None);
        assert_eq!(view_strides(&[2, 3], &[1, 2], &[3, 2]), None);
    }
}
