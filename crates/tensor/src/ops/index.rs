//! Indexing by lists of positions: `index_add` (the adjoint of `index_select`) and `gather`
//! (`torch.gather`), with [`Indices`], the index tensor `gather` takes.

use crate::plan::Prim;
use crate::{IntoShape, Result, Shape, Tensor, TensorError};

/// A tensor of indices for [`Tensor::gather`]: row-major `values` of shape `shape`.
///
/// ```
/// use curvature_tensor::Indices;
///
/// # fn main() -> curvature_tensor::Result<()> {
/// let index = Indices::new(vec![2, 0, 1, 1], [2, 2])?;
/// assert_eq!(index.shape().dims(), &[2, 2]);
/// assert_eq!(index.values(), &[2, 0, 1, 1]);
/// assert!(Indices::new(vec![0, 1, 2], [2, 2]).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indices {
    values: Vec<usize>,
    shape: Shape,
}

impl Indices {
    /// Indices `values` (row-major) of shape `shape`; errors unless they fill the shape.
    pub fn new(values: Vec<usize>, shape: impl IntoShape) -> Result<Indices> {
        let shape = shape.into_shape("indices")?;
        if values.len() != shape.elem_count() {
            return Err(TensorError::DataLength {
                op: "indices",
                len: values.len(),
                shape: shape.clone(),
                expected: shape.elem_count(),
            });
        }
        Ok(Indices { values, shape })
    }

    /// The indices, row-major.
    pub fn values(&self) -> &[usize] {
        &self.values
    }

    /// Their shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The row-major offsets into a tensor of shape `source` that `source.gather(axis, self)`
    /// reads: for each multi-index `e` of this shape, `e` with its `axis` coordinate replaced
    /// by the index at `e`. Errors (naming `gather`) unless the ranks agree, every other
    /// dimension fits in `source`'s, and every index is within `source`'s `axis`.
    pub fn gather_offsets(&self, axis: isize, source: &Shape) -> Result<Vec<usize>> {
        let axis = source.axis("gather", axis)?;
        let dims = self.shape.dims();
        let fits = dims.len() == source.rank()
            && (0..dims.len()).all(|d| d == axis || dims[d] <= source.dims()[d]);
        if !fits {
            return Err(TensorError::InvalidArgument {
                op: "gather",
                msg: format!(
                    "index of shape {} does not fit source {} along axis {axis}: the ranks must \
                     agree and every other dimension be at most the source's",
                    self.shape, source
                ),
            });
        }
        let len = source.dims()[axis];
        if let Some(&bad) = self.values.iter().find(|&&i| i >= len) {
            return Err(TensorError::IndexOutOfRange {
                op: "gather",
                index: bad,
                len,
            });
        }
        let strides = source.strides();
        let mut coords = vec![0usize; dims.len()];
        // As long as `values`, which exists: no size a caller could not already allocate.
        let mut offsets = Vec::with_capacity(self.values.len());
        for &index in &self.values {
            let offset: usize = (0..dims.len())
                .map(|d| if d == axis { index } else { coords[d] } * strides[d])
                .sum();
            offsets.push(offset);
            for d in (0..dims.len()).rev() {
                coords[d] += 1;
                if coords[d] < dims[d] {
                    break;
                }
                coords[d] = 0;
            }
        }
        Ok(offsets)
    }
}

impl Tensor {
    /// The adjoint of [`Tensor::index_select`]: a tensor whose `axis` has length `len`, holding
    /// at each entry `k` the sum of the slices `j` of this tensor's `axis` with
    /// `indices[j] == k` (zero where none), like `torch.zeros(…).index_add_(axis, indices,
    /// self)`. `indices` must have one entry per slice of `axis`, each below `len`. Sums run in
    /// increasing `j` on every device, so results are deterministic.
    pub fn index_add(&self, axis: isize, indices: &[usize], len: usize) -> Result<Tensor> {
        let axis = self.shape().axis("index_add", axis)?;
        if indices.len() != self.dims()[axis] {
            return Err(TensorError::InvalidArgument {
                op: "index_add",
                msg: format!(
                    "{} indices for axis {axis} of {}, which has {} entries",
                    indices.len(),
                    self.shape(),
                    self.dims()[axis]
                ),
            });
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(TensorError::IndexOutOfRange {
                op: "index_add",
                index: bad,
                len,
            });
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let out = Shape::for_op("index_add", dims)?;
        let outer: usize = self.dims()[..axis].iter().product();
        let inner: usize = self.dims()[axis + 1..].iter().product();
        let prim = Prim::IndexAdd {
            indices: indices.into(),
            outer,
            len,
            inner,
        };
        self.apply_prim_to(prim, &[], out)
    }

    /// `torch.gather`: `out[e] = self[e with its axis coordinate replaced by index[e]]`, of
    /// `index`'s shape (same rank as this tensor; every other dimension at most this tensor's).
    /// An index outside `axis` is an error naming it and the axis length.
    pub fn gather(&self, axis: isize, index: &Indices) -> Result<Tensor> {
        let offsets = index.gather_offsets(axis, self.shape())?;
        self.reshape([self.elem_count()])?
            .index_select(0, &offsets)?
            .reshape(index.shape().clone())
    }
}
