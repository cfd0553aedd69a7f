//! Build script of the `curvature` package: fingerprints the CUDA sources.
//!
//! Hashes every file under `kernels/` (relative path and contents, in path order) with 64-bit
//! FNV-1a into `CURVATURE_KERNELS_FINGERPRINT`, which the binary reports (`--version`, the
//! bench's JSON lines) so every result names the kernel sources that produced it, and which
//! keys anything cached from those sources. Cargo reruns it whenever a file there changes.

use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let kernels = Path::new("kernels");
    println!("cargo:rerun-if-changed={}", kernels.display());
    let mut files = Vec::new();
    collect(kernels, &mut files);
    files.sort();
    let mut hash = Fnv1a::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let contents =
            fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        hash.write(file.to_string_lossy().replace('\\', "/").as_bytes());
        hash.write(&[0]);
        hash.write(&(contents.len() as u64).to_le_bytes());
        hash.write(&contents);
    }
    println!(
        "cargo:rustc-env=CURVATURE_KERNELS_FINGERPRINT={:016x}",
        hash.0
    );
}

/// Every file below `dir`, recursively.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// 64-bit FNV-1a: small, dependency-free, and stable across Rust versions (unlike
/// `std::hash`), which a fingerprint kept on disk needs.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
