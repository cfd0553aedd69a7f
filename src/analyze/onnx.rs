//! The ONNX route of `analyze`: the graph is imported ([`OnnxModel`]), the data file's header is
//! checked against the graph's inputs (one tensor per input, named after it, and the targets
//! `y`, all with the same number of samples, each shaped as the graph declares) before any
//! data is read, and the plan's sizes come from P, the samples, the data and the graph.
//!
//! The activations are counted by running the graph's forward pass on zeros shaped as the
//! header says, at one sample and at two, the parameters as tape leaves, so that the tape
//! records what the gradient pass keeps: the elements of the values it records (those that
//! depend on a parameter) and of every value the ops compute, intermediates included. Values
//! that depend on the data scale linearly with the samples, so a count at n samples is
//! c₁ + (n − 1)(c₂ − c₁), exact for a graph that treats its samples independently; the values
//! computed from the parameters alone (c₁ − (c₂ − c₁)) are counted once. A graph whose inputs
//! declare a fixed sample axis runs once at the data's sample count. The probe's own cost is
//! bounded: one sample's inputs and every op's value count against a share of the memory
//! available, and a graph past it is counted as at least that large per sample (so the run
//! is refused). A forward pass that fails on zeros falls back to a bound from the graph's
//! size ([`ActivationCount::Bound`]).

use std::path::{Path, PathBuf};

use curvature::nn::{Loss, Module};
use curvature::onnx::ir::{Dim, ElemType, HostData, ValueInfo};
use curvature::onnx::{OnnxError, OnnxModel, OnnxOptions};
use curvature::tape::{Tape, Var};
use curvature::tensor::io::{shown, Accept, Entry, Header, Source};
use curvature::tensor::{DType, Device, Tensor};
use safetensors::Dtype as FileDtype;

use super::plan::Sizes;
use super::problem::{parameter_layout, ModelKind, Problem};
use crate::cli::AnalyzeArgs;

/// The name of the targets in the data file.
pub const TARGETS: &str = "y";

/// At most this many names are listed in one error.
const NAMES_SHOWN: usize = 6;

/// Whether `path` names an ONNX model (by its extension, `.onnx` in any case).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// An imported graph and its checked data file, not yet read.
pub struct OnnxSource {
    model: OnnxModel,
    loss: Loss,
    model_path: PathBuf,
    data_path: PathBuf,
    data: Source,
    /// The graph's inputs' entries in the data file, in the graph's order, then `y`'s.
    entries: Vec<(String, Entry)>,
    samples: usize,
    activations: ActivationCount,
}

/// How the activations of a run were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationCount {
    /// By the forward pass on zeros, at the run's sample count: the elements of the values the
    /// tape records (those that depend on a parameter, which the gradient and the products
    /// keep) and of the values computed without recording (alive during the forward pass).
    Probed { recorded: u128, unrecorded: u128 },
    /// The one-sample forward pass computes more than the probe's limit: at least this many
    /// elements (the limit per sample, over all samples).
    PastLimit(u128),
    /// The forward pass on zeros failed: the bound of [`OnnxSource::sizes`] is used.
    Bound,
}

/// The share of the memory available the activation probe may compute (in the run's dtype):
/// one part in this many.
const PROBE_SHARE: u128 = 4;

/// Refuses `--out` or `--plot` naming a file the graph's external data was read from (the
/// model and data files themselves were checked before any work).
fn refuse_overwriting_external_data(args: &AnalyzeArgs, model: &OnnxModel) -> Result<(), String> {
    let external = &model.graph().external_files;
    if external.is_empty() {
        return Ok(());
    }
    let inputs: Vec<(&str, &std::path::Path)> = external
        .iter()
        .map(|file| ("external data file", file.as_path()))
        .collect();
    let outputs: Vec<(&str, &std::path::Path)> = [("--out", &args.out), ("--plot", &args.plot)]
        .into_iter()
        .filter_map(|(flag, path)| path.as_deref().map(|p| (flag, p)))
        .collect();
    crate::output::check_destinations(&inputs, &outputs)
}

