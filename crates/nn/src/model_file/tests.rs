//! The loader on hostile files: special files, lying headers, huge unused tensors, layers the
//! metadata does not describe, values beyond f32, and text that must not reach a terminal raw.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use curvature_tensor::{DType, Device};
use serde_json::{json, Value};

use super::{ModelFile, ModelFileError};
use crate::{Module, NnError};

/// A valid model: widths [2, 3, 1], tanh, MSE, 4 samples; tensors `(name, shape, values)`.
fn model_tensors() -> Vec<(String, Vec<usize>, Vec<f64>)> {
    let ramp = |n: usize, scale: f64| (0..n).map(|i| scale * (i as f64 - 1.5)).collect();
    vec![
        ("0.weight".into(), vec![3, 2], ramp(6, 0.1)),
        ("0.bias".into(), vec![3], ramp(3, 0.2)),
        ("1.weight".into(), vec![1, 3], ramp(3, 0.3)),
        ("1.bias".into(), vec![1], vec![0.5]),
        ("x".into(), vec![4, 2], ramp(8, 0.25)),
        ("y".into(), vec![4, 1], ramp(4, 1.0)),
    ]
}

fn model_metadata() -> Value {
    json!({
        "widths": "[2, 3, 1]",
        "activations": "[\"tanh\"]",
        "final_activation": "None",
        "loss": "mse",
    })
}

/// A safetensors file: the header of `tensors` (all F64, data in order) plus `extra`
/// tensors `(name, dtype, shape, bytes)` declared after them, then the data of `tensors` only;
/// the file is extended (sparsely) to the declared size when `sparse_tail` is true, otherwise
/// the extra tensors' bytes are written as given.
fn file_bytes(
    tensors: &[(String, Vec<usize>, Vec<f64>)],
    metadata: &Value,
    extra: &[(&str, &str, Vec<usize>, usize)],
) -> (Vec<u8>, u64) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), metadata.clone());
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let entry = json!({"dtype": "F64", "shape": shape, "data_offsets": [start, data.len()]});
        header.insert(name.clone(), entry);
    }
    let mut end = data.len();
    for (name, dtype, shape, bytes) in extra {
        let entry = json!({"dtype": dtype, "shape": shape, "data_offsets": [end, end + bytes]});
        header.insert(name.to_string(), entry);
        end += bytes;
    }
    let header = serde_json::to_vec(&Value::Object(header)).expect("JSON");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    let total = (bytes.len() + end - tensors_len(tensors)) as u64;
    (bytes, total)
}

fn tensors_len(tensors: &[(String, Vec<usize>, Vec<f64>)]) -> usize {
    tensors.iter().map(|t| 8 * t.2.len()).sum()
}

/// Writes `bytes` to `path` and extends the file to `total` bytes (a sparse tail of zeros).
fn write_sparse(path: &Path, bytes: &[u8], total: u64) {
    let mut file = std::fs::File::create(path).expect("created");
    file.write_all(bytes).expect("written");
    file.set_len(total).expect("extended");
}

fn load(path: &Path, dtype: DType) -> crate::Result<ModelFile> {
    ModelFile::load(path, dtype, Device::Cpu)
}

fn model_error(result: crate::Result<ModelFile>) -> ModelFileError {
    match result {
        Err(NnError::ModelFile(e)) => e,
        Err(other) => panic!("expected a model file error, got {other}"),
        Ok(_) => panic!("expected an error, the file loaded"),
    }
}

#[test]
fn a_valid_file_loads_with_its_values() {
    let (bytes, total) = file_bytes(&model_tensors(), &model_metadata(), &[]);
    assert_eq!(bytes.len() as u64, total);
    let file = ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu).expect("loads");
    assert_eq!(file.widths, vec![2, 3, 1]);
    assert_eq!(file.x.to_f64s().unwrap(), model_tensors()[4].2);
}

#[test]
fn a_header_length_past_the_end_is_rejected_without_reading_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.safetensors");
    // 16 GiB, sparse: reading it whole would take seconds and more memory than CI has.
    let claimed: u64 = 20 << 30;
    write_sparse(&path, &claimed.to_le_bytes(), 16 << 30);
    let start = Instant::now();
    let e = model_error(load(&path, DType::F64));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        e.to_string(),
        format!(
            "not a valid safetensors file: header length {claimed} runs past the end of the file ({} bytes)",
            16u64 << 30
        )
    );
}

#[test]
fn a_header_over_the_limit_is_rejected_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big_header.safetensors");
    // The length fits the 1 GiB file but is ten times the 100 MB limit.
    let claimed: u64 = (1 << 30) - 8;
    write_sparse(&path, &claimed.to_le_bytes(), 1 << 30);
    let e = model_error(load(&path, DType::F64));
    assert!(
        e.to_string().contains(&format!(
            "header length {claimed} is over the limit of 100000000 bytes"
        )),
        "{e}"
    );
}

