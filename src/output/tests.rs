//! The commit's all-or-nothing promise, with a rename that fails on demand.

use std::path::{Path, PathBuf};

use super::*;

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A rename that fails for `bad` and renames everything else.
fn failing_for(bad: PathBuf) -> impl Fn(&Path, &Path) -> std::io::Result<()> {
    move |from, to| {
        if to == bad {
            Err(std::io::Error::other("injected failure"))
        } else {
            std::fs::rename(from, to)
        }
    }
}

#[test]
fn a_failed_rename_puts_back_the_outputs_already_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.svg"));
    std::fs::write(&a, "previous a").unwrap();
    std::fs::write(&b, "previous b").unwrap();
    let staged = vec![
        Staged::new(&a, b"new a").unwrap(),
        Staged::new(&b, b"new b").unwrap(),
    ];
    let error = commit_with(staged, failing_for(b.clone())).unwrap_err();
    assert!(error.starts_with("cannot write"), "{error}");
    assert!(error.contains("injected failure"), "{error}");
    assert_eq!(read(&a), "previous a");
    assert_eq!(read(&b), "previous b");
    assert_eq!(listing(dir.path()), ["a.safetensors", "b.svg"]);
}

#[test]
fn a_failed_rename_removes_the_new_outputs_already_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.svg"));
    std::fs::write(&b, "previous b").unwrap();
    let staged = vec![
        Staged::new(&a, b"new a").unwrap(),
        Staged::new(&b, b"new b").unwrap(),
    ];
    assert!(commit_with(staged, failing_for(b.clone())).is_err());
    assert_eq!(listing(dir.path()), ["b.svg"]);
    assert_eq!(read(&b), "previous b");
}

#[test]
fn a_commit_replaces_every_output_and_leaves_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.svg"));
    std::fs::write(&a, "previous a").unwrap();
    let staged = vec![
        Staged::new(&a, b"new a").unwrap(),
        Staged::new(&b, b"new b").unwrap(),
    ];
    commit(staged).unwrap();
    assert_eq!((read(&a), read(&b)), ("new a".into(), "new b".into()));
    assert_eq!(listing(dir.path()), ["a.safetensors", "b.svg"]);
}

#[test]
fn dropping_a_staged_file_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let staged = Staged::new(&dir.path().join("a"), b"bytes").unwrap();
    assert_eq!(listing(dir.path()).len(), 1);
    drop(staged);
    assert!(listing(dir.path()).is_empty());
}

#[cfg(unix)]
#[test]
fn a_replaced_file_keeps_its_permission_bits() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o600, 0o640, 0o664, 0o755] {
        let path = dir.path().join(format!("results-{mode:o}"));
        std::fs::write(&path, "previous").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        commit(vec![Staged::new(&path, b"new").unwrap()]).unwrap();
        let now = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(now, mode, "{mode:o} became {now:o}");
        assert_eq!(read(&path), "new");
    }
}

#[cfg(unix)]
#[test]
fn a_destination_that_became_special_is_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let staged = vec![
        Staged::new(&a, b"new a").unwrap(),
        Staged::new(&b, b"new b").unwrap(),
    ];
    // Between staging and commit, `b` turns into a symbolic link.
    std::os::unix::fs::symlink("/dev/null", &b).unwrap();
    let error = commit(staged).unwrap_err();
    assert!(error.contains("symbolic link"), "{error}");
    assert_eq!(listing(dir.path()), ["b"]);
}
