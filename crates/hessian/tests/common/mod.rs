//! Helpers shared by the hessian crate's integration tests: the devices every property runs on,
//! the golden files, and small operators.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::PathBuf;

use curvature_hessian::{LinearOperator, Result};
use curvature_nn::ModelFile;
use curvature_tensor::{DType, Device, Tensor};

/// The golden files in tests/data, all float64 JAX references.
pub const GOLDEN: [&str; 4] = [
    "seed_simplenet_tanh_mse",
    "seed_linear_sigmoid_sumsq",
    "mlp_4_6_5_3_tanh_sigmoid_mse",
    "mlp_5_8_4_tanh_xent",
];

#[path = "../../../tensor/tests/common/devices.rs"]
mod devices;
#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};

/// The golden file `name` in f64 on the CPU: the reference values.
pub fn load(name: &str) -> ModelFile {
    load_as(name, DType::F64, Device::Cpu)
}

/// The golden models' directory: `$CURVATURE_TEST_DATA` when set (test binaries copied to
/// another machine), else the repository's `tests/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("CURVATURE_TEST_DATA").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data")),
        PathBuf::from,
    )
}

/// The golden file `name` in `dtype` on `device`.
pub fn load_as(name: &str, dtype: DType, device: Device) -> ModelFile {
    let path = data_dir().join(format!("{name}.safetensors"));
    ModelFile::load(&path, dtype, device).expect("golden file loads")
}

/// max|ours − reference| / max|reference| (the golden README's measure); shapes must agree.
pub fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(
        ours.elem_count(),
        reference.elem_count(),
        "element counts differ: {:?} vs {:?}",
        ours.shape(),
        reference.shape()
    );
    let a = ours.to_f64s().unwrap();
    let b = reference.to_f64s().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

pub fn f64s(values: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, Device::Cpu).unwrap()
}

/// Row-major `n × n` matrix times vector, on the host.
pub fn matvec(h: &[f64], n: usize, v: &[f64]) -> Vec<f64> {
    (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j] * v[j]).sum())
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// diag(d) as an operator: each row of V scaled elementwise (one `[K, dim]` result per call).
pub struct Diagonal(pub Tensor);

impl Diagonal {
    pub fn new(d: &[f64]) -> Diagonal {
        Diagonal(Tensor::from_f64s(d, [d.len()], DType::F64, Device::Cpu).unwrap())
    }
}

impl LinearOperator for Diagonal {
    fn dim(&self) -> usize {
        self.0.elem_count()
    }
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
    fn device(&self) -> Device {
        self.0.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        Ok(v.mul(&self.0)?)
    }
}

/// An operator passing every call on to `inner`, recording each batch's number of rows.
pub struct Recorded<'a, O: ?Sized> {
    pub inner: &'a O,
    pub sizes: RefCell<Vec<usize>>,
}

impl<'a, O: LinearOperator + ?Sized> Recorded<'a, O> {
    pub fn new(inner: &'a O) -> Recorded<'a, O> {
        Recorded {
            inner,
            sizes: RefCell::new(Vec::new()),
        }
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for Recorded<'_, O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        self.sizes.borrow_mut().push(v.dims()[0]);
        self.inner.apply_batch(v)
    }
}
