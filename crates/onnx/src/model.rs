//! [`OnnxModel`]: an imported ONNX graph as a [`Module`], its trainable parameters chosen among
//! the floating-point initializers.

use std::path::Path;

use curvature_nn::Module;
use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};

use crate::ir::Graph;
use crate::Result;

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
#[derive(Debug, Clone)]
pub struct OnnxModel {
    graph: Graph,
    dtype: DType,
    device: Device,
    /// Every initializer as a tensor (float ones in `dtype` on `device`), by graph order.
    initializers: Vec<Initializer>,
    /// Positions in `initializers` of the parameters, in order.
    params: Vec<usize>,
}

/// One initializer, converted once at load time.
#[derive(Debug, Clone)]
enum Initializer {
    Float(Tensor),
    Int(crate::lower::IntTensor),
}

impl OnnxModel {
    /// Reads and imports `path` (external data is read relative to its folder).
    pub fn load(
        path: impl AsRef<Path>,
        options: &OnnxOptions,
        dtype: DType,
        device: Device,
    ) -> Result<OnnxModel> {
        let _ = (path, options, dtype, device);
        todo!("parse")
    }

    /// The parsed graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
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
        let _ = (params, inputs, self.dtype, self.device);
        todo!("run")
    }
}
