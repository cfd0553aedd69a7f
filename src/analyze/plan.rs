//! `analyze`'s memory plan: the peak bytes of every step it will run, worked out from the
//! model's sizes before its data is loaded (from a model file's header, or from an ONNX
//! graph's initializers and its data file's header; [`Sizes`]) and checked against the
//! memory available, so a run that cannot fit is refused with one line instead of aborting
//! half-way. The figures are upper bounds (for an ONNX graph, from the activations its
//! forward pass computes on zeros at one and two samples) built from what each step keeps alive: the loaded
//! model, the operator (the fused sweep's [`MlpMemory`] for an MLP, [`TapeMemory`] for any
//! other model), the dense Hessian and its eigensolver, the
//! estimators' probe blocks and Krylov bases ([`SlqOptions::memory_bytes`],
//! [`LanczosOptions::memory_bytes`]) and the results file, plus the process itself and a
//! sixteenth for the allocator.

use curvature::hessian::{HessianOptions, LanczosOptions, MlpMemory, SlqOptions, Which};
use curvature::nn::{LayerSpec, ModelLayout};
#[cfg(test)]
use curvature::nn::{ModelFile, Module};
use curvature::tensor::UnaryOp;
use curvature::tensor::{human_bytes, DType};

/// Memory assumed available when `/proc/meminfo` cannot be read and no limit is given.
const FALLBACK_AVAILABLE: u128 = 8 << 30;

/// What the process needs besides the steps' buffers (code, thread stacks, the allocator's
/// own structures), and the share of the buffers the allocator may hold beyond them.
const PROCESS_BYTES: u128 = 64 << 20;
const SLACK_DIVISOR: u128 = 16;

/// What the plan needs to know about a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// The layer widths, inputs first, when the model is an MLP the fused sweep runs
    /// (Linear layers, each followed by at most one tanh or sigmoid); empty otherwise.
    pub widths: Vec<usize>,
    pub samples: usize,
    /// P, the number of parameters.
    pub params: u128,
    /// Elements of the input, of every layer's output and of the convolutions' unfolded
    /// inputs, over all samples: what one pass of the tape records per value it keeps.
    pub activation_elements: u128,
    /// Elements of the tensors loading converts (the layers, `x` and `y`).
    pub tensor_elements: u128,
    /// Elements of the largest of them.
    pub largest_tensor: u128,
}

