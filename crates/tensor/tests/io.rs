//! Tensor files: what is saved loads back bit for bit, f16 and bf16 data convert to the
//! values their bits encode, and every kind of bad file is an error naming the problem.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use curvature_tensor::io::{self, FileError};
use curvature_tensor::{DType, Device, Tensor, TensorError};

/// A path in the temporary directory, unique to this process and `name`.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("curvature-io-{}-{name}", std::process::id()))
}

/// A safetensors file written by hand: the header JSON for `entries` (name, dtype, shape,
/// byte count, in data order) followed by `data`.
fn raw_file(entries: &[(&str, &str, &[usize], usize)], data: &[u8]) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut offset = 0;
    for (name, dtype, shape, bytes) in entries {
        parts.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{offset},{}]}}"#,
            offset + bytes
        ));
        offset += bytes;
    }
    header_then(&format!("{{{}}}", parts.join(",")), data)
}

/// The 8-byte length of `header`, the header, then `data`.
fn header_then(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn file_error(result: curvature_tensor::Result<BTreeMap<String, Tensor>>) -> FileError {
    match result {
        Err(TensorError::File(e)) => e,
        other => panic!("expected a file error, got {other:?}"),
    }
}

fn round_trip(device: Device) -> curvature_tensor::Result<()> {
    let w = Tensor::from_f64s(&[1.5, -0.1, 3.0e-20, 7.0], [2, 2], DType::F32, device)?;
    let b = Tensor::from_f64s(&[0.1, -1.0e300, 2.5], [3], DType::F64, device)?;
    let empty = Tensor::zeros([0, 4], DType::F64, device)?;
    let path = temp_path(&format!("round-trip-{device:?}.safetensors"));
    io::save(&path, &[("w", &w), ("b", &b), ("empty", &empty)])?;
    let loaded = io::load(&path, device);
    let as_f64 = io::load_as(&path, DType::F64, Device::Cpu);
    std::fs::remove_file(&path).ok();
    let loaded = loaded?;
    assert_eq!(loaded.keys().collect::<Vec<_>>(), ["b", "empty", "w"]);
    assert_eq!(
        (loaded["w"].dims(), loaded["w"].dtype()),
        (&[2, 2][..], DType::F32)
    );
    assert_eq!(loaded["w"].device(), device);
    let w32: Vec<f32> = [1.5f32, -0.1, 3.0e-20, 7.0].to_vec();
    assert_eq!(loaded["w"].to_device(Device::Cpu)?.to_vec::<f32>()?, w32);
    assert_eq!(
        loaded["b"].to_device(Device::Cpu)?.to_vec::<f64>()?,
        vec![0.1, -1.0e300, 2.5]
    );
    assert_eq!(loaded["empty"].dims(), &[0, 4]);
    let as_f64 = as_f64?;
    assert_eq!(as_f64["w"].dtype(), DType::F64);
    let widened: Vec<f64> = w32.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(as_f64["w"].to_vec::<f64>()?, widened);
    Ok(())
}

#[test]
fn the_file_layout_is_safetensors() -> curvature_tensor::Result<()> {
    let t = Tensor::from_f64s(&[1.0, 2.0], [2], DType::F32, Device::Cpu)?;
    let bytes = io::to_bytes(&[("t", &t)])?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    assert_eq!(n % 8, 0, "the data starts 8-byte aligned");
    let header = std::str::from_utf8(&bytes[8..8 + n]).expect("UTF-8");
    assert_eq!(
        header.trim_end(),
        r#"{"t":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}"#
    );
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(&bytes[8 + n..], &data[..]);
    Ok(())
}

#[test]
fn f16_and_bf16_convert_to_the_values_of_their_bits() -> curvature_tensor::Result<()> {
    // f16: 1, −2, 1/3 rounded (0x3555 = 1365/4096), the smallest subnormal 2⁻²⁴, the largest
    // finite 65504, +∞.
    let f16_bits: [u16; 6] = [0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x7c00];
    let f16_values = [
        1.0,
        -2.0,
        1365.0 / 4096.0,
        2f64.powi(-24),
        65504.0,
        f64::INFINITY,
    ];
    // bf16: 1, −3, 1/3 rounded (0x3eab = 171/512), the subnormal 2⁻¹³³.
    let bf16_bits: [u16; 4] = [0x3f80, 0xc040, 0x3eab, 0x0001];
    let bf16_values = [1.0, -3.0, 171.0 / 512.0, 2f64.powi(-133)];
    let mut data = Vec::new();
    for bits in f16_bits.iter().chain(&bf16_bits) {
        data.extend_from_slice(&bits.to_le_bytes());
    }
    let file = raw_file(&[("h", "F16", &[2, 3], 12), ("b", "BF16", &[4], 8)], &data);
    let tensors = io::load_bytes(&file, None, Device::Cpu)?;
    assert_eq!(tensors["h"].dtype(), DType::F16);
    assert_eq!(tensors["b"].dtype(), DType::BF16);
    assert_eq!(tensors["h"].dims(), &[2, 3]);
    assert_eq!(tensors["h"].to_f64s()?, f16_values.to_vec());
    assert_eq!(tensors["b"].to_f64s()?, bf16_values.to_vec());
    let tensors = io::load_bytes(&file, Some(DType::F32), Device::Cpu)?;
    let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    assert_eq!(tensors["h"].to_vec::<f32>()?, as_f32(&f16_values));
    assert_eq!(tensors["b"].to_vec::<f32>()?, as_f32(&bf16_values));
    let tensors = io::load_bytes(&file, Some(DType::F64), Device::Cpu)?;
    assert_eq!(tensors["h"].to_vec::<f64>()?, f16_values.to_vec());
    assert_eq!(tensors["b"].to_vec::<f64>()?, bf16_values.to_vec());
    let nan = raw_file(&[("n", "F16", &[1], 2)], &0x7e00u16.to_le_bytes());
    let tensors = io::load_bytes(&nan, None, Device::Cpu)?;
    assert!(tensors["n"].to_f64s()?[0].is_nan());
    Ok(())
}

#[test]
fn bad_files_are_errors() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "another dtype",
            raw_file(&[("labels", "I32", &[2], 8)], &[0; 8]),
            "tensor 'labels' has dtype I32, expected F64, F32, F16 or BF16",
        ),
        (
            "not JSON",
            header_then("{not json", &[]),
            "not a valid safetensors file: bad header",
        ),
        (
            "an unknown dtype",
            raw_file(&[("x", "F128", &[1], 16)], &[0; 16]),
            "not a valid safetensors file: bad header",
        ),
        (
            "truncated data",
            raw_file(&[("x", "F64", &[4], 32)], &[0; 24]),
            "the header's tensors take 32 bytes but the file has 24 after the header",
        ),
        (
            "a shape and a byte count that differ",
            raw_file(&[("x", "F64", &[3], 16)], &[0; 16]),
            "not a valid safetensors file",
        ),
        (
            "a name given twice",
            header_then(
                r#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "'x' appears twice",
        ),
        (
            "a header longer than the file",
            {
                let mut file = header_then("{}", &[]);
                file[..8].copy_from_slice(&1000u64.to_le_bytes());
                file
            },
            "header length 1000 runs past the end of the file (10 bytes)",
        ),
        (
            "no header length",
            vec![1, 2, 3],
            "too few for the 8-byte header length",
        ),
    ];
    for (what, bytes, message) in cases {
        let err = file_error(io::load_bytes(&bytes, None, Device::Cpu));
        assert!(err.to_string().contains(message), "{what}: {err}");
    }
}

