//! A corpus of malformed model files, generated here: truncations, header lengths that lie,
//! headers that are not the JSON they should be, unsupported dtypes, shapes that disagree with
//! the data or overflow, data offsets out of range, bad metadata, bad labels, resource bombs,
//! layers beyond the widths, non-finite values and special files. `curvature analyze` must
//! refuse every one with exit code 2 and one line `error: ...` of at most 300 bytes naming the
//! problem, leave nothing in the output directory, and finish within 20 s under a 4 GiB
//! address-space limit (see `common::run_bounded`).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::{check_rejected, ModelFile};
use serde_json::{json, Map, Value};

/// One tensor of a file spelled out: its header entry's parts and its bytes.
#[derive(Clone)]
struct Tensor {
    name: String,
    dtype: String,
    shape: Value,
    data: Vec<u8>,
}

/// A safetensors file spelled out, to be spoiled: metadata, tensors (their data in this order).
#[derive(Clone)]
struct Spec {
    metadata: Map<String, Value>,
    tensors: Vec<Tensor>,
}

impl Spec {
    /// A golden model file's model and data tensors, as F64.
    fn golden(name: &str) -> Spec {
        let file = ModelFile::golden_named(name);
        let metadata = file
            .metadata
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let tensors = file
            .tensors
            .into_iter()
            .map(|(name, shape, values)| Tensor {
                name,
                dtype: "F64".into(),
                shape: json!(shape),
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            })
            .collect();
        Spec { metadata, tensors }
    }

    fn mse() -> Spec {
        Spec::golden("mlp_4_6_5_3_tanh_sigmoid_mse")
    }

    fn xent() -> Spec {
        Spec::golden("mlp_5_8_4_tanh_xent")
    }

    /// The header: the metadata and each tensor with contiguous data offsets.
    fn header(&self) -> Map<String, Value> {
        let mut header = Map::new();
        header.insert("__metadata__".into(), Value::Object(self.metadata.clone()));
        let mut offset = 0;
        for t in &self.tensors {
            let end = offset + t.data.len();
            let entry = json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]});
            header.insert(t.name.clone(), entry);
            offset = end;
        }
        header
    }

    fn data(&self) -> Vec<u8> {
        self.tensors.iter().flat_map(|t| t.data.clone()).collect()
    }

    fn bytes(&self) -> Vec<u8> {
        encode(&Value::Object(self.header()), &self.data())
    }

    fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .expect("tensor present")
    }

    /// This file with `edit` applied.
    fn with(&self, edit: impl FnOnce(&mut Spec)) -> Spec {
        let mut spec = self.clone();
        edit(&mut spec);
        spec
    }

    /// This file's bytes with the header entry of `name` edited.
    fn with_entry(&self, name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut header = self.header();
        edit(header[name].as_object_mut().expect("an entry"));
        encode(&Value::Object(header), &self.data())
    }

    fn meta(&self, key: &str, value: &str) -> Vec<u8> {
        self.with(|s| {
            s.metadata.insert(key.into(), Value::String(value.into()));
        })
        .bytes()
    }

    fn without_meta(&self, key: &str) -> Vec<u8> {
        self.with(|s| {
            s.metadata.remove(key);
        })
        .bytes()
    }

    /// This file with `values` (as F64) replacing tensor `name`'s.
    fn values(&self, name: &str, values: &[f64]) -> Vec<u8> {
        self.with(|s| s.tensor(name).data = values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .bytes()
    }
}

/// A safetensors file: the header's length, the header, the data.
fn encode(header: &Value, data: &[u8]) -> Vec<u8> {
    encode_text(&serde_json::to_vec(header).expect("JSON"), data)
}

fn encode_text(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    bytes
}

/// `bytes` with the header length replaced by `n`.
fn with_length(bytes: &[u8], n: u64) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}

/// Where a case's input comes from.
enum Input {
    Bytes(Vec<u8>),
    /// These bytes, then zeros (a sparse tail) up to this many bytes.
    Sparse(Vec<u8>, u64),
    Fifo,
    Directory,
    /// An existing path, used as is.
    Path(PathBuf),
    /// A symbolic link to this path.
    Symlink(PathBuf),
}

