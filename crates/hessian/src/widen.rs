//! [`InF32`]: an operator that stores its data in a 16-bit dtype seen through f32 vectors, so
//! the estimators' recurrences, orthogonalisations and reductions run in f32 while each product
//! runs in the operator's own dtype.

use curvature_tensor::{DType, Device, Tensor};

use crate::operator::LinearOperator;
use crate::Result;

/// `op` (f16 or bf16) as an f32 operator: each batch is rounded to `op`'s dtype, multiplied,
/// and the product widened back to f32 (exact). The Krylov and Hutchinson estimators wrap a
/// 16-bit operator in it themselves, so their vectors and sums never round to 16 bits.
pub struct InF32<'a, O: ?Sized> {
    op: &'a O,
}

impl<'a, O: LinearOperator + ?Sized> InF32<'a, O> {
    /// Wraps `op`.
    pub fn new(op: &'a O) -> InF32<'a, O> {
        InF32 { op }
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for InF32<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn dtype(&self) -> DType {
        self.op.dtype().compute()
    }

    fn device(&self) -> Device {
        self.op.device()
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        let narrow = v.to_dtype(self.op.dtype())?;
        Ok(self.op.apply_batch(&narrow)?.to_dtype(self.dtype())?)
    }
}
