//! Shape and data-movement ops: reshape, transpose, expand, narrow, pad, cat, stack, index
//! select, diagonal.

use crate::backend::StridedCopy;
use crate::plan::Prim;
use crate::{IntoShape, Result, Shape, Tensor, TensorError};

impl Tensor {
    /// The same data with a new shape of equal element count (no copy).
    pub fn reshape(&self, shape: impl IntoShape) -> Result<Tensor> {
        let shape = shape.into_shape("reshape")?;
        if shape.elem_count() != self.elem_count() {
            return Err(TensorError::ReshapeSize {
                from: self.shape().clone(),
                to: shape.clone(),
                from_len: self.elem_count(),
                to_len: shape.elem_count(),
            });
        }
        Ok(Tensor::from_storage_arc(self, shape))
    }

    /// Inserts an axis of length 1 at `axis` (`0..=rank`).
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(TensorError::AxisOutOfRange {
                op: "unsqueeze",
                axis: axis as isize,
                rank: self.rank(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims.insert(axis, 1);
        self.reshape(dims)
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, axis0: isize, axis1: isize) -> Result<Tensor> {
        let a = self.shape().axis("transpose", axis0)?;
        let b = self.shape().axis("transpose", axis1)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        let valid = perm.len() == self.rank()
            && perm
                .iter()
                .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(TensorError::InvalidArgument {
                op: "permute",
                msg: format!(
                    "{perm:?} is not a permutation of the axes of {}",
                    self.shape()
                ),
            });
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let strides = self.shape().strides();
        let copy = StridedCopy {
            out: Shape::for_op("permute", perm.iter().map(|&p| self.dims()[p]).collect())?,
            strides: perm.iter().map(|&p| strides[p]).collect(),
            offset: 0,
        };
        self.strided(copy)
    }

    /// Broadcasts to `shape` (NumPy rules), copying the data.
    pub fn broadcast_to(&self, shape: impl IntoShape) -> Result<Tensor> {
        let shape = shape.into_shape("broadcast_to")?;
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let out = Shape::broadcast("broadcast_to", self.shape(), &shape)?;
        if out != shape {
            return Err(TensorError::BroadcastMismatch {
                op: "broadcast_to",
                lhs: self.shape().clone(),
                rhs: shape,
            });
        }
        let strides = self.shape().broadcast_strides(&out);
        self.strided(StridedCopy {
            out,
            strides,
            offset: 0,
        })
    }

    /// Alias of [`Tensor::broadcast_to`], as in PyTorch.
    pub fn expand(&self, shape: impl IntoShape) -> Result<Tensor> {
        self.broadcast_to(shape)
    }

    /// `len` entries of `axis` starting at `start` (a copy).
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let axis = self.shape().axis("narrow", axis)?;
        let size = self.dims()[axis];
        // Checked: `start + len` may overflow for huge arguments, which must be an error too.
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(TensorError::IndexOutOfRange {
                op: "narrow",
                index: start.saturating_add(len),
                len: size,
            });
        }
        if len == size {
            return Ok(self.clone());
        }
        let strides = self.shape().strides();
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        self.strided(StridedCopy {
            out: Shape::for_op("narrow", dims)?,
            offset: start * strides[axis],
            strides,
        })
    }

    /// Pads `axis` with `before` zeros in front and `after` zeros behind.
    pub fn pad_zeros(&self, axis: isize, before: usize, after: usize) -> Result<Tensor> {
        let axis_index = self.shape().axis("pad_zeros", axis)?;
        let padded = self.dims()[axis_index]
            .checked_add(before)
            .and_then(|len| len.checked_add(after));
        if padded.is_none() {
            return Err(TensorError::ShapeTooLarge {
                op: "pad_zeros",
                dims: self.dims().to_vec(),
            });
        }
        let zeros_with = |len: usize| {
            let mut dims = self.dims().to_vec();
            dims[axis_index] = len;
            Tensor::zeros(dims, self.dtype(), self.device())
        };
        let mut parts = Vec::with_capacity(3);
        if before > 0 {
            parts.push(zeros_with(before)?);
        }
        parts.push(self.clone());
        if after > 0 {
            parts.push(zeros_with(after)?);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::cat(&refs, axis)
    }

    /// Concatenates tensors along `axis`; all other dimensions must agree.
    pub fn cat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or(TensorError::Empty { op: "cat" })?;
        let axis = first.shape().axis("cat", axis)?;
        let mut dims = first.dims().to_vec();
        dims[axis] = 0;
        for t in tensors {
            let same_rest = t.rank() == first.rank()
                && (0..t.rank()).all(|d| d == axis || t.dims()[d] == first.dims()[d]);
            if !same_rest {
                return Err(TensorError::ShapeMismatch {
                    op: "cat",
                    expected: first.shape().clone(),
                    got: t.shape().clone(),
                });
            }
            dims[axis] = dims[axis].checked_add(t.dims()[axis]).ok_or_else(|| {
                TensorError::ShapeTooLarge {
                    op: "cat",
                    dims: t.dims().to_vec(),
                }
            })?;
        }
        let out = Shape::for_op("cat", dims)?;
        if tensors.len() == 1 {
            return Ok((*first).clone());
        }
        let outer: usize = first.dims()[..axis].iter().product();
        let inner: usize = first.dims()[axis + 1..].iter().product();
        let widths: Vec<usize> = tensors.iter().map(|t| t.dims()[axis] * inner).collect();
        Tensor::apply_prim(Prim::Cat { outer, widths }, tensors, first.device(), out)
    }

    /// Stacks equally shaped tensors along a new axis.
    pub fn stack(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let unsqueezed = tensors
            .iter()
            .map(|t| t.unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = unsqueezed.iter().collect();
        Tensor::cat(&refs, axis as isize)
    }

    /// The entries `indices` of `axis`, in that order (like `torch.index_select`).
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor> {
        let axis = self.shape().axis("index_select", axis)?;
        let len = self.dims()[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(TensorError::IndexOutOfRange {
                op: "index_select",
                index: bad,
                len,
            });
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = indices.len();
        let out = Shape::for_op("index_select", dims)?;
        let outer: usize = self.dims()[..axis].iter().product();
        let inner: usize = self.dims()[axis + 1..].iter().product();
        let prim = Prim::IndexSelect {
            indices: indices.into(),
            outer,
            len,
            inner,
        };
        self.apply_prim_to(prim, &[], out)
    }

    /// The main diagonal of the last two axes, `[..., min(n, m)]`.
    pub fn diagonal(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(TensorError::InvalidArgument {
                op: "diagonal",
                msg: format!("needs at least 2 dimensions, got {}", self.shape()),
            });
        }
        let r = self.rank();
        let (n, m) = (self.dims()[r - 2], self.dims()[r - 1]);
        let strides = self.shape().strides();
        let mut dims = self.dims()[..r - 2].to_vec();
        dims.push(n.min(m));
        let mut out_strides = strides[..r - 2].to_vec();
        out_strides.push(m + 1);
        self.strided(StridedCopy {
            out: Shape::for_op("diagonal", dims)?,
            strides: out_strides,
            offset: 0,
        })
    }

    /// The sum of the main diagonal of a matrix.
    pub fn trace(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(TensorError::InvalidArgument {
                op: "trace",
                msg: format!("needs a matrix, got {}", self.shape()),
            });
        }
        self.diagonal()?.sum_all()
    }

    fn strided(&self, copy: StridedCopy) -> Result<Tensor> {
        let out = copy.out.clone();
        self.apply_prim_to(Prim::CopyStrided(copy), &[], out)
    }
}
