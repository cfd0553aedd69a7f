//! The opt-in GEMM autotuner: for one GPU and one product shape, time every candidate plan
//! (tile × k splits) once, keep the fastest, and reuse it for every later product of that
//! shape, in this process and (through a small file) in later ones.
//!
//! Off by default: products take [`select_gemm`]'s table rule. `CURVATURE_GEMM_TUNE=1` turns
//! it on ([`process_tuner`]). A key ([`TuneKey`]) is the GPU's identity (name, SM count,
//! architecture) and the product's dtype, precision, m, n, k, batch and transposes. Its
//! candidates ([`candidates`]) are the table's plan first, then each tile of [`GemmTile::ALL`]
//! with 1, 2, 4, … k splits, as long as every split holds work, the workspace stays within
//! [`SPLIT_WORKSPACE_ELEMENTS`] and the blocks stay within two waves of the SMs. The timer
//! (a closure: the tensor crate's launches on the device, or a test's injected times) gives
//! each candidate's median time; the fastest wins, ties going to the earlier candidate, so
//! the table's plan is kept unless another one is strictly faster.
//!
//! The file is `$CURVATURE_GEMM_TUNE_FILE`, else `gemm-tune-v1.txt` in the kernel disk cache's
//! directory ([`DiskCache::from_env`]), else none (the choices live in memory only). Text:
//!
//! ```text
//! curvature-gemm-tune 1
//! <gpu name>\t<sms>\t<arch>\t<dtype>\t<precision>\t<m>\t<n>\t<k>\t<batch>\t<trans_a 0|1>\t<trans_b 0|1>\t<tile>\t<splits>\t<median ms>
//! …
//! checksum <16 hex digits: FNV-1a 64 of every byte before this line>
//! ```
//!
//! A file that is unreadable, larger than [`MAX_FILE_BYTES`], of another version, with a bad
//! checksum or any malformed line is ignored as a whole (no entry is trusted); an entry whose
//! plan is not among its key's candidates is ignored when looked up. Saving merges the entries
//! already in the file, writes a private temporary file and renames it into place, and a
//! failure to save only means the next process tunes again. Given the file, every choice is
//! deterministic: a key in the cache never reaches the timer.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::disk_cache::fnv1a64;
use crate::gemm_select::{
    plan_for_tile, select_gemm, GemmPlan, GemmTile, SPLIT_WORKSPACE_ELEMENTS,
};
use crate::{DiskCache, Dtype, GpuDevice, KernelError, Precision};

/// The first line of a tuning file: the format and its version.
const MAGIC: &str = "curvature-gemm-tune 1";

/// The name of the tuning file in the kernel disk cache's directory.
pub const FILE_NAME: &str = "gemm-tune-v1.txt";

/// A tuning file larger than this is ignored (and never written).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most entries a tuner keeps; choices beyond it are used but not remembered.
pub const MAX_ENTRIES: usize = 4096;

/// Which GPU a tuned choice was timed on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GpuIdentity {
    /// The driver's name (`NVIDIA H200`), or `emulated GPU`.
    pub name: String,
    /// Multiprocessors.
    pub sm_count: u32,
    /// Compute capability as an architecture name (`sm_90`; `emulated`).
    pub arch: String,
}

impl GpuIdentity {
    /// The identity of `device`.
    pub fn of(device: &GpuDevice) -> GpuIdentity {
        GpuIdentity {
            name: device.name(),
            sm_count: device.sm_count(),
            arch: device.arch(),
        }
    }
}

/// One product's shape: what, besides the GPU, decides which plan is fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    /// The element type of A, B and C.
    pub dtype: Dtype,
    /// The device's f32 product precision when the product ran.
    pub precision: Precision,
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Matrices in the batch.
    pub batch: usize,
    /// A is stored transposed.
    pub trans_a: bool,
    /// B is stored transposed.
    pub trans_b: bool,
}

/// The key of one tuned choice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TuneKey {
    /// The GPU it was timed on.
    pub gpu: GpuIdentity,
    /// The product.
    pub shape: GemmShape,
}

/// A kept choice: the plan's tile and splits, and its median time when tuned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TunedChoice {
    /// The tile of the kernel.
    pub tile: GemmTile,
    /// The k splits.
    pub splits: usize,
    /// The candidate's median time in milliseconds.
    pub ms: f64,
}