impl Sizes {
    /// The sizes from a model file's checked header, before any tensor is read.
    pub fn from_layout(layout: &ModelLayout) -> Sizes {
        let count = |dims: &[usize]| dims.iter().map(|&d| d as u128).product::<u128>();
        let counts: Vec<u128> = layout.model_shapes().map(count).collect();
        let params = layout
            .layers
            .iter()
            .flat_map(|spec| spec.tensor_shapes())
            .filter(|(name, _)| *name == "weight" || *name == "bias")
            .map(|(_, dims)| count(&dims))
            .sum();
        let samples = layout.samples();
        let activation_elements = layout
            .layers
            .iter()
            .zip(&layout.layer_dims)
            .map(|(spec, dims)| {
                count(dims).saturating_add(spec.workspace_per_sample(dims) * samples as u128)
            })
            .fold(count(&layout.x_dims), u128::saturating_add);
        Sizes {
            widths: mlp_widths(layout),
            samples,
            params,
            activation_elements,
            tensor_elements: counts.iter().sum(),
            largest_tensor: counts.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The widths of the model when the fused sweep runs it: `[n, in]` inputs and Linear layers,
/// each followed by at most one tanh or sigmoid.
fn mlp_widths(layout: &ModelLayout) -> Vec<usize> {
    if !layout.widths.is_empty() {
        return layout.widths.clone();
    }
    if layout.x_dims.len() != 2 {
        return Vec::new();
    }
    let mut widths = vec![layout.x_dims[1]];
    let mut after_linear = false;
    for spec in &layout.layers {
        match spec {
            LayerSpec::Linear { out_features, .. } => {
                widths.push(*out_features);
                after_linear = true;
            }
            LayerSpec::Activation(UnaryOp::Tanh | UnaryOp::Sigmoid) if after_linear => {
                after_linear = false;
            }
            _ => return Vec::new(),
        }
    }
    if widths.len() < 2 {
        return Vec::new();
    }
    widths
}

/// What the tape's operator ([`PreparedHvp`](curvature::hessian::PreparedHvp)) keeps for a
/// model that is not a plain MLP, as upper estimates from the activations A and P: the
/// recorded forward pass and gradient graph hold at most [`TAPE_VALUES_PER_ACTIVATION`]
/// values per activation and [`TAPE_VALUES_PER_PARAM`] per parameter, and a batch of k
/// products carries a tangent of each of them per direction.
#[derive(Debug, Clone, Copy)]
pub struct TapeMemory {
    params: u128,
    activations: u128,
    size: u128,
}

/// Values the tape keeps per activation element (forward values, their saved inputs, the
/// normalisations' intermediates and the gradient graph's).
const TAPE_VALUES_PER_ACTIVATION: u128 = 12;
/// Values the tape keeps per parameter (θ, its views, the gradient and its graph).
const TAPE_VALUES_PER_PARAM: u128 = 6;

impl TapeMemory {
    fn graph(&self) -> u128 {
        self.activations
            .saturating_mul(TAPE_VALUES_PER_ACTIVATION)
            .saturating_add(self.params.saturating_mul(TAPE_VALUES_PER_PARAM))
            .saturating_mul(self.size)
    }
}

/// The operator's memory: the fused sweep's or the tape's.
enum OperatorMemory {
    Fused(MlpMemory),
    Tape(TapeMemory),
}

impl OperatorMemory {
    /// The fused sweep's memory when `fused` and the model is an MLP, else the tape's.
    fn new(sizes: &Sizes, dtype: DType, fused: bool) -> Result<OperatorMemory, String> {
        if fused && !sizes.widths.is_empty() {
            let mlp =
                MlpMemory::new(&sizes.widths, sizes.samples, dtype).map_err(|e| e.to_string())?;
            return Ok(OperatorMemory::Fused(mlp));
        }
        if usize::try_from(sizes.params).is_err() {
            return Err(format!("the model's {} parameters overflow", sizes.params));
        }
        Ok(OperatorMemory::Tape(TapeMemory {
            params: sizes.params,
            activations: sizes.activation_elements,
            size: dtype.size_in_bytes() as u128,
        }))
    }

    fn params(&self) -> usize {
        match self {
            OperatorMemory::Fused(m) => m.params(),
            OperatorMemory::Tape(m) => m.params as usize,
        }
    }

    fn held_bytes(&self) -> u128 {
        match self {
            OperatorMemory::Fused(m) => known(m.held_bytes()),
            OperatorMemory::Tape(m) => m.graph(),
        }
    }

    fn construction_bytes(&self) -> u128 {
        match self {
            OperatorMemory::Fused(m) => known(m.construction_bytes()),
            OperatorMemory::Tape(m) => m.graph().saturating_add(m.graph() / 2),
        }
    }

    fn batch_bytes(&self, k: usize) -> u128 {
        match self {
            OperatorMemory::Fused(m) => known(m.batch_bytes(k)),
            OperatorMemory::Tape(m) => m.graph().saturating_mul(k as u128),
        }
    }
}

/// How `analyze` will run, as far as memory is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub dtype: DType,
    /// `--full` was given: the dense Hessian is formed whatever P.
    pub full: bool,
    /// The operator is the Hessian, which the fused sweep computes for an MLP; a Gauss–Newton
    /// or Fisher operator is recorded on the tape.
    pub fused: bool,
    /// Up to this P the dense Hessian is formed anyway.
    pub dense_limit: usize,
    /// `--out` was given: the results are also encoded and serialised.
    pub writes_file: bool,
    pub probes: usize,
    pub top_k: usize,
    pub lanczos_max_iter: usize,
    pub slq: SlqOptions,
}

/// One step and the peak bytes alive while it runs.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub bytes: u128,
    /// What to change when this step does not fit.
    pub advice: &'static str,
}

/// The peak of every step and the memory available to them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub available: u128,
    /// Where `available` comes from.
    pub source: &'static str,
}