struct Case {
    name: String,
    input: Input,
    args: Vec<&'static str>,
    /// A part of the error line that names the problem.
    expected: String,
}

fn case(name: impl Into<String>, input: Input, expected: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        input,
        args: vec![],
        expected: expected.into(),
    }
}

fn bytes(name: impl Into<String>, bytes: Vec<u8>, expected: impl Into<String>) -> Case {
    case(name, Input::Bytes(bytes), expected)
}

const INVALID: &str = "not a valid safetensors file";

fn truncations() -> Vec<Case> {
    let b = Spec::mse().bytes();
    let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize;
    let len = b.len();
    let cuts = [
        1,
        4,
        7,
        8,
        9,
        8 + n / 2,
        8 + n - 1,
        8 + n,
        8 + n + 1,
        8 + n + 7,
        len / 2,
        len - 9,
        len - 8,
        len - 1,
    ];
    cuts.into_iter()
        .map(|cut| bytes(format!("truncated at {cut}"), b[..cut].to_vec(), INVALID))
        .collect()
}

fn header_lengths() -> Vec<Case> {
    let b = Spec::mse().bytes();
    let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let len = b.len() as u64;
    let mut cases: Vec<Case> = [0, 1, n - 1, n + 1, n + 8, len - 8]
        .into_iter()
        .map(|lie| {
            bytes(
                format!("header length {lie} for {n}"),
                with_length(&b, lie),
                INVALID,
            )
        })
        .collect();
    for lie in [len - 7, 1 << 32, 1 << 63, u64::MAX] {
        let name = format!("header length {lie} past the end");
        cases.push(bytes(
            name,
            with_length(&b, lie),
            "runs past the end of the file",
        ));
    }
    // Sparse files whose length field fits them but is over the 100 MB limit.
    for (size, lie) in [(200_000_000u64, 100_000_001u64), (1 << 30, (1 << 30) - 8)] {
        let name = format!("header length {lie} in a {size}-byte file");
        let input = Input::Sparse(lie.to_le_bytes().to_vec(), size);
        cases.push(case(name, input, "is over the limit of 100000000 bytes"));
    }
    // A 1 GiB sparse file claiming a 1 TiB header.
    let input = Input::Sparse((1u64 << 40).to_le_bytes().to_vec(), 1 << 30);
    cases.push(case(
        "1 GiB sparse file, 1 TiB header",
        input,
        "runs past the end",
    ));
    cases
}

fn headers() -> Vec<Case> {
    let data = Spec::mse().data();
    let text = |name: &str, header: &[u8]| bytes(name, encode_text(header, &data), INVALID);
    let mut nested = "[".repeat(100_000);
    nested.push_str(&"]".repeat(100_000));
    let mut deep_map = "{\"a\":".repeat(100_000);
    deep_map.push_str(&"}".repeat(100_000));
    let header = serde_json::to_string(&Spec::mse().header()).expect("JSON");
    let bias = header.find("\"0.bias\"").expect("0.bias");
    let duplicated = format!(
        "{}\"0.bias\":{{\"dtype\":\"F64\",\"shape\":[6],\"data_offsets\":[0,48]}},{}",
        &header[..bias],
        &header[bias..]
    );
    let twice_loss = header.replacen(
        "\"loss\":\"mse\"",
        "\"loss\":\"cross_entropy\",\"loss\":\"mse\"",
        1,
    );
    assert_ne!(twice_loss, header);
    let mut cases = vec![
        text("header not JSON", b"not json at all"),
        text("header maps nested 100000 deep", deep_map.as_bytes()),
        bytes(
            "tensor named twice",
            encode_text(duplicated.as_bytes(), &data),
            "bad header: '0.bias' appears twice",
        ),
        bytes(
            "metadata key twice",
            encode_text(twice_loss.as_bytes(), &data),
            "bad header: 'loss' appears twice",
        ),
        text("header a list", b"[]"),
        text("header null", b"null"),
        text("header a number", b"123"),
        text("header a string", b"\"header\""),
        text("header invalid UTF-8", b"{\"x\": \xff\xfe}"),
        text("header with NUL bytes", b"{\0\0\0}"),
        text("header nested 100000 deep", nested.as_bytes()),
        text("tensor entry a number", b"{\"x\": 5}"),
        text(
            "dtype a number",
            b"{\"x\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 8]}}",
        ),
        text(
            "metadata not strings",
            b"{\"__metadata__\": {\"widths\": [4, 6, 5, 3]}}",
        ),
        text("metadata a string", b"{\"__metadata__\": \"widths\"}"),
    ];
    // A valid header of 99 MB: mostly white space, no tensors, no metadata.
    let mut blank = b"{}".to_vec();
    blank.resize(99_000_000, b' ');
    cases.push(bytes(
        "99 MB header of white space",
        encode_text(&blank, &[]),
        "metadata 'widths': missing",
    ));
    cases
}

