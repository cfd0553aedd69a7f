//! Output files, written so that nothing is lost. Before anything is computed, every
//! destination is checked ([`check_destinations`]): it must be a new path or a regular file
//! with a single link, not the input and not another output. Each output's bytes then go to a
//! temporary file in its destination's directory ([`Staged`]), and [`commit`] renames them all
//! into place, keeping each replaced file aside until every rename has succeeded and putting
//! them back if one fails. A temporary file never outlives the run, whether it ends in an error
//! or a signal (see `signals`).

use std::fs::Metadata;
use std::io::Write;
use std::path::{Path, PathBuf};

use curvature::nn::{bounded_text, file_kind};

use crate::signals::{self, Registered};

/// Checks, before any work, that `outputs` (paths and their flags, such as `--out`) can be
/// written: each is a new path in an existing directory or a regular file with one link (not a
/// symbolic link, FIFO, device, directory or hard-linked file), none is one of the `inputs`
/// (paths and what they are, such as `model file`; by canonical path and by device and inode)
/// and no two are the same file.
pub fn check_destinations(
    inputs: &[(&str, &Path)],
    outputs: &[(&str, &Path)],
) -> Result<(), String> {
    let inputs: Vec<(&str, Option<FileId>, Option<PathBuf>)> = inputs
        .iter()
        .map(|&(what, path)| {
            let id = std::fs::metadata(path).ok().map(|m| file_id(&m));
            (what, id, std::fs::canonicalize(path).ok())
        })
        .collect();
    let mut seen: Vec<(&str, PathBuf)> = Vec::new();
    for &(flag, dest) in outputs {
        let existing = check_destination(dest)?;
        let resolved = resolved(dest)?;
        let id = existing.as_ref().map(file_id);
        let input = inputs.iter().find(|(_, input_id, input_path)| {
            (id.is_some() && id == *input_id) || Some(&resolved) == input_path.as_ref()
        });
        if let Some((what, _, _)) = input {
            return Err(format!(
                "{flag} {} is the input {what}; refusing to overwrite it",
                shown_path(dest)
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, path)| *path == resolved) {
            return Err(format!(
                "{other} and {flag} name the same file {}",
                shown_path(dest)
            ));
        }
        seen.push((flag, resolved));
    }
    Ok(())
}

/// What may be written at `dest`: `None` for a new path (in an existing directory), the
/// metadata of a regular file with one link, and an error for everything else.
fn check_destination(dest: &Path) -> Result<Option<Metadata>, String> {
    let refuse = |why: String| format!("cannot write {}: {why}", shown_path(dest));
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refuse(
            "it is a symbolic link; only regular files are replaced".into(),
        )),
        Ok(meta) => {
            if let Some(kind) = file_kind(&meta) {
                return Err(refuse(format!(
                    "it is {kind}; only regular files are replaced"
                )));
            }
            let links = link_count(&meta);
            if links > 1 {
                return Err(refuse(format!(
                    "it has {links} hard links, which replacing it would break"
                )));
            }
            Ok(Some(meta))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = directory(dest);
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => Ok(None),
                Ok(_) => Err(refuse(format!("{} is not a directory", shown_path(dir)))),
                Err(e) => Err(refuse(format!("{}: {e}", shown_path(dir)))),
            }
        }
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// `dest` with its directory made canonical: the path it will have once written.
fn resolved(dest: &Path) -> Result<PathBuf, String> {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("cannot write {}: not a file name", shown_path(dest)))?;
    let dir = std::fs::canonicalize(directory(dest))
        .map_err(|e| format!("cannot write {}: {e}", shown_path(dest)))?;
    Ok(dir.join(name))
}

fn directory(dest: &Path) -> &Path {
    match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A path for messages: escaped and cut short.
pub fn shown_path(path: &Path) -> String {
    bounded_text(&path.display().to_string(), 120)
}

/// A file's device and inode.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(meta: &Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &Metadata) -> FileId {
    (0, 0)
}