/// The plans [`GemmTuner::choose`] times for `shape` on a GPU of `sm_count` multiprocessors
/// (the rule in the module docs): the table's plan first, no plan twice.
pub fn candidates(shape: &GemmShape, sm_count: u32) -> Vec<GemmPlan> {
    let GemmShape {
        dtype,
        m,
        n,
        k,
        batch,
        ..
    } = *shape;
    let table = select_gemm(dtype, m, n, k, batch, sm_count);
    let mut plans = vec![table];
    let outputs = (batch as u64)
        .saturating_mul(m as u64)
        .saturating_mul(n as u64)
        .max(1);
    let room = (SPLIT_WORKSPACE_ELEMENTS as u64 / outputs).max(1);
    let two_waves = 2 * u64::from(sm_count.max(1));
    for tile in GemmTile::ALL {
        let (bm, bn, bk) = tile.dims(dtype);
        let slices = k.div_ceil(bk).max(1);
        let blocks = (m.div_ceil(bm) as u64)
            .saturating_mul(n.div_ceil(bn) as u64)
            .saturating_mul(batch as u64)
            .max(1);
        let mut wanted = 1usize;
        while wanted <= slices {
            // Whole slices per split, as the table rule rounds them.
            let splits = slices.div_ceil((slices / wanted).max(1));
            let plan = plan_for_tile(dtype, tile, splits, m, n, batch, sm_count);
            let fits = splits == 1
                || (splits as u64 <= room && blocks.saturating_mul(splits as u64) <= two_waves);
            let every_split_works = (splits - 1) * plan.split_len(dtype, k) < k.max(1);
            if !fits {
                break;
            }
            if every_split_works && !plans.contains(&plan) {
                plans.push(plan);
            }
            wanted = wanted.saturating_mul(2);
        }
    }
    plans
}

/// Tuned choices by key, with the file they persist in (if any).
#[derive(Debug, Default)]
pub struct GemmTuner {
    entries: HashMap<TuneKey, TunedChoice>,
    file: Option<PathBuf>,
}

impl GemmTuner {
    /// A tuner that keeps its choices in memory only.
    pub fn in_memory() -> GemmTuner {
        GemmTuner::default()
    }

    /// A tuner persisted in `path`, starting from the entries of that file when it is intact
    /// (see the module docs; any other file starts it empty).
    pub fn with_file(path: impl Into<PathBuf>) -> GemmTuner {
        let path = path.into();
        GemmTuner {
            entries: read_file(&path).unwrap_or_default(),
            file: Some(path),
        }
    }

    /// The tuner `CURVATURE_GEMM_TUNE=1` asks for, persisted in the file the environment names
    /// (module docs); `None` when tuning is off.
    pub fn from_env() -> Option<GemmTuner> {
        if std::env::var("CURVATURE_GEMM_TUNE").ok()?.trim() != "1" {
            return None;
        }
        let named = std::env::var_os("CURVATURE_GEMM_TUNE_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let file = named.or_else(|| DiskCache::from_env().map(|c| c.dir().join(FILE_NAME)));
        Some(match file {
            Some(path) => GemmTuner::with_file(path),
            None => GemmTuner::in_memory(),
        })
    }

    /// The file choices are saved to, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// How many choices the tuner holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tuner holds no choice.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The kept choice for `key`, when it is one of the key's [`candidates`].
    pub fn lookup(&self, key: &TuneKey) -> Option<GemmPlan> {
        let choice = self.entries.get(key)?;
        let s = &key.shape;
        let plan = plan_for_tile(
            s.dtype,
            choice.tile,
            choice.splits,
            s.m,
            s.n,
            s.batch,
            key.gpu.sm_count,
        );
        candidates(s, key.gpu.sm_count)
            .contains(&plan)
            .then_some(plan)
    }

    /// The kept choice for `key` as stored (tile, splits, time), whether or not it is valid.
    pub fn entry(&self, key: &TuneKey) -> Option<TunedChoice> {
        self.entries.get(key).copied()
    }

    /// Keeps `choice` for `key` (in memory; [`GemmTuner::save`] writes the file).
    pub fn insert(&mut self, key: TuneKey, choice: TunedChoice) {
        if self.entries.len() < MAX_ENTRIES || self.entries.contains_key(&key) {
            self.entries.insert(key, choice);
        }
    }

    /// The plan for `key`: the kept choice when there is a valid one (`time` is not called);
    /// otherwise every candidate timed by `time` (its median milliseconds), the fastest kept,
    /// saved to the file, and returned. A candidate whose time is not a finite non-negative
    /// number never wins; when none has one the table's plan is returned and nothing is kept.
    /// An error of `time` is returned as is, with nothing kept.
    pub fn choose<E>(
        &mut self,
        key: &TuneKey,
        mut time: impl FnMut(&GemmPlan) -> Result<f64, E>,
    ) -> Result<GemmPlan, E> {
        if let Some(plan) = self.lookup(key) {
            return Ok(plan);
        }
        let plans = candidates(&key.shape, key.gpu.sm_count);
        let mut best: Option<(GemmPlan, f64)> = None;
        for plan in &plans {
            let ms = time(plan)?;
            let valid = ms.is_finite() && ms >= 0.0;
            if valid && best.is_none_or(|(_, fastest)| ms < fastest) {
                best = Some((*plan, ms));
            }
        }
        let Some((plan, ms)) = best else {
            return Ok(plans[0]);
        };
        self.insert(
            key.clone(),
            TunedChoice {
                tile: plan.tile,
                splits: plan.splits,
                ms,
            },
        );
        self.save();
        Ok(plan)
    }

    /// Writes the choices to the file (merged over the entries already there, ours winning).
    /// Failures are ignored: a choice that cannot be saved is tuned again by the next process.
    pub fn save(&self) {
        if let Some(path) = &self.file {
            let mut merged = read_file(path).unwrap_or_default();
            for (key, choice) in &self.entries {
                if merged.len() < MAX_ENTRIES || merged.contains_key(key) {
                    merged.insert(key.clone(), *choice);
                }
            }
            let _ = write_file(path, &merged);
        }
    }
}

/// The process's tuner when `CURVATURE_GEMM_TUNE=1` ([`GemmTuner::from_env`], read once).
pub fn process_tuner() -> Option<&'static Mutex<GemmTuner>> {
    static TUNER: OnceLock<Option<Mutex<GemmTuner>>> = OnceLock::new();
    TUNER
        .get_or_init(|| GemmTuner::from_env().map(Mutex::new))
        .as_ref()
}