fn dtypes() -> Vec<Case> {
    let spec = Spec::mse();
    let x_elements = spec.clone().tensor("x").data.len() / 8;
    let mut cases: Vec<Case> = [
        ("I32", 4),
        ("BF16", 2),
        ("F16", 2),
        ("U8", 1),
        ("I64", 8),
        ("BOOL", 1),
    ]
    .into_iter()
    .map(|(dtype, width)| {
        let file = spec.with(|s| {
            let x = s.tensor("x");
            x.dtype = dtype.into();
            x.data = vec![0; x_elements * width];
        });
        let expected = format!("tensor 'x' has dtype {dtype}, expected F64 or F32");
        bytes(format!("x as {dtype}"), file.bytes(), expected)
    })
    .collect();
    let half_weight = spec.with(|s| {
        let w = s.tensor("1.weight");
        w.dtype = "F16".into();
        w.data.truncate(w.data.len() / 4);
    });
    cases.push(bytes(
        "weight as F16",
        half_weight.bytes(),
        "tensor '1.weight' has dtype F16",
    ));
    for dtype in ["F128", "f64", ""] {
        let file = spec.with_entry("x", |e| {
            e.insert("dtype".into(), json!(dtype));
        });
        cases.push(bytes(format!("dtype '{dtype}'"), file, INVALID));
    }
    cases
}

fn shapes() -> Vec<Case> {
    let spec = Spec::mse();
    let set = |name: &str, shape: Value| {
        spec.with_entry(name, |e| {
            e.insert("shape".into(), shape);
        })
    };
    let n = spec.clone().tensor("x").shape[0].as_u64().expect("n");
    let many_ones: Vec<u64> = std::iter::repeat_n(1, 100_000).chain([6, 4]).collect();
    vec![
        bytes(
            "x shape disagrees with its data",
            set("x", json!([n, 8])),
            INVALID,
        ),
        bytes(
            "shape overflows usize",
            set("x", json!([1u64 << 32, 1u64 << 32, 1u64 << 32])),
            INVALID,
        ),
        bytes(
            "shape usize::MAX by 2",
            set("x", json!([u64::MAX, 2])),
            INVALID,
        ),
        bytes("shape negative", set("x", json!([-1, 4])), INVALID),
        bytes("shape a string", set("x", json!("[5, 4]")), INVALID),
        bytes("shape scalar for a bias", set("0.bias", json!([])), INVALID),
        bytes(
            "weight transposed",
            set("0.weight", json!([4, 6])),
            "tensor '0.weight' has shape [4, 6], expected [6, 4]",
        ),
        bytes(
            "bias as a column",
            set("0.bias", json!([6, 1])),
            "tensor '0.bias' has shape [6, 1], expected [6]",
        ),
        bytes(
            "x flat",
            set("x", json!([n * 4])),
            format!("tensor 'x' has shape [{}], expected", n * 4),
        ),
        bytes(
            "x rank 3",
            set("x", json!([n, 2, 2])),
            "tensor 'x' has shape",
        ),
        bytes("y flat", set("y", json!([n * 3])), "tensor 'y' has shape"),
        bytes(
            "weight of rank 100002",
            set("0.weight", json!(many_ones)),
            "tensor '0.weight' has shape [1, 1, 1",
        ),
    ]
}

