//! The CUDA backend: every primitive op as a launch of the project's kernels (`kernels/*.cu`,
//! through `curvature-kernels`) on a real GPU or on the emulated GPU (ARCHITECTURE.md).
//!
//! Data lives in one immutable [`GpuBuffer`] per storage (shared by clones, like the tensors
//! above it). Shapes and strides travel to the kernels as small device arrays of `i64`; launch
//! geometry comes from `curvature_kernels::geometry`. The kernel each op launches is named by
//! [`kernels`], and the GPU behind each `Device::Cuda(ordinal)` is the one
//! `curvature_kernels::GpuDevice::new(ordinal)` names in this process.

mod conv;
mod elementwise;
pub(crate) mod fused;
mod gemm_tune;
mod half;
pub mod kernels;
mod layout;
mod matmul;
mod matmul_tc;
mod reduce;
mod tables;

pub(crate) use matmul::gemm_into;

use std::sync::Arc;

use curvature_kernels::{geometry, GpuBuffer, GpuDevice, KernelArg, Launch};

use crate::backend::{
    BackendStorage, BinaryOp, BroadcastLayout, Im2Col, MatmulSpec, ReduceOp, StridedCopy,
    TernaryOp, UnaryOp,
};
use crate::cpu::CpuStorage;
use crate::{DType, Result, TensorError};

use tables::upload_i64s;

/// The GPU behind `Device::Cuda(ordinal)`: the one already in use, else a real GPU (or the
/// emulated one under `CURVATURE_CUDA=emulate`) opened now. Errors, never panics, when no
/// driver, no NVRTC or no such device is present.
pub(crate) fn gpu_device(ordinal: usize) -> Result<GpuDevice> {
    GpuDevice::new(ordinal).map_err(|e| unavailable(ordinal, e))
}

/// The emulated GPU as `Device::Cuda(0)`. Errors when the emulator is not compiled in, or when
/// `cuda:0` is already a real GPU in this process.
pub(crate) fn emulated_device() -> Result<GpuDevice> {
    GpuDevice::emulated_as_cuda0().map_err(|e| unavailable(0, e))
}

fn unavailable(ordinal: usize, e: curvature_kernels::KernelError) -> TensorError {
    TensorError::CudaUnavailable {
        ordinal,
        reason: e.to_string(),
    }
}

/// Waits for the work queued on `cuda:ordinal` (nothing to wait for if it was never opened);
/// errors when a result rounded to f16 or bf16 overflowed since the last check.
pub(crate) fn synchronize(ordinal: usize) -> Result<()> {
    if let Some(dev) = GpuDevice::named(ordinal) {
        dev.synchronize()?;
        half::check_overflow(&dev)?;
    }
    Ok(())
}

/// "NVIDIA H100 80GB HBM3 (cuda:0)", "emulated GPU (cuda:0)", or why it is unavailable.
pub(crate) fn describe(ordinal: usize) -> String {
    match gpu_device(ordinal) {
        Ok(dev) => format!("{} (cuda:{ordinal})", dev.name()),
        Err(e) => format!("cuda:{ordinal} (unavailable: {e})"),
    }
}

/// Device memory of one tensor: `len` elements of `dtype` on `gpu`.
#[derive(Debug, Clone)]
pub struct CudaStorage {
    gpu: GpuDevice,
    buffer: Arc<GpuBuffer>,
    dtype: DType,
    len: usize,
}

impl CudaStorage {
    /// The GPU holding the data.
    pub fn gpu(&self) -> &GpuDevice {
        &self.gpu
    }

    /// The device ordinal of the data.
    pub fn ordinal(&self) -> usize {
        self.gpu().ordinal()
    }

    /// Copies host data to `device`.
    pub fn from_cpu(storage: &CpuStorage, device: &GpuDevice) -> Result<CudaStorage> {
        let bytes = storage.as_bytes();
        Ok(CudaStorage {
            gpu: device.clone(),
            buffer: Arc::new(device.upload(bytes)?),
            dtype: storage.dtype(),
            len: storage.len(),
        })
    }

