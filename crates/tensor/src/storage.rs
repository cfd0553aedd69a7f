//! Backend dispatch: one enum over the backends' storages, checking devices and dtypes before
//! handing a primitive op to the backend that owns the data.

use crate::backend::{
    BackendStorage, BinaryOp, BroadcastLayout, MatmulSpec, ReduceOp, StridedCopy, TernaryOp,
    UnaryOp,
};
use crate::cpu::CpuStorage;
use crate::{DType, Device, Result, TensorError};

/// The data of a tensor on one device.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
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

    /// Host storage for `values` on `device`.
    pub fn from_cpu(storage: CpuStorage, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(storage)),
            Device::Cuda(ordinal) => Device::cuda(ordinal).map(|_| Storage::Cpu(storage)),
        }
    }

    /// A host copy of the data.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(s) => Ok(s.clone()),
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.unary(op).map(Storage::Cpu),
        }
    }

    pub fn binary(&self, op: BinaryOp, rhs: &Storage, layout: &BroadcastLayout) -> Result<Storage> {
        self.check_same(op.name(), rhs)?;
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => a.binary(op, b, layout).map(Storage::Cpu),
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
        }
    }

    pub fn matmul(&self, rhs: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        self.check_same("matmul", rhs)?;
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => a.matmul(b, spec).map(Storage::Cpu),
        }
    }

    pub fn reduce(&self, op: ReduceOp, outer: usize, red: usize, inner: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.reduce(op, outer, red, inner).map(Storage::Cpu),
        }
    }

    pub fn log_softmax(&self, rows: usize, cols: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.log_softmax(rows, cols).map(Storage::Cpu),
        }
    }

    pub fn logsumexp(&self, rows: usize, cols: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.logsumexp(rows, cols).map(Storage::Cpu),
        }
    }

    pub fn copy_strided(&self, copy: &StridedCopy) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.copy_strided(copy).map(Storage::Cpu),
        }
    }

    pub fn cat(parts: &[&Storage], outer: usize, widths: &[usize]) -> Result<Storage> {
        let Some(first) = parts.first() else {
            return Err(TensorError::Empty { op: "cat" });
        };
        for part in &parts[1..] {
            first.check_same("cat", part)?;
        }
        let cpu: Vec<&CpuStorage> = parts
            .iter()
            .map(|p| match p {
                Storage::Cpu(s) => s,
            })
            .collect();
        CpuStorage::cat(&cpu, outer, widths).map(Storage::Cpu)
    }

    pub fn index_select(
        &self,
        indices: &[usize],
        outer: usize,
        axis_len: usize,
        inner: usize,
    ) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s
                .index_select(indices, outer, axis_len, inner)
                .map(Storage::Cpu),
        }
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Storage> {
        match self {
            Storage::Cpu(s) => s.to_dtype(dtype).map(Storage::Cpu),
        }
    }
}
