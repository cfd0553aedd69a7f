//! [`Collective`] for [`Mpi`]: a tensor's values copied to a host buffer of its dtype, the MPI
//! collective on that buffer, and the result as a tensor on the tensor's device.

use curvature_tensor::{DType, Element, Shape, Tensor};

use super::{Mpi, MpiElement, MpiError};
use crate::collective::Collective;
use crate::error::{CollectiveError, CollectiveResult};

/// A host copy of `tensor`'s values of type `T`.
fn host_values<T: Element>(
    op: &'static str,
    rank: usize,
    tensor: &Tensor,
) -> CollectiveResult<Vec<T>> {
    tensor
        .to_vec::<T>()
        .map_err(|source| CollectiveError::Tensor { op, rank, source })
}

impl Mpi {
    /// A [`CollectiveError::Backend`] for `op`.
    fn backend_error(&self, op: &'static str, e: MpiError) -> CollectiveError {
        CollectiveError::Backend {
            backend: "mpi",
            op,
            rank: self.rank,
            message: e.to_string(),
        }
    }

    /// `values` as a tensor of `shape` on `tensor`'s device.
    fn tensor_of<T: Element>(
        &self,
        op: &'static str,
        values: Vec<T>,
        shape: Shape,
        like: &Tensor,
    ) -> CollectiveResult<Tensor> {
        Tensor::from_vec(values, shape, like.device()).map_err(|source| CollectiveError::Tensor {
            op,
            rank: self.rank,
            source,
        })
    }

    /// Runs `body` on `tensor`'s host values, typed by its dtype, and returns the tensor of
    /// `shape` it produces.
    fn on_host_values(
        &self,
        op: &'static str,
        tensor: &Tensor,
        shape: Shape,
        body: HostBody<'_>,
    ) -> CollectiveResult<Tensor> {
        match tensor.dtype() {
            DType::F64 => {
                let values = host_values::<f64>(op, self.rank, tensor)?;
                let out = (body.f64)(self, values).map_err(|e| self.backend_error(op, e))?;
                self.tensor_of(op, out, shape, tensor)
            }
            DType::F32 => {
                let values = host_values::<f32>(op, self.rank, tensor)?;
                let out = (body.f32)(self, values).map_err(|e| self.backend_error(op, e))?;
                self.tensor_of(op, out, shape, tensor)
            }
            // 16-bit data travels and is reduced in f32, and is rounded back once.
            half @ (DType::F16 | DType::BF16) => {
                let tensor_error = |source| CollectiveError::Tensor {
                    op,
                    rank: self.rank,
                    source,
                };
                let wide = tensor.to_dtype(DType::F32).map_err(tensor_error)?;
                let values = host_values::<f32>(op, self.rank, &wide)?;
                let out = (body.f32)(self, values).map_err(|e| self.backend_error(op, e))?;
                let out = self.tensor_of(op, out, shape, tensor)?;
                out.to_dtype(half).map_err(tensor_error)
            }
        }
    }

    /// The shape `[rows, rest…]` of a tensor whose leading axis becomes `rows`.
    fn with_leading(
        &self,
        op: &'static str,
        tensor: &Tensor,
        rows: impl FnOnce(usize) -> Option<usize>,
    ) -> CollectiveResult<Shape> {
        let dims = tensor.dims();
        let invalid = |message: String| CollectiveError::InvalidArgument {
            op,
            rank: self.rank,
            message,
        };
        let (&first, rest) = dims
            .split_first()
            .ok_or_else(|| invalid("a tensor of rank 0 has no leading axis".to_string()))?;
        let leading = rows(first).ok_or_else(|| {
            invalid(format!(
                "a leading axis of {first} cannot be split or gathered over {} ranks",
                self.size
            ))
        })?;
        let mut out = vec![leading];
        out.extend_from_slice(rest);
        Shape::checked(out).map_err(|source| CollectiveError::Tensor {
            op,
            rank: self.rank,
            source,
        })
    }
}

/// An operation on host values of type `T`: the values in, the result out.
type HostFn<'a, T> = &'a dyn Fn(&Mpi, Vec<T>) -> Result<Vec<T>, MpiError>;

/// One operation on host values, written once per element type.
struct HostBody<'a> {
    f64: HostFn<'a, f64>,
    f32: HostFn<'a, f32>,
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> &'static str {
        "mpi"
    }

    fn all_reduce_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        fn sum<T: MpiElement>(mpi: &Mpi, mut values: Vec<T>) -> Result<Vec<T>, MpiError> {
            mpi.all_reduce_sum(&mut values)?;
            Ok(values)
        }
        let body = HostBody {
            f64: &sum::<f64>,
            f32: &sum::<f32>,
        };
        self.on_host_values("all_reduce_sum", tensor, tensor.shape().clone(), body)
    }

    fn broadcast(&self, tensor: &Tensor, root: usize) -> CollectiveResult<Tensor> {
        if root >= self.size {
            return Err(CollectiveError::InvalidArgument {
                op: "broadcast",
                rank: self.rank,
                message: format!("root {root} is not a rank of {}", self.size),
            });
        }
        let f64s = move |mpi: &Mpi, mut values: Vec<f64>| {
            mpi.broadcast(&mut values, root)?;
            Ok(values)
        };
        let f32s = move |mpi: &Mpi, mut values: Vec<f32>| {
            mpi.broadcast(&mut values, root)?;
            Ok(values)
        };
        let body = HostBody {
            f64: &f64s,
            f32: &f32s,
        };
        self.on_host_values("broadcast", tensor, tensor.shape().clone(), body)
    }

    fn barrier(&self) -> CollectiveResult<()> {
        Mpi::barrier(self).map_err(|e| self.backend_error("barrier", e))
    }

    fn reduce_scatter_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "reduce_scatter_sum";
        let size = self.size;
        let shape = self.with_leading(op, tensor, |n| (n % size == 0).then_some(n / size))?;
        let block = shape.elem_count();
        fn scatter<T: MpiElement>(
            mpi: &Mpi,
            values: Vec<T>,
            block: usize,
        ) -> Result<Vec<T>, MpiError> {
            let mut out = vec![T::default(); block];
            mpi.reduce_scatter_sum(&values, &mut out)?;
            Ok(out)
        }
        let f64s = move |mpi: &Mpi, values: Vec<f64>| scatter(mpi, values, block);
        let f32s = move |mpi: &Mpi, values: Vec<f32>| scatter(mpi, values, block);
        let body = HostBody {
            f64: &f64s,
            f32: &f32s,
        };
        self.on_host_values(op, tensor, shape, body)
    }

    fn all_gather(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "all_gather";
        let size = self.size;
        let shape = self.with_leading(op, tensor, |n| n.checked_mul(size))?;
        let total = shape.elem_count();
        fn gather<T: MpiElement>(
            mpi: &Mpi,
            values: Vec<T>,
            total: usize,
        ) -> Result<Vec<T>, MpiError> {
            let mut out = vec![T::default(); total];
            mpi.all_gather(&values, &mut out)?;
            Ok(out)
        }
        let f64s = move |mpi: &Mpi, values: Vec<f64>| gather(mpi, values, total);
        let f32s = move |mpi: &Mpi, values: Vec<f32>| gather(mpi, values, total);
        let body = HostBody {
            f64: &f64s,
            f32: &f32s,
        };
        self.on_host_values(op, tensor, shape, body)
    }

    fn abort(&self, message: &str) {
        Mpi::abort(self, message)
    }
}