fn offsets() -> Vec<Case> {
    let spec = Spec::mse();
    let set = |name: &str, offsets: Value| {
        spec.with_entry(name, |e| {
            e.insert("data_offsets".into(), offsets);
        })
    };
    let of = |name: &str| -> (u64, u64) {
        let entry = &spec.header()[name]["data_offsets"];
        (
            entry[0].as_u64().expect("start"),
            entry[1].as_u64().expect("end"),
        )
    };
    let (x0, x1) = of("x");
    let (b0, b1) = of("0.bias");
    let mut trailing = spec.bytes();
    trailing.extend([0u8; 8]);
    let shifted = {
        let mut header = spec.header();
        for (_, entry) in header.iter_mut().filter(|(k, _)| *k != "__metadata__") {
            let o = &mut entry["data_offsets"];
            *o = json!([
                o[0].as_u64().expect("start") + 8,
                o[1].as_u64().expect("end") + 8
            ]);
        }
        let mut data = vec![0u8; 8];
        data.extend(spec.data());
        encode(&Value::Object(header), &data)
    };
    vec![
        bytes("x past the data", set("x", json!([x0, x1 + 8])), INVALID),
        bytes("x overlapping 0.bias", set("x", json!([b0, b1])), INVALID),
        bytes("x reversed", set("x", json!([x1, x0])), INVALID),
        bytes("x offsets huge", set("x", json!([x0, u64::MAX])), INVALID),
        bytes("x offsets fractional", set("x", json!([0.5, 8])), INVALID),
        bytes("x offsets three", set("x", json!([x0, x1, x1])), INVALID),
        bytes("x offsets negative", set("x", json!([-8, x1])), INVALID),
        bytes("data not starting at 0", shifted, INVALID),
        bytes(
            "bytes after the data",
            trailing,
            "the header's tensors take",
        ),
    ]
}

fn metadata() -> Vec<Case> {
    let spec = Spec::mse();
    let long = "L".repeat(1 << 20);
    let ones = format!("[{}]", vec!["1"; 1_000_000].join(","));
    let widths = |value: &str, expected: &str| {
        bytes(
            format!("widths {:.40}", value),
            spec.meta("widths", value),
            expected,
        )
    };
    vec![
        widths("4", "metadata 'widths': cannot parse \"4\""),
        widths("{}", "metadata 'widths': cannot parse"),
        widths("[-4, 6, 5, 3]", "metadata 'widths': cannot parse"),
        widths("[4, 6, 5, 1e30]", "metadata 'widths': cannot parse"),
        widths(
            "[4, 6, 5, 18446744073709551616]",
            "metadata 'widths': cannot parse",
        ),
        widths("[4.5, 6, 5, 3]", "metadata 'widths': cannot parse"),
        widths("[\"4\", 6, 5, 3]", "metadata 'widths': cannot parse"),
        widths(
            "[4, 0, 5, 3]",
            "metadata 'widths': [4, 0, 5, 3] needs at least 2 positive widths",
        ),
        widths("[4]", "needs at least 2 positive widths"),
        widths("[]", "needs at least 2 positive widths"),
        widths(
            &ones,
            "metadata 'activations': 2 entries for 999998 hidden layers",
        ),
        bytes(
            "widths missing",
            spec.without_meta("widths"),
            "metadata 'widths': missing",
        ),
        bytes(
            "activations too few",
            spec.meta("activations", "[\"tanh\"]"),
            "metadata 'activations': 1 entries for 2 hidden layers",
        ),
        bytes(
            "activations not a list",
            spec.meta("activations", "tanh"),
            "metadata 'activations': cannot parse",
        ),
        bytes(
            "activations numbers",
            spec.meta("activations", "[1, 2]"),
            "metadata 'activations': cannot parse",
        ),
        bytes(
            "activation unknown",
            spec.meta("activations", "[\"tanh\", \"relu\"]"),
            "unknown activation 'relu'",
        ),
        bytes(
            "activation 1 MB",
            spec.meta("activations", &format!("[\"tanh\", \"{long}\"]")),
            "unknown activation 'LLL",
        ),
        bytes(
            "activation with escapes",
            spec.meta("activations", "[\"tanh\", \"\\u001b[31m\\n\"]"),
            "unknown activation '\\x1b[31m\\n'",
        ),
        bytes(
            "activations missing",
            spec.without_meta("activations"),
            "metadata 'activations': missing",
        ),
        bytes(
            "loss missing",
            spec.without_meta("loss"),
            "metadata 'loss': missing",
        ),
        bytes(
            "loss unknown",
            spec.meta("loss", "hinge"),
            "unknown loss 'hinge'",
        ),
        bytes("loss 1 MB", spec.meta("loss", &long), "unknown loss 'LLL"),
        bytes(
            "loss with a bell",
            spec.meta("loss", "mse\x07"),
            "unknown loss 'mse\\x07'",
        ),
        bytes(
            "final activation unknown",
            spec.meta("final_activation", "softmax"),
            "unknown activation 'softmax'",
        ),
        bytes(
            "final activation 1 MB",
            spec.meta("final_activation", &long),
            "metadata 'final_activation': unknown activation 'LLL",
        ),
    ]
}