/// Imports the graph `args.model` (its parameters chosen by `--params`) in `dtype` on
/// `device` and checks the data file's header against it.
pub fn open(args: &AnalyzeArgs, dtype: DType, device: Device) -> Result<OnnxSource, String> {
    let model_path = &args.model;
    let data_path = args.data.clone().ok_or_else(|| {
        format!(
            "{} is an ONNX model: give its data with --data DATA.safetensors (one tensor per \
             graph input, named after it, and the targets '{TARGETS}')",
            model_path.display()
        )
    })?;
    let loss = args.loss.ok_or_else(|| {
        let names: Vec<&str> = crate::cli::LOSSES.iter().map(|(n, _)| *n).collect();
        format!(
            "{} is an ONNX model: give the loss of its output with --loss ({})",
            model_path.display(),
            names.join(", ")
        )
    })?;
    let options = OnnxOptions {
        params: args.params.clone(),
    };
    let model = OnnxModel::load(model_path, &options, dtype, device).map_err(|e| match e {
        OnnxError::Io { .. } => e.to_string(),
        other => super::located(model_path, other),
    })?;
    refuse_overwriting_external_data(args, &model)?;
    let in_data = |e: String| super::located(&data_path, e);
    let (data, len) = Source::open(&data_path).map_err(|e| e.to_string())?;
    let header = data.header(len).map_err(|e| in_data(e.to_string()))?;
    let inputs = &model.graph().inputs;
    if inputs.iter().any(|i| i.name == TARGETS) {
        return Err(super::located(
            model_path,
            format!(
                "the graph has an input named '{TARGETS}', the data file's name for the targets"
            ),
        ));
    }
    check_names(inputs, &header).map_err(in_data)?;
    let mut entries: Vec<(String, Entry)> = inputs
        .iter()
        .map(|i| (i.name.clone(), header.tensors[&i.name].clone()))
        .collect();
    entries.push((TARGETS.to_string(), header.tensors[TARGETS].clone()));
    let samples = check_shapes(inputs, &entries).map_err(in_data)?;
    let (available, _) = super::plan::available_memory(args.memory_limit);
    let limit = available / PROBE_SHARE / dtype.size_in_bytes() as u128;
    let activations = count_activations(&model, &entries, samples, limit);
    Ok(OnnxSource {
        model,
        loss,
        model_path: model_path.clone(),
        data_path,
        data,
        entries,
        samples,
        activations,
    })
}

/// Every graph input and `y` present, and nothing else: one line naming what is missing and
/// what is not expected.
fn check_names(inputs: &[ValueInfo], header: &Header) -> Result<(), String> {
    let expected: Vec<&str> = inputs
        .iter()
        .map(|i| i.name.as_str())
        .chain([TARGETS])
        .collect();
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|name| !header.tensors.contains_key(*name))
        .collect();
    let extra: Vec<&str> = header
        .tensors
        .keys()
        .map(String::as_str)
        .filter(|name| !expected.contains(name))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing {}", listed(&missing)));
    }
    if !extra.is_empty() {
        problems.push(format!("unexpected {}", listed(&extra)));
    }
    let inputs: Vec<&str> = expected[..expected.len() - 1].to_vec();
    Err(format!(
        "{} (the data file holds the graph's inputs {} and the targets '{TARGETS}')",
        problems.join("; "),
        if inputs.is_empty() {
            "(none)".to_string()
        } else {
            names(&inputs)
        }
    ))
}

/// `tensor 'a'` or `tensors 'a', 'b'` (the first few, escaped and cut short).
fn listed(list: &[&str]) -> String {
    format!(
        "tensor{} {}",
        if list.len() == 1 { "" } else { "s" },
        names(list)
    )
}

/// The first few names, quoted, escaped and cut short, and how many more there are.
fn names(list: &[&str]) -> String {
    let mut shown_names: Vec<String> = list
        .iter()
        .take(NAMES_SHOWN)
        .map(|n| format!("'{}'", shown(n)))
        .collect();
    if list.len() > NAMES_SHOWN {
        shown_names.push(format!("and {} more", list.len() - NAMES_SHOWN));
    }
    shown_names.join(", ")
}

/// Each tensor floating-point, with samples along axis 0 (as many as `y` has, at least one),
/// and each input shaped as the graph declares it; returns the sample count.
fn check_shapes(inputs: &[ValueInfo], entries: &[(String, Entry)]) -> Result<usize, String> {
    for (name, entry) in entries {
        if !matches!(
            entry.dtype,
            FileDtype::F64 | FileDtype::F32 | FileDtype::F16 | FileDtype::BF16
        ) {
            return Err(format!(
                "tensor '{}' has dtype {:?}; the data file holds floating-point tensors (class \
                 labels as integral floats)",
                shown(name),
                entry.dtype
            ));
        }
    }
    let targets = &entries[entries.len() - 1].1;
    let samples = match targets.shape.first() {
        Some(&n) if n > 0 => n,
        _ => {
            return Err(format!(
                "the targets '{TARGETS}' {:?} have no samples along axis 0",
                targets.shape
            ))
        }
    };
    for (info, (name, entry)) in inputs.iter().zip(entries) {
        if entry.shape.first() != Some(&samples) {
            return Err(format!(
                "tensor '{}' has shape {:?}, but the targets '{TARGETS}' have {samples} samples \
                 along axis 0",
                shown(name),
                entry.shape
            ));
        }
        if let Some(dims) = &info.dims {
            let fits = dims.len() == entry.shape.len()
                && dims.iter().zip(&entry.shape).all(|(d, &n)| match d {
                    Dim::Fixed(size) => *size == n,
                    Dim::Symbolic(_) | Dim::Unknown => true,
                });
            if !fits {
                return Err(format!(
                    "tensor '{}' has shape {:?}, but the graph declares its input as [{}]",
                    shown(name),
                    entry.shape,
                    declared(dims)
                ));
            }
        }
    }
    Ok(samples)
}

