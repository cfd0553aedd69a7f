//! The devices every test property runs on, shared by the tensor, tape and hessian tests (the
//! latter two include this file by path): `device_tests!` stamps out a `cpu::…` and a `cuda::…`
//! test for each body, and the CUDA instances run on a real GPU when present, else on the
//! emulated GPU.

use curvature_tensor::Device;

/// The device of the `cuda` test instances: the real GPU `cuda:0` when present, else the emulated
/// GPU (ARCHITECTURE.md, "The emulated GPU"); with `CURVATURE_REQUIRE_GPU=1` a missing GPU fails
/// the test instead.
pub fn cuda() -> Device {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    eprintln!("running on {}", device.description());
    device
}

/// What a test body returns: nothing, or a `Result` whose error fails the test.
pub trait Outcome {
    fn finish(self);
}

impl Outcome for () {
    fn finish(self) {}
}

impl<E: std::fmt::Display> Outcome for std::result::Result<(), E> {
    fn finish(self) {
        if let Err(e) = self {
            panic!("{e}");
        }
    }
}

/// Emits one `#[test]` per named body `fn(Device)` and device: `cpu::{name}` runs
/// `name(Device::Cpu)` and `cuda::{name}` runs `name(common::cuda())`.
#[macro_export]
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(
                #[test]
                fn $name() {
                    $crate::common::Outcome::finish(super::$name(curvature_tensor::Device::Cpu));
                }
            )*
        }
        mod cuda {
            $(
                #[test]
                fn $name() {
                    $crate::common::Outcome::finish(super::$name($crate::common::cuda()));
                }
            )*
        }
    };
}
