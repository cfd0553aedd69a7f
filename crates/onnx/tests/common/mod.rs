//! Helpers shared by the ONNX crate's integration tests: the devices every property runs on
//! (`device_tests!`) and hand-built graphs run through the lowering.
#![allow(dead_code)]

#[path = "../../../tensor/tests/common/devices.rs"]
mod devices;
#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};

pub mod graph;
