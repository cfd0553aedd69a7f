//! Helpers shared by the integration tests: a seeded RNG, dtype plumbing, buffer round trips.
#![allow(dead_code)]

use curvature_kernels::{Dtype, GpuBuffer, GpuDevice, Kernel, KernelArg, Launch};

/// SplitMix64: small, seeded, independent of the code under test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// f32 / f64 as the tests need them.
pub trait Elem: Copy + std::fmt::Debug + PartialEq {
    const DT: &'static str;
    const DTYPE: Dtype;
    /// Relative tolerance for comparisons against an f64 reference.
    const TOL: f64;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn arg(self) -> KernelArg<'static>;
    fn to_bytes(v: &[Self]) -> Vec<u8>;
    fn from_bytes(b: &[u8]) -> Vec<Self>;
}

impl Elem for f32 {
    const DT: &'static str = "f32";
    const DTYPE: Dtype = Dtype::F32;
    const TOL: f64 = 2e-5;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn arg(self) -> KernelArg<'static> {
        KernelArg::F32(self)
    }
    fn to_bytes(v: &[Self]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }
    fn from_bytes(b: &[u8]) -> Vec<Self> {
        b.chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

impl Elem for f64 {
    const DT: &'static str = "f64";
    const DTYPE: Dtype = Dtype::F64;
    const TOL: f64 = 1e-12;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn arg(self) -> KernelArg<'static> {
        KernelArg::F64(self)
    }
    fn to_bytes(v: &[Self]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }
    fn from_bytes(b: &[u8]) -> Vec<Self> {
        b.chunks_exact(8)
            .map(|c| f64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }
}

pub fn emulator() -> GpuDevice {
    GpuDevice::emulated().expect("the emulator feature is on")
}

pub fn upload<T: Elem>(dev: &GpuDevice, v: &[f64]) -> GpuBuffer {
    let t: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    dev.upload(&T::to_bytes(&t)).expect("upload")
}

pub fn upload_i64(dev: &GpuDevice, v: &[i64]) -> GpuBuffer {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    dev.upload(&b).expect("upload")
}

pub fn zeros<T: Elem>(dev: &GpuDevice, n: usize) -> GpuBuffer {
    dev.alloc_zeros(n * std::mem::size_of::<T>())
        .expect("alloc")
}

pub fn download<T: Elem>(dev: &GpuDevice, buf: &GpuBuffer) -> Vec<f64> {
    let mut bytes = vec![0u8; buf.len_bytes()];
    dev.download(buf, &mut bytes).expect("download");
    T::from_bytes(&bytes).into_iter().map(T::to_f64).collect()
}

/// Values rounded through T, so references see exactly the device's inputs.
pub fn rounded<T: Elem>(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| T::from_f64(x).to_f64()).collect()
}

/// Asserts |got − want| ≤ tol·max(1, |want|) elementwise (NaN must match NaN).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        let err = (g - w).abs();
        assert!(
            err <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w} (error {err:e}, tolerance {tol:e})"
        );
    }
}

/// Grid of a 1D grid-stride launch over n elements with 256-thread blocks.
pub fn grid_1d(n: usize) -> (u32, u32, u32) {
    (n.div_ceil(256).clamp(1, 64) as u32, 1, 1)
}

pub fn launch(
    dev: &GpuDevice,
    kernel: Kernel,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    args: &[KernelArg],
) {
    dev.launch(&Launch::new(kernel, (grid, block)).args(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
}

/// The real GPU for a `_cuda` test variant, or None (with a printed reason) when there is none;
/// with `CURVATURE_REQUIRE_GPU=1` a missing GPU fails the test instead.
pub fn cuda_device(test: &str) -> Option<GpuDevice> {
    match GpuDevice::cuda(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            if std::env::var("CURVATURE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test}: CURVATURE_REQUIRE_GPU=1 but no GPU: {e}");
            }
            eprintln!("skipping {test}: no GPU ({e})");
            None
        }
    }
}

/// Emits `{name}_emulated` (with the `emulator` feature) and `{name}_cuda` (skips without a
/// GPU) tests running `body(&GpuDevice)`.
#[macro_export]
macro_rules! device_tests {
    ($($name:ident => $body:expr;)*) => {
        mod emulated {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[cfg(feature = "emulator")]
                #[test]
                fn $name() {
                    let dev = $crate::common::emulator();
                    ($body)(&dev);
                }
            )*
        }
        mod cuda {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    if let Some(dev) = $crate::common::cuda_device(stringify!($name)) {
                        ($body)(&dev);
                    }
                }
            )*
        }
    };
}
