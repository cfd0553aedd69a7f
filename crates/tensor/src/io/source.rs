//! The bytes of a safetensors file: opened only when it is a regular file, its header checked
//! against the file's size before anything else is read, and each tensor's data read from its
//! offset only when it is used.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use safetensors::tensor::Metadata;
use safetensors::Dtype as FileDtype;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

use super::text::{bounded_text, shown};
use super::FileError;

/// The largest header accepted, in bytes (the limit of the `safetensors` crate itself).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Bytes of the little-endian header length that starts the file.
const LENGTH_BYTES: u64 = 8;

/// Bytes read and converted at a time.
const CHUNK_BYTES: usize = 1 << 16;

/// Where the file's bytes are read from: a regular file ([`Source::open`]) or memory.
#[derive(Debug, Clone)]
pub enum Source {
    /// An open regular file, and its path for messages.
    File {
        file: Arc<Mutex<File>>,
        path: String,
    },
    /// Bytes already in memory.
    Bytes(Arc<[u8]>),
}

/// One tensor of the header: its element type, shape and where its bytes are.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The element type as the file names it.
    pub dtype: FileDtype,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// Offset of the first byte in the file.
    pub start: u64,
    /// Bytes of data (equal to the shape's element count times the element size, as the
    /// header was validated).
    pub len: usize,
}

/// The parsed header: the metadata strings and the tensors by name.
pub struct Header {
    /// The `__metadata__` strings by key.
    pub metadata: HashMap<String, String>,
    /// Every tensor's entry, by name.
    pub tensors: BTreeMap<String, Entry>,
}

impl Source {
    /// Opens `path` for reading if it is a regular file. A FIFO, device, directory or socket is
    /// refused before it is opened; the open itself does not block (a FIFO swapped in after
    /// the check), and the opened file is checked again.
    pub fn open(path: &Path) -> Result<(Source, u64), FileError> {
        let shown_path = bounded_text(&path.display().to_string(), 120);
        let io = |source| FileError::Io {
            path: shown_path.clone(),
            source,
        };
        let regular = |meta: &std::fs::Metadata| match file_kind(meta) {
            None => Ok(()),
            Some(kind) => Err(FileError::NotRegular {
                path: shown_path.clone(),
                kind,
            }),
        };
        regular(&std::fs::metadata(path).map_err(io)?)?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = options.open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        regular(&meta)?;
        let source = Source::File {
            file: Arc::new(Mutex::new(file)),
            path: shown_path.clone(),
        };
        Ok((source, meta.len()))
    }

    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FileError> {
        match self {
            Source::File { file, path } => {
                // A poisoned lock only means another reader panicked; the file has no state
                // beyond its position, which is set here before every read.
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| file.read_exact(buf))
                    .map_err(|source| FileError::Io {
                        path: path.clone(),
                        source,
                    })
            }
            Source::Bytes(bytes) => {
                let range = usize::try_from(offset)
                    .ok()
                    .and_then(|start| Some(start..start.checked_add(buf.len())?))
                    .and_then(|range| bytes.get(range))
                    .ok_or_else(|| format_error(format!("no bytes at offset {offset}")))?;
                buf.copy_from_slice(range);
                Ok(())
            }
        }
    }

    /// Reads and validates the header of a file of `file_len` bytes: the length field is
    /// checked against the limit and the file's size before the header is read, the header
    /// must be a valid safetensors header (known dtypes, offsets in order without gaps or
    /// overlaps, each tensor's byte count equal to its shape's, no overflow), and the data must
    /// end exactly at the end of the file.
    pub fn header(&self, file_len: u64) -> Result<Header, FileError> {
        if file_len < LENGTH_BYTES {
            return Err(format_error(format!(
                "the file has {file_len} bytes, too few for the 8-byte header length"
            )));
        }
        let mut length = [0u8; LENGTH_BYTES as usize];
        self.read_at(0, &mut length)?;
        let n = u64::from_le_bytes(length);
        if n > file_len - LENGTH_BYTES {
            return Err(format_error(format!(
                "header length {n} runs past the end of the file ({file_len} bytes)"
            )));
        }
        if n > MAX_HEADER_BYTES {
            return Err(format_error(format!(
                "header length {n} is over the limit of {MAX_HEADER_BYTES} bytes"
            )));
        }
        let after_header = LENGTH_BYTES + n;
        // n ≤ MAX_HEADER_BYTES, so it fits a usize and the buffer is bounded.
        let mut text = vec![0u8; n as usize];
        self.read_at(LENGTH_BYTES, &mut text)?;
        let text = std::str::from_utf8(&text)
            .map_err(|e| format_error(format!("the header is not UTF-8: {e}")))?;
        let metadata: Metadata = serde_json::from_str(text).map_err(|e| {
            format_error(format!("bad header: {}", bounded_text(&e.to_string(), 160)))
        })?;
        unique_keys(text).map_err(|e| {
            format_error(format!("bad header: {}", bounded_text(&e.to_string(), 160)))
        })?;
        let data_len = metadata.data_len() as u64;
        let available = file_len - after_header;
        if data_len != available {
            return Err(format_error(format!(
                "the header's tensors take {data_len} bytes but the file has {available} after the header"
            )));
        }
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (start, end) = info.data_offsets;
                let entry = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: after_header + start as u64,
                    len: end - start,
                };
                (name, entry)
            })
            .collect();
        Ok(Header {
            metadata: metadata.metadata().clone().unwrap_or_default(),
            tensors,
        })
    }

    /// The values of tensor `name` as f64, read from the file now: F64 and F32 data, and with
    /// [`Accept::Halves`] also F16 and BF16 (converted exactly); any other dtype is an error.
    /// The buffer is reserved fallibly, so a tensor too large for memory is an error.
    pub fn values(&self, name: &str, entry: &Entry, accept: Accept) -> Result<Vec<f64>, FileError> {
        let width = match (entry.dtype, accept) {
            (FileDtype::F64, _) => 8,
            (FileDtype::F32, _) => 4,
            (FileDtype::F16 | FileDtype::BF16, Accept::Halves) => 2,
            (other, _) => {
                return Err(FileError::WrongDtype {
                    name: shown(name),
                    dtype: format!("{other:?}"),
                    expected: accept.expected(),
                })
            }
        };
        let count = entry.len / width;
        let mut values = Vec::new();
        values
            .try_reserve_exact(count)
            .map_err(|_| FileError::TooLarge {
                name: shown(name),
                bytes: count.saturating_mul(8),
            })?;
        let mut chunk = vec![0u8; CHUNK_BYTES.min(entry.len)];
        let mut done = 0;
        while done < entry.len {
            let take = CHUNK_BYTES.min(entry.len - done);
            let bytes = &mut chunk[..take];
            self.read_at(entry.start + done as u64, bytes)?;
            match entry.dtype {
                FileDtype::F64 => {
                    values.extend(bytes.chunks_exact(8).map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                    }))
                }
                FileDtype::F32 => values.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64),
                ),
                FileDtype::F16 => values.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|c| f16_to_f64(u16::from_le_bytes([c[0], c[1]]))),
                ),
                _ => values.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|c| bf16_to_f64(u16::from_le_bytes([c[0], c[1]]))),
                ),
            }
            done += take;
        }
        Ok(values)
    }
}