/// The median wall-clock milliseconds of `runs` calls of `run` (at least one), each followed by
/// a synchronize of `device`, after `warm_ups` untimed calls.
pub fn median_ms<E: From<KernelError>>(
    device: &GpuDevice,
    warm_ups: usize,
    runs: usize,
    mut run: impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    for _ in 0..warm_ups {
        run()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(runs.clamp(1, 1024));
    for _ in 0..runs.clamp(1, 1024) {
        let start = Instant::now();
        run()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn dtype_from_name(name: &str) -> Option<Dtype> {
    [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::BF16]
        .into_iter()
        .find(|d| d.name() == name)
}

fn tile_from_name(name: &str) -> Option<GemmTile> {
    GemmTile::ALL.into_iter().find(|t| t.name() == name)
}

/// A GPU name as one field: tabs and line breaks become spaces.
fn field(name: &str) -> String {
    name.replace(['\t', '\n', '\r'], " ")
}

fn encode(entries: &HashMap<TuneKey, TunedChoice>) -> String {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|(key, choice)| {
            let (g, s) = (&key.gpu, &key.shape);
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:e}\n",
                field(&g.name),
                g.sm_count,
                field(&g.arch),
                s.dtype.name(),
                s.precision.name(),
                s.m,
                s.n,
                s.k,
                s.batch,
                u8::from(s.trans_a),
                u8::from(s.trans_b),
                choice.tile.name(),
                choice.splits,
                choice.ms
            )
        })
        .collect();
    // A stable order, so equal contents make equal files.
    lines.sort();
    let mut text = format!("{MAGIC}\n");
    text.extend(lines);
    let checksum = fnv1a64(text.as_bytes());
    text.push_str(&format!("checksum {checksum:016x}\n"));
    text
}

fn decode(text: &str) -> Option<HashMap<TuneKey, TunedChoice>> {
    let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
    let (body, trailer) = text.split_at(body_end);
    let checksum = trailer.strip_prefix("checksum ")?.strip_suffix('\n')?;
    if checksum != format!("{:016x}", fnv1a64(body.as_bytes())) {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut entries = HashMap::new();
    for line in lines {
        let (key, choice) = decode_line(line)?;
        if entries.len() >= MAX_ENTRIES {
            break;
        }
        entries.insert(key, choice);
    }
    Some(entries)
}

fn decode_line(line: &str) -> Option<(TuneKey, TunedChoice)> {
    let f: Vec<&str> = line.split('\t').collect();
    let [name, sms, arch, dtype, precision, m, n, k, batch, ta, tb, tile, splits, ms] = f[..]
    else {
        return None;
    };
    let flag = |v: &str| match v {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    };
    let splits: usize = splits.parse().ok()?;
    let ms: f64 = ms.parse().ok()?;
    if splits == 0 || !ms.is_finite() || ms < 0.0 {
        return None;
    }
    let key = TuneKey {
        gpu: GpuIdentity {
            name: name.to_string(),
            sm_count: sms.parse().ok()?,
            arch: arch.to_string(),
        },
        shape: GemmShape {
            dtype: dtype_from_name(dtype)?,
            precision: precision.parse().ok()?,
            m: m.parse().ok()?,
            n: n.parse().ok()?,
            k: k.parse().ok()?,
            batch: batch.parse().ok()?,
            trans_a: flag(ta)?,
            trans_b: flag(tb)?,
        },
    };
    let choice = TunedChoice {
        tile: tile_from_name(tile)?,
        splits,
        ms,
    };
    Some((key, choice))
}

fn read_file(path: &Path) -> Option<HashMap<TuneKey, TunedChoice>> {
    if fs::metadata(path).ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    decode(std::str::from_utf8(&bytes).ok()?)
}

fn write_file(path: &Path, entries: &HashMap<TuneKey, TunedChoice>) -> std::io::Result<()> {
    let text = encode(entries);
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("tuning file over its size limit"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir)?;
    }
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "gemm-tune".into(), |n| n.to_string_lossy());
    let temporary = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temporary, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    renamed
}

#[cfg(test)]
mod tests;
