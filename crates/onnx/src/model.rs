//! [`OnnxModel`]: an imported ONNX graph as a [`Module`], its trainable parameters chosen among
//! the floating-point initializers.

use std::collections::HashMap;
use std::path::Path;

use curvature_nn::{Module, NnError};
use curvature_tape::{Tape, Var};
use curvature_tensor::io::shown;
use curvature_tensor::{DType, Device, Tensor};

use crate::ir::{Dim, ElemType, Graph, HostData, ValueInfo};
use crate::lower::{self, Ctx, IntTensor, Val};
use crate::select::{parameter_layout, select_parameters, OnnxParameter};
use crate::{OnnxError, Result};

/// How to import a model.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// Glob patterns (`*` any run of characters, `?` one character) selecting the trainable
    /// initializers by name; empty selects every floating-point initializer with more than one
    /// element. The other initializers are constants.
    pub params: Vec<String>,
}

/// An imported ONNX model: its graph, its initializers as tensors (the selected ones are the
/// [`Module`]'s parameters, in the graph's initializer order), run on the tape.
///
/// Its output is the graph's first output, which must be a floating-point tensor; its inputs
/// are the graph's inputs in order (integer-typed ones are given as float variables holding
/// integral values).
#[derive(Debug, Clone)]
pub struct OnnxModel {
    graph: Graph,
    dtype: DType,
    device: Device,
    /// Every initializer as a tensor (float ones in `dtype` on `device`), by graph order.
    initializers: Vec<Initializer>,
    /// Positions in `initializers` of the parameters, in order.
    params: Vec<usize>,
    /// The parameters' places in θ.
    layout: Vec<OnnxParameter>,
}

/// One initializer, converted once at load time.
#[derive(Debug, Clone)]
enum Initializer {
    Float(Tensor),
    Int(IntTensor),
}

impl OnnxModel {
    /// Reads and imports `path` (external data is read relative to its folder).
    pub fn load(
        path: impl AsRef<Path>,
        options: &OnnxOptions,
        dtype: DType,
        device: Device,
    ) -> Result<OnnxModel> {
        let graph = crate::parse::read_graph(path.as_ref())?;
        OnnxModel::from_graph(graph, options, dtype, device)
    }

    /// Imports a model held in memory; external data is read relative to `base_dir` (`None`
    /// refuses external data).
    pub fn from_bytes(
        bytes: &[u8],
        base_dir: Option<&Path>,
        options: &OnnxOptions,
        dtype: DType,
        device: Device,
    ) -> Result<OnnxModel> {
        let graph = crate::parse::parse_graph(bytes, base_dir)?;
        OnnxModel::from_graph(graph, options, dtype, device)
    }

    /// Imports an already parsed and checked graph: converts its initializers once (floats to
    /// `dtype` on `device`, integers kept on the host) and selects the parameters.
    pub fn from_graph(
        graph: Graph,
        options: &OnnxOptions,
        dtype: DType,
        device: Device,
    ) -> Result<OnnxModel> {
        if let Some(first) = graph.outputs.first() {
            if !matches!(first.elem_type, ElemType::Other(0)) && !first.elem_type.is_float() {
                return Err(OnnxError::InvalidGraph(format!(
                    "the first graph output '{}' is {:?}; the model's output must be floating point",
                    shown(&first.name),
                    first.elem_type
                )));
            }
        } else {
            return Err(OnnxError::InvalidGraph("the graph has no outputs".into()));
        }
        let initializers = graph
            .initializers
            .iter()
            .map(|t| match &t.data {
                HostData::Float(values) => Ok(Initializer::Float(Tensor::from_f64s(
                    values,
                    t.dims.clone(),
                    dtype,
                    device,
                )?)),
                HostData::Int(values) => Ok(Initializer::Int(IntTensor {
                    dims: t.dims.clone(),
                    data: values.clone(),
                })),
            })
            .collect::<Result<Vec<_>>>()?;
        let params = select_parameters(&graph.initializers, &options.params)?;
        let layout = parameter_layout(&graph.initializers, &params)?;
        Ok(OnnxModel {
            graph,
            dtype,
            device,
            initializers,
            params,
            layout,
        })
    }

