//! Helpers shared by the tensor crate's integration tests: the devices every property runs on.
#![allow(dead_code)]

mod devices;
pub mod reference;

#[allow(unused_imports)] // not every test binary has device tests
pub use devices::{cuda, Outcome};
