//! A corpus of malformed model files, generated here: truncations, header lengths that lie,
//! headers that are not the JSON they should be, unsupported dtypes, shapes that disagree with
//! the data or overflow, data offsets out of range, bad metadata, bad labels, resource bombs,
//! layers beyond the widths, malformed `layers` lists, non-finite values and special files.
//! `curvature analyze` must refuse every one with exit code 2 and one line `error: ...` of at
//! most 300 bytes naming the problem, leave nothing in the output directory, and finish within
//! 20 s under a 4 GiB address-space limit (see `common::run_bounded`).

#![cfg(unix)]

mod common;
mod corpus;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::check_rejected;
use corpus::spec::{encode, Spec};
use corpus::{format, layers, materialise, model, Case, Input};
use serde_json::{json, Value};

#[test]
fn analyze_refuses_every_malformed_file_cleanly_cpu() {
    let cases: Vec<Case> = [
        format::truncations(),
        format::header_lengths(),
        format::headers(),
        format::dtypes(),
        format::shapes(),
        format::offsets(),
        model::metadata(),
        model::labels(),
        model::bombs(),
        model::layers_and_values(),
        model::special_files(),
        layers::layer_lists(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let inputs = tempfile::tempdir().expect("temp dir");
        let outputs = tempfile::tempdir().expect("temp dir");
        let model = materialise(&case.input, inputs.path());
        let checked = catch_unwind(AssertUnwindSafe(|| {
            check_rejected(&model, outputs.path(), &case.args, &case.expected)
        }));
        match checked {
            Ok(line) => eprintln!("{:<40} {}", case.name, line.trim_end()),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A valid model with 8 GiB of reference data it does not use (a sparse tail): analysed within
/// the 4 GiB address-space limit, the unused tensor never read.
#[test]
fn analyze_reads_only_the_tensors_it_uses_cpu() {
    let spec = Spec::mse();
    let mut header = spec.header();
    let start = spec.data().len() as u64;
    let elements = 1u64 << 30;
    let end = start + 8 * elements;
    header.insert(
        "reference".into(),
        json!({"dtype": "F64", "shape": [elements], "data_offsets": [start, end]}),
    );
    let head = encode(&Value::Object(header), &spec.data());
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let inputs = tempfile::tempdir().expect("temp dir");
    let model = materialise(&Input::Sparse(head, 8 + n + end), inputs.path());
    let out = inputs.path().join("results.safetensors");
    let mut command = common::curvature(&["analyze"]);
    command
        .arg(&model)
        .args(["--device", "cpu", "--out"])
        .arg(&out);
    let output = common::run_bounded(&mut command);
    assert!(output.status.success(), "{output:?}");
    assert!(out.exists());
}
