//! A corpus of ONNX files the importer must refuse: every prefix of a valid model, wrong wire
//! types and lying lengths, deterministic random byte changes, and the well-formed but invalid
//! graphs `scripts/make_onnx_parse_fixtures.py` wrote to `tests/data/parse/hostile/` (cycles,
//! undefined values, data that disagrees with its dims, huge dims, unsupported ops and
//! domains, subgraphs, external data outside the folder or past the end of its file). Each is
//! an `Err` whose message is one bounded line, never a panic; huge declared sizes are refused
//! before anything is allocated for them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use curvature_onnx::{parse_graph, OnnxError, OnnxModel, OnnxOptions};
use curvature_tensor::{DType, Device};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse")
}

/// The longest error line any case may produce.
const MAX_LINE: usize = 400;

/// Parses `bytes` (external data relative to `dir`) inside `catch_unwind`: the error message,
/// or `None` when the bytes are a valid graph; a panic or a multi-line message fails.
fn outcome(bytes: &[u8], dir: &Path, case: &str) -> Option<String> {
    let result = catch_unwind(AssertUnwindSafe(|| parse_graph(bytes, Some(dir))))
        .unwrap_or_else(|_| panic!("{case}: the parser panicked"));
    let err = result.err()?;
    let line = err.to_string();
    assert!(
        !line.contains('\n') && !line.contains('\r'),
        "{case}: {line:?}"
    );
    assert!(
        !line.is_empty() && line.len() <= MAX_LINE,
        "{case}: {line:?}"
    );
    Some(line)
}

fn valid_model() -> Vec<u8> {
    std::fs::read(data_dir().join("mlp.onnx")).expect("mlp.onnx")
}

#[test]
fn every_prefix_of_a_valid_model_is_refused() {
    let bytes = valid_model();
    let dir = data_dir();
    let whole = parse_graph(&bytes, Some(&dir)).expect("mlp.onnx is valid");
    let mut kinds = std::collections::BTreeSet::new();
    let mut complete = Vec::new();
    for n in 0..bytes.len() {
        match outcome(&bytes[..n], &dir, &format!("prefix {n}")) {
            Some(line) => {
                kinds.insert(line.split(':').next().unwrap_or_default().to_string());
            }
            None => complete.push(n),
        }
    }
    // Cuts inside a field are malformed; cuts between top-level fields leave a model without
    // its graph or opset.
    assert!(kinds.contains("malformed ONNX file"), "{kinds:?}");
    assert!(kinds.contains("invalid ONNX graph"), "{kinds:?}");
    // The one prefix that parses ends where the model's last field, its import of a second
    // (unused) domain, begins; it is the whole graph.
    assert_eq!(complete.len(), 1, "prefixes accepted: {complete:?}");
    let cut = &bytes[..complete[0]];
    assert_eq!(parse_graph(cut, Some(&dir)).unwrap(), whole);
    assert!(bytes[complete[0]..]
        .windows(13)
        .any(|w| w == b"com.microsoft"));
}