    /// `len` copies of `value` on `device`: a memset for +0.0, else `fill_{dt}(out, n, value)`
    /// (no host buffer, no copy).
    pub fn full(device: &GpuDevice, dtype: DType, len: usize, value: f64) -> Result<CudaStorage> {
        // Zeroed memory is +0.0; −0.0 and NaN have other bit patterns, so they are filled.
        if value == 0.0 && !value.is_sign_negative() {
            return CudaStorage::alloc_zeros(device, dtype, len);
        }
        if dtype.is_half() {
            return half::full(device, dtype, len, value);
        }
        let out = CudaStorage::alloc(device, dtype, len)?;
        if len > 0 {
            out.launch(
                Launch::new(kernels::fill(out.dtype), geometry::launch_1d(len)).args([
                    out.arg(),
                    KernelArg::U64(len as u64),
                    out.scalar(value),
                ]),
            )?;
        }
        Ok(out)
    }

    /// Copies the data to the host (after all queued work on the device); errors when a
    /// result rounded to f16 or bf16 on this GPU overflowed since the last check.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        let mut host = CpuStorage::full(self.dtype, self.len, 0.0)?;
        if self.len > 0 {
            self.gpu().download(&self.buffer, host.as_bytes_mut())?;
        }
        half::check_overflow(self.gpu())?;
        Ok(host)
    }

    /// An uninitialised output of `len` elements of `dtype` on `gpu`, for a kernel that writes
    /// every element (each kernel of `kernels/*.cu` does; none accumulates into its output).
    /// `len` uninitialised elements of `dtype` on `gpu`, for a kernel that writes all of them.
    pub(crate) fn uninit(gpu: &GpuDevice, dtype: DType, len: usize) -> Result<CudaStorage> {
        CudaStorage::alloc(gpu, dtype, len)
    }

    fn alloc(gpu: &GpuDevice, dtype: DType, len: usize) -> Result<CudaStorage> {
        let bytes = Self::bytes(gpu, dtype, len)?;
        Ok(CudaStorage {
            gpu: gpu.clone(),
            buffer: Arc::new(gpu.alloc(bytes)?),
            dtype,
            len,
        })
    }

    /// `len` zeroed elements of `dtype` on `gpu`.
    fn alloc_zeros(gpu: &GpuDevice, dtype: DType, len: usize) -> Result<CudaStorage> {
        let bytes = Self::bytes(gpu, dtype, len)?;
        Ok(CudaStorage {
            gpu: gpu.clone(),
            buffer: Arc::new(gpu.alloc_zeros(bytes)?),
            dtype,
            len,
        })
    }

    /// The bytes of `len` elements of `dtype`, or an error when they overflow.
    fn bytes(gpu: &GpuDevice, dtype: DType, len: usize) -> Result<usize> {
        len.checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| TensorError::OutOfMemory {
                op: "alloc",
                elements: len,
                dtype,
                bytes: usize::MAX,
                device: crate::Device::Cuda(gpu.ordinal()),
            })
    }

    /// An uninitialised output like `self` (same device and dtype) of `len` elements.
    fn alloc_like(&self, len: usize) -> Result<CudaStorage> {
        CudaStorage::alloc(self.gpu(), self.dtype, len)
    }

    fn arg(&self) -> KernelArg<'_> {
        KernelArg::Buffer(&self.buffer)
    }

    /// A scalar kernel parameter of this storage's dtype (`T` in the kernel's signature).
    fn scalar(&self, value: f64) -> KernelArg<'static> {
        scalar_arg(self.dtype, value)
    }

    /// Runs `launch` on this storage's GPU.
    fn launch(&self, launch: Launch<'_>) -> Result<()> {
        self.gpu.launch(&launch)?;
        Ok(())
    }

    /// Errors unless `other` has this storage's dtype and lives on the same GPU.
    fn check_same(&self, op: &'static str, other: &CudaStorage) -> Result<()> {
        if other.dtype != self.dtype {
            return Err(TensorError::DTypeMismatch {
                op,
                lhs: self.dtype,
                rhs: other.dtype,
            });
        }
        if other.ordinal() != self.ordinal() {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: crate::Device::Cuda(self.ordinal()),
                rhs: crate::Device::Cuda(other.ordinal()),
            });
        }
        Ok(())
    }
}

/// A scalar kernel parameter of type `T` for `dtype`.
fn scalar_arg(dtype: DType, value: f64) -> KernelArg<'static> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => KernelArg::F32(value as f32),
        DType::F64 => KernelArg::F64(value),
    }
}