/// Which element types [`Source::values`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// F64 and F32.
    Full,
    /// F64, F32, F16 and BF16.
    Halves,
}

impl Accept {
    /// The accepted dtypes, for messages.
    fn expected(self) -> &'static str {
        match self {
            Accept::Full => "F64 or F32",
            Accept::Halves => "F64, F32, F16 or BF16",
        }
    }
}

/// The value of IEEE 754 half-precision bits: sign, 5 exponent bits (bias 15), 10 fraction
/// bits; subnormals, infinities and NaN included.
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1024.0 + fraction) * 2f64.powi(exponent - 25),
    }
}

/// The value of bfloat16 bits: the upper half of an f32.
pub fn bf16_to_f64(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}

/// Checks that no tensor and no metadata key is named twice in the header `text` (JSON maps
/// keep the last of equal keys, other readers may keep the first: such a file means different
/// things to different programs).
fn unique_keys(text: &str) -> Result<(), serde_json::Error> {
    serde_json::Deserializer::from_str(text).deserialize_map(UniqueKeys { nested: true })
}

/// A map whose keys must differ; with `nested`, so must those of its `__metadata__` map.
#[derive(Clone, Copy)]
struct UniqueKeys {
    nested: bool,
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(A::Error::custom(format!("'{}' appears twice", shown(&key))));
            }
            if self.nested && key == "__metadata__" {
                map.next_value_seed(UniqueKeys { nested: false })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            seen.insert(key);
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

fn format_error(msg: String) -> FileError {
    FileError::Format(msg)
}

/// What a file that is not a regular file is, for messages ("a FIFO", "a directory", "a
/// character device", ...); `None` for a regular file. `meta` as `std::fs::metadata` gives it,
/// so a symbolic link is described by what it points to.
pub fn file_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}
