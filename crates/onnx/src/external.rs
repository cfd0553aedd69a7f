//! Tensor data kept outside the model file (`data_location = EXTERNAL`): the keys `location`,
//! `offset` and `length` name a byte range of a file in the model's folder. Absolute paths
//! and paths that leave the folder (`..`, or a link pointing outside it) are refused, and the
//! range is checked against the file's size before anything is read or allocated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use curvature_tensor::io::shown;

use crate::{OnnxError, Result};

/// Reads the `expected` bytes of tensor `tensor` that its `external_data` entries point at,
/// relative to `base_dir` (`None`: the model has no folder, and external data is refused).
pub fn read_external(
    tensor: &str,
    entries: &[(String, String)],
    base_dir: Option<&Path>,
    expected: usize,
) -> Result<Vec<u8>> {
    let bad = |detail: String| {
        OnnxError::InvalidGraph(format!(
            "tensor '{}': external data {detail}",
            shown(tensor)
        ))
    };
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    for (key, value) in entries {
        match key.as_str() {
            "location" => location = Some(value.as_str()),
            "offset" | "length" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| bad(format!("{key} '{}' is not a byte count", shown(value))))?;
                if key == "offset" {
                    offset = n;
                } else {
                    length = Some(n);
                }
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| bad("has no 'location'".into()))?;
    let base_dir = base_dir.ok_or_else(|| {
        bad(format!(
            "'{}' cannot be read: the model was given as bytes without a folder",
            shown(location)
        ))
    })?;
    let relative = Path::new(location);
    if location.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(format!(
            "location '{}' must be a relative path inside the model's folder",
            shown(location)
        )));
    }
    let path = base_dir.join(relative);
    let io = |source| OnnxError::Io {
        path: shown(&path.display().to_string()),
        source,
    };
    let (real_dir, real_path) = (
        base_dir.canonicalize().map_err(|e| OnnxError::Io {
            path: shown(&base_dir.display().to_string()),
            source: e,
        })?,
        path.canonicalize().map_err(io)?,
    );
    if !real_path.starts_with(&real_dir) {
        return Err(bad(format!(
            "location '{}' leads outside the model's folder",
            shown(location)
        )));
    }
    let mut file = File::open(&real_path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(bad(format!("location '{}' is not a file", shown(location))));
    }
    let size = meta.len();
    let length = length.unwrap_or_else(|| size.saturating_sub(offset));
    let end = offset
        .checked_add(length)
        .filter(|&end| end <= size)
        .ok_or_else(|| {
            bad(format!(
                "range {offset} + {length} bytes runs past the end of '{}' ({size} bytes)",
                shown(location)
            ))
        })?;
    if u64::try_from(expected).ok() != Some(length) {
        return Err(bad(format!(
            "holds {length} bytes, its dims and dtype need {expected}"
        )));
    }
    debug_assert!(end <= size);
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut data = vec![0u8; expected];
    file.read_exact(&mut data).map_err(io)?;
    Ok(data)
}