impl Plan {
    /// The step with the largest peak.
    pub fn peak(&self) -> &Step {
        self.steps
            .iter()
            .max_by_key(|s| s.bytes)
            .expect("a plan has steps")
    }

    /// An error of one line, naming the first step (in the order they run) whose peak
    /// exceeds the memory available, what it needs and what to change.
    pub fn check(&self) -> Result<(), String> {
        match self.steps.iter().find(|s| s.bytes > self.available) {
            None => Ok(()),
            Some(step) => Err(format!(
                "not enough memory: {} needs {} but {} is available ({}); {}",
                step.name,
                readable(step.bytes),
                readable(self.available),
                self.source,
                step.advice
            )),
        }
    }
}

/// A byte count for messages; counts past 2⁶⁴ (sizes that overflow) are said so.
pub fn readable(bytes: u128) -> String {
    if bytes >= u128::from(u64::MAX) {
        "more than 16 EiB".to_string()
    } else {
        human_bytes(bytes)
    }
}

/// The memory available: `limit_gib` when given, else `MemAvailable` from `/proc/meminfo`,
/// else a fixed 8 GiB.
pub fn available_memory(limit_gib: Option<f64>) -> (u128, &'static str) {
    if let Some(gib) = limit_gib {
        return ((gib * (1u64 << 30) as f64) as u128, "--memory-limit");
    }
    let from_proc = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    match from_proc {
        Some(bytes) => (bytes, "MemAvailable"),
        None => (FALLBACK_AVAILABLE, "assumed; /proc/meminfo unreadable"),
    }
}

/// Sizes that overflow `usize` count as more memory than any machine has.
fn known(r: curvature::hessian::Result<usize>) -> u128 {
    r.map_or(u128::MAX, |b| b as u128)
}