#[test]
fn a_huge_unused_tensor_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with_reference.safetensors");
    // 8 GiB of declared reference data after the model, a sparse tail of the file.
    let huge = 1usize << 30;
    let extra = [("reference", "F64", vec![huge], 8 * huge)];
    let (bytes, total) = file_bytes(&model_tensors(), &model_metadata(), &extra);
    write_sparse(&path, &bytes, total);
    let start = Instant::now();
    let file = load(&path, DType::F64).expect("the model loads");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(file.extra_names().collect::<Vec<_>>(), ["reference"]);
}

#[test]
fn a_tensor_too_large_to_allocate_is_an_error_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with_reference.safetensors");
    // 64 GiB of declared reference data (a sparse tail): more than the host can allocate.
    let huge = 1usize << 33;
    let extra = [("reference", "F64", vec![huge], 8 * huge)];
    let (bytes, total) = file_bytes(&model_tensors(), &model_metadata(), &extra);
    write_sparse(&path, &bytes, total);
    let file = load(&path, DType::F64).expect("the model loads");
    match file.tensor("reference") {
        Err(NnError::ModelFile(ModelFileError::TooLarge { name, bytes })) => {
            assert_eq!((name.as_str(), bytes), ("reference", 8 * huge));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn an_unused_tensor_of_another_dtype_is_an_error_only_when_asked_for() {
    let extra = [("labels", "I32", vec![4], 16), ("half", "BF16", vec![2], 4)];
    let (mut bytes, total) = file_bytes(&model_tensors(), &model_metadata(), &extra);
    bytes.resize(total as usize, 0);
    let file = ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu).expect("the model loads");
    match file.tensor("labels") {
        Err(NnError::ModelFile(ModelFileError::WrongDtype { name, dtype })) => {
            assert_eq!((name.as_str(), dtype.as_str()), ("labels", "I32"));
        }
        other => panic!("expected WrongDtype, got {other:?}"),
    }
    assert!(file.tensor("half").is_err());
    assert!(matches!(
        file.tensor("absent"),
        Err(NnError::ModelFile(ModelFileError::MissingTensor(_)))
    ));
}

#[test]
fn a_used_reference_tensor_is_read_once_and_converted() {
    let mut tensors = model_tensors();
    tensors.push(("grad".into(), vec![2], vec![0.25, -4.0]));
    let (bytes, _) = file_bytes(&tensors, &model_metadata(), &[]);
    let file = ModelFile::from_bytes(&bytes, DType::F32, Device::Cpu).expect("loads");
    let first = file.tensor("grad").unwrap();
    assert_eq!(first.dtype(), DType::F32);
    assert_eq!(first.to_f64s().unwrap(), vec![0.25, -4.0]);
    assert!(std::ptr::eq(first, file.tensor("grad").unwrap()));
}

#[test]
fn layers_beyond_the_widths_are_rejected() {
    let mut tensors = model_tensors();
    tensors.push(("2.weight".into(), vec![1, 1], vec![1.0]));
    let (bytes, _) = file_bytes(&tensors, &model_metadata(), &[]);
    let e = model_error(ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu));
    assert_eq!(
        e.to_string(),
        "tensor '2.weight' is a layer tensor, but metadata 'widths' describes 2 layers"
    );
    // Names that only look like layers are reference tensors.
    let mut tensors = model_tensors();
    tensors.push(("2.weights".into(), vec![1], vec![1.0]));
    tensors.push(("a.bias".into(), vec![1], vec![1.0]));
    let (bytes, _) = file_bytes(&tensors, &model_metadata(), &[]);
    assert!(ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu).is_ok());
}

#[test]
fn a_value_beyond_f32_overflows_f32_but_loads_as_f64() {
    let mut tensors = model_tensors();
    tensors[4].2[5] = 1e39;
    let (bytes, _) = file_bytes(&tensors, &model_metadata(), &[]);
    assert!(ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu).is_ok());
    let e = model_error(ModelFile::from_bytes(&bytes, DType::F32, Device::Cpu));
    assert!(
        matches!(e, ModelFileError::OverflowsF32 { index: 5, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("tensor 'x' has the value 1e39 at index 5, which overflows f32"),
        "{text}"
    );
    // The largest f32 itself is fine.
    tensors[4].2[5] = f32::MAX as f64;
    let (bytes, _) = file_bytes(&tensors, &model_metadata(), &[]);
    assert!(ModelFile::from_bytes(&bytes, DType::F32, Device::Cpu).is_ok());
}

#[test]
fn echoed_metadata_is_escaped_and_cut() {
    let mut metadata = model_metadata();
    metadata["loss"] = Value::String("x".repeat(50_000_000));
    let (bytes, _) = file_bytes(&model_tensors(), &metadata, &[]);
    let e = model_error(ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu));
    let text = e.to_string();
    assert!(text.len() < 200, "{} bytes", text.len());
    assert!(
        text.starts_with("metadata 'loss': unknown loss 'xxx"),
        "{text}"
    );
    assert!(text.contains("x…'"), "{text}");

    let mut metadata = model_metadata();
    metadata["activations"] = Value::String("[\"tanh\\u001b[2J\\nrm\"]".into());
    let (bytes, _) = file_bytes(&model_tensors(), &metadata, &[]);
    let e = model_error(ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu));
    let text = e.to_string();
    assert!(
        text.contains("unknown activation 'tanh\\x1b[2J\\nrm'"),
        "{text}"
    );
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

