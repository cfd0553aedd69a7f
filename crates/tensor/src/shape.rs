//! Shapes, row-major strides and NumPy broadcasting.

use crate::{Result, TensorError};

/// The most elements a tensor may hold: its bytes in the widest dtype (8 bytes) must fit in
/// `isize`, the limit of every allocation and pointer offset.
pub const MAX_ELEMENTS: usize = (isize::MAX as usize) / 8;

/// The dimensions of a tensor; `[]` is a scalar.
///
/// A tensor's shape is always valid: the product of its dimensions (counting a zero dimension
/// as one, so that every row-major stride is bounded too) is at most [`MAX_ELEMENTS`]. Every
/// op that takes a shape checks it ([`IntoShape`], [`Shape::checked`]) and every op that makes
/// one builds it checked, so element counts, strides and byte counts computed from a tensor's
/// shape never overflow. `Shape::new` itself only holds the dimensions, as a value to compare
/// or print; a tensor accepts it only if it is valid.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// The dimensions as given (not checked; see [`Shape::checked`]).
    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }

    /// A valid shape; errors when its element count (or a stride) would exceed
    /// [`MAX_ELEMENTS`].
    pub fn checked(dims: impl Into<Vec<usize>>) -> Result<Shape> {
        Shape::for_op("shape", dims.into())
    }

    /// Errors, naming `op`, unless this shape is valid (see [`Shape`]).
    pub fn check(&self, op: &'static str) -> Result<()> {
        let fits = self
            .0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
            .is_some_and(|n| n <= MAX_ELEMENTS);
        if !fits {
            return Err(TensorError::ShapeTooLarge {
                op,
                dims: self.0.clone(),
            });
        }
        Ok(())
    }

    /// [`Shape::checked`] with the op named in the error.
    pub(crate) fn for_op(op: &'static str, dims: Vec<usize>) -> Result<Shape> {
        let shape = Shape(dims);
        shape.check(op)?;
        Ok(shape)
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements; `usize::MAX` for an unchecked shape whose product overflows
    /// (no tensor has such a shape).
    pub fn elem_count(&self) -> usize {
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Row-major (C-contiguous) element strides.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1usize; self.rank()];
        for d in (0..self.rank().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1].saturating_mul(self.0[d + 1]);
        }
        strides
    }

    /// Resolves a possibly negative axis (`-1` is the last) for op `op`.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let resolved = if axis < 0 { axis + rank } else { axis };
        if resolved < 0 || resolved >= rank {
            return Err(TensorError::AxisOutOfRange {
                op,
                axis,
                rank: self.rank(),
            });
        }
        Ok(resolved as usize)
    }

    /// The NumPy broadcast of two shapes.
    pub fn broadcast(op: &'static str, lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        let rank = lhs.rank().max(rhs.rank());
        let mut dims = vec![0; rank];
        for (i, dim) in dims.iter_mut().enumerate() {
            let l = lhs.dim_from_end(rank - 1 - i);
            let r = rhs.dim_from_end(rank - 1 - i);
            *dim = match (l, r) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(TensorError::BroadcastMismatch {
                        op,
                        lhs: lhs.clone(),
                        rhs: rhs.clone(),
                    })
                }
            };
        }
        Shape::for_op(op, dims)
    }

    /// Size of the dimension `back` places from the end, 1 beyond the rank.
    fn dim_from_end(&self, back: usize) -> usize {
        if back < self.rank() {
            self.0[self.rank() - 1 - back]
        } else {
            1
        }
    }

    /// Strides that read this shape as if broadcast to `target` (0 on broadcast dims).
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> Vec<usize> {
        let own = self.strides();
        let offset = target.rank() - self.rank();
        (0..target.rank())
            .map(|d| {
                if d < offset || self.0[d - offset] == 1 {
                    0
                } else {
                    own[d - offset]
                }
            })
            .collect()
    }
}

/// What an op accepts as a shape: `[usize; N]`, `Vec<usize>`, `&[usize]`, `Shape` or `&Shape`.
/// The conversion checks the dimensions as [`Shape::checked`] does.
pub trait IntoShape {
    /// The checked shape, or an error naming `op`.
    fn into_shape(self, op: &'static str) -> Result<Shape>;
}

impl IntoShape for Shape {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        self.check(op)?;
        Ok(self)
    }
}

impl IntoShape for &Shape {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        self.clone().into_shape(op)
    }
}

impl IntoShape for Vec<usize> {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        Shape::for_op(op, self)
    }
}

impl IntoShape for &Vec<usize> {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        Shape::for_op(op, self.clone())
    }
}

impl IntoShape for &[usize] {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        Shape::for_op(op, self.to_vec())
    }
}

impl<const N: usize> IntoShape for [usize; N] {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        Shape::for_op(op, self.to_vec())
    }
}

impl<const N: usize> IntoShape for &[usize; N] {
    fn into_shape(self, op: &'static str) -> Result<Shape> {
        Shape::for_op(op, self.to_vec())
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Shape {
        Shape(dims.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Shape {
        Shape(dims)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Shape {
        Shape(dims.to_vec())
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