/// Counts the elements the forward pass computes at `samples` samples from runs on zeros
/// shaped like the data `entries` (inputs, then `y`): at one and two samples, extrapolated
/// linearly, or once at `samples` when an input fixes the sample axis. Each run may compute at
/// most `limit` elements per sample.
pub fn count_activations(
    model: &OnnxModel,
    entries: &[(String, Entry)],
    samples: usize,
    limit: u128,
) -> ActivationCount {
    let inputs = &entries[..entries.len().saturating_sub(1)];
    let fixed = model.graph().inputs.iter().any(|info| {
        info.dims
            .as_ref()
            .is_some_and(|dims| matches!(dims.first(), Some(Dim::Fixed(_))))
    });
    let per_sample_limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let runs: &[usize] = if fixed || samples == 1 {
        &[samples]
    } else {
        &[1, 2]
    };
    let mut counts = Vec::with_capacity(runs.len());
    for &n in runs {
        match forward_on_zeros(model, inputs, n, per_sample_limit.saturating_mul(n)) {
            Probe::Computed(count) => counts.push(count),
            Probe::PastLimit => {
                return ActivationCount::PastLimit((limit + 1).saturating_mul(samples as u128))
            }
            Probe::Failed => return ActivationCount::Bound,
        }
    }
    let at_samples = |pick: fn(&Counted) -> u128| match counts.as_slice() {
        [one] => pick(one),
        [one, two] => {
            let (c1, c2) = (pick(one), pick(two));
            // A count that shrinks with the samples is not linear: each sample counts c₁.
            let per_sample = if c2 >= c1 { c2 - c1 } else { c1 };
            c1.saturating_add(per_sample.saturating_mul(samples as u128 - 1))
        }
        _ => 0,
    };
    let recorded = at_samples(|c| c.recorded);
    let computed = at_samples(|c| c.computed);
    ActivationCount::Probed {
        recorded,
        unrecorded: computed.saturating_sub(recorded),
    }
}

/// What one forward pass on zeros computed, in elements.
struct Counted {
    /// Every value its ops computed.
    computed: u128,
    /// The values the tape recorded.
    recorded: u128,
}

/// The outcome of one forward pass on zeros.
enum Probe {
    Computed(Counted),
    /// More than the limit (or one sample's inputs alone past it).
    PastLimit,
    /// The graph does not run on these shapes.
    Failed,
}

/// Runs `model` on zeros of `n` samples shaped like `inputs` (their sample axis replaced),
/// the parameters as leaves, computing at most `limit` elements.
fn forward_on_zeros(
    model: &OnnxModel,
    inputs: &[(String, Entry)],
    n: usize,
    limit: usize,
) -> Probe {
    let mut input_elements = 0usize;
    let mut shapes = Vec::with_capacity(inputs.len());
    for (_, entry) in inputs {
        let mut dims = entry.shape.clone();
        match dims.first_mut() {
            Some(first) => *first = n,
            None => return Probe::Failed,
        }
        let total = dims
            .iter()
            .try_fold(1usize, |t, &d| t.checked_mul(d))
            .and_then(|c| input_elements.checked_add(c));
        match total {
            Some(c) if c <= limit => input_elements = c,
            _ => return Probe::PastLimit,
        }
        shapes.push(dims);
    }
    let tape = Tape::new();
    let (dtype, device) = (model.dtype(), model.device());
    let mut vars: Vec<Var> = Vec::with_capacity(shapes.len());
    for dims in shapes {
        match Tensor::zeros(dims, dtype, device) {
            Ok(t) => vars.push(tape.constant(t)),
            Err(_) => return Probe::Failed,
        }
    }
    let params: Vec<Var> = model
        .parameters()
        .into_iter()
        .map(|t| tape.leaf(t))
        .collect();
    let limit = limit - input_elements;
    tape.limit_computed_elements(Some(limit));
    let result = model.run(&params, &vars);
    let computed = tape.computed_elements();
    match result {
        Ok(_) => Probe::Computed(Counted {
            computed: computed as u128,
            recorded: tape.recorded_elements() as u128,
        }),
        Err(_) if computed > limit => Probe::PastLimit,
        Err(_) => Probe::Failed,
    }
}