#[cfg(unix)]
fn link_count(meta: &Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn link_count(_meta: &Metadata) -> u64 {
    1
}

/// A fully written temporary file waiting to be renamed to its destination.
pub struct Staged {
    temp: Registered,
    dest: PathBuf,
}

impl Staged {
    /// Writes `bytes` to a new temporary file next to `dest`, with the permission bits of the
    /// file it will replace (a new file gets 0666 less the umask, as usual).
    pub fn new(dest: &Path, bytes: &[u8]) -> Result<Staged, String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", shown_path(dest));
        let existing = check_destination(dest)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".curvature-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let mut file = None;
        let temp = Registered::create(|| {
            let (handle, path) = builder.tempfile_in(directory(dest))?.into_parts();
            file = Some(handle);
            path.keep().map_err(|e| e.error)
        })
        .map_err(fail)?;
        let mut file = file.ok_or_else(|| fail(std::io::ErrorKind::NotFound.into()))?;
        #[cfg(unix)]
        if let Some(meta) = existing {
            use std::os::unix::fs::PermissionsExt;
            let bits = meta.permissions().mode() & 0o777;
            file.set_permissions(std::fs::Permissions::from_mode(bits))
                .map_err(fail)?;
        }
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        Ok(Staged {
            temp,
            dest: dest.to_path_buf(),
        })
    }
}

/// Renames every staged file to its destination, all or nothing: each destination is checked
/// again, each file it replaces is kept aside (hard-linked to a temporary name) until every
/// rename has succeeded, and if one fails the earlier ones are undone. Signals wait for it.
pub fn commit(staged: Vec<Staged>) -> Result<(), String> {
    signals::critical(|| commit_with(staged, |from, to| std::fs::rename(from, to)))
}

/// One output renamed into place, and the file it replaced.
struct Done {
    dest: PathBuf,
    backup: Option<Registered>,
}

/// [`commit`] with the rename given, so that a failing rename can be tested.
fn commit_with(
    staged: Vec<Staged>,
    rename: impl Fn(&Path, &Path) -> std::io::Result<()>,
) -> Result<(), String> {
    for file in &staged {
        check_destination(&file.dest)?;
    }
    let mut done: Vec<Done> = Vec::with_capacity(staged.len());
    for Staged { temp, dest } in staged {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", shown_path(&dest));
        let backup = match std::fs::symlink_metadata(&dest) {
            Ok(_) => match keep_aside(&dest) {
                Ok(backup) => Some(backup),
                Err(e) => return Err(undo(done, fail(e))),
            },
            Err(_) => None,
        };
        match rename(temp.path(), &dest) {
            Ok(()) => {
                temp.disarm();
                done.push(Done { dest, backup });
            }
            Err(e) => return Err(undo(done, fail(e))),
        }
    }
    // Every output is in place: the replaced files (the backups) are removed as they drop.
    Ok(())
}

/// A second link to `dest` under a temporary name in its directory (a copy where the file
/// system has no hard links), removed when dropped.
fn keep_aside(dest: &Path) -> std::io::Result<Registered> {
    Registered::create(|| {
        let aside = tempfile::Builder::new()
            .prefix(".curvature-")
            .suffix(".bak")
            .make_in(directory(dest), |path| {
                std::fs::hard_link(dest, path).or_else(|_| std::fs::copy(dest, path).map(drop))
            })?;
        aside.into_temp_path().keep().map_err(|e| e.error)
    })
}

/// Undoes the renames in `done`, newest first: a replaced file is put back, a new one removed.
/// Returns `error`, extended when something could not be put back.
fn undo(done: Vec<Done>, error: String) -> String {
    let mut error = error;
    for Done { dest, backup } in done.into_iter().rev() {
        let restored = match &backup {
            Some(backup) => std::fs::rename(backup.path(), &dest),
            None => std::fs::remove_file(&dest),
        };
        match (restored, backup) {
            (Ok(()), Some(backup)) => backup.disarm(),
            (Ok(()), None) => {}
            (Err(e), backup) => {
                error.push_str(&format!(
                    "; and {} could not be restored: {e}",
                    shown_path(&dest)
                ));
                if let Some(backup) = backup {
                    error.push_str(&format!(" (kept as {})", shown_path(backup.path())));
                    backup.disarm();
                }
            }
        }
    }
    error
}

#[cfg(test)]
mod tests;