    /// The parsed graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The parameters' names, dims and places in θ, in order.
    pub fn parameter_layout(&self) -> &[OnnxParameter] {
        &self.layout
    }

    /// The graph inputs' names, in the order [`Module::forward_inputs`] takes them.
    pub fn input_names(&self) -> Vec<&str> {
        self.graph.inputs.iter().map(|v| v.name.as_str()).collect()
    }

    /// The name of the graph output the model returns (the first one).
    pub fn output_name(&self) -> &str {
        self.graph.outputs.first().map_or("", |v| v.name.as_str())
    }

    /// The dtype floating-point values are computed in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device they live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Runs the graph with the parameter variables `params` (one per parameter, shaped like
    /// it) on `inputs` (one per graph input, in order), returning the first graph output.
    /// Inputs are checked against the declared element types and dims (a symbolic dim takes
    /// one size across all inputs); an integer-typed input must hold integral, finite values.
    pub fn run(&self, params: &[Var], inputs: &[Var]) -> Result<Var> {
        let module = "OnnxModel";
        if params.len() != self.params.len() {
            return Err(NnError::ParamCount {
                module,
                expected: self.params.len(),
                got: params.len(),
            }
            .into());
        }
        if inputs.len() != self.graph.inputs.len() {
            return Err(NnError::InputCount {
                module,
                expected: self.graph.inputs.len(),
                got: inputs.len(),
            }
            .into());
        }
        let tape = params
            .first()
            .or(inputs.first())
            .map_or_else(Tape::new, |v| v.tape().clone());
        let mut env: HashMap<String, Val> = HashMap::new();
        for (slot, (var, entry)) in params.iter().zip(&self.layout).enumerate() {
            self.check_var("parameter", &entry.name, var)?;
            if var.dims() != entry.dims.as_slice() {
                return Err(OnnxError::Input(format!(
                    "parameter {slot} '{}' has dims {:?}, the initializer {:?}",
                    shown(&entry.name),
                    var.dims(),
                    entry.dims
                )));
            }
        }
        for (i, init) in self.initializers.iter().enumerate() {
            let name = self.graph.initializers[i].name.clone();
            let value = match (self.params.iter().position(|&p| p == i), init) {
                (Some(slot), _) => Val::Float(params[slot].clone()),
                (None, Initializer::Float(t)) => Val::Float(tape.constant(t.clone())),
                (None, Initializer::Int(t)) => Val::Int(t.clone()),
            };
            env.insert(name, value);
        }
        let mut symbols: HashMap<&str, (usize, &str)> = HashMap::new();
        for (info, var) in self.graph.inputs.iter().zip(inputs) {
            self.check_var("input", &info.name, var)?;
            check_dims(info, var.dims(), &mut symbols)?;
            let value = if info.elem_type.is_float() {
                Val::Float(var.clone())
            } else {
                Val::Int(integer_input(info, var.value())?)
            };
            env.insert(info.name.clone(), value);
        }
        let ctx = Ctx {
            tape: &tape,
            dtype: self.dtype,
            device: self.device,
            opset: self.graph.opset,
        };
        let outputs = lower::run(&self.graph, env, &ctx)?;
        match outputs.into_iter().next() {
            Some(Val::Float(y)) => Ok(y),
            Some(Val::Int(_)) => Err(OnnxError::InvalidGraph(format!(
                "graph output '{}' is an integer tensor; the model's output must be floating point",
                shown(self.output_name())
            ))),
            None => Err(OnnxError::InvalidGraph("the graph has no outputs".into())),
        }
    }

