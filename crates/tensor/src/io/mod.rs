//! Named tensors in safetensors files: [`save`] writes f32, f64, f16 and bf16 tensors,
//! [`load`] reads them each as itself (or everything as one dtype with [`load_as`]).
//!
//! ```
//! use curvature_tensor::{io, DType, Device, Tensor};
//!
//! # fn main() -> curvature_tensor::Result<()> {
//! let w = Tensor::from_f64s(&[1.0, -2.0, 0.5, 4.0], [2, 2], DType::F32, Device::Cpu)?;
//! let b = Tensor::zeros([2], DType::F64, Device::Cpu)?;
//! let bytes = io::to_bytes(&[("layer.weight", &w), ("layer.bias", &b)])?;
//! let tensors = io::load_bytes(&bytes, None, Device::Cpu)?;
//! assert_eq!(tensors["layer.weight"].to_vec::<f32>()?, vec![1.0, -2.0, 0.5, 4.0]);
//! assert_eq!(tensors["layer.bias"].dtype(), DType::F64);
//! # Ok(())
//! # }
//! ```
//!
//! Reading is defensive, as for the model files built on it: only regular files are opened
//! (and opening never blocks), the header's length is checked against the file's size and
//! [`MAX_HEADER_BYTES`] before the header is read, the header must be valid safetensors (known
//! dtypes, data offsets in order without gaps or overlaps, sizes without overflow, no name
//! given twice, data ending at the end of the file), buffers are reserved fallibly, and every
//! value echoed in an error is escaped and cut short ([`bounded_text`], [`shown`]).

mod source;
mod text;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::Dtype as FileDtype;

use crate::{human_bytes, DType, Device, Result, Tensor, TensorError};
pub use source::{
    bf16_to_f64, f16_to_f64, file_kind, Accept, Entry, Header, Source, MAX_HEADER_BYTES,
};
pub use text::{bounded_text, shown, SHOWN_BYTES};

/// Why a tensor file could not be read or written; each message is one line, with every value
/// taken from the file escaped and cut to a bounded length.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// A FIFO, device, directory or socket instead of a regular file.
    #[error("cannot read {path}: it is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    /// The bytes are not a valid safetensors file.
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    /// A tensor of an element type that cannot be read.
    #[error("tensor '{name}' has dtype {dtype}, expected {expected}")]
    WrongDtype {
        name: String,
        dtype: String,
        expected: &'static str,
    },
    /// A tensor whose values (as f64) cannot be allocated.
    #[error("tensor '{name}' needs {bytes} bytes as f64, more than can be allocated")]
    TooLarge { name: String, bytes: usize },
    /// Two tensors to be saved under one name, or a name the format reserves.
    #[error("save: {0}")]
    BadName(String),
    /// The bytes of a file to be saved cannot be allocated.
    #[error("save: cannot allocate the file's {} in memory", human_bytes(*.bytes as u128))]
    OutOfMemory { bytes: usize },
}

/// Every tensor of the safetensors file at `path`, by name, on `device`: f64 and f32 tensors
/// keep their dtype, f16 and bf16 ones load as f16 and bf16 tensors.
pub fn load(path: impl AsRef<Path>, device: Device) -> Result<BTreeMap<String, Tensor>> {
    let (source, len) = Source::open(path.as_ref())?;
    read(&source, len, None, device)
}

/// Every tensor of the safetensors file at `path`, by name, converted to `dtype` on `device`
/// (an f64 value beyond f32's range becomes an infinity in f32).
pub fn load_as(
    path: impl AsRef<Path>,
    dtype: DType,
    device: Device,
) -> Result<BTreeMap<String, Tensor>> {
    let (source, len) = Source::open(path.as_ref())?;
    read(&source, len, Some(dtype), device)
}

/// [`load`] (`dtype` `None`) or [`load_as`] of the bytes of a safetensors file.
pub fn load_bytes(
    bytes: &[u8],
    dtype: Option<DType>,
    device: Device,
) -> Result<BTreeMap<String, Tensor>> {
    let source = Source::Bytes(Arc::from(bytes));
    read(&source, bytes.len() as u64, dtype, device)
}

fn read(
    source: &Source,
    len: u64,
    dtype: Option<DType>,
    device: Device,
) -> Result<BTreeMap<String, Tensor>> {
    let header = source.header(len)?;
    let mut tensors = BTreeMap::new();
    for (name, entry) in &header.tensors {
        let values = source.values(name, entry, Accept::Halves)?;
        let dtype = dtype.unwrap_or(match entry.dtype {
            FileDtype::F64 => DType::F64,
            FileDtype::F16 => DType::F16,
            FileDtype::BF16 => DType::BF16,
            _ => DType::F32,
        });
        let tensor = Tensor::from_f64s(&values, entry.shape.clone(), dtype, device)?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}

/// Writes the named tensors (f32, f64, f16 or bf16, on any device) to `path` as a safetensors file, in
/// the order given. Names must differ, and `__metadata__` is reserved by the format.
pub fn save(path: impl AsRef<Path>, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let bytes = to_bytes(tensors)?;
    let path = path.as_ref();
    std::fs::write(path, bytes).map_err(|source| {
        TensorError::from(FileError::Write {
            path: bounded_text(&path.display().to_string(), 120),
            source,
        })
    })
}

/// The bytes of the safetensors file [`save`] writes.
pub fn to_bytes(tensors: &[(&str, &Tensor)]) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        if *name == "__metadata__" {
            return Err(FileError::BadName("the name __metadata__ is reserved".into()).into());
        }
        let bytes = tensor_bytes(tensor)?;
        let end = offset
            .checked_add(bytes.len())
            .ok_or(FileError::OutOfMemory { bytes: usize::MAX })?;
        let entry = serde_json::json!({
            "dtype": match tensor.dtype() {
                DType::F32 => "F32",
                DType::F64 => "F64",
                DType::F16 => "F16",
                DType::BF16 => "BF16",
            },
            "shape": tensor.dims(),
            "data_offsets": [offset, end],
        });
        if header.insert(name.to_string(), entry).is_some() {
            let msg = format!("the name '{}' is given twice", shown(name));
            return Err(FileError::BadName(msg).into());
        }
        data.push(bytes);
        offset = end;
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    // The format aligns the data to 8 bytes by padding the header with spaces.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let total = 8usize
        .checked_add(text.len())
        .and_then(|n| n.checked_add(offset))
        .ok_or(FileError::OutOfMemory { bytes: usize::MAX })?;
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| FileError::OutOfMemory { bytes: total })?;
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for bytes in data {
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// A tensor's elements as little-endian bytes.
fn tensor_bytes(tensor: &Tensor) -> Result<Vec<u8>> {
    let host = tensor.to_device(Device::Cpu)?;
    Ok(match tensor.dtype() {
        DType::F32 => host
            .to_vec::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => host
            .to_vec::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => host
            .to_vec::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => host
            .to_vec::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    })
}