#[test]
fn wrong_wire_types_and_lying_lengths_are_malformed() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "graph as a varint",
            &[0x38, 0x01],
            "ModelProto field 7 has wire type 0, expected 2",
        ),
        (
            "opset as fixed32",
            &[0x45, 0, 0, 0, 0],
            "ModelProto field 8 has wire type 5",
        ),
        (
            "start group",
            &[0x7b],
            "field 15 has unsupported wire type 3",
        ),
        ("end group", &[0x0c], "field 1 has unsupported wire type 4"),
        (
            "wire type 7",
            &[0x0f],
            "field 1 has unsupported wire type 7",
        ),
        ("field zero", &[0x00, 0x01], "invalid field number 0"),
        (
            "varint of eleven bytes",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            "varint longer than",
        ),
        (
            "varint beyond 64 bits",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            "varint longer than 64 bits",
        ),
        ("unterminated varint", &[0x08, 0x80], "truncated varint"),
        (
            "graph of 4 GiB",
            &[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            "4294967295 bytes declared, 0 left",
        ),
        (
            "graph of 2^63 bytes",
            &[0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            "bytes declared, 0 left",
        ),
        (
            "node as a varint",
            &[0x3a, 0x02, 0x08, 0x01],
            "GraphProto field 1 has wire type 0",
        ),
        (
            "node name as fixed64",
            &[0x3a, 0x0b, 0x0a, 0x09, 0x19, 0, 0, 0, 0, 0, 0, 0, 0],
            "NodeProto field 3 has wire type 1",
        ),
        (
            "dims with a fixed32",
            &[0x3a, 0x07, 0x2a, 0x05, 0x0d, 0, 0, 0, 0],
            "TensorProto field 1 has wire type 5",
        ),
        (
            "packed floats cut mid-value",
            &[0x3a, 0x06, 0x2a, 0x04, 0x22, 0x02, 0, 0],
            "truncated 32-bit value",
        ),
        (
            "packed doubles cut mid-value",
            &[0x3a, 0x08, 0x2a, 0x06, 0x52, 0x04, 0, 0, 0, 0],
            "truncated 64-bit value",
        ),
        (
            "two graphs",
            &[0x3a, 0x00, 0x3a, 0x00],
            "ModelProto has two graphs",
        ),
        (
            "data type beyond int32",
            &[
                0x3a, 0x0c, 0x2a, 0x0a, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            "TensorProto field 2 out of range",
        ),
    ];
    for (case, bytes, want) in cases {
        let line = outcome(bytes, &data_dir(), case).unwrap_or_else(|| panic!("{case}: accepted"));
        assert!(line.starts_with("malformed ONNX file: "), "{case}: {line}");
        assert!(line.contains(want), "{case}: {line}");
    }
}

/// xorshift64*: the same byte changes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_byte_changes_never_panic() {
    let base = valid_model();
    let dir = data_dir();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut accepted) = (0, 0);
    for round in 0..4000 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] = match rng.next() % 3 {
                0 => bytes[at] ^ (1 << (rng.next() % 8)),
                1 => 0xff,
                _ => rng.next() as u8,
            };
        }
        match outcome(&bytes, &dir, &format!("round {round}")) {
            Some(_) => refused += 1,
            None => accepted += 1,
        }
    }
    // Most changes break the file; some only change a value or a name.
    assert!(refused > 2000, "{refused} refused, {accepted} accepted");
}