fn labels() -> Vec<Case> {
    let spec = Spec::xent();
    let n = spec.clone().tensor("y").data.len() / 8;
    let with_label = |label: f64| {
        let mut labels = vec![0.0; n];
        labels[n - 1] = label;
        spec.values("y", &labels)
    };
    vec![
        bytes(
            "label = classes",
            with_label(4.0),
            "label 4 is not below the 4 classes",
        ),
        bytes(
            "label negative",
            with_label(-1.0),
            "label -1 is not a non-negative integer",
        ),
        bytes(
            "label fractional",
            with_label(0.5),
            "label 0.5 is not a non-negative integer",
        ),
        bytes(
            "label 1e300",
            with_label(1e300),
            "label 1e300 is not below the 4 classes",
        ),
        bytes(
            "label NaN",
            with_label(f64::NAN),
            format!("tensor 'y' contains a non-finite value at index {}", n - 1),
        ),
        bytes(
            "labels two columns",
            spec.with_entry("y", |e| {
                e.insert("shape".into(), json!([n / 2, 2]));
            }),
            format!("tensor 'y' has shape [{}, 2], expected [{n}]", n / 2),
        ),
    ]
}

fn bombs() -> Vec<Case> {
    let spec = Spec::mse();
    let mut cases = vec![
        bytes(
            "widths [1, 1e12, 1]",
            spec.with(|s| {
                s.metadata
                    .insert("widths".into(), json!("[1, 1000000000000, 1]"));
                s.metadata.insert("activations".into(), json!("[\"tanh\"]"));
            })
            .bytes(),
            "tensor '0.weight' has shape [6, 4], expected [1000000000000, 1]",
        ),
        bytes(
            "widths [4, 1e12, 1e12, 3]",
            spec.meta("widths", "[4, 1000000000000, 1000000000000, 3]"),
            "tensor '0.weight' has shape [6, 4], expected [1000000000000, 4]",
        ),
        bytes(
            "widths [4, 2^62, 2^62, 3]",
            spec.meta("widths", "[4, 4611686018427387904, 4611686018427387904, 3]"),
            "tensor '0.weight' has shape [6, 4], expected [4611686018427387904, 4]",
        ),
    ];
    // x and y of 2³¹ samples (112 GiB, a sparse tail): a consistent header whose data does not
    // fit in memory.
    let samples = 1u64 << 31;
    let model = spec.with(|s| s.tensors.retain(|t| t.name != "x" && t.name != "y"));
    let mut header = model.header();
    let mut offset = model.data().len() as u64;
    for (name, width) in [("x", 4), ("y", 3)] {
        let end = offset + samples * width * 8;
        header.insert(
            name.into(),
            json!({"dtype": "F64", "shape": [samples, width], "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let head = encode(&Value::Object(header), &model.data());
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let input = Input::Sparse(head, 8 + n + offset);
    cases.push(case(
        "x and y of 2^31 samples",
        input,
        "tensor 'x' needs 68719476736 bytes as f64",
    ));
    cases
}

fn layers_and_values() -> Vec<Case> {
    let spec = Spec::mse();
    let extra = |name: &str, shape: Value, len: usize| {
        spec.with(|s| {
            s.tensors.push(Tensor {
                name: name.into(),
                dtype: "F64".into(),
                shape,
                data: vec![0; 8 * len],
            })
        })
        .bytes()
    };
    let weights = |name: &str, index: usize, value: f64| {
        let mut values: Vec<f64> = spec
            .clone()
            .tensor(name)
            .data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        values[index] = value;
        spec.values(name, &values)
    };
    let mut overflow = bytes(
        "weight beyond f32",
        weights("2.weight", 3, 1e39),
        "tensor '2.weight' has the value 1e39 at index 3, which overflows f32",
    );
    overflow.args = vec!["--dtype", "f32"];
    vec![
        bytes(
            "layer 3 beyond widths",
            extra("3.weight", json!([3, 3]), 9),
            "tensor '3.weight' is a layer tensor, but metadata 'widths' describes 3 layers",
        ),
        bytes(
            "bias 10 beyond widths",
            extra("10.bias", json!([2]), 2),
            "tensor '10.bias' is a layer tensor",
        ),
        bytes(
            "layer 007",
            extra("007.weight", json!([1]), 1),
            "tensor '007.weight' is a layer tensor",
        ),
        bytes(
            "NaN weight",
            weights("1.weight", 7, f64::NAN),
            "tensor '1.weight' contains a non-finite value at index 7",
        ),
        bytes(
            "infinite x",
            weights("x", 2, f64::INFINITY),
            "tensor 'x' contains a non-finite value at index 2",
        ),
        bytes(
            "-infinite bias",
            weights("0.bias", 5, f64::NEG_INFINITY),
            "tensor '0.bias' contains a non-finite value at index 5",
        ),
        overflow,
    ]
}

fn special_files() -> Vec<Case> {
    vec![
        case("FIFO", Input::Fifo, "it is a FIFO, not a regular file"),
        case(
            "directory",
            Input::Directory,
            "it is a directory, not a regular file",
        ),
        case(
            "/dev/zero",
            Input::Path("/dev/zero".into()),
            "it is a character device, not a regular file",
        ),
        case(
            "/dev/null",
            Input::Path("/dev/null".into()),
            "it is a character device, not a regular file",
        ),
        case(
            "symlink to /dev/zero",
            Input::Symlink("/dev/zero".into()),
            "it is a character device",
        ),
        case(
            "broken symlink",
            Input::Symlink("/nonexistent/model".into()),
            "No such file or directory",
        ),
        case(
            "missing file",
            Input::Path("/nonexistent/model.safetensors".into()),
            "No such file or directory",
        ),
        bytes(
            "empty file",
            vec![],
            "the file has 0 bytes, too few for the 8-byte header length",
        ),
    ]
}

/// Writes the case's input under `dir` and returns the path to give `analyze`.
fn materialise(input: &Input, dir: &Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    match input {
        Input::Bytes(bytes) => std::fs::write(&path, bytes).expect("written"),
        Input::Sparse(head, len) => {
            std::fs::write(&path, head).expect("written");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_len(*len).expect("extended");
        }
        Input::Fifo => {
            let status = std::process::Command::new("mkfifo").arg(&path).status();
            assert!(status.expect("mkfifo").success());
        }
        Input::Directory => std::fs::create_dir(&path).expect("dir"),
        Input::Path(existing) => return existing.clone(),
        Input::Symlink(target) => std::os::unix::fs::symlink(target, &path).expect("symlink"),
    }
    path
}

#[test]
fn analyze_refuses_every_malformed_file_cleanly_cpu() {
    let cases: Vec<Case> = [
        truncations(),
        header_lengths(),
        headers(),
        dtypes(),
        shapes(),
        offsets(),
        metadata(),
        labels(),
        bombs(),
        layers_and_values(),
        special_files(),
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
