//! The [`Tensor`] type: an immutable, reference-counted, dense row-major array on a device.

use std::sync::Arc;

use crate::cpu::{try_copy, try_filled, try_vec, CpuStorage};
use crate::plan::Prim;
use crate::storage::Storage;
use crate::{DType, Device, Element, IntoShape, Result, Shape, TensorError};

/// A dense, contiguous, row-major tensor. Cloning is cheap (the data is shared); every op
/// returns a new tensor.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Shape,
}

impl Tensor {
    pub(crate) fn from_storage(storage: Storage, shape: Shape) -> Tensor {
        Tensor {
            storage: Arc::new(storage),
            shape,
        }
    }

    /// Shares `source`'s data under a new shape of the same element count.
    pub(crate) fn from_storage_arc(source: &Tensor, shape: Shape) -> Tensor {
        Tensor {
            storage: Arc::clone(&source.storage),
            shape,
        }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The shared handle of the data: its address is the data's identity while tracing.
    pub(crate) fn storage_arc(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// A tensor of `shape` over shared data (of `shape`'s element count).
    pub(crate) fn from_arc(storage: Arc<Storage>, shape: Shape) -> Tensor {
        Tensor { storage, shape }
    }

    /// Runs `prim` on the operands' data (on `device`, which an op without operands needs) and
    /// wraps the result as a tensor of `shape`: the one dispatch of every op that computes data,
    /// recorded by an active [`capture`](crate::plan::capture).
    pub(crate) fn apply_prim(
        prim: Prim,
        operands: &[&Tensor],
        device: Device,
        shape: Shape,
    ) -> Result<Tensor> {
        let out = {
            let data: Vec<&Storage> = operands.iter().map(|t| t.storage()).collect();
            Tensor::from_storage(prim.run(&data, device)?, shape)
        };
        crate::plan::trace::record(prim, operands, &out);
        Ok(out)
    }

    /// [`Tensor::apply_prim`] on the device of the first operand.
    pub(crate) fn apply_prim_to(
        &self,
        prim: Prim,
        rest: &[&Tensor],
        shape: Shape,
    ) -> Result<Tensor> {
        let mut operands = Vec::with_capacity(rest.len() + 1);
        operands.push(self);
        operands.extend_from_slice(rest);
        Tensor::apply_prim(prim, &operands, self.device(), shape)
    }

    /// A tensor of `shape` from host values of type `T` (f32 or f64).
    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl IntoShape,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into_shape("from_vec")?;
        check_len("from_vec", data.len(), &shape)?;
        let storage = Storage::from_cpu(T::into_storage(data), device)?;
        Ok(Tensor::from_storage(storage, shape))
    }

    /// A tensor of `shape` and `dtype` from f64 values (narrowed to f32 when asked).
    pub fn from_f64s(
        data: &[f64],
        shape: impl IntoShape,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into_shape("from_f64s")?;
        check_len("from_f64s", data.len(), &shape)?;
        let storage = Storage::from_cpu(CpuStorage::from_f64s(dtype, data)?, device)?;
        Ok(Tensor::from_storage(storage, shape))
    }

    /// A tensor of `shape` whose element `i` (in row-major order) is `f(i)`; the shape is
    /// checked and the memory allocated before `f` is called.
    pub fn from_fn(
        shape: impl IntoShape,
        dtype: DType,
        device: Device,
        f: impl FnMut(usize) -> f64,
    ) -> Result<Tensor> {
        let shape = shape.into_shape("from_fn")?;
        let mut data = try_vec("from_fn", shape.elem_count())?;
        data.extend((0..shape.elem_count()).map(f));
        Tensor::from_f64s(&data, shape, dtype, device)
    }

    /// A rank-0 tensor.
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(value, Shape::scalar(), dtype, device)
    }

    /// A tensor of `shape` with every element `value`.
    pub fn full(value: f64, shape: impl IntoShape, dtype: DType, device: Device) -> Result<Tensor> {
        let shape = shape.into_shape("full")?;
        let prim = Prim::Full {
            value,
            len: shape.elem_count(),
            dtype,
        };
        Tensor::apply_prim(prim, &[], device, shape)
    }

    pub fn zeros(shape: impl IntoShape, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }

    pub fn ones(shape: impl IntoShape, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype(), self.device())
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype(), self.device())
    }

    /// The `n × m` matrix with ones on the main diagonal.
    pub fn eye(n: usize, m: usize, dtype: DType, device: Device) -> Result<Tensor> {
        let shape = [n, m].into_shape("eye")?;
        let mut data = try_filled("eye", shape.elem_count(), 0.0)?;
        for i in 0..n.min(m) {
            data[i * m + i] = 1.0;
        }
        Tensor::from_f64s(&data, shape, dtype, device)
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive (like `torch.linspace`).
    pub fn linspace(
        start: f64,
        end: f64,
        steps: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = [steps].into_shape("linspace")?;
        let mut data = try_vec("linspace", steps)?;
        match steps {
            0 => {}
            1 => data.push(start),
            _ => {
                // torch.linspace's CPU kernel: the first half steps up from `start`, the second
                // half steps down from `end`, so the last value is exactly `end` and the values
                // agree with PyTorch bit for bit in f64.
                let step = (end - start) / (steps - 1) as f64;
                let halfway = steps / 2;
                data.extend((0..steps).map(|i| {
                    if i < halfway {
                        start + step * i as f64
                    } else {
                        end - step * (steps - i - 1) as f64
                    }
                }));
            }
        }
        Tensor::from_f64s(&data, shape, dtype, device)
    }

    /// One-hot rows: `[labels.len(), classes]` with a 1 at each label.
    pub fn one_hot(
        labels: &[usize],
        classes: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = [labels.len(), classes].into_shape("one_hot")?;
        let mut data = try_filled("one_hot", shape.elem_count(), 0.0)?;
        for (row, &label) in labels.iter().enumerate() {
            if label >= classes {
                return Err(TensorError::IndexOutOfRange {
                    op: "one_hot",
                    index: label,
                    len: classes,
                });
            }
            data[row * classes + label] = 1.0;
        }
        Tensor::from_f64s(&data, shape, dtype, device)
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// The values as host `T`; errors if `T` is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let wrong_type = || TensorError::WrongElementType {
            op: "to_vec",
            actual: self.dtype(),
            requested: T::DTYPE,
        };
        self.on_host(|cpu| try_copy("to_vec", T::slice(cpu).ok_or_else(wrong_type)?))
    }

    /// Calls `read` with the data on the host: a CPU tensor's own storage (no copy), or a
    /// download of a GPU tensor's.
    fn on_host<R>(&self, read: impl FnOnce(&CpuStorage) -> Result<R>) -> Result<R> {
        crate::plan::trace::note_host_read(self);
        match self.storage.as_ref() {
            Storage::Cpu(cpu) => read(cpu),
            Storage::Cuda(gpu) => read(&gpu.to_cpu()?),
        }
    }

    /// The values of a CPU tensor, borrowed without a copy; errors if the tensor lives on a GPU
    /// or `T` is not its dtype.
    pub fn host_slice<T: Element>(&self) -> Result<&[T]> {
        crate::plan::trace::note_host_read(self);
        let Storage::Cpu(cpu) = self.storage.as_ref() else {
            return Err(TensorError::DeviceMismatch {
                op: "host_slice",
                lhs: self.device(),
                rhs: Device::Cpu,
            });
        };
        T::slice(cpu).ok_or(TensorError::WrongElementType {
            op: "host_slice",
            actual: self.dtype(),
            requested: T::DTYPE,
        })
    }

    /// The values widened to f64, whatever the dtype (one host copy).
    pub fn to_f64s(&self) -> Result<Vec<f64>> {
        self.on_host(CpuStorage::to_f64s)
    }

    /// The value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f64> {
        if self.elem_count() != 1 {
            return Err(TensorError::ShapeMismatch {
                op: "to_scalar",
                expected: Shape::scalar(),
                got: self.shape.clone(),
            });
        }
        Ok(self.to_f64s()?[0])
    }

    /// The same values converted to `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        self.apply_prim_to(Prim::ToDtype(dtype), &[], self.shape.clone())
    }

    /// The same values on `device`.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        crate::plan::trace::note_host_read(self);
        let storage = Storage::from_cpu(self.storage.to_cpu()?, device)?;
        Ok(Tensor::from_storage(storage, self.shape.clone()))
    }

    /// Raw native-endian bytes of the data (a host copy).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::plan::trace::note_host_read(self);
        Ok(self.storage.to_cpu()?.as_bytes().to_vec())
    }

    /// Errors unless `other` has this tensor's device and dtype.
    pub fn check_same_kind(&self, op: &'static str, other: &Tensor) -> Result<()> {
        self.storage.check_same(op, &other.storage)
    }
}

fn check_len(op: &'static str, len: usize, shape: &Shape) -> Result<()> {
    if len != shape.elem_count() {
        return Err(TensorError::DataLength {
            op,
            len,
            shape: shape.clone(),
            expected: shape.elem_count(),
        });
    }
    Ok(())
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}, {}, {}",
            self.shape,
            self.dtype(),
            self.device()
        )?;
        if let Ok(values) = self.to_f64s() {
            let shown: Vec<f64> = values.iter().take(8).copied().collect();
            write!(f, ", {shown:?}")?;
            if values.len() > 8 {
                write!(f, "…")?;
            }
        }
        write!(f, ")")
    }
}
