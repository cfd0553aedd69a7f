//! Cases spoiled at the level of the model: metadata, labels, resource bombs, layers beyond
//! the widths, non-finite values, and special files.

use serde_json::{json, Value};

use super::spec::{encode, Spec, Tensor};
use super::{bytes, case, Case, Input};

pub fn metadata() -> Vec<Case> {
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

pub fn labels() -> Vec<Case> {
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

pub fn bombs() -> Vec<Case> {
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
        "x and y of 2^31 samples (refused by the memory plan)",
        input,
        "not enough memory: loading the model file needs",
    ));
    cases
}

pub fn layers_and_values() -> Vec<Case> {
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

pub fn special_files() -> Vec<Case> {
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
