//! The subset of the ONNX protobuf schema (`onnx.proto`) the importer reads, decoded by hand
//! from the wire format: `ModelProto`, `OperatorSetIdProto`, `GraphProto`, `NodeProto`,
//! `AttributeProto`, `TensorProto`, `ValueInfoProto`, `TypeProto.Tensor`, `TensorShapeProto`
//! and `StringStringEntryProto`. Unknown fields are skipped; a known field with the wrong
//! wire type, or a singular message given twice, is malformed. Subgraphs (`GraphProto` inside
//! attributes) are never decoded, only counted, so nesting is bounded by the schema.

mod wire;

use wire::{
    expect, int32, int64, malformed, repeated_fixed32, repeated_fixed64, repeated_varint, string,
    Reader, LEN,
};

use crate::Result;

/// `ModelProto`.
#[derive(Debug, Default)]
pub struct ModelProto<'a> {
    /// `opset_import` (8).
    pub opset_import: Vec<OperatorSetId>,
    /// `graph` (7).
    pub graph: Option<GraphProto<'a>>,
}

/// `OperatorSetIdProto`.
#[derive(Debug, Default)]
pub struct OperatorSetId {
    /// `domain` (1).
    pub domain: String,
    /// `version` (2).
    pub version: i64,
}

/// `GraphProto`.
#[derive(Debug, Default)]
pub struct GraphProto<'a> {
    /// `node` (1).
    pub nodes: Vec<NodeProto<'a>>,
    /// `initializer` (5).
    pub initializers: Vec<TensorProto<'a>>,
    /// How many `sparse_initializer` (15) entries the graph has.
    pub sparse_initializers: usize,
    /// `input` (11).
    pub inputs: Vec<ValueInfoProto>,
    /// `output` (12).
    pub outputs: Vec<ValueInfoProto>,
}

/// `NodeProto`.
#[derive(Debug, Default)]
pub struct NodeProto<'a> {
    /// `input` (1).
    pub inputs: Vec<String>,
    /// `output` (2).
    pub outputs: Vec<String>,
    /// `name` (3).
    pub name: String,
    /// `op_type` (4).
    pub op_type: String,
    /// `domain` (7).
    pub domain: String,
    /// `attribute` (5).
    pub attributes: Vec<AttributeProto<'a>>,
}

/// `AttributeProto`.
#[derive(Debug, Default)]
pub struct AttributeProto<'a> {
    /// `name` (1).
    pub name: String,
    /// `type` (20), an `AttributeType` number (0 when absent).
    pub kind: i32,
    /// `ref_attr_name` (21): set inside function bodies only.
    pub ref_attr_name: String,
    /// `f` (2).
    pub f: Option<f32>,
    /// `i` (3).
    pub i: Option<i64>,
    /// `s` (4).
    pub s: Option<&'a [u8]>,
    /// `t` (5).
    pub t: Option<TensorProto<'a>>,
    /// `floats` (7).
    pub floats: Vec<f32>,
    /// `ints` (8).
    pub ints: Vec<i64>,
    /// `strings` (9).
    pub strings: Vec<&'a [u8]>,
    /// How many graphs (`g` 6, `graphs` 11), sparse tensors (22, 23), tensors (10) and type
    /// protos (14, 15) the attribute holds: kinds the importer refuses.
    pub other_values: usize,
    /// True when `g` or `graphs` is present.
    pub has_graph: bool,
}

/// `TensorProto`.
#[derive(Debug, Default)]
pub struct TensorProto<'a> {
    /// `dims` (1).
    pub dims: Vec<i64>,
    /// `data_type` (2).
    pub data_type: i32,
    /// True when `segment` (3) is present.
    pub segmented: bool,
    /// `float_data` (4), as bit patterns.
    pub float_data: Vec<u32>,
    /// `int32_data` (5).
    pub int32_data: Vec<i64>,
    /// How many `string_data` (6) entries.
    pub string_data: usize,
    /// `int64_data` (7).
    pub int64_data: Vec<i64>,
    /// `name` (8).
    pub name: String,
    /// `raw_data` (9).
    pub raw_data: Option<&'a [u8]>,
    /// `double_data` (10), as bit patterns.
    pub double_data: Vec<u64>,
    /// `uint64_data` (11).
    pub uint64_data: Vec<u64>,
    /// `external_data` (13).
    pub external_data: Vec<(String, String)>,
    /// `data_location` (14): 0 default, 1 external.
    pub data_location: i32,
}

/// `ValueInfoProto`.
#[derive(Debug, Default)]
pub struct ValueInfoProto {
    /// `name` (1).
    pub name: String,
    /// `type` (2).
    pub kind: Option<TypeProto>,
}

