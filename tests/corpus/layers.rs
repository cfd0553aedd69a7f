//! Malformed `layers` lists, spoiling the small CNN `tests/data/layers/small_cnn`
//! (Conv2d 2→3 3×3 padding 1, BatchNorm2d, ReLU, MaxPool2d 2, Flatten, Linear 12→3, inputs
//! `[6, 2, 4, 4]`, cross-entropy): bad JSON, unknown types and keys, bad hyper-parameters,
//! layers that do not fit their inputs, and tensors no layer reads.

use serde_json::{json, Value};

use super::spec::{Spec, Tensor};
use super::{bytes, Case};

fn cnn() -> Spec {
    Spec::golden("layers/small_cnn")
}

/// The CNN's file with its `layers` list edited.
fn edited(edit: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    edited_spec(cnn(), edit)
}

/// `spec` with its `layers` list edited.
fn edited_spec(spec: Spec, edit: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    let text = spec.metadata["layers"]
        .as_str()
        .expect("a string")
        .to_string();
    let mut layers: Vec<Value> = serde_json::from_str(&text).expect("a list");
    edit(&mut layers);
    spec.meta("layers", &serde_json::to_string(&layers).expect("JSON"))
}

/// The CNN's file with `key` of layer `index` set to `value`.
fn field(index: usize, key: &str, value: Value) -> Vec<u8> {
    edited(|layers| {
        layers[index][key] = value;
    })
}