/// An element count or index as the kernels' 64-bit integer types, or an error naming `op`.
fn to_i64(op: &'static str, value: usize) -> Result<i64> {
    i64::try_from(value).map_err(|_| TensorError::InvalidArgument {
        op,
        msg: format!("{value} does not fit the kernels' 64-bit index type"),
    })
}

/// A rank as the kernels' `int`.
fn rank_arg(op: &'static str, rank: usize) -> Result<KernelArg<'static>> {
    i32::try_from(rank)
        .map(KernelArg::I32)
        .map_err(|_| TensorError::InvalidArgument {
            op,
            msg: format!("rank {rank} is too large"),
        })
}

impl BackendStorage for CudaStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn len(&self) -> usize {
        self.len
    }

    fn unary(&self, op: UnaryOp) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32(op.name(), [self], |[x]| x.unary(op));
        }
        elementwise::unary(self, op)
    }

    fn binary(&self, op: BinaryOp, rhs: &Self, layout: &BroadcastLayout) -> Result<Self> {
        self.check_same(op.name(), rhs)?;
        if self.dtype.is_half() {
            return half::in_f32(op.name(), [self, rhs], |[a, b]| a.binary(op, b, layout));
        }
        elementwise::binary(self, op, rhs, layout)
    }

    fn ternary(&self, op: TernaryOp, b: &Self, c: &Self, layout: &BroadcastLayout) -> Result<Self> {
        self.check_same(op.name(), b)?;
        self.check_same(op.name(), c)?;
        if self.dtype.is_half() {
            return half::in_f32(op.name(), [self, b, c], |[a, b, c]| {
                a.ternary(op, b, c, layout)
            });
        }
        elementwise::ternary(self, op, b, c, layout)
    }

    fn matmul(&self, rhs: &Self, spec: &MatmulSpec) -> Result<Self> {
        self.check_same("matmul", rhs)?;
        if self.dtype.is_half() {
            if self.gpu().has_tensor_cores() {
                return matmul_tc::matmul_half(self, rhs, spec);
            }
            return half::in_f32("matmul", [self, rhs], |[a, b]| a.matmul(b, spec));
        }
        matmul::matmul(self, rhs, spec)
    }

    fn reduce(&self, op: ReduceOp, outer: usize, reduced: usize, inner: usize) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32(op.name(), [self], |[x]| x.reduce(op, outer, reduced, inner));
        }
        reduce::reduce(self, op, outer, reduced, inner)
    }

    fn log_softmax(&self, rows: usize, cols: usize) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32("log_softmax", [self], |[x]| x.log_softmax(rows, cols));
        }
        reduce::rows(self, kernels::RowOp::LogSoftmax, rows, cols, rows * cols)
    }

    fn logsumexp(&self, rows: usize, cols: usize) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32("logsumexp", [self], |[x]| x.logsumexp(rows, cols));
        }
        reduce::rows(self, kernels::RowOp::Logsumexp, rows, cols, rows)
    }

    fn copy_strided(&self, copy: &StridedCopy) -> Result<Self> {
        layout::copy_strided(self, copy)
    }

    fn cat(parts: &[&Self], outer: usize, widths: &[usize]) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(TensorError::Empty { op: "cat" });
        };
        for part in &parts[1..] {
            first.check_same("cat", part)?;
        }
        layout::cat(parts, outer, widths)
    }

    fn index_select(
        &self,
        indices: &[usize],
        outer: usize,
        axis_len: usize,
        inner: usize,
    ) -> Result<Self> {
        layout::index_select(self, indices, outer, axis_len, inner)
    }

    fn index_add(&self, indices: &[usize], outer: usize, len: usize, inner: usize) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32("index_add", [self], |[x]| {
                x.index_add(indices, outer, len, inner)
            });
        }
        layout::index_add(self, indices, outer, len, inner)
    }

    fn to_dtype(&self, dtype: DType) -> Result<Self> {
        elementwise::to_dtype(self, dtype)
    }

    fn unfold(&self, geometry: &Im2Col, fill: f64) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32("unfold2d", [self], |[x]| x.unfold(geometry, fill));
        }
        conv::unfold(self, geometry, fill)
    }

    fn fold(&self, geometry: &Im2Col) -> Result<Self> {
        if self.dtype.is_half() {
            return half::in_f32("fold2d", [self], |[x]| x.fold(geometry));
        }
        conv::fold(self, geometry)
    }
}