/// `TypeProto`: only the tensor case is decoded.
#[derive(Debug)]
pub enum TypeProto {
    /// `tensor_type` (1).
    Tensor {
        /// `elem_type` (1).
        elem_type: i32,
        /// `shape` (2): per dimension, its `dim_value` (1) or `dim_param` (2).
        shape: Option<Vec<DimProto>>,
    },
    /// Any other type (sequence 4, map 5, sparse tensor 8, optional 9), by field number.
    Other(u32),
}

/// `TensorShapeProto.Dimension`.
#[derive(Debug, Default)]
pub struct DimProto {
    /// `dim_value` (1).
    pub value: Option<i64>,
    /// `dim_param` (2).
    pub param: Option<String>,
}

/// Decodes a `ModelProto` from `bytes`.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto<'_>> {
    let mut r = Reader::new(bytes);
    let mut model = ModelProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            7 => {
                expect(key, LEN, "ModelProto")?;
                if model.graph.is_some() {
                    return Err(malformed(key.at, "ModelProto has two graphs"));
                }
                model.graph = Some(graph(r.message()?)?);
            }
            8 => {
                expect(key, LEN, "ModelProto")?;
                model.opset_import.push(opset_id(r.message()?)?);
            }
            _ => r.skip(key)?,
        }
    }
    Ok(model)
}

fn opset_id(mut r: Reader) -> Result<OperatorSetId> {
    let mut out = OperatorSetId::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => out.domain = string(&mut r, key, "OperatorSetIdProto")?,
            2 => out.version = int64(&mut r, key, "OperatorSetIdProto")?,
            _ => r.skip(key)?,
        }
    }
    Ok(out)
}

fn graph(mut r: Reader<'_>) -> Result<GraphProto<'_>> {
    let mut g = GraphProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => {
                expect(key, LEN, "GraphProto")?;
                g.nodes.push(node(r.message()?)?);
            }
            5 => {
                expect(key, LEN, "GraphProto")?;
                g.initializers.push(tensor(r.message()?)?);
            }
            11 | 12 => {
                expect(key, LEN, "GraphProto")?;
                let info = value_info(r.message()?)?;
                if key.field == 11 {
                    g.inputs.push(info);
                } else {
                    g.outputs.push(info);
                }
            }
            15 => {
                expect(key, LEN, "GraphProto")?;
                r.skip(key)?;
                g.sparse_initializers += 1;
            }
            _ => r.skip(key)?,
        }
    }
    Ok(g)
}

fn node(mut r: Reader<'_>) -> Result<NodeProto<'_>> {
    let mut n = NodeProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => n.inputs.push(string(&mut r, key, "NodeProto")?),
            2 => n.outputs.push(string(&mut r, key, "NodeProto")?),
            3 => n.name = string(&mut r, key, "NodeProto")?,
            4 => n.op_type = string(&mut r, key, "NodeProto")?,
            7 => n.domain = string(&mut r, key, "NodeProto")?,
            5 => {
                expect(key, LEN, "NodeProto")?;
                n.attributes.push(attribute(r.message()?)?);
            }
            _ => r.skip(key)?,
        }
    }
    Ok(n)
}

fn attribute(mut r: Reader<'_>) -> Result<AttributeProto<'_>> {
    const MSG: &str = "AttributeProto";
    let mut a = AttributeProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => a.name = string(&mut r, key, MSG)?,
            20 => a.kind = int32(&mut r, key, MSG)?,
            21 => a.ref_attr_name = string(&mut r, key, MSG)?,
            2 => {
                expect(key, wire::FIXED32, MSG)?;
                a.f = Some(f32::from_bits(r.fixed32()?));
            }
            3 => a.i = Some(int64(&mut r, key, MSG)?),
            4 => {
                expect(key, LEN, MSG)?;
                a.s = Some(r.bytes()?);
            }
            5 => {
                expect(key, LEN, MSG)?;
                if a.t.is_some() {
                    return Err(malformed(key.at, "AttributeProto has two tensors"));
                }
                a.t = Some(tensor(r.message()?)?);
            }
            7 => {
                let mut bits = Vec::new();
                repeated_fixed32(&mut r, key, MSG, &mut bits)?;
                a.floats.extend(bits.into_iter().map(f32::from_bits));
            }
            8 => repeated_varint(&mut r, key, MSG, &mut a.ints)?,
            9 => {
                expect(key, LEN, MSG)?;
                a.strings.push(r.bytes()?);
            }
            6 | 11 => {
                expect(key, LEN, MSG)?;
                r.skip(key)?;
                a.has_graph = true;
                a.other_values += 1;
            }
            10 | 14 | 15 | 22 | 23 => {
                expect(key, LEN, MSG)?;
                r.skip(key)?;
                a.other_values += 1;
            }
            _ => r.skip(key)?,
        }
    }
    Ok(a)
}