pub fn layer_lists() -> Vec<Case> {
    let spec = cnn();
    let with_tensor = |name: &str, len: usize| {
        spec.with(|s| {
            s.tensors.push(Tensor {
                name: name.into(),
                dtype: "F64".into(),
                shape: json!([len]),
                data: vec![0; 8 * len],
            })
        })
        .bytes()
    };
    vec![
        bytes(
            "layers not JSON",
            spec.meta("layers", "[{\"type\": "),
            "metadata 'layers': cannot parse",
        ),
        bytes(
            "layers an object",
            spec.meta("layers", "{\"type\": \"ReLU\"}"),
            "metadata 'layers': cannot parse",
        ),
        bytes(
            "layers empty",
            spec.meta("layers", "[]"),
            "metadata 'layers': the list is empty",
        ),
        bytes(
            "layer a number",
            spec.meta("layers", "[1]"),
            "metadata 'layers': layer 0: is not a JSON object",
        ),
        bytes(
            "layer without type",
            edited(|l| l[2] = json!({"kind": "ReLU"})),
            "layer 2: has no 'type'",
        ),
        bytes(
            "unknown layer type",
            edited(|l| l[2] = json!({"type": "Conv3d\u{1b}[31m"})),
            "layer 2 (Conv3d\\x1b[31m): unknown type 'Conv3d\\x1b[31m' (not a supported module)",
        ),
        bytes(
            "unknown key",
            field(0, "padding_mode", json!("reflect")),
            "layer 0 (Conv2d): unknown key 'padding_mode' for Conv2d",
        ),
        bytes(
            "zero kernel",
            field(0, "kernel_size", json!([0, 3])),
            "layer 0 (Conv2d): 'kernel_size' must be a list of 2 positive integers",
        ),
        bytes(
            "zero stride",
            field(3, "stride", json!([2, 0])),
            "layer 3 (MaxPool2d): 'stride' must be a list of 2 positive integers",
        ),
        bytes(
            "huge stride",
            field(0, "stride", json!([1e30, 1])),
            "'stride' must be a list of 2 positive integers",
        ),
        bytes(
            "negative padding",
            field(0, "padding", json!([-1, 1])),
            "'padding' must be a list of 2 non-negative integers",
        ),
        bytes(
            "three kernel sizes",
            field(0, "kernel_size", json!([3, 3, 3])),
            "'kernel_size' must be a list of 2 positive integers",
        ),
        bytes(
            "groups not dividing",
            field(0, "groups", json!(2)),
            "layer 0 (Conv2d): 'groups' 2 must divide 'in_channels' 2 and 'out_channels' 3",
        ),
        bytes(
            "zero groups",
            field(0, "groups", json!(0)),
            "'groups' must be positive",
        ),
        bytes(
            "negative eps",
            field(1, "eps", json!(-1e-5)),
            "layer 1 (BatchNorm2d): 'eps' must not be negative",
        ),
        bytes(
            "eps a string",
            field(1, "eps", json!("NaN")),
            "'eps' must be a finite number",
        ),
        bytes(
            "bias not a flag",
            field(5, "bias", json!(1)),
            "layer 5 (Linear): 'bias' must be true or false",
        ),
        bytes(
            "Linear without bias",
            field(5, "bias", json!(false)),
            "a Linear layer without a bias is not supported",
        ),
        bytes(
            "Softplus beta 2",
            edited(|l| l[2] = json!({"type": "Softplus", "beta": 2, "threshold": 20})),
            "layer 2 (Softplus): 'beta' must be 1",
        ),
        bytes(
            "GELU approximate erf",
            edited(|l| l[2] = json!({"type": "GELU", "approximate": "erf"})),
            "'approximate' must be \"none\" or \"tanh\"",
        ),
        bytes(
            "Dropout p 2",
            edited(|l| l[2] = json!({"type": "Dropout", "p": 2.0})),
            "'p' must be in [0, 1]",
        ),
        bytes(
            "LayerNorm over two axes",
            edited(|l| {
                l[2] = json!({"type": "LayerNorm", "normalized_shape": [4, 4], "eps": 1e-5,
                    "elementwise_affine": false})
            }),
            "normalisation over the last axis only",
        ),
        bytes(
            "pool padding beyond half the kernel",
            field(3, "padding", json!([2, 0])),
            "'padding' [2, 0] must be at most half of 'kernel_size' [2, 2]",
        ),
        bytes(
            "pool window larger than its input",
            edited(|l| {
                l[3] = json!({"type": "MaxPool2d", "kernel_size": [5, 5],
                "stride": [5, 5], "padding": [0, 0]})
            }),
            "layer 3 (MaxPool2d) its window does not fit its input of shape [6, 3, 4, 4]",
        ),
        bytes(
            "Linear after an unpooled map",
            edited(|l| {
                l[3] = json!({"type": "MaxPool2d", "kernel_size": [1, 1],
                "stride": [1, 1], "padding": [0, 0]})
            }),
            "layer 5 (Linear) expects a last axis of 12, but its input has shape [6, 48]",
        ),
        bytes(
            "Flatten axes out of range",
            edited(|l| l[4] = json!({"type": "Flatten", "start_dim": 5, "end_dim": -1})),
            "layer 4 (Flatten) axes 5..=-1 are not an axis range",
        ),
        bytes(
            "BatchNorm1d on images",
            field(1, "type", json!("BatchNorm1d")),
            "layer 1 (BatchNorm1d) needs an input [N, C] or [N, C, L]",
        ),
        bytes(
            "channels that disagree with the weight",
            field(0, "in_channels", json!(4)),
            "tensor '0.weight' has shape [3, 2, 3, 3], expected [3, 4, 3, 3]",
        ),
        bytes(
            "huge out_features",
            field(5, "out_features", json!(4611686018427387904u64)),
            "tensor '5.weight' has shape [3, 12], expected [4611686018427387904, 12]",
        ),
        bytes(
            "running variance missing",
            spec.with(|s| s.tensors.retain(|t| t.name != "1.running_var"))
                .bytes(),
            "missing tensor '1.running_var'",
        ),
        bytes(
            "num_batches_tracked left in",
            with_tensor("1.num_batches_tracked", 1),
            "tensor '1.num_batches_tracked' is not a tensor of any of the 6 entries of \
             metadata 'layers'",
        ),
        bytes(
            "a layer beyond the list",
            with_tensor("6.weight", 3),
            "tensor '6.weight' is not a tensor of any of the 6 entries",
        ),
        bytes(
            "widths together with layers",
            spec.meta("widths", "[4, 3]"),
            "metadata 'widths': not allowed together with 'layers'",
        ),
        bytes(
            "mse targets of the wrong shape",
            spec.meta("loss", "mse"),
            "tensor 'y' has shape [6], expected [6, 3]",
        ),
        bytes(
            "cross-entropy on feature maps",
            edited_spec(
                spec.with(|s| s.tensors.retain(|t| !t.name.starts_with("5."))),
                |l| l.truncate(3),
            ),
            "cross_entropy needs logits [n, classes], but the model's output has shape \
             [6, 3, 4, 4]",
        ),
    ]
}
