//! The corpus of malformed model files: how a file is spelled out ([`spec`]) and the cases,
//! spoiled at the level of the file format ([`format`]) and of the model ([`model`]).

pub mod format;
pub mod layers;
pub mod model;
pub mod spec;

use std::path::{Path, PathBuf};

/// Where a case's input comes from.
pub enum Input {
    Bytes(Vec<u8>),
    /// These bytes, then zeros (a sparse tail) up to this many bytes.
    Sparse(Vec<u8>, u64),
    Fifo,
    Directory,
    /// An existing path, used as is.
    Path(PathBuf),
    /// A symbolic link to this path.
    Symlink(PathBuf),
}

pub struct Case {
    pub name: String,
    pub input: Input,
    pub args: Vec<&'static str>,
    /// A part of the error line that names the problem.
    pub expected: String,
}

pub fn case(name: impl Into<String>, input: Input, expected: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        input,
        args: vec![],
        expected: expected.into(),
    }
}

pub fn bytes(name: impl Into<String>, bytes: Vec<u8>, expected: impl Into<String>) -> Case {
    case(name, Input::Bytes(bytes), expected)
}

pub const INVALID: &str = "not a valid safetensors file";

/// Writes the case's input under `dir` and returns the path to give `analyze`.
pub fn materialise(input: &Input, dir: &Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    match input {
        Input::Bytes(bytes) => std::fs::write(&path, bytes).expect("written"),
        Input::Sparse(head, len) => {
            std::fs::write(&path, head).expect("written");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_len(*len).expect("extended");
        }
        Input::Fifo => {
            let status = std::process::Command::new("mkfifo").arg(&path).status();
            assert!(status.expect("mkfifo").success());
        }
        Input::Directory => std::fs::create_dir(&path).expect("dir"),
        Input::Path(existing) => return existing.clone(),
        Input::Symlink(target) => std::os::unix::fs::symlink(target, &path).expect("symlink"),
    }
    path
}