fn tensor(mut r: Reader<'_>) -> Result<TensorProto<'_>> {
    const MSG: &str = "TensorProto";
    let mut t = TensorProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => repeated_varint(&mut r, key, MSG, &mut t.dims)?,
            2 => t.data_type = int32(&mut r, key, MSG)?,
            3 => {
                expect(key, LEN, MSG)?;
                r.skip(key)?;
                t.segmented = true;
            }
            4 => repeated_fixed32(&mut r, key, MSG, &mut t.float_data)?,
            5 => repeated_varint(&mut r, key, MSG, &mut t.int32_data)?,
            6 => {
                expect(key, LEN, MSG)?;
                r.skip(key)?;
                t.string_data += 1;
            }
            7 => repeated_varint(&mut r, key, MSG, &mut t.int64_data)?,
            8 => t.name = string(&mut r, key, MSG)?,
            9 => {
                expect(key, LEN, MSG)?;
                t.raw_data = Some(r.bytes()?);
            }
            10 => repeated_fixed64(&mut r, key, MSG, &mut t.double_data)?,
            11 => {
                let mut values = Vec::new();
                repeated_varint(&mut r, key, MSG, &mut values)?;
                t.uint64_data.extend(values.into_iter().map(|v| v as u64));
            }
            13 => {
                expect(key, LEN, MSG)?;
                t.external_data.push(string_entry(r.message()?)?);
            }
            14 => t.data_location = int32(&mut r, key, MSG)?,
            _ => r.skip(key)?,
        }
    }
    Ok(t)
}

fn string_entry(mut r: Reader) -> Result<(String, String)> {
    let (mut k, mut v) = (String::new(), String::new());
    while let Some(key) = r.key()? {
        match key.field {
            1 => k = string(&mut r, key, "StringStringEntryProto")?,
            2 => v = string(&mut r, key, "StringStringEntryProto")?,
            _ => r.skip(key)?,
        }
    }
    Ok((k, v))
}

fn value_info(mut r: Reader) -> Result<ValueInfoProto> {
    let mut info = ValueInfoProto::default();
    while let Some(key) = r.key()? {
        match key.field {
            1 => info.name = string(&mut r, key, "ValueInfoProto")?,
            2 => {
                expect(key, LEN, "ValueInfoProto")?;
                if info.kind.is_some() {
                    return Err(malformed(key.at, "ValueInfoProto has two types"));
                }
                info.kind = Some(type_proto(r.message()?)?);
            }
            _ => r.skip(key)?,
        }
    }
    Ok(info)
}

fn type_proto(mut r: Reader) -> Result<TypeProto> {
    let mut out: Option<TypeProto> = None;
    while let Some(key) = r.key()? {
        match key.field {
            1 => {
                expect(key, LEN, "TypeProto")?;
                out = Some(tensor_type(r.message()?)?);
            }
            4 | 5 | 8 | 9 => {
                expect(key, LEN, "TypeProto")?;
                r.skip(key)?;
                out = Some(TypeProto::Other(key.field));
            }
            _ => r.skip(key)?,
        }
    }
    Ok(out.unwrap_or(TypeProto::Other(0)))
}

fn tensor_type(mut r: Reader) -> Result<TypeProto> {
    let mut elem_type = 0;
    let mut shape = None;
    while let Some(key) = r.key()? {
        match key.field {
            1 => elem_type = int32(&mut r, key, "TypeProto.Tensor")?,
            2 => {
                expect(key, LEN, "TypeProto.Tensor")?;
                shape = Some(tensor_shape(r.message()?)?);
            }
            _ => r.skip(key)?,
        }
    }
    Ok(TypeProto::Tensor { elem_type, shape })
}

fn tensor_shape(mut r: Reader) -> Result<Vec<DimProto>> {
    let mut dims = Vec::new();
    while let Some(key) = r.key()? {
        match key.field {
            1 => {
                expect(key, LEN, "TensorShapeProto")?;
                let mut d = r.message()?;
                let mut dim = DimProto::default();
                while let Some(k) = d.key()? {
                    match k.field {
                        1 => dim.value = Some(int64(&mut d, k, "TensorShapeProto.Dimension")?),
                        2 => dim.param = Some(string(&mut d, k, "TensorShapeProto.Dimension")?),
                        _ => d.skip(k)?,
                    }
                }
                dims.push(dim);
            }
            _ => r.skip(key)?,
        }
    }
    Ok(dims)
}
