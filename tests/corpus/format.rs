//! Cases spoiled at the level of the file format: truncations, header lengths that lie,
//! headers that are not the JSON they should be, dtypes, shapes and data offsets.

use serde_json::{json, Value};

use super::spec::{encode, encode_text, with_length, Spec};
use super::{bytes, case, Case, Input, INVALID};

pub fn truncations() -> Vec<Case> {
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

pub fn header_lengths() -> Vec<Case> {
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

pub fn headers() -> Vec<Case> {
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

pub fn dtypes() -> Vec<Case> {
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

pub fn shapes() -> Vec<Case> {
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

pub fn offsets() -> Vec<Case> {
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