#[test]
fn files_that_are_not_regular_or_absent_are_errors() {
    let dir = std::env::temp_dir();
    let err = file_error(io::load(&dir, Device::Cpu));
    assert!(
        matches!(
            err,
            FileError::NotRegular {
                kind: "a directory",
                ..
            }
        ),
        "{err}"
    );
    let err = file_error(io::load(temp_path("absent.safetensors"), Device::Cpu));
    assert!(matches!(err, FileError::Io { .. }), "{err}");
}

#[test]
fn bad_names_are_refused_when_saving() -> curvature_tensor::Result<()> {
    let t = Tensor::zeros([1], DType::F64, Device::Cpu)?;
    let err = io::to_bytes(&[("a", &t), ("a", &t)]).unwrap_err();
    assert_eq!(err.to_string(), "save: the name 'a' is given twice");
    let err = io::to_bytes(&[("__metadata__", &t)]).unwrap_err();
    assert_eq!(err.to_string(), "save: the name __metadata__ is reserved");
    let err = io::save(temp_path("no-such-dir/t.safetensors"), &[("t", &t)]).unwrap_err();
    assert!(
        matches!(err, TensorError::File(FileError::Write { .. })),
        "{err}"
    );
    assert!(err.to_string().starts_with("cannot write "), "{err}");
    Ok(())
}

device_tests!(round_trip);