/// A declared shape as the file gives it: sizes, symbolic names, `?` for unknown.
fn declared(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(name) => shown(name),
            Dim::Unknown => "?".to_string(),
        })
        .collect();
    dims.join(", ")
}

impl OnnxSource {
    /// The number of samples.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// How the activations were counted.
    #[cfg(test)]
    pub fn activations(&self) -> ActivationCount {
        self.activations
    }

    /// Whether the graph runs on shards of the samples over `ranks` ranks: a graph input whose
    /// leading (sample) axis is declared with a fixed size takes exactly that many samples, so
    /// with more than one rank no shard would fit it (and a graph exported at a fixed batch may
    /// have that size baked into its reshapes).
    pub fn check_split(&self, ranks: usize) -> Result<(), String> {
        if ranks < 2 {
            return Ok(());
        }
        let fixed = self.model.graph().inputs.iter().find_map(|info| {
            match info.dims.as_deref().and_then(<[Dim]>::first) {
                Some(Dim::Fixed(n)) => Some((info, *n)),
                _ => None,
            }
        });
        match fixed {
            None => Ok(()),
            Some((info, n)) => Err(super::located(
                self.model_path.as_path(),
                format!(
                    "the graph declares input '{}' as [{}], a fixed batch of {n} samples, which \
                     the shards of {ranks} ranks cannot take: export it with a dynamic batch \
                     axis (scripts/export_onnx.py does), or run it in one process",
                    shown(&info.name),
                    info.dims.as_deref().map(declared).unwrap_or_default()
                ),
            )),
        }
    }

    /// What the memory plan needs: P, the samples, the tensors loading converts (the float
    /// initializers and the data) and the activations, from the forward pass on zeros
    /// ([`count_activations`]): the inputs over all samples plus the values the tape records
    /// are the activations (what the gradient and every product keep, with a tangent per
    /// direction), and the values computed without recording (alive once, during the forward
    /// pass) count with the tensors. When the graph does not run on zeros, each node's output
    /// per sample counts as large as the larger of the inputs of one sample and the largest
    /// initializer, which covers a chain of dense layers and of size-preserving ops.
    pub fn sizes(&self) -> Sizes {
        graph_sizes(&self.model, &self.entries, self.samples, self.activations)
    }

    /// Reads the data in `dtype` on `device`: the [`Problem`] of the graph, its inputs, the
    /// targets and the loss.
    pub fn load(self, dtype: DType, device: Device) -> Result<Problem, String> {
        let in_data = |e: String| super::located(&self.data_path, e);
        let mut tensors = Vec::with_capacity(self.entries.len());
        let inputs = &self.model.graph().inputs;
        for (k, (name, entry)) in self.entries.iter().enumerate() {
            let values = self
                .data
                .values(name, entry, Accept::Halves)
                .map_err(|e| in_data(e.to_string()))?;
            check_values(name, &values, dtype).map_err(in_data)?;
            if let Some(info) = inputs.get(k) {
                check_integers(info, &values).map_err(in_data)?;
            }
            let tensor = Tensor::from_f64s(&values, entry.shape.clone(), dtype, device)
                .map_err(|e| in_data(e.to_string()))?;
            tensors.push(tensor);
        }
        let y = tensors.pop().ok_or_else(|| in_data("no targets".into()))?;
        let graph = self.model.graph();
        let classes = graph
            .outputs
            .first()
            .and_then(|o| o.dims.as_deref())
            .and_then(<[Dim]>::last)
            .and_then(|d| match d {
                Dim::Fixed(n) => Some(*n),
                _ => None,
            });
        let targets = y.to_f64s().map_err(|e| in_data(e.to_string()))?;
        check_targets(self.loss, &targets, classes).map_err(in_data)?;
        if let Some(output) = graph.outputs.first() {
            check_target_shape(self.loss, y.dims(), output).map_err(in_data)?;
        }
        let mut ops: Vec<String> = Vec::new();
        for node in &graph.nodes {
            if !ops.contains(&node.op_type) {
                ops.push(node.op_type.clone());
            }
        }
        let kind = ModelKind::Onnx {
            inputs: graph.inputs.iter().map(|i| i.name.clone()).collect(),
            nodes: graph.nodes.len(),
            ops,
        };
        let parameters = parameter_layout(&self.model)?;
        Ok(Problem {
            model: Box::new(self.model),
            inputs: tensors,
            y,
            loss: self.loss,
            parameters,
            kind,
        })
    }
}