/// The invalid graphs of the fixture script, each with the error kind and the words its one
/// line must hold.
#[test]
fn invalid_graphs_are_refused_at_load_with_one_line() {
    let huge = (1u64 << 51) * 4;
    let huge_ext = (1u64 << 60) * 4;
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "cycle.onnx",
            "invalid",
            "the graph has a cycle through node 'first' (Add)".into(),
        ),
        (
            "missing_initializer.onnx",
            "invalid",
            "node 'add' (Add) reads 'w', which nothing produces".into(),
        ),
        (
            "output_never_produced.onnx",
            "invalid",
            "graph output 'y' is never produced".into(),
        ),
        (
            "duplicate_producer.onnx",
            "invalid",
            "value 'y' is produced twice: by node 'one' (Add) and by node 'two' (Add)".into(),
        ),
        (
            "input_also_produced.onnx",
            "invalid",
            "value 'x' is produced twice: by a graph input and by node 'clobber' (Add)".into(),
        ),
        (
            "unknown_op.onnx",
            "unsupported",
            "unsupported ONNX op in node 'fancy' (FancyOp): 'FancyOp' is not supported".into(),
        ),
        (
            "custom_domain.onnx",
            "unsupported",
            "node 'custom' (Add): domain 'com.example'".into(),
        ),
        (
            "subgraph_if.onnx",
            "unsupported",
            "attribute in node 'branch' (If): 'else_branch' is a subgraph".into(),
        ),
        (
            "data_dims_mismatch.onnx",
            "invalid",
            "tensor 'w': float_data holds 3 values, dims [2, 3] need 6".into(),
        ),
        (
            "raw_dims_mismatch.onnx",
            "invalid",
            "tensor 'w': raw_data holds 24 bytes, dims [4] need 32".into(),
        ),
        (
            "huge_dims.onnx",
            "invalid",
            format!("raw_data holds 8 bytes, dims [2147483648, 1048576] need {huge}"),
        ),
        (
            "overflowing_dims.onnx",
            "invalid",
            "tensor 'w': dims [4611686018427387904, 4611686018427387904, 16] overflow".into(),
        ),
        (
            "empty_overflowing_dims.onnx",
            "invalid",
            "tensor 'w': dims [0, 1099511627776, 1099511627776] overflow".into(),
        ),
        (
            "negative_dims.onnx",
            "invalid",
            "tensor 'w': dims [-2] hold -2".into(),
        ),
        (
            "string_initializer.onnx",
            "unsupported",
            "tensor 'w' has data type 8".into(),
        ),
        (
            "no_default_opset.onnx",
            "invalid",
            "imports no opset of the default domain".into(),
        ),
        (
            "no_outputs.onnx",
            "invalid",
            "the graph has no outputs".into(),
        ),
        (
            "string_input.onnx",
            "invalid",
            "graph input 'x' has element type Other(8)".into(),
        ),
        (
            "control_char_name.onnx",
            "invalid",
            "node name 'bad\\nname\\x1b[31m' holds control characters".into(),
        ),
        (
            "integer_output.onnx",
            "invalid",
            "the first graph output 'y' is I64".into(),
        ),
        (
            "external/escape.onnx",
            "invalid",
            "location '../outside.bin' must be a relative path inside the model's folder".into(),
        ),
        (
            "external/absolute.onnx",
            "invalid",
            "location '/etc/passwd' must be a relative path".into(),
        ),
        (
            "external/past_end.onnx",
            "invalid",
            "range 8 + 24 bytes runs past the end of 'short.bin' (24 bytes)".into(),
        ),
        (
            "external/offset_overflow.onnx",
            "invalid",
            "range 18446744073709551608 + 24 bytes runs past the end".into(),
        ),
        ("external/missing_file.onnx", "io", "absent.bin".into()),
        (
            "external/length_vs_dims.onnx",
            "invalid",
            "external data holds 16 bytes, its dims and dtype need 24".into(),
        ),
        (
            "external/huge_dims_external.onnx",
            "invalid",
            format!("external data holds 24 bytes, its dims and dtype need {huge_ext}"),
        ),
    ];
    let mut failures = Vec::new();
    for (file, kind, want) in &cases {
        let path = data_dir().join("hostile").join(file);
        let result = catch_unwind(AssertUnwindSafe(|| {
            OnnxModel::load(&path, &OnnxOptions::default(), DType::F64, Device::Cpu)
        }));
        let err = match result {
            Err(_) => {
                failures.push(format!("{file}: panicked"));
                continue;
            }
            Ok(Ok(_)) => {
                failures.push(format!("{file}: accepted"));
                continue;
            }
            Ok(Err(e)) => e,
        };
        let got_kind = match err {
            OnnxError::InvalidGraph(_) => "invalid",
            OnnxError::Unsupported { .. } => "unsupported",
            OnnxError::Io { .. } => "io",
            _ => "other",
        };
        let line = err.to_string();
        eprintln!("{file:<36} {line}");
        if got_kind != *kind
            || !line.contains(want.as_str())
            || line.contains('\n')
            || line.len() > MAX_LINE
        {
            failures.push(format!("{file}: {got_kind}: {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(unix)]
#[test]
fn a_link_out_of_the_model_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let inside = tempfile::tempdir().unwrap();
    let target = outside.path().join("w.bin");
    std::fs::copy(data_dir().join("weights/w.bin"), &target).unwrap();
    std::fs::create_dir(inside.path().join("weights")).unwrap();
    std::os::unix::fs::symlink(&target, inside.path().join("weights/w.bin")).unwrap();
    let bytes = std::fs::read(data_dir().join("external.onnx")).unwrap();
    let line =
        outcome(&bytes, inside.path(), "link").expect("a link out of the folder was followed");
    assert!(
        line.contains("location 'weights/w.bin' leads outside the model's folder"),
        "{line}"
    );
    // The same file copied inside the folder is read.
    std::fs::remove_file(inside.path().join("weights/w.bin")).unwrap();
    std::fs::copy(&target, inside.path().join("weights/w.bin")).unwrap();
    assert_eq!(outcome(&bytes, inside.path(), "copy"), None);
}

#[test]
fn a_folder_or_a_device_is_not_read_as_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        OnnxModel::load(dir.path(), &OnnxOptions::default(), DType::F64, Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("is a directory, not an ONNX file"),
        "{err}"
    );
    #[cfg(unix)]
    {
        let err = OnnxModel::load(
            "/dev/zero",
            &OnnxOptions::default(),
            DType::F64,
            Device::Cpu,
        )
        .unwrap_err();
        assert!(err.to_string().contains("is a character device"), "{err}");
    }
    let err = OnnxModel::load(
        dir.path().join("absent.onnx"),
        &OnnxOptions::default(),
        DType::F64,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(err, OnnxError::Io { .. }), "{err}");
}

/// Protobuf's varint of `v`.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Field `number` of wire type 0 (a varint) holding `v`.
fn varint_field(number: u64, v: u64) -> Vec<u8> {
    [varint(number << 3), varint(v)].concat()
}

/// Field `number` of wire type 2 (length-delimited) holding `bytes`.
fn bytes_field(number: u64, bytes: &[u8]) -> Vec<u8> {
    [
        varint((number << 3) | 2),
        varint(bytes.len() as u64),
        bytes.to_vec(),
    ]
    .concat()
}

/// ModelProto of one `Identity` from a float64 `x` [2] to `y`, importing the default domain at
/// `opset` (an int64 on the wire: negative versions are ten-byte varints).
fn identity_model(opset: i64) -> Vec<u8> {
    let value = |name: &str| {
        let shape = bytes_field(2, &bytes_field(1, &varint_field(1, 2)));
        let tensor = [varint_field(1, 11), shape].concat();
        [
            bytes_field(1, name.as_bytes()),
            bytes_field(2, &bytes_field(1, &tensor)),
        ]
        .concat()
    };
    let node = [
        bytes_field(1, b"x"),
        bytes_field(2, b"y"),
        bytes_field(4, b"Identity"),
    ]
    .concat();
    let graph = [
        bytes_field(1, &node),
        bytes_field(2, b"g"),
        bytes_field(11, &value("x")),
        bytes_field(12, &value("y")),
    ]
    .concat();
    [
        varint_field(1, 8),
        bytes_field(7, &graph),
        bytes_field(8, &varint_field(2, opset as u64)),
    ]
    .concat()
}

#[test]
fn an_opset_that_is_no_onnx_opset_is_refused() {
    let dir = data_dir();
    assert_eq!(outcome(&identity_model(18), &dir, "opset 18"), None);
    assert_eq!(outcome(&identity_model(1), &dir, "opset 1"), None);
    for opset in [0, -5, 99, i64::MAX] {
        let line = outcome(&identity_model(opset), &dir, &format!("opset {opset}"))
            .unwrap_or_else(|| panic!("opset {opset} is accepted"));
        assert!(
            line.contains(&format!("opset {opset} of the default domain")),
            "{line}"
        );
    }
}
