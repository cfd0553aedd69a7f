//! The in-memory form of an ONNX model after parsing: a [`Graph`] of [`Node`]s in
//! topological order, its [`ValueInfo`] inputs and outputs, and [`HostTensor`] initializers
//! and constants. Everything the protobuf decoder produces and the lowering reads; no
//! protobuf types leak past the parser.

/// An ONNX element type, by its `TensorProto.DataType` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// 1: float32.
    F32,
    /// 11: float64.
    F64,
    /// 10: float16.
    F16,
    /// 16: bfloat16.
    BF16,
    /// 7: int64.
    I64,
    /// 6: int32.
    I32,
    /// 9: bool.
    Bool,
    /// Any other type, by number (refused where it is used).
    Other(i32),
}

impl ElemType {
    /// True for the floating-point types (values the tape differentiates).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElemType::F32 | ElemType::F64 | ElemType::F16 | ElemType::BF16
        )
    }
}

/// The values of a [`HostTensor`], row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// Floating-point values (any float element type, widened to f64 exactly).
    Float(Vec<f64>),
    /// Integer values (int64, int32, bool as 0/1).
    Int(Vec<i64>),
}

/// A tensor held on the host: an initializer, a `Constant` node's value or an attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Its name (empty for anonymous attribute tensors).
    pub name: String,
    /// The element type declared in the file.
    pub elem_type: ElemType,
    /// Its dimensions (`[]` for a scalar).
    pub dims: Vec<usize>,
    /// Its values; their count is the product of `dims`.
    pub data: HostData,
}

/// A node attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `STRING` (UTF-8; invalid bytes replaced).
    String(String),
    /// `TENSOR`.
    Tensor(HostTensor),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRINGS`.
    Strings(Vec<String>),
    /// Any other attribute type (graphs, sparse tensors, …), by its `AttributeType` number.
    Other(i32),
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its name, or `#index` (its position in the graph) when the file leaves it empty.
    pub name: String,
    /// The operator (`Conv`, `Gemm`, …).
    pub op_type: String,
    /// The operator's domain (`""` or `ai.onnx` for the standard set).
    pub domain: String,
    /// The names of its inputs; `""` marks an omitted optional input.
    pub inputs: Vec<String>,
    /// The names of its outputs; `""` marks an omitted optional output.
    pub outputs: Vec<String>,
    /// Its attributes in file order.
    pub attributes: Vec<(String, Attribute)>,
}

impl Node {
    /// The attribute named `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }
}

/// One dimension of a declared input or output shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbolic size (`batch`, `s0`, …).
    Symbolic(String),
    /// Unknown.
    Unknown,
}

/// A declared graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// Its element type.
    pub elem_type: ElemType,
    /// Its declared shape, when the file gives one.
    pub dims: Option<Vec<Dim>>,
}

/// A parsed, checked ONNX graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The nodes in an order where every value is produced before it is read.
    pub nodes: Vec<Node>,
    /// The graph's real inputs (names that are also initializers are not listed).
    pub inputs: Vec<ValueInfo>,
    /// The graph's outputs.
    pub outputs: Vec<ValueInfo>,
    /// The initializers in file order.
    pub initializers: Vec<HostTensor>,
    /// The default-domain opset version the model declares.
    pub opset: i64,
    /// The files external tensor data was read from (each once, inside the model's folder),
    /// so that a caller can refuse to overwrite them.
    pub external_files: Vec<std::path::PathBuf>,
}