/// The sizes of [`OnnxSource::sizes`] for `model` on the data `entries` (inputs, then `y`) of
/// `samples` samples, its activations counted as `activations`.
pub fn graph_sizes(
    model: &OnnxModel,
    entries: &[(String, Entry)],
    samples: usize,
    activations: ActivationCount,
) -> Sizes {
    let count = |dims: &[usize]| dims.iter().map(|&d| d as u128).product::<u128>();
    let graph = model.graph();
    let initializers: Vec<u128> = graph
        .initializers
        .iter()
        .filter(|t| matches!(t.data, HostData::Float(_)))
        .map(|t| count(&t.dims))
        .collect();
    let data: Vec<u128> = entries.iter().map(|(_, e)| count(&e.shape)).collect();
    let inputs = &data[..data.len() - 1];
    let input_elements = inputs.iter().fold(0u128, |t, &n| t.saturating_add(n));
    let n = samples as u128;
    let (recorded, unrecorded) = match activations {
        ActivationCount::Probed {
            recorded,
            unrecorded,
        } => (recorded, unrecorded),
        ActivationCount::PastLimit(c) => (c, 0),
        ActivationCount::Bound => {
            let per_sample =
                (input_elements / n.max(1)).max(initializers.iter().copied().max().unwrap_or(0));
            let bound = n
                .saturating_mul(per_sample)
                .saturating_mul(graph.nodes.len() as u128);
            (bound, 0)
        }
    };
    let all = initializers.iter().chain(&data);
    Sizes {
        widths: Vec::new(),
        samples,
        params: model.num_params() as u128,
        activation_elements: recorded.saturating_add(input_elements),
        tensor_elements: all.clone().fold(unrecorded, |t, &n| t.saturating_add(n)),
        largest_tensor: all.copied().max().unwrap_or(0),
    }
}

/// The values of an integer-typed graph input (token ids, masks), stored as floats: each an
/// integer the input's type holds exactly (0 or 1 for bool).
fn check_integers(info: &ValueInfo, values: &[f64]) -> Result<(), String> {
    if info.elem_type.is_float() {
        return Ok(());
    }
    let (lo, hi) = match info.elem_type {
        ElemType::Bool => (0.0, 1.0),
        ElemType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        // The integers an f64 holds exactly.
        _ => (-9_007_199_254_740_992.0, 9_007_199_254_740_992.0),
    };
    match values
        .iter()
        .position(|v| v.fract() != 0.0 || !(lo..=hi).contains(v))
    {
        None => Ok(()),
        Some(index) => Err(format!(
            "tensor '{}' element {index} is {}, but the graph's input is {:?}: it needs integers \
             in [{lo}, {hi}]",
            shown(&info.name),
            values[index],
            info.elem_type
        )),
    }
}

/// Whether the finite `value` rounds to infinity in `dtype`.
fn beyond_range(value: f64, dtype: DType) -> bool {
    match dtype {
        DType::F64 => false,
        DType::F32 => (value as f32).is_infinite(),
        DType::F16 | DType::BF16 => {
            curvature::tensor::CpuStorage::from_f64s(dtype, &[value]).is_err()
        }
    }
}

/// Every value of data tensor `name` finite, and representable in `dtype`.
fn check_values(name: &str, values: &[f64], dtype: DType) -> Result<(), String> {
    let bad = values
        .iter()
        .position(|v| !v.is_finite() || beyond_range(*v, dtype));
    match bad {
        None => Ok(()),
        Some(index) if values[index].is_finite() => Err(format!(
            "tensor '{}' element {index} is {:e}, beyond {dtype}'s range (use --dtype f64)",
            shown(name),
            values[index]
        )),
        Some(index) => Err(format!(
            "tensor '{}' element {index} is {}; the data must be finite",
            shown(name),
            values[index]
        )),
    }
}

/// The targets' shape against the graph output's declared shape (a symbolic or unknown dim
/// fits any size): the output's own for the losses that compare elementwise, one label per
/// row of the output (all dims but the last) for `cross_entropy` and `nll`.
fn check_target_shape(loss: Loss, y: &[usize], output: &ValueInfo) -> Result<(), String> {
    let Some(dims) = output.dims.as_deref() else {
        return Ok(());
    };
    let fits = |d: &Dim, n: usize| !matches!(d, Dim::Fixed(m) if *m != n);
    let (fits, needs) = match loss {
        Loss::SumSq => return Ok(()),
        Loss::Mse | Loss::SoftCrossEntropy | Loss::BceWithLogits => (
            dims.len() == y.len() && dims.iter().zip(y).all(|(d, &n)| fits(d, n)),
            "the output's shape",
        ),
        Loss::CrossEntropy | Loss::Nll => {
            let rows = &dims[..dims.len().saturating_sub(1)];
            let count = rows.iter().try_fold(1usize, |acc, d| match d {
                Dim::Fixed(m) => acc.checked_mul(*m),
                _ => None,
            });
            let labels = y.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
            (
                count.is_none() || count == labels,
                "one class label per row of the output (all its dims but the last)",
            )
        }
    };
    if fits {
        return Ok(());
    }
    Err(format!(
        "the targets '{TARGETS}' have shape {y:?}, but the graph declares its output '{}' as \
         [{}] and --loss {} needs {needs}",
        shown(&output.name),
        declared(dims),
        spelling(loss)
    ))
}

