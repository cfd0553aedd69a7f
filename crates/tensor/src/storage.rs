//! Backend dispatch: one enum over the backends' storages, checking devices and dtypes before
//! handing a primitive op to the backend that owns the data.

use crate::backend::{
    BackendStorage, BinaryOp, BroadcastLayout, Im2Col, MatmulSpec, ReduceOp, StridedCopy,
    TernaryOp, UnaryOp,
};
use crate::cpu::CpuStorage;
use crate::cuda::{self, CudaStorage};
use crate::{DType, Device, Result, TensorError};

/// The data of a tensor on one device.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

/// Applies the same backend method to a storage of either backend, re-wrapping the result.
macro_rules! each_backend {
    ($storage:expr, $s:ident => $body:expr) => {
        match $storage {
            Storage::Cpu($s) => $body.map(Storage::Cpu),
            Storage::Cuda($s) => $body.map(Storage::Cuda),
        }
    };
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.ordinal()),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }

    /// Errors unless `other` is on the same device with the same dtype.
    pub fn check_same(&self, op: &'static str, other: &Storage) -> Result<()> {
        if self.device() != other.device() {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        if self.dtype() != other.dtype() {
            return Err(TensorError::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            });
        }
        Ok(())
    }

    /// Host storage for `values` on `device` (an upload for a GPU).
    pub fn from_cpu(storage: CpuStorage, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(storage)),
            Device::Cuda(ordinal) => {
                let gpu = cuda::gpu_device(ordinal)?;
                CudaStorage::from_cpu(&storage, &gpu).map(Storage::Cuda)
            }
        }
    }

    /// `len` copies of `value` on `device` (built on the device itself for a GPU).
    pub fn full(device: Device, dtype: DType, len: usize, value: f64) -> Result<Storage> {
        match device {
            Device::Cpu => CpuStorage::full(dtype, len, value).map(Storage::Cpu),
            Device::Cuda(ordinal) => {
                let gpu = cuda::gpu_device(ordinal)?;
                CudaStorage::full(&gpu, dtype, len, value).map(Storage::Cuda)
            }
        }
    }

    /// `len` elements of `dtype` on `device` for an op that writes every one of them: zeros on
    /// the CPU, uninitialised device memory (no memset) on a GPU.
    pub fn uninit(device: Device, dtype: DType, len: usize) -> Result<Storage> {
        match device {
            Device::Cpu => CpuStorage::full(dtype, len, 0.0).map(Storage::Cpu),
            Device::Cuda(ordinal) => {
                let gpu = cuda::gpu_device(ordinal)?;
                CudaStorage::uninit(&gpu, dtype, len).map(Storage::Cuda)
            }
        }
    }

    /// A host copy of the data (a download from a GPU).
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(s) => s.try_clone(),
            Storage::Cuda(s) => s.to_cpu(),
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Storage> {
        each_backend!(self, s => s.unary(op))
    }

    pub fn binary(&self, op: BinaryOp, rhs: &Storage, layout: &BroadcastLayout) -> Result<Storage> {
        self.check_same(op.name(), rhs)?;
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => a.binary(op, b, layout).map(Storage::Cpu),
            (Storage::Cuda(a), Storage::Cuda(b)) => a.binary(op, b, layout).map(Storage::Cuda),
            _ => Err(self.mismatch(op.name(), rhs)),
        }
    }

    pub fn ternary(
        &self,
        op: TernaryOp,
        b: &Storage,
        c: &Storage,
        layout: &BroadcastLayout,
    ) -> Result<Storage> {
        self.check_same(op.name(), b)?;
        self.check_same(op.name(), c)?;
        match (self, b, c) {
            (Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c)) => {
                a.ternary(op, b, c, layout).map(Storage::Cpu)
            }
            (Storage::Cuda(a), Storage::Cuda(b), Storage::Cuda(c)) => {
                a.ternary(op, b, c, layout).map(Storage::Cuda)
            }
            _ => Err(self.mismatch(op.name(), b)),
        }
    }

    pub fn matmul(&self, rhs: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        self.check_same("matmul", rhs)?;
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => a.matmul(b, spec).map(Storage::Cpu),
            (Storage::Cuda(a), Storage::Cuda(b)) => a.matmul(b, spec).map(Storage::Cuda),
            _ => Err(self.mismatch("matmul", rhs)),
        }
    }

    pub fn reduce(&self, op: ReduceOp, outer: usize, red: usize, inner: usize) -> Result<Storage> {
        each_backend!(self, s => s.reduce(op, outer, red, inner))
    }

    pub fn log_softmax(&self, rows: usize, cols: usize) -> Result<Storage> {
        each_backend!(self, s => s.log_softmax(rows, cols))
    }

    pub fn logsumexp(&self, rows: usize, cols: usize) -> Result<Storage> {
        each_backend!(self, s => s.logsumexp(rows, cols))
    }

    pub fn unfold(&self, geometry: &Im2Col, fill: f64) -> Result<Storage> {
        each_backend!(self, s => s.unfold(geometry, fill))
    }

    pub fn fold(&self, geometry: &Im2Col) -> Result<Storage> {
        each_backend!(self, s => s.fold(geometry))
    }

    pub fn copy_strided(&self, copy: &StridedCopy) -> Result<Storage> {
        each_backend!(self, s => s.copy_strided(copy))
    }

    pub fn cat(parts: &[&Storage], outer: usize, widths: &[usize]) -> Result<Storage> {
        let Some(first) = parts.first() else {
            return Err(TensorError::Empty { op: "cat" });
        };
        for part in &parts[1..] {
            first.check_same("cat", part)?;
        }
        match first {
            Storage::Cpu(_) => {
                let cpu: Vec<&CpuStorage> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Storage::Cpu(s) => Some(s),
                        Storage::Cuda(_) => None,
                    })
                    .collect();
                CpuStorage::cat(&cpu, outer, widths).map(Storage::Cpu)
            }
            Storage::Cuda(_) => {
                let gpu: Vec<&CudaStorage> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Storage::Cuda(s) => Some(s),
                        Storage::Cpu(_) => None,
                    })
                    .collect();
                CudaStorage::cat(&gpu, outer, widths).map(Storage::Cuda)
            }
        }
    }

    pub fn index_select(
        &self,
        indices: &[usize],
        outer: usize,
        axis_len: usize,
        inner: usize,
    ) -> Result<Storage> {
        each_backend!(self, s => s.index_select(indices, outer, axis_len, inner))
    }

    pub fn index_add(
        &self,
        indices: &[usize],
        outer: usize,
        len: usize,
        inner: usize,
    ) -> Result<Storage> {
        each_backend!(self, s => s.index_add(indices, outer, len, inner))
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Storage> {
        each_backend!(self, s => s.to_dtype(dtype))
    }

    /// The device-mismatch error of an op over `self` and `other` (reached only when
    /// `check_same` let two backends through, which it does not).
    fn mismatch(&self, op: &'static str, other: &Storage) -> TensorError {
        TensorError::DeviceMismatch {
            op,
            lhs: self.device(),
            rhs: other.device(),
        }
    }
}