    /// Checks that `var` has the model's dtype and device.
    fn check_var(&self, role: &str, name: &str, var: &Var) -> Result<()> {
        if var.dtype() != self.dtype || var.device() != self.device {
            return Err(OnnxError::Input(format!(
                "{role} '{}' is {:?} on {:?}, the model computes in {:?} on {:?}",
                shown(name),
                var.dtype(),
                var.device(),
                self.dtype,
                self.device
            )));
        }
        Ok(())
    }
}

/// Checks `dims` against the declared shape of input `info`; `symbols` holds the size each
/// symbolic dim took so far, and the input that fixed it.
fn check_dims<'a>(
    info: &'a ValueInfo,
    dims: &[usize],
    symbols: &mut HashMap<&'a str, (usize, &'a str)>,
) -> Result<()> {
    let Some(declared) = &info.dims else {
        return Ok(());
    };
    let show = |d: &[Dim]| {
        let parts: Vec<String> = d
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Symbolic(s) => shown(s),
                Dim::Unknown => "?".to_string(),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    };
    let mismatch = || {
        OnnxError::Input(format!(
            "input '{}' has dims {dims:?}, the model declares {}",
            shown(&info.name),
            show(declared)
        ))
    };
    if declared.len() != dims.len() {
        return Err(mismatch());
    }
    for (d, &n) in declared.iter().zip(dims) {
        match d {
            Dim::Fixed(m) if *m != n => return Err(mismatch()),
            Dim::Symbolic(s) => match symbols.get(s.as_str()) {
                Some(&(m, other)) if m != n => {
                    return Err(OnnxError::Input(format!(
                        "input '{}' gives dim '{}' size {n}, input '{}' gave it {m}",
                        shown(&info.name),
                        shown(s),
                        shown(other)
                    )))
                }
                Some(_) => {}
                None => {
                    symbols.insert(s.as_str(), (n, info.name.as_str()));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The values of an integer-typed input given as floats: each must be integral, finite and in
/// the declared type's range (0 or 1 for bool).
fn integer_input(info: &ValueInfo, value: &Tensor) -> Result<IntTensor> {
    let (lo, hi) = match info.elem_type {
        ElemType::Bool => (0.0, 1.0),
        ElemType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        // The integers an f64 holds exactly, well inside i64.
        _ => (-9_007_199_254_740_992.0, 9_007_199_254_740_992.0),
    };
    let data = value
        .to_f64s()?
        .into_iter()
        .enumerate()
        .map(|(k, v)| {
            if v.is_finite() && v.fract() == 0.0 && (lo..=hi).contains(&v) {
                Ok(v as i64)
            } else {
                Err(OnnxError::Input(format!(
                    "input '{}' is {:?}, but element {k} is {v}, not an integer in [{lo}, {hi}]",
                    shown(&info.name),
                    info.elem_type
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(IntTensor {
        dims: value.dims().to_vec(),
        data,
    })
}

/// An [`OnnxError`] as the module error it surfaces as (tensor, tape and module errors as
/// themselves, the others with their one-line message).
fn to_nn(e: OnnxError) -> NnError {
    match e {
        OnnxError::Nn(e) => e,
        OnnxError::Tensor(e) => NnError::Tensor(e),
        OnnxError::Tape(e) => NnError::Tape(e),
        other => NnError::InvalidArgument {
            op: "onnx",
            msg: other.to_string(),
        },
    }
}

impl Module for OnnxModel {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .filter_map(|&i| match &self.initializers[i] {
                Initializer::Float(t) => Some((self.graph.initializers[i].name.clone(), t.clone())),
                Initializer::Int(_) => None,
            })
            .collect()
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> curvature_nn::Result<Var> {
        self.forward_inputs(params, std::slice::from_ref(x))
    }

    fn num_inputs(&self) -> usize {
        self.graph.inputs.len()
    }

    fn forward_inputs(&self, params: &[Var], inputs: &[Var]) -> curvature_nn::Result<Var> {
        self.run(params, inputs).map_err(to_nn)
    }
}
