//! The ONNX route of `analyze`: the graph is imported ([`OnnxModel`]), the data file's header is
//! checked against the graph's inputs (one tensor per input, named after it, and the targets
//! `y`, all with the same number of samples, each shaped as the graph declares) before any
//! data is read, and the plan's sizes come from P, the samples, the data and the graph.

use std::path::{Path, PathBuf};

use curvature::nn::{Loss, Module};
use curvature::onnx::ir::{Dim, ElemType, HostData, ValueInfo};
use curvature::onnx::{OnnxError, OnnxModel, OnnxOptions};
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
    Ok(OnnxSource {
        model,
        loss,
        model_path: model_path.clone(),
        data_path,
        data,
        entries,
        samples,
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
    /// initializers and the data) and an estimate of the activations: each node's output per
    /// sample counted as large as the larger of the inputs of one sample and the largest
    /// initializer, which covers a chain of dense layers and of size-preserving ops.
    pub fn sizes(&self) -> Sizes {
        let count = |dims: &[usize]| dims.iter().map(|&d| d as u128).product::<u128>();
        let graph = self.model.graph();
        let initializers: Vec<u128> = graph
            .initializers
            .iter()
            .filter(|t| matches!(t.data, HostData::Float(_)))
            .map(|t| count(&t.dims))
            .collect();
        let data: Vec<u128> = self.entries.iter().map(|(_, e)| count(&e.shape)).collect();
        let inputs = &data[..data.len() - 1];
        let input_elements = inputs.iter().fold(0u128, |t, &n| t.saturating_add(n));
        let samples = self.samples as u128;
        let per_sample =
            (input_elements / samples.max(1)).max(initializers.iter().copied().max().unwrap_or(0));
        let activation_elements = samples
            .saturating_mul(per_sample)
            .saturating_mul(graph.nodes.len() as u128)
            .saturating_add(input_elements);
        let all = initializers.iter().chain(&data);
        Sizes {
            widths: Vec::new(),
            samples: self.samples,
            params: self.model.num_params() as u128,
            activation_elements,
            tensor_elements: all.clone().fold(0u128, |t, &n| t.saturating_add(n)),
            largest_tensor: all.copied().max().unwrap_or(0),
        }
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

/// Every value of data tensor `name` finite, and representable in `dtype`.
fn check_values(name: &str, values: &[f64], dtype: DType) -> Result<(), String> {
    let bad = values
        .iter()
        .position(|v| !v.is_finite() || (dtype == DType::F32 && (*v as f32).is_infinite()));
    match bad {
        None => Ok(()),
        Some(index) if values[index].is_finite() => Err(format!(
            "tensor '{}' element {index} is {:e}, beyond f32's range (use --dtype f64)",
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

    /// The MLP fc1 [4, 3] + [4] → tanh → fc2 [2, 4] + [2] on x [5, 3], y [5, 2], counted by
    /// hand: P = 26; the activations of 3 nodes at 12 per sample (fc1.weight's elements, more
    /// than x's 3), plus x.
    #[test]
    fn the_sizes_of_an_onnx_mlp_come_from_the_graph_and_the_data() {
        let source = open(
            &args("mlp.onnx", "mlp_mse.safetensors"),
            DType::F64,
            Device::Cpu,
        )
        .expect("the fixture opens");
        let sizes = source.sizes();
        assert!(sizes.widths.is_empty(), "the tape's plan");
        assert_eq!(sizes.samples, 5);
        assert_eq!(sizes.params, 26);
        assert_eq!(sizes.tensor_elements, 26 + 15 + 10);
        assert_eq!(sizes.largest_tensor, 15);
        assert_eq!(sizes.activation_elements, 5 * 12 * 3 + 15);
    }

    /// Two inputs a, b [5, 3] (6 elements per sample, more than any initializer's), four
    /// nodes: 5·6·4 + 30 activations; P = 6 + 6 + 2.
    #[test]
    fn the_sizes_of_a_graph_of_two_inputs_count_both() {
        let source = open(
            &args("two_inputs.onnx", "two_inputs_mse.safetensors"),
            DType::F64,
            Device::Cpu,
        )
        .expect("the fixture opens");
        let sizes = source.sizes();
        assert_eq!(sizes.params, 14);
        assert_eq!(sizes.activation_elements, 5 * 6 * 4 + 30);
        assert_eq!(sizes.tensor_elements, 14 + 30 + 10);
    }
}