/// The plan of `analyze` for a model of `sizes` run with `settings`; an error when the widths
/// do not describe a model.
pub fn plan(
    sizes: &Sizes,
    settings: &Settings,
    available: (u128, &'static str),
) -> Result<Plan, String> {
    let s = settings.dtype.size_in_bytes() as u128;
    let mlp = OperatorMemory::new(sizes, settings.dtype, settings.fused)?;
    let pu = mlp.params();
    let p = pu as u128;
    let dense = settings.full || pu <= settings.dense_limit;
    let batch = |k: usize| mlp.batch_bytes(k);
    let mul = |a: u128, b: u128| a.saturating_mul(b);
    let add = |parts: &[u128]| parts.iter().fold(0u128, |t, &b| t.saturating_add(b));

    // The loaded model in the run's dtype; a tensor being read also holds its bytes as stored
    // (at most 8 per element), as f64 and as converted.
    let model = mul(sizes.tensor_elements, s);
    let loading = add(&[model, mul(sizes.largest_tensor, 24)]);
    // The operator and the gradient kept on the host in f64.
    let held = add(&[model, mlp.held_bytes(), mul(p, 8)]);
    let primal = add(&[model, mlp.construction_bytes(), mul(p, 24)]);
    let mut steps = vec![
        Step {
            name: "loading the model file",
            bytes: loading,
            advice: "use a smaller model file",
        },
        Step {
            name: "the primal pass (loss and gradient)",
            bytes: primal,
            advice: "use fewer samples or a smaller model",
        },
    ];

    let rows = HessianOptions::default().chunk_rows(pu, settings.dtype);
    let rows_u = rows as u128;
    let full_advice = if settings.full {
        "drop --full"
    } else {
        "use a smaller model"
    };
    let mut kept = held;
    if dense {
        let hessian = mul(mul(p, p), s);
        let host = mul(mul(p, p), 8);
        steps.push(Step {
            name: "the dense Hessian",
            bytes: add(&[held, hessian, host, mul(mul(rows_u, p), s), batch(rows)]),
            advice: full_advice,
        });
        // The f64 Hessian kept for the results, the symmetrised copy and the eigenvectors.
        steps.push(Step {
            name: "the dense eigensolver",
            bytes: add(&[held, mul(host, 3)]),
            advice: full_advice,
        });
        kept = add(&[held, host]);
    } else {
        let probes = settings.probes as u128;
        let r = rows.min(settings.probes);
        steps.push(Step {
            name: "the Hutchinson diagonal",
            bytes: add(&[kept, mul(mul(r as u128, p), 8 + 3 * s), batch(r)]),
            advice: "use fewer --probes",
        });
        let sketch = probes.min(p);
        steps.push(Step {
            name: "the Hutch++ trace",
            bytes: add(&[
                kept,
                mul(mul(sketch, p), 5 * s + 8),
                batch(rows.min(settings.probes.min(pu))),
            ]),
            advice: "use fewer --probes",
        });
        let k = settings.top_k.min(pu);
        let lanczos = LanczosOptions {
            k,
            which: Which::Largest,
            max_iter: settings.lanczos_max_iter.max(k).min(pu),
            ..LanczosOptions::default()
        };
        steps.push(Step {
            name: "the Lanczos eigensolver",
            bytes: add(&[
                kept,
                known(lanczos.memory_bytes(pu, settings.dtype)),
                batch(1),
            ]),
            advice: "use --dtype f32 or a smaller model",
        });
    }
    let slq = settings.slq;
    steps.push(Step {
        name: "the spectral density (SLQ)",
        bytes: add(&[
            kept,
            known(slq.memory_bytes(pu, settings.dtype, &HessianOptions::default())),
            batch(slq.block_probes(pu, settings.dtype, &HessianOptions::default())),
        ]),
        advice: "use --dtype f32 or a smaller model",
    });
    // The results (gradient, diagonal, grid, density and the dense Hessian and eigenvalues
    // when formed) held by the analysis, copied for the file, encoded and serialised.
    let results = add(&[
        mul(p, 24),
        mul(settings.slq.grid_points as u128, 16),
        if dense { mul(mul(p, p), 8) } else { 0 },
    ]);
    let copies = if settings.writes_file { 4 } else { 2 };
    steps.push(Step {
        name: "writing the results",
        bytes: add(&[model, mul(results, copies)]),
        advice: full_advice,
    });
    for step in &mut steps {
        step.bytes = add(&[step.bytes, step.bytes / SLACK_DIVISOR, PROCESS_BYTES]);
    }
    Ok(Plan {
        steps,
        available: available.0,
        source: available.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(format!("{name}.safetensors"))
    }

    #[test]
    fn the_layout_gives_the_sizes_of_the_loaded_model() {
        let path = golden("mlp_4_6_5_3_tanh_sigmoid_mse");
        let sizes = Sizes::from_layout(&ModelLayout::open(&path).expect("a valid header"));
        let model = ModelFile::load(&path, DType::F64, curvature::tensor::Device::Cpu)
            .expect("the golden file loads");
        let loaded: Vec<usize> = model
            .model
            .parameters()
            .iter()
            .chain([&model.x, &model.y])
            .map(|t| t.elem_count())
            .collect();
        assert_eq!(sizes.widths, [4, 6, 5, 3]);
        assert_eq!(sizes.samples, model.x.dims()[0]);
        assert_eq!(sizes.tensor_elements, loaded.iter().sum::<usize>() as u128);
        assert_eq!(sizes.largest_tensor, *loaded.iter().max().unwrap() as u128);
    }

    /// The CNN conv(2→3, 3×3, padding 1) → batch norm → ReLU → max pool 2 → flatten →
    /// linear(12→3) on x [6, 2, 4, 4]: P and the activations counted by hand.
    #[test]
    fn the_layout_of_a_cnn_counts_parameters_and_activations() {
        let layout = ModelLayout::open(golden("layers/small_cnn")).expect("a valid header");
        let sizes = Sizes::from_layout(&layout);
        assert!(sizes.widths.is_empty(), "not an MLP: the tape's plan");
        assert_eq!(sizes.params, (3 * 2 * 9 + 3) + (3 + 3) + (3 * 12 + 3));
        let x = 6 * 2 * 4 * 4;
        let conv = 6 * 3 * 4 * 4;
        let unfolded = 6 * (2 * 3 * 3) * (4 * 4);
        let pooled = 6 * 3 * 2 * 2;
        let expected = x + conv + unfolded + 2 * conv + 2 * pooled + 6 * 3;
        assert_eq!(sizes.activation_elements, expected);
    }

    /// A Gauss–Newton or Fisher run (`fused: false`) plans an MLP as the tape's operator: the
    /// same plan as for the model's sizes without the MLP's widths.
    #[test]
    fn an_mlp_without_the_fused_sweep_is_planned_as_a_tape_model() {
        let path = golden("mlp_4_6_5_3_tanh_sigmoid_mse");
        let sizes = Sizes::from_layout(&ModelLayout::open(&path).expect("a valid header"));
        let settings = |fused| Settings {
            dtype: DType::F64,
            full: false,
            fused,
            dense_limit: 1024,
            writes_file: true,
            probes: 20,
            top_k: 5,
            lanczos_max_iter: 300,
            slq: SlqOptions::default(),
        };
        let available = (1u128 << 40, "test");
        let bytes = |plan: Plan| plan.steps.iter().map(|s| s.bytes).collect::<Vec<_>>();
        let tape_sizes = Sizes {
            widths: Vec::new(),
            ..sizes.clone()
        };
        let unfused = plan(&sizes, &settings(false), available).expect("a plan");
        let tape = plan(&tape_sizes, &settings(true), available).expect("a plan");
        let fused = plan(&sizes, &settings(true), available).expect("a plan");
        assert_eq!(bytes(unfused.clone()), bytes(tape));
        assert_ne!(bytes(unfused), bytes(fused));
    }

    /// A `layers` file of Linear layers and tanh is planned as the fused sweep's MLP.
    #[test]
    fn a_layers_file_of_linear_and_tanh_is_planned_as_an_mlp() {
        let shapes: [(&str, Vec<usize>); 6] = [
            ("0.weight", vec![3, 2]),
            ("0.bias", vec![3]),
            ("2.weight", vec![1, 3]),
            ("2.bias", vec![1]),
            ("x", vec![4, 2]),
            ("y", vec![4, 1]),
        ];
        let data: Vec<Vec<u8>> = shapes
            .iter()
            .map(|(_, dims)| vec![0; 8 * dims.iter().product::<usize>()])
            .collect();
        let views = shapes.iter().zip(&data).map(|((name, dims), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, dims.clone(), bytes);
            (name.to_string(), view.expect("a view"))
        });
        let layers = r#"[
            {"type": "Linear", "in_features": 2, "out_features": 3, "bias": true},
            {"type": "Tanh"},
            {"type": "Linear", "in_features": 3, "out_features": 1, "bias": true}
        ]"#;
        let metadata = [("layers", layers), ("loss", "mse")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = safetensors::tensor::serialize(views, Some(metadata)).expect("serialised");
        let layout = ModelLayout::from_bytes(&bytes).expect("a valid header");
        let sizes = Sizes::from_layout(&layout);
        assert_eq!(sizes.widths, [2, 3, 1]);
        assert_eq!(sizes.params, 2 * 3 + 3 + 3 + 1);
    }
}
