//! A safetensors file spelled out, to be spoiled: its metadata and tensors, each tensor's
//! header entry and bytes, encoded with contiguous data offsets.

use serde_json::{json, Map, Value};

use crate::common::ModelFile;

/// One tensor of a file spelled out: its header entry's parts and its bytes.
#[derive(Clone)]
pub struct Tensor {
    pub name: String,
    pub dtype: String,
    pub shape: Value,
    pub data: Vec<u8>,
}

/// A safetensors file spelled out, to be spoiled: metadata, tensors (their data in this order).
#[derive(Clone)]
pub struct Spec {
    pub metadata: Map<String, Value>,
    pub tensors: Vec<Tensor>,
}

impl Spec {
    /// A golden model file's model and data tensors, as F64.
    pub fn golden(name: &str) -> Spec {
        let file = ModelFile::golden_named(name);
        let metadata = file
            .metadata
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let tensors = file
            .tensors
            .into_iter()
            .map(|(name, shape, values)| Tensor {
                name,
                dtype: "F64".into(),
                shape: json!(shape),
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            })
            .collect();
        Spec { metadata, tensors }
    }

    pub fn mse() -> Spec {
        Spec::golden("mlp_4_6_5_3_tanh_sigmoid_mse")
    }

    pub fn xent() -> Spec {
        Spec::golden("mlp_5_8_4_tanh_xent")
    }

    /// The header: the metadata and each tensor with contiguous data offsets.
    pub fn header(&self) -> Map<String, Value> {
        let mut header = Map::new();
        header.insert("__metadata__".into(), Value::Object(self.metadata.clone()));
        let mut offset = 0;
        for t in &self.tensors {
            let end = offset + t.data.len();
            let entry = json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]});
            header.insert(t.name.clone(), entry);
            offset = end;
        }
        header
    }

    pub fn data(&self) -> Vec<u8> {
        self.tensors.iter().flat_map(|t| t.data.clone()).collect()
    }

    pub fn bytes(&self) -> Vec<u8> {
        encode(&Value::Object(self.header()), &self.data())
    }

    pub fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .expect("tensor present")
    }

    /// This file with `edit` applied.
    pub fn with(&self, edit: impl FnOnce(&mut Spec)) -> Spec {
        let mut spec = self.clone();
        edit(&mut spec);
        spec
    }

    /// This file's bytes with the header entry of `name` edited.
    pub fn with_entry(&self, name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut header = self.header();
        edit(header[name].as_object_mut().expect("an entry"));
        encode(&Value::Object(header), &self.data())
    }

    pub fn meta(&self, key: &str, value: &str) -> Vec<u8> {
        self.with(|s| {
            s.metadata.insert(key.into(), Value::String(value.into()));
        })
        .bytes()
    }

    pub fn without_meta(&self, key: &str) -> Vec<u8> {
        self.with(|s| {
            s.metadata.remove(key);
        })
        .bytes()
    }

    /// This file with `values` (as F64) replacing tensor `name`'s.
    pub fn values(&self, name: &str, values: &[f64]) -> Vec<u8> {
        self.with(|s| s.tensor(name).data = values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .bytes()
    }
}

/// A safetensors file: the header's length, the header, the data.
pub fn encode(header: &Value, data: &[u8]) -> Vec<u8> {
    encode_text(&serde_json::to_vec(header).expect("JSON"), data)
}

pub fn encode_text(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    bytes
}

/// `bytes` with the header length replaced by `n`.
pub fn with_length(bytes: &[u8], n: u64) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}
