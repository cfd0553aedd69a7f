//! From ONNX bytes to a checked [`Graph`]: the protobuf is decoded ([`crate::proto`]), its
//! tensors converted to [`HostTensor`]s (float types widened to f64 exactly, int32, int64 and
//! bool to i64; every value count checked against the dims before a value is decoded), its
//! value infos to [`ValueInfo`]s, and the result checked and sorted ([`crate::check`]).

use std::path::{Path, PathBuf};

use curvature_tensor::io::shown;

use crate::external::read_external;
use crate::ir::{Attribute, Dim, ElemType, Graph, HostData, HostTensor, Node, ValueInfo};
use crate::proto::{self, AttributeProto, TensorProto, TypeProto, ValueInfoProto};
use crate::{OnnxError, Result};

/// Model files larger than this are refused: protobuf messages are limited to 2 GiB, and
/// larger models keep their weights as external data.
pub const MAX_MODEL_BYTES: u64 = 1 << 31;

/// Reads, parses and checks the ONNX model at `path`; external data is read relative to its
/// folder.
pub fn read_graph(path: &Path) -> Result<Graph> {
    let io = |source| OnnxError::Io {
        path: shown(&path.display().to_string()),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if let Some(kind) = curvature_tensor::io::file_kind(&meta) {
        return Err(OnnxError::Malformed(format!(
            "{} is {kind}, not an ONNX file",
            shown(&path.display().to_string())
        )));
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(OnnxError::Malformed(format!(
            "{} holds {} bytes, more than the {MAX_MODEL_BYTES} a protobuf may hold",
            shown(&path.display().to_string()),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    parse_graph(&bytes, Some(dir))
}

/// The newest opset of the default domain the ONNX standard defines (ONNX 1.23), whose ops'
/// meanings the lowering follows; a later version is refused rather than guessed.
pub const NEWEST_OPSET: i64 = 28;

/// Parses and checks an ONNX model held in memory; `base_dir` is the folder its external data
/// is read from (`None` refuses external data).
pub fn parse_graph(bytes: &[u8], base_dir: Option<&Path>) -> Result<Graph> {
    let model = proto::decode_model(bytes)?;
    let mut opset = None;
    for entry in &model.opset_import {
        if matches!(entry.domain.as_str(), "" | "ai.onnx") {
            if opset.is_some_and(|v| v != entry.version) {
                return Err(OnnxError::InvalidGraph(
                    "the default domain is imported twice with different versions".into(),
                ));
            }
            opset = Some(entry.version);
        }
    }
    let opset = opset.ok_or_else(|| {
        OnnxError::InvalidGraph("the model imports no opset of the default domain".into())
    })?;
    if !(1..=NEWEST_OPSET).contains(&opset) {
        return Err(OnnxError::InvalidGraph(format!(
            "the model imports opset {opset} of the default domain; ONNX's opsets are 1 to \
             {NEWEST_OPSET}"
        )));
    }
    let g = model
        .graph
        .ok_or_else(|| OnnxError::InvalidGraph("the model has no graph".into()))?;
    if g.sparse_initializers > 0 {
        return Err(OnnxError::Unsupported {
            op_type: "graph".into(),
            node: "sparse_initializer".into(),
            what: "initializer",
            detail: format!("{} sparse initializer(s)", g.sparse_initializers),
        });
    }
    let initializers = g
        .initializers
        .iter()
        .map(|t| host_tensor(t, base_dir, "initializer", &t.name))
        .collect::<Result<Vec<_>>>()?;
    let nodes = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.clone()
            };
            let attributes = n
                .attributes
                .iter()
                .map(|a| Ok((a.name.clone(), attribute(a, base_dir, &n.op_type, &name)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(Node {
                name,
                op_type: n.op_type.clone(),
                domain: n.domain.clone(),
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
                attributes,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let is_initializer = |name: &str| initializers.iter().any(|t| t.name == name);
    let inputs = g
        .inputs
        .iter()
        .filter(|v| !is_initializer(&v.name))
        .map(|v| value_info(v, "input"))
        .collect::<Result<Vec<_>>>()?;
    let outputs = g
        .outputs
        .iter()
        .map(|v| value_info(v, "output"))
        .collect::<Result<Vec<_>>>()?;
    let external_files = external_files(&g, base_dir);
    crate::check::check_graph(Graph {
        nodes,
        inputs,
        outputs,
        initializers,
        opset,
        external_files,
    })
}

/// The files the external data of `g`'s initializers and attribute tensors lives in, relative
/// to `base_dir` (already checked by [`read_external`] when the tensors were read).
fn external_files(g: &proto::GraphProto, base_dir: Option<&Path>) -> Vec<PathBuf> {
    let Some(base_dir) = base_dir else {
        return Vec::new();
    };
    let attribute_tensors = g
        .nodes
        .iter()
        .flat_map(|n| n.attributes.iter().filter_map(|a| a.t.as_ref()));
    let mut files: Vec<PathBuf> = Vec::new();
    for t in g.initializers.iter().chain(attribute_tensors) {
        let location = t
            .external_data
            .iter()
            .find(|(key, _)| key == "location")
            .map(|(_, value)| base_dir.join(value));
        if let Some(file) = location.filter(|f| !files.contains(f)) {
            files.push(file);
        }
    }
    files
}

/// The element type of `TensorProto.DataType` number `n`.
pub fn elem_type(n: i32) -> ElemType {
    match n {
        1 => ElemType::F32,
        11 => ElemType::F64,
        10 => ElemType::F16,
        16 => ElemType::BF16,
        7 => ElemType::I64,
        6 => ElemType::I32,
        9 => ElemType::Bool,
        n => ElemType::Other(n),
    }
}

fn value_info(v: &ValueInfoProto, role: &str) -> Result<ValueInfo> {
    let (elem, dims) = match &v.kind {
        Some(TypeProto::Tensor {
            elem_type: e,
            shape,
        }) => (elem_type(*e), shape.as_ref()),
        Some(TypeProto::Other(field)) if *field != 0 => {
            return Err(OnnxError::InvalidGraph(format!(
                "graph {role} '{}' is not a tensor (type field {field})",
                shown(&v.name)
            )))
        }
        _ => (ElemType::Other(0), None),
    };
    let dims = dims
        .map(|dims| {
            dims.iter()
                .map(|d| match (d.value, &d.param) {
                    (Some(n), _) => usize::try_from(n).map(Dim::Fixed).map_err(|_| {
                        OnnxError::InvalidGraph(format!(
                            "graph {role} '{}' declares dimension {n}",
                            shown(&v.name)
                        ))
                    }),
                    (None, Some(p)) if !p.is_empty() => Ok(Dim::Symbolic(p.clone())),
                    _ => Ok(Dim::Unknown),
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    Ok(ValueInfo {
        name: v.name.clone(),
        elem_type: elem,
        dims,
    })
}

fn attribute(
    a: &AttributeProto,
    base_dir: Option<&Path>,
    op_type: &str,
    node: &str,
) -> Result<Attribute> {
    let unsupported = |detail: String| OnnxError::Unsupported {
        op_type: op_type.to_string(),
        node: node.to_string(),
        what: "attribute",
        detail,
    };
    if !a.ref_attr_name.is_empty() {
        return Err(unsupported(format!(
            "'{}' refers to a function attribute",
            shown(&a.name)
        )));
    }
    let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
    let kind = if a.kind != 0 {
        a.kind
    } else if a.has_graph {
        5
    } else if a.t.is_some() {
        4
    } else if a.s.is_some() {
        3
    } else if a.i.is_some() {
        2
    } else if a.f.is_some() {
        1
    } else if !a.ints.is_empty() {
        7
    } else if !a.floats.is_empty() {
        6
    } else if !a.strings.is_empty() {
        8
    } else {
        0
    };
    let missing = || {
        OnnxError::InvalidGraph(format!(
            "node '{}' ({}): attribute '{}' of type {kind} has no value",
            shown(node),
            shown(op_type),
            shown(&a.name)
        ))
    };
    Ok(match kind {
        1 => Attribute::Float(a.f.ok_or_else(missing)?),
        2 => Attribute::Int(a.i.ok_or_else(missing)?),
        3 => Attribute::String(text(a.s.ok_or_else(missing)?)),
        4 => Attribute::Tensor(host_tensor(
            a.t.as_ref().ok_or_else(missing)?,
            base_dir,
            op_type,
            node,
        )?),
        6 => Attribute::Floats(a.floats.clone()),
        7 => Attribute::Ints(a.ints.clone()),
        8 => Attribute::Strings(a.strings.iter().map(|s| text(s)).collect()),
        other => Attribute::Other(other),
    })
}

/// The byte size of one element of `t` in `raw_data`.
fn elem_size(t: ElemType) -> Option<usize> {
    match t {
        ElemType::F64 | ElemType::I64 => Some(8),
        ElemType::F32 | ElemType::I32 => Some(4),
        ElemType::F16 | ElemType::BF16 => Some(2),
        ElemType::Bool => Some(1),
        ElemType::Other(_) => None,
    }
}

/// Converts a `TensorProto` (an initializer, or the value of node `owner`'s attribute) to a
/// [`HostTensor`].
fn host_tensor(
    t: &TensorProto,
    base_dir: Option<&Path>,
    op_type: &str,
    owner: &str,
) -> Result<HostTensor> {
    let label = if t.name.is_empty() { owner } else { &t.name };
    let invalid =
        |detail: String| OnnxError::InvalidGraph(format!("tensor '{}': {detail}", shown(label)));
    let elem = elem_type(t.data_type);
    let size = elem_size(elem).ok_or_else(|| OnnxError::Unsupported {
        op_type: op_type.to_string(),
        node: owner.to_string(),
        what: "dtype",
        detail: format!(
            "tensor '{}' has data type {} (supported: float, double, float16, bfloat16, int32, int64, bool)",
            shown(label),
            t.data_type
        ),
    })?;
    if t.segmented {
        return Err(invalid("segmented tensors are not supported".into()));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid(format!("dims {:?} hold {d}", t.dims))))
        .collect::<Result<Vec<_>>>()?;
    // The product of the non-zero dims bounds every stride, so it must fit even when a zero
    // dim leaves the tensor empty.
    let strides_fit = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_some();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|_| strides_fit)
        .ok_or_else(|| invalid(format!("dims {:?} overflow", t.dims)))?;
    let byte_len = count
        .checked_mul(size)
        .ok_or_else(|| invalid(format!("dims {:?} overflow", t.dims)))?;
    let mismatch = |held: usize, field: &str| {
        invalid(format!(
            "{field} holds {held} {}, dims {:?} need {}",
            if field == "raw_data" {
                "bytes"
            } else {
                "values"
            },
            dims,
            if field == "raw_data" { byte_len } else { count }
        ))
    };
    let external;
    let raw = match t.data_location {
        0 => t.raw_data,
        1 => {
            if t.raw_data.is_some() {
                return Err(invalid("has both raw_data and external data".into()));
            }
            external = read_external(label, &t.external_data, base_dir, byte_len)?;
            Some(&external[..])
        }
        n => return Err(invalid(format!("data_location {n} is not 0 or 1"))),
    };
    let data = if let Some(raw) = raw {
        if raw.len() != byte_len {
            return Err(mismatch(raw.len(), "raw_data"));
        }
        decode_raw(elem, raw)
    } else {
        let typed_len = match elem {
            ElemType::F32 => t.float_data.len(),
            ElemType::F64 => t.double_data.len(),
            ElemType::I64 => t.int64_data.len(),
            _ => t.int32_data.len(),
        };
        if typed_len != count {
            let field = match elem {
                ElemType::F32 => "float_data",
                ElemType::F64 => "double_data",
                ElemType::I64 => "int64_data",
                _ => "int32_data",
            };
            return Err(mismatch(typed_len, field));
        }
        match elem {
            ElemType::F32 => HostData::Float(
                t.float_data
                    .iter()
                    .map(|&b| f64::from(f32::from_bits(b)))
                    .collect(),
            ),
            ElemType::F64 => {
                HostData::Float(t.double_data.iter().map(|&b| f64::from_bits(b)).collect())
            }
            ElemType::F16 => {
                HostData::Float(t.int32_data.iter().map(|&v| f16_to_f64(v as u16)).collect())
            }
            ElemType::BF16 => HostData::Float(
                t.int32_data
                    .iter()
                    .map(|&v| bf16_to_f64(v as u16))
                    .collect(),
            ),
            ElemType::I64 => HostData::Int(t.int64_data.clone()),
            ElemType::I32 => {
                HostData::Int(t.int32_data.iter().map(|&v| i64::from(v as i32)).collect())
            }
            _ => HostData::Int(t.int32_data.iter().map(|&v| i64::from(v != 0)).collect()),
        }
    };
    Ok(HostTensor {
        name: t.name.clone(),
        elem_type: elem,
        dims,
        data,
    })
}

/// Decodes little-endian `raw` bytes of element type `elem` (its length a multiple of the
/// element size, checked by the caller).
fn decode_raw(elem: ElemType, raw: &[u8]) -> HostData {
    let u16s = || {
        raw.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    };
    let u32s = || {
        raw.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    };
    let u64s = || {
        raw.chunks_exact(8).map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
    };
    match elem {
        ElemType::F32 => HostData::Float(u32s().map(|b| f64::from(f32::from_bits(b))).collect()),
        ElemType::F64 => HostData::Float(u64s().map(f64::from_bits).collect()),
        ElemType::F16 => HostData::Float(u16s().map(f16_to_f64).collect()),
        ElemType::BF16 => HostData::Float(u16s().map(bf16_to_f64).collect()),
        ElemType::I64 => HostData::Int(u64s().map(|v| v as i64).collect()),
        ElemType::I32 => HostData::Int(u32s().map(|v| i64::from(v as i32)).collect()),
        _ => HostData::Int(raw.iter().map(|&b| i64::from(b != 0)).collect()),
    }
}

/// An IEEE half-precision bit pattern as f64 (exact).
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let mant = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A bfloat16 bit pattern (the top half of an f32) as f64 (exact).
pub fn bf16_to_f64(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}
