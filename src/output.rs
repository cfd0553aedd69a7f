//! Output files written atomically: the bytes go to a temporary file in the destination's
//! directory, which is renamed over the destination only once everything has succeeded. A
//! temporary file that is never committed is removed when dropped, so an error never leaves a
//! partial file behind.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{serialize, Dtype, TensorView};

/// A fully written temporary file waiting to be renamed to its destination.
pub struct Staged {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    /// Writes `bytes` to a temporary file next to `dest`.
    pub fn new(dest: &Path, bytes: &[u8]) -> Result<Staged, String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".curvature-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let mut file = builder.tempfile_in(dir).map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.as_file().sync_all().map_err(fail)?;
        Ok(Staged {
            file,
            dest: dest.to_path_buf(),
        })
    }

    /// Renames the temporary file to its destination.
    pub fn commit(self) -> Result<(), String> {
        let dest = self.dest;
        self.file
            .persist(&dest)
            .map(drop)
            .map_err(|e| format!("cannot write {}: {}", dest.display(), e.error))
    }
}

/// A safetensors file of f64 tensors `(name, shape, values)` with string metadata.
pub fn safetensors_bytes(
    tensors: &[(String, Vec<usize>, Vec<f64>)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F64, shape.clone(), data).map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot encode the results: {e}"))?;
    serialize(views, Some(metadata)).map_err(|e| format!("cannot encode the results: {e}"))
}
