//! Helpers shared by the command-line tests: the golden model as editable tensors, and
//! running `curvature` with bounded time and memory, checking how it refuses bad input.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// A file's f64 tensors by name, each `(shape, values)`.
pub type F64Tensors = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

/// A safetensors file's f64 tensors and its metadata, read with the safetensors crate (not with
/// the code under test).
pub fn read_f64_file(path: &Path) -> (F64Tensors, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).expect("readable file");
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("a header");
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F64, "{name} is f64");
            let values = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect();
    (tensors, metadata.into_iter().collect())
}

/// How long one run may take before the test fails.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);

/// The address space one run may use (RLIMIT_AS).
pub const MEMORY_LIMIT: u64 = 4 << 30;

/// The golden models' directory: `$CURVATURE_TEST_DATA` when set (test binaries copied to
/// another machine), else the repository's `tests/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("CURVATURE_TEST_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        PathBuf::from,
    )
}

/// A golden model file.
pub fn data(name: &str) -> PathBuf {
    data_dir().join(format!("{name}.safetensors"))
}

/// The `curvature` binary: `$CURVATURE_BIN` when set (test binaries copied to another
/// machine), else the one cargo built for these tests.
pub fn curvature_bin() -> PathBuf {
    std::env::var_os("CURVATURE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_curvature")),
        PathBuf::from,
    )
}

/// A model file as tensors `(name, shape, values)` and metadata, to be spoiled and written.
pub struct ModelFile {
    pub tensors: Vec<(String, Vec<usize>, Vec<f64>)>,
    pub metadata: HashMap<String, String>,
}

impl ModelFile {
    /// The model, data and metadata of a golden file (without the reference results).
    pub fn golden() -> ModelFile {
        ModelFile::golden_named("mlp_4_6_5_3_tanh_sigmoid_mse")
    }

    /// Like [`ModelFile::golden`] for the golden file `name`.
    pub fn golden_named(name: &str) -> ModelFile {
        let bytes = std::fs::read(data(name)).expect("golden file");
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("header");
        let file = SafeTensors::deserialize(&bytes).expect("golden file parses");
        let keep = |name: &str| name == "x" || name == "y" || name.contains('.');
        let mut tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, view)| {
                let values = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                (name, view.shape().to_vec(), values)
            })
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let metadata = header.metadata().clone().expect("metadata");
        ModelFile { tensors, metadata }
    }

    /// An MLP with layer `widths`, tanh between the layers, MSE, and `samples` samples, its
    /// parameters uniform in ±1/√fan-in and its data uniform in [−1, 1) from a fixed xorshift
    /// generator.
    pub fn random_tanh_mlp(widths: &[usize], samples: usize) -> ModelFile {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let mut tensors = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            let scale = 1.0 / (w[0] as f64).sqrt();
            let weight = (0..w[0] * w[1]).map(|_| scale * uniform()).collect();
            let bias = (0..w[1]).map(|_| scale * uniform()).collect();
            tensors.push((format!("{i}.weight"), vec![w[1], w[0]], weight));
            tensors.push((format!("{i}.bias"), vec![w[1]], bias));
        }
        let (inputs, outputs) = (widths[0], widths[widths.len() - 1]);
        let x = (0..samples * inputs).map(|_| uniform()).collect();
        let y = (0..samples * outputs).map(|_| uniform()).collect();
        tensors.push(("x".into(), vec![samples, inputs], x));
        tensors.push(("y".into(), vec![samples, outputs], y));
        let hidden = vec!["\"tanh\""; widths.len() - 2].join(", ");
        let metadata = [
            ("widths", format!("{widths:?}")),
            ("activations", format!("[{hidden}]")),
            ("final_activation", "None".into()),
            ("loss", "mse".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ModelFile { tensors, metadata }
    }

    pub fn tensor(&mut self, name: &str) -> &mut (String, Vec<usize>, Vec<f64>) {
        self.tensors
            .iter_mut()
            .find(|t| t.0 == name)
            .expect("tensor present")
    }

    pub fn bytes(&self) -> Vec<u8> {
        let data: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views: Vec<_> = self
            .tensors
            .iter()
            .zip(&data)
            .map(|((name, shape, _), d)| {
                let view = TensorView::new(Dtype::F64, shape.clone(), d).expect("valid view");
                (name.clone(), view)
            })
            .collect();
        safetensors::tensor::serialize(views, Some(self.metadata.clone())).expect("serialises")
    }
}

/// The `curvature` binary with `args`.
pub fn curvature(args: &[&str]) -> Command {
    let mut command = Command::new(curvature_bin());
    command.args(args);
    command
}

/// Runs `command` with its address space limited to [`MEMORY_LIMIT`], killing it (and failing)
/// after [`TIME_LIMIT`]; returns its output.
pub fn run_bounded(command: &mut Command) -> Output {
    limit_memory(command, MEMORY_LIMIT);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the curvature binary starts");
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} ran for more than {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

#[cfg(unix)]
fn limit_memory(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which
    // is async-signal-safe, with a pointer to a valid `rlimit` copied into the closure.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn limit_memory(_command: &mut Command, _bytes: u64) {}

/// Checks that `output` is a refusal: exit code 2, no panic, stderr exactly one line starting
/// `error: ` of at most 300 bytes, nothing on stdout. Returns the line.
pub fn assert_refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.ends_with('\n'), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        output.stderr.len() <= 300,
        "{} bytes: {stderr}",
        output.stderr.len()
    );
    assert!(output.stdout.is_empty(), "no summary on failure");
    stderr
}

/// Runs `analyze` on `bytes` written to a fresh directory with `--out` and `--plot` in the same
/// directory; checks the refusal ([`assert_refused`]) naming `expected`, and that the directory
/// holds nothing but the input afterwards.
pub fn rejects(bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("bad.safetensors");
    std::fs::write(&model, bytes).expect("written");
    check_rejected(&model, dir.path(), &[], expected);
}

/// `curvature analyze model --device cpu --out dir/results.safetensors --plot dir/spectrum.svg`.
pub fn analyze_into(model: &Path, dir: &Path) -> Command {
    let mut command = curvature(&["analyze"]);
    command
        .arg(model)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("results.safetensors"))
        .arg("--plot")
        .arg(dir.join("spectrum.svg"));
    command
}

/// Runs `analyze model --device cpu --out dir/… --plot dir/…` with `extra` arguments, checks
/// the refusal naming `expected` and that `dir` is as it was; returns the error line.
pub fn check_rejected(model: &Path, dir: &Path, extra: &[&str], expected: &str) -> String {
    let before = listing(dir);
    let mut command = analyze_into(model, dir);
    command.args(extra);
    let output = run_bounded(&mut command);
    let line = assert_refused(&output);
    assert!(line.contains(expected), "expected '{expected}' in: {line}");
    assert_eq!(listing(dir), before, "no output or temporary file is left");
    line
}

/// The entries of `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listable")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    entries
}