#[test]
fn cross_entropy_labels_are_checked() {
    let mut tensors = model_tensors();
    tensors[1] = ("0.bias".into(), vec![3], vec![0.0; 3]);
    tensors[2] = ("1.weight".into(), vec![2, 3], vec![0.1; 6]);
    tensors[3] = ("1.bias".into(), vec![2], vec![0.0; 2]);
    let mut metadata = model_metadata();
    metadata["widths"] = Value::String("[2, 3, 2]".into());
    metadata["loss"] = Value::String("cross_entropy".into());
    for (labels, expected) in [
        (vec![0.0, 1.0, 1.0, 0.0], None),
        (
            vec![0.0, 1.5, 1.0, 0.0],
            Some("label 1.5 is not a non-negative integer"),
        ),
        (
            vec![0.0, -1.0, 1.0, 0.0],
            Some("label -1 is not a non-negative integer"),
        ),
        (
            vec![0.0, 2.0, 1.0, 0.0],
            Some("label 2 is not below the 2 classes"),
        ),
        (
            vec![0.0, 1e300, 1.0, 0.0],
            Some("label 1e300 is not below the 2 classes"),
        ),
    ] {
        tensors[5] = ("y".into(), vec![4], labels);
        let (bytes, _) = file_bytes(&tensors, &metadata, &[]);
        let result = ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu);
        match expected {
            None => assert!(result.is_ok(), "{:?}", result.err()),
            Some(message) => {
                let text = model_error(result).to_string();
                assert_eq!(text, format!("metadata 'y': {message}"));
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_without_blocking() {
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.safetensors");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let link = dir.path().join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let cases = [
        (fifo, "a FIFO"),
        (dir.path().to_path_buf(), "a directory"),
        ("/dev/zero".into(), "a character device"),
        (link, "a character device"),
    ];
    for (path, kind) in cases {
        // A blocking open of the FIFO would never return: wait on another thread.
        let (send, receive) = std::sync::mpsc::channel();
        let probe = path.clone();
        std::thread::spawn(move || {
            let _ = send.send(
                load(&probe, DType::F64)
                    .map(drop)
                    .map_err(|e| e.to_string()),
            );
        });
        let result = receive
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("loading {} blocked", path.display()));
        let text = result.expect_err("a special file is refused");
        assert!(
            text.ends_with(&format!("it is {kind}, not a regular file")),
            "{text}"
        );
    }
}

/// One entry of every supported type, as the exporter writes it.
fn layer_examples() -> Vec<Value> {
    vec![
        json!({"type": "Linear", "in_features": 3, "out_features": 2, "bias": true}),
        json!({"type": "Conv1d", "in_channels": 2, "out_channels": 4, "kernel_size": [3],
            "stride": [1], "padding": [1], "dilation": [2], "groups": 2, "bias": false}),
        json!({"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": [3, 2],
            "stride": [1, 2], "padding": [1, 0], "dilation": [1, 1], "groups": 1, "bias": true}),
        json!({"type": "BatchNorm1d", "num_features": 4, "eps": 1e-5, "affine": true}),
        json!({"type": "BatchNorm2d", "num_features": 4, "eps": 0.001, "affine": false}),
        json!({"type": "LayerNorm", "normalized_shape": [8], "eps": 1e-6,
            "elementwise_affine": true}),
        json!({"type": "ReLU"}),
        json!({"type": "LeakyReLU", "negative_slope": 0.01}),
        json!({"type": "ELU", "alpha": 0.5}),
        json!({"type": "GELU", "approximate": "tanh"}),
        json!({"type": "SiLU"}),
        json!({"type": "Softplus", "beta": 1.0, "threshold": 20.0}),
        json!({"type": "Tanh"}),
        json!({"type": "Sigmoid"}),
        json!({"type": "Dropout", "p": 0.25}),
        json!({"type": "Flatten", "start_dim": 1, "end_dim": -1}),
        json!({"type": "MaxPool2d", "kernel_size": [2, 2], "stride": [2, 1], "padding": [1, 0]}),
        json!({"type": "AvgPool2d", "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1]}),
        json!({"type": "AdaptiveAvgPool2d", "output_size": [1, 2]}),
    ]
}

#[test]
fn every_layer_type_parses_and_is_written_back_as_read() {
    let examples = layer_examples();
    let types: Vec<&str> = examples
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, crate::LAYER_TYPES);
    for example in examples {
        let spec = crate::LayerSpec::parse(&example).expect("a valid entry");
        assert_eq!(spec.type_name(), example["type"]);
        assert_eq!(spec.to_json(), example, "{}", example["type"]);
    }
}

#[test]
fn layer_shapes_follow_pytorch() {
    let spec = |v: Value| crate::LayerSpec::parse(&v).expect("a valid entry");
    let conv = spec(layer_examples()[2].clone());
    // H: (5 + 2·1 − 3)/1 + 1 = 5; W: (6 + 0 − 2)/2 + 1 = 3.
    assert_eq!(conv.output_dims(&[7, 2, 5, 6]), Ok(vec![7, 4, 5, 3]));
    assert_eq!(
        conv.tensor_shapes(),
        [("weight", vec![4, 2, 3, 2]), ("bias", vec![4])]
    );
    let conv1d = spec(layer_examples()[1].clone());
    // (5 + 2 − 2·2 − 1)/1 + 1 = 3; weight [4, 2/2, 3], no bias.
    assert_eq!(conv1d.output_dims(&[1, 2, 5]), Ok(vec![1, 4, 3]));
    assert_eq!(conv1d.tensor_shapes(), [("weight", vec![4, 1, 3])]);
    let pool = spec(layer_examples()[16].clone());
    // H: (4 + 2 − 2)/2 + 1 = 3; W: (5 − 2)/1 + 1 = 4.
    assert_eq!(pool.output_dims(&[2, 3, 4, 5]), Ok(vec![2, 3, 3, 4]));
    let flatten = spec(layer_examples()[15].clone());
    assert_eq!(flatten.output_dims(&[2, 3, 4, 5]), Ok(vec![2, 60]));
    let norm = spec(layer_examples()[4].clone());
    assert_eq!(
        norm.tensor_shapes(),
        [("running_mean", vec![4]), ("running_var", vec![4])]
    );
    assert!(
        norm.output_dims(&[2, 3, 4, 4]).is_err(),
        "3 channels, not 4"
    );
    assert!(
        spec(json!({"type": "Linear", "in_features": 3, "out_features": 2, "bias": true}))
            .output_dims(&[2, 4])
            .is_err()
    );
}

/// A `layers` file of a Conv2d, ReLU, Flatten and Linear loads as a Sequential with
/// PyTorch's parameter names, and its loss is the one written out by hand.
#[test]
fn a_layers_file_loads_as_a_sequential() {
    let layers = json!([
        {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": [1, 1],
            "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1, "bias": true},
        {"type": "ReLU"},
        {"type": "Flatten", "start_dim": 1, "end_dim": -1},
        {"type": "Linear", "in_features": 2, "out_features": 1, "bias": true},
    ]);
    let tensors = vec![
        ("0.weight".to_string(), vec![1, 1, 1, 1], vec![2.0]),
        ("0.bias".to_string(), vec![1], vec![-1.0]),
        ("3.weight".to_string(), vec![1, 2], vec![0.5, -3.0]),
        ("3.bias".to_string(), vec![1], vec![0.25]),
        (
            "x".to_string(),
            vec![2, 1, 1, 2],
            vec![1.0, 0.25, -1.0, 2.0],
        ),
        ("y".to_string(), vec![2, 1], vec![0.0, 1.0]),
    ];
    let metadata = json!({"layers": layers.to_string(), "loss": "mse"});
    let (bytes, _) = file_bytes(&tensors, &metadata, &[]);
    let file = ModelFile::from_bytes(&bytes, DType::F64, Device::Cpu).expect("loads");
    let names: Vec<String> = file
        .model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    assert!(file.widths.is_empty());
    assert_eq!(file.layers.len(), 4);
    // h = relu(2x − 1): sample 1 (1, 0.25) → (1, 0); sample 2 (−1, 2) → (0, 3).
    // out = 0.5·h₁ − 3·h₂ + 0.25: 0.75 and −8.75; mse = (0.75² + 9.75²)/2.
    let tape = curvature_tape::Tape::new();
    let theta = tape.leaf(file.model.flat_params().expect("θ"));
    let loss = file.loss_of(&theta).expect("the loss");
    let expected = (0.75f64.powi(2) + 9.75f64.powi(2)) / 2.0;
    let got = loss.value().to_scalar().expect("a scalar");
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
}