/// The `--loss` spelling of `loss`.
fn spelling(loss: Loss) -> &'static str {
    crate::cli::LOSSES
        .iter()
        .find(|(_, l)| *l == loss)
        .map_or(loss.name(), |(n, _)| n)
}

/// The targets `y` as `loss` reads them: class labels (non-negative integers, below the
/// graph output's last dim when the graph declares it) for `cross_entropy` and `nll`,
/// probabilities in [0, 1] for `bce_with_logits`.
fn check_targets(loss: Loss, targets: &[f64], classes: Option<usize>) -> Result<(), String> {
    let spelled = spelling(loss);
    let bad = |index: usize, what: String| {
        Err(format!(
            "target '{TARGETS}' element {index} is {}, but --loss {spelled} needs {what}",
            targets[index]
        ))
    };
    match loss {
        Loss::CrossEntropy | Loss::Nll => {
            for (index, &label) in targets.iter().enumerate() {
                if label < 0.0 || label.fract() != 0.0 {
                    return bad(index, "class labels (non-negative integers)".into());
                }
                if let Some(classes) = classes.filter(|&c| label >= c as f64) {
                    return bad(
                        index,
                        format!("a class label below the graph output's {classes} classes"),
                    );
                }
            }
            Ok(())
        }
        Loss::BceWithLogits => match targets.iter().position(|t| !(0.0..=1.0).contains(t)) {
            Some(index) => bad(index, "targets in [0, 1]".into()),
            None => Ok(()),
        },
        Loss::Mse | Loss::SumSq | Loss::SoftCrossEntropy => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use curvature::onnx::ir::{Attribute, ElemType, Graph, HostTensor, Node};

    /// `analyze tests/data/onnx/<model> --data tests/data/onnx/<data> --loss mse`.
    fn args(model: &str, data: &str) -> AnalyzeArgs {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
        let argv = [
            "curvature".into(),
            "analyze".into(),
            dir.join(model).display().to_string(),
            "--data".into(),
            dir.join(data).display().to_string(),
            "--loss".into(),
            "mse".into(),
        ];
        match Cli::try_parse_from(argv).expect("valid arguments").command {
            Some(Command::Analyze(args)) => args,
            _ => panic!("not the analyze command"),
        }
    }

    /// `analyze` of the fixture `model` on `data` with `extra` arguments, opened.
    fn opened(model: &str, data: &str, extra: &[&str]) -> OnnxSource {
        let mut args = args(model, data);
        if let [flag, value] = extra {
            assert_eq!(*flag, "--params");
            args.params = vec![value.to_string()];
        }
        open(&args, DType::F64, Device::Cpu).expect("the fixture opens")
    }

    /// The MLP fc1 [4, 3] + [4] → tanh → fc2 [2, 4] + [2] on x [5, 3], y [5, 2], counted by
    /// hand: P = 26; per sample the tape records fc1's product and bias sum (4 + 4), tanh (4)
    /// and fc2's product and bias sum (2 + 2), 16 in all, over 5 samples, plus x (15).
    #[test]
    fn the_sizes_of_an_onnx_mlp_come_from_the_graph_and_the_data() {
        let source = opened("mlp.onnx", "mlp_mse.safetensors", &[]);
        let sizes = source.sizes();
        assert!(sizes.widths.is_empty(), "the tape's plan");
        assert_eq!(sizes.samples, 5);
        assert_eq!(sizes.params, 26);
        assert_eq!(
            source.activations(),
            ActivationCount::Probed {
                recorded: 5 * 16,
                unrecorded: 0
            }
        );
        assert_eq!(sizes.activation_elements, 5 * 16 + 15);
        assert_eq!(sizes.tensor_elements, 26 + 15 + 10);
        assert_eq!(sizes.largest_tensor, 15);
    }

    /// With fc2 alone the parameters, the tape records fc2's product and sum (2 + 2 per
    /// sample); fc1's product, its sum and tanh (12 per sample) are computed unrecorded.
    #[test]
    fn values_that_depend_on_no_parameter_count_once_with_the_tensors() {
        let source = opened("mlp.onnx", "mlp_mse.safetensors", &["--params", "fc2.*"]);
        let sizes = source.sizes();
        assert_eq!(sizes.params, 10);
        assert_eq!(sizes.activation_elements, 5 * 4 + 15);
        assert_eq!(sizes.tensor_elements, 26 + 15 + 10 + 5 * 12);
    }

    /// Two inputs a, b [5, 3] through left, right [3, 2] and shift [2]: u = a·left,
    /// v = b·right, w = u ⊙ v and w + shift, 2 each per sample; P = 6 + 6 + 2.
    #[test]
    fn the_sizes_of_a_graph_of_two_inputs_count_both() {
        let source = opened("two_inputs.onnx", "two_inputs_mse.safetensors", &[]);
        let sizes = source.sizes();
        assert_eq!(sizes.params, 14);
        assert_eq!(sizes.activation_elements, 5 * 8 + 30);
        assert_eq!(sizes.tensor_elements, 14 + 30 + 10);
    }

    /// A float initializer `name` of `dims`, zeros.
    fn zeros(name: &str, dims: &[usize]) -> HostTensor {
        HostTensor {
            name: name.to_string(),
            elem_type: ElemType::F64,
            dims: dims.to_vec(),
            data: HostData::Float(vec![0.0; dims.iter().product()]),
        }
    }

    /// A node of the standard domain.
    fn node(op: &str, inputs: &[&str], output: &str, attributes: Vec<(String, Attribute)>) -> Node {
        Node {
            name: output.to_string(),
            op_type: op.to_string(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
            attributes,
        }
    }

    /// A graph of one input `x` shaped `dims`, returning `out`.
    fn graph(nodes: Vec<Node>, x: Vec<Dim>, initializers: Vec<HostTensor>) -> Graph {
        let info = |name: &str, dims| ValueInfo {
            name: name.to_string(),
            elem_type: ElemType::F64,
            dims,
        };
        Graph {
            nodes,
            inputs: vec![info("x", Some(x))],
            outputs: vec![info("out", None)],
            initializers,
            opset: 18,
            external_files: Vec::new(),
        }
    }

    /// The data entries of x and y (only their shapes are read).
    fn entries(x: &[usize], y: &[usize]) -> Vec<(String, Entry)> {
        let entry = |shape: &[usize]| Entry {
            dtype: FileDtype::F64,
            shape: shape.to_vec(),
            start: 0,
            len: 0,
        };
        vec![("x".to_string(), entry(x)), ("y".to_string(), entry(y))]
    }

    fn model(graph: Graph, params: &[&str]) -> OnnxModel {
        let options = OnnxOptions {
            params: params.iter().map(|p| p.to_string()).collect(),
        };
        OnnxModel::from_graph(graph, &options, DType::F64, Device::Cpu).expect("a valid graph")
    }

    /// A convolutional net with large filters on small images, as a classifier's backbone
    /// is: four 3×3 convolutions (64 → 128 → 256 → 512 → 512 channels, padding 1) with ReLU
    /// on 8×8 images, global average pooling and fc [10, 512], on 16 samples.
    fn conv_net() -> (OnnxModel, Vec<(String, Entry)>) {
        let channels = [64usize, 128, 256, 512, 512];
        let pads = || vec![("pads".to_string(), Attribute::Ints(vec![1; 4]))];
        let mut nodes = Vec::new();
        let mut initializers = Vec::new();
        let mut last = "x".to_string();
        for (i, pair) in channels.windows(2).enumerate() {
            let (w, b) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
            initializers.push(zeros(&w, &[pair[1], pair[0], 3, 3]));
            initializers.push(zeros(&b, &[pair[1]]));
            let (conv, relu) = (format!("conv{i}"), format!("relu{i}"));
            nodes.push(node("Conv", &[&last, &w, &b], &conv, pads()));
            nodes.push(node("Relu", &[&conv], &relu, Vec::new()));
            last = relu;
        }
        nodes.push(node("GlobalAveragePool", &[&last], "pooled", Vec::new()));
        nodes.push(node("Flatten", &["pooled"], "flat", Vec::new()));
        initializers.push(zeros("fc.weight", &[10, 512]));
        initializers.push(zeros("fc.bias", &[10]));
        let trans_b = vec![("transB".to_string(), Attribute::Int(1))];
        nodes.push(node(
            "Gemm",
            &["flat", "fc.weight", "fc.bias"],
            "out",
            trans_b,
        ));
        let x = vec![
            Dim::Symbolic("batch".into()),
            Dim::Fixed(64),
            Dim::Fixed(8),
            Dim::Fixed(8),
        ];
        let graph = graph(nodes, x, initializers);
        (model(graph, &["fc.*"]), entries(&[16, 64, 8, 8], &[16]))
    }

    /// The plan of `sizes` for `analyze … --loss cross_entropy --params 'fc.*'` on a machine
    /// of 24 GiB.
    fn plan_on_24_gib(sizes: &Sizes) -> super::super::plan::Plan {
        let mut args = args("mlp.onnx", "mlp_mse.safetensors");
        args.params = vec!["fc.*".into()];
        let settings = super::super::settings(&args);
        super::super::plan::plan(sizes, &settings, (24 << 30, "test")).expect("a plan")
    }

    /// The conv net's fc is its only parameter: the tape records fc's product and bias sum
    /// (10 + 10 per sample), and the forward pass computes at least every node's output
    /// (each convolution's and ReLU's, 2·8·8·(128 + 256 + 512 + 512) per sample, the pooled and
    /// flattened 512 each) unrecorded. The run fits 24 GiB; the bound from the graph's size
    /// (samples × nodes × the largest filter) does not.
    #[test]
    fn a_conv_net_with_large_filters_fits_where_the_size_bound_does_not() {
        let (model, entries) = conv_net();
        let counted = count_activations(&model, &entries, 16, 1 << 30);
        let ActivationCount::Probed {
            recorded,
            unrecorded,
        } = counted
        else {
            panic!("the forward pass runs: {counted:?}");
        };
        assert_eq!(recorded, 16 * 20);
        let node_outputs = 2 * 64 * (128 + 256 + 512 + 512) + 2 * 512;
        assert!(unrecorded >= 16 * node_outputs, "{unrecorded}");
        let sizes = graph_sizes(&model, &entries, 16, counted);
        assert_eq!(sizes.activation_elements, 16 * 20 + 16 * 64 * 64);
        let plan = plan_on_24_gib(&sizes);
        assert!(plan.check().is_ok(), "{:?}", plan.peak());
        let bound = graph_sizes(&model, &entries, 16, ActivationCount::Bound);
        assert!(plan_on_24_gib(&bound).check().is_err());
    }

    /// A probe limit smaller than one sample's forward pass (or than one sample's inputs)
    /// counts the run as the limit per sample, plus one; at the limit `open` sets, a share of
    /// the memory available, so large a run is refused.
    #[test]
    fn a_forward_pass_past_the_probe_limit_is_refused() {
        let (model, entries) = conv_net();
        let counted = count_activations(&model, &entries, 16, 100_000);
        assert_eq!(counted, ActivationCount::PastLimit(16 * 100_001));
        let inputs_alone = count_activations(&model, &entries, 16, 64 * 64 - 1);
        assert_eq!(inputs_alone, ActivationCount::PastLimit(16 * 64 * 64));
        let limit = (24u128 << 30) / PROBE_SHARE / 8;
        let past = ActivationCount::PastLimit(16 * (limit + 1));
        let error = plan_on_24_gib(&graph_sizes(&model, &entries, 16, past))
            .check()
            .expect_err("refused");
        assert!(
            error.starts_with("not enough memory: the primal pass"),
            "{error}"
        );
    }

    /// x [n, 3] · w [3, 2] reshaped to the constant [10]: a graph that runs only at five
    /// samples. Declared with a fixed sample axis it is probed once at 5 (w's product and the
    /// reshape, 10 each); with a symbolic one the one-sample run fails and the bound is used.
    #[test]
    fn a_fixed_sample_axis_is_probed_at_the_data_and_a_failing_graph_falls_back() {
        let nodes = vec![
            node("MatMul", &["x", "w"], "xw", Vec::new()),
            node("Reshape", &["xw", "shape"], "out", Vec::new()),
        ];
        let shape = HostTensor {
            name: "shape".into(),
            elem_type: ElemType::I64,
            dims: vec![1],
            data: HostData::Int(vec![10]),
        };
        let initializers = vec![zeros("w", &[3, 2]), shape];
        let data = entries(&[5, 3], &[5, 2]);
        let fixed = graph(
            nodes.clone(),
            vec![Dim::Fixed(5), Dim::Fixed(3)],
            initializers.clone(),
        );
        let counted = count_activations(&model(fixed, &[]), &data, 5, 1 << 20);
        assert_eq!(
            counted,
            ActivationCount::Probed {
                recorded: 20,
                unrecorded: 0
            }
        );
        let symbolic = graph(
            nodes,
            vec![Dim::Symbolic("n".into()), Dim::Fixed(3)],
            initializers,
        );
        let symbolic = model(symbolic, &[]);
        assert_eq!(
            count_activations(&symbolic, &data, 5, 1 << 20),
            ActivationCount::Bound
        );
        // The bound: 5 samples × 2 nodes × the larger of one sample's 3 inputs and w's 6.
        let sizes = graph_sizes(&symbolic, &data, 5, ActivationCount::Bound);
        assert_eq!(sizes.activation_elements, 5 * 2 * 6 + 15);
    }
}
