//! The on-disk cache of NVRTC's output, so a process that compiled a module once does not pay
//! NVRTC again (every family together takes seconds; `matmul` alone most of it).
//!
//! An entry is keyed by everything that decides NVRTC's output: the module's name, its full
//! source (length and a 64-bit hash), the target architecture, the output kind, the compile
//! options and NVRTC's version. The entry file stores that key in full and a checksum of its
//! payload, and a read accepts an entry only when both match, so a hash collision, a truncated
//! write or a corrupt file is a miss, never a wrong module. Writers write a private temporary
//! file and rename it into place, which is atomic, so concurrent processes never see a partial
//! entry. Every failure of the cache (no home directory, a read-only disk) only means a
//! compile: the cache never turns a successful compile into an error.
//!
//! The directory is `$CURVATURE_CACHE_DIR`, else `$XDG_CACHE_HOME/curvature/nvrtc`, else
//! `$HOME/.cache/curvature/nvrtc`; `CURVATURE_CACHE_DIR=off` turns the cache off.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Leads every entry file: the format and its version.
const MAGIC: &[u8] = b"curvature-nvrtc-cache 1\n";

/// A directory of cached compile outputs.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

/// What one compile produced: its image (PTX or CUBIN) and NVRTC's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedOutput {
    pub image: Vec<u8>,
    pub log: String,
}

impl DiskCache {
    /// A cache in `dir` (created on the first store).
    pub fn at(dir: impl Into<PathBuf>) -> DiskCache {
        DiskCache { dir: dir.into() }
    }

    /// The cache the environment names (see the module docs), or `None` when it is off or no
    /// directory can be named.
    pub fn from_env() -> Option<DiskCache> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("CURVATURE_CACHE_DIR") {
            if dir == "off" {
                return None;
            }
            return Some(DiskCache::at(dir));
        }
        let base = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))?;
        Some(DiskCache::at(base.join("curvature").join("nvrtc")))
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry stored under `key`, if there is one intact.
    pub fn load(&self, key: &str) -> Option<CachedOutput> {
        let bytes = fs::read(self.path(key)).ok()?;
        decode(&bytes, key)
    }

    /// Stores `output` under `key`, replacing any entry. Failures are ignored: a cache that
    /// cannot be written is a cache that misses.
    pub fn store(&self, key: &str, output: &CachedOutput) {
        let _ = self.try_store(key, output);
    }

    fn try_store(&self, key: &str, output: &CachedOutput) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            ".{}.{}.{}.tmp",
            file_stem(key),
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        );
        let temporary = self.dir.join(unique);
        let written = fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(&encode(key, output))?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| fs::rename(&temporary, self.path(key)));
        if renamed.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        renamed
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.bin", file_stem(key)))
    }
}

/// The key of one compile: every input that decides NVRTC's output.
pub(crate) fn key(
    name: &str,
    source: &str,
    arch: &str,
    output: &str,
    options: &[String],
    nvrtc_version: (i32, i32),
) -> String {
    format!(
        "module {name}\nsource {} bytes, fnv1a64 {:016x}\narch {arch}\noutput {output}\n\
         options {}\nnvrtc {}.{}\n",
        source.len(),
        fnv1a64(source.as_bytes()),
        options.join(" "),
        nvrtc_version.0,
        nvrtc_version.1
    )
}

fn file_stem(key: &str) -> String {
    format!("{:016x}", fnv1a64(key.as_bytes()))
}

/// `MAGIC`, then the key, the log and the image, each as a little-endian u64 length and its
/// bytes, then a checksum of everything before it.
fn encode(key: &str, output: &CachedOutput) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    for part in [key.as_bytes(), output.log.as_bytes(), &output.image] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    let checksum = fnv1a64(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8], key: &str) -> Option<CachedOutput> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if fnv1a64(body).to_le_bytes() != checksum {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC)?;
    let mut next = || -> Option<&[u8]> {
        let (len, tail) = rest.split_at_checked(8)?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (part, tail) = tail.split_at_checked(len)?;
        rest = tail;
        Some(part)
    };
    let (stored_key, log, image) = (next()?, next()?, next()?);
    if stored_key != key.as_bytes() || !rest.is_empty() {
        return None;
    }
    Some(CachedOutput {
        image: image.to_vec(),
        log: String::from_utf8(log.to_vec()).ok()?,
    })
}

/// 64-bit FNV-1a: small and stable across Rust versions, as a key kept on disk needs.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> CachedOutput {
        CachedOutput {
            image: vec![0, 1, 2, 255, 0],
            log: "ptxas info: 32 registers".to_string(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("curvature-disk-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn stores_and_loads_by_the_full_key() {
        let dir = temp_dir("round-trip");
        let cache = DiskCache::at(&dir);
        let k = key("elementwise", "src", "sm_90", "cubin", &[], (13, 5));
        assert_eq!(cache.load(&k), None);
        cache.store(&k, &output());
        assert_eq!(cache.load(&k), Some(output()));
        // Any other input is another key: source, arch, options, NVRTC version.
        for other in [
            key("elementwise", "src2", "sm_90", "cubin", &[], (13, 5)),
            key("elementwise", "src", "sm_80", "cubin", &[], (13, 5)),
            key("elementwise", "src", "sm_90", "ptx", &[], (13, 5)),
            key(
                "elementwise",
                "src",
                "sm_90",
                "cubin",
                &["-v".into()],
                (13, 5),
            ),
            key("elementwise", "src", "sm_90", "cubin", &[], (13, 0)),
        ] {
            assert_ne!(other, k);
            assert_eq!(cache.load(&other), None);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_truncated_or_foreign_entries_are_misses() {
        let dir = temp_dir("corrupt");
        let cache = DiskCache::at(&dir);
        let k = key("reduce", "src", "sm_90", "cubin", &[], (13, 5));
        cache.store(&k, &output());
        let path = cache.path(&k);
        let good = fs::read(&path).unwrap();
        // One flipped bit anywhere.
        for i in [0, MAGIC.len() + 3, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert_eq!(cache.load(&k), None, "flipped byte {i}");
        }
        // Every truncation.
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            assert_eq!(cache.load(&k), None, "truncated to {len}");
        }
        // An intact entry of another key stored under this key's file name.
        let other = key("reduce", "other", "sm_90", "cubin", &[], (13, 5));
        fs::write(&path, encode(&other, &output())).unwrap();
        assert_eq!(cache.load(&k), None);
        // A store repairs it.
        cache.store(&k, &output());
        assert_eq!(cache.load(&k), Some(output()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_writers_leave_one_intact_entry() {
        let dir = temp_dir("concurrent");
        let cache = DiskCache::at(&dir);
        let k = key("matmul", "src", "sm_90", "cubin", &[], (13, 5));
        let big = CachedOutput {
            image: (0..200_000u32).map(|i| i as u8).collect(),
            log: String::new(),
        };
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..5 {
                        cache.store(&k, &big);
                        if let Some(read) = cache.load(&k) {
                            assert_eq!(read, big);
                        }
                    }
                });
            }
        });
        assert_eq!(cache.load(&k), Some(big));
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_cache_only_misses() {
        let file = temp_dir("not-a-dir");
        fs::write(&file, b"a file where the directory should be").unwrap();
        let cache = DiskCache::at(file.join("nvrtc"));
        let k = key("reduce", "src", "sm_90", "ptx", &[], (13, 5));
        cache.store(&k, &output());
        assert_eq!(cache.load(&k), None);
        let _ = fs::remove_file(&file);
    }
}
