//! The results file of `analyze --out`: a safetensors file of f64 tensors with string
//! metadata, written here rather than by the `safetensors` crate (whose metadata is a
//! `HashMap`, in a different order every run) so that the same results give the same bytes.

use std::collections::BTreeMap;

/// Tensors `(name, shape, values)`, in this order in the data, and metadata in key order.
pub type Tensors = [(String, Vec<usize>, Vec<f64>)];

/// The bytes of a safetensors file holding `tensors` as F64 and `metadata`: the 8-byte header
/// length, the JSON header (keys in sorted order, padded with spaces to a multiple of 8 bytes,
/// as the `safetensors` crate does), then each tensor's little-endian values.
pub fn safetensors_bytes(
    tensors: &Tensors,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let too_large = || "cannot encode the results: they are too large".to_string();
    // serde_json's map keeps its keys sorted (its `preserve_order` feature is off).
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if elements != Some(values.len()) {
            return Err(format!(
                "cannot encode the results: tensor '{name}' has {} values for shape {shape:?}",
                values.len()
            ));
        }
        let end = values
            .len()
            .checked_mul(8)
            .and_then(|bytes| offset.checked_add(bytes))
            .ok_or_else(too_large)?;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F64", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text =
        serde_json::to_vec(&header).map_err(|e| format!("cannot encode the results: {e}"))?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let total = (8 + text.len()).checked_add(offset).ok_or_else(too_large)?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(total).map_err(|_| too_large())?;
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    for (_, _, values) in tensors {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;

    #[test]
    fn the_file_is_read_back_by_safetensors_and_its_bytes_are_fixed() {
        let tensors = vec![
            ("loss".to_string(), vec![1], vec![0.5]),
            ("grad".to_string(), vec![2, 2], vec![1.0, -2.0, 3.0, 0.25]),
        ];
        let metadata: BTreeMap<String, String> = [("seed", "0"), ("dtype", "f64"), ("a", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = safetensors_bytes(&tensors, &metadata).expect("encodes");
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        // Keys in sorted order: the metadata first (uppercase and '_' sort before letters),
        // its entries sorted, then the tensors by name.
        assert!(
            header.starts_with(r#"{"__metadata__":{"a":"x","dtype":"f64","seed":"0"},"grad":{"#),
            "{header}"
        );
        assert_eq!(bytes.len(), 8 + n + 8 * 5);
        let file = SafeTensors::deserialize(&bytes).expect("a valid safetensors file");
        let grad = file.tensor("grad").unwrap();
        assert_eq!(grad.shape(), [2, 2]);
        assert_eq!(&grad.data()[..8], &(1.0f64).to_le_bytes());
        assert_eq!(file.tensor("loss").unwrap().data(), &(0.5f64).to_le_bytes());
    }

    #[test]
    fn values_that_disagree_with_the_shape_are_an_error() {
        let tensors = vec![("grad".to_string(), vec![3], vec![1.0])];
        assert!(safetensors_bytes(&tensors, &BTreeMap::new()).is_err());
    }
}
