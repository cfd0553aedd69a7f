//! Reading ONNX files into the graph form, against the facts `scripts/make_onnx_parse_fixtures.py`
//! wrote next to the files it built with the `onnx` package (`tests/data/parse/expected.json`):
//! opset, inputs and outputs with their dims, nodes with their attributes, and initializer
//! values bit for bit (float types widened to f64, integers to i64). Then `OnnxModel`:
//! parameter selection and layout, and the forward pass's checks of its inputs and parameters.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use curvature_nn::Module;
use curvature_onnx::ir::{Attribute, Dim, Graph, HostData, HostTensor, ValueInfo};
use curvature_onnx::{read_graph, OnnxError, OnnxModel, OnnxOptions, OnnxParameter};
use curvature_tape::{grad, GradOptions, Tape};
use curvature_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parse")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(data_dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn check_value_info(got: &ValueInfo, want: &Value) {
    assert_eq!(got.name, want["name"].as_str().unwrap());
    assert_eq!(
        format!("{:?}", got.elem_type),
        want["elem_type"].as_str().unwrap()
    );
    let dims: Option<Vec<Dim>> = want["dims"].as_array().map(|dims| {
        dims.iter()
            .map(|d| {
                if let Some(n) = d.get("fixed") {
                    Dim::Fixed(n.as_u64().unwrap() as usize)
                } else if let Some(s) = d.get("symbolic") {
                    Dim::Symbolic(s.as_str().unwrap().to_string())
                } else {
                    assert_eq!(d.as_str(), Some("unknown"));
                    Dim::Unknown
                }
            })
            .collect()
    });
    assert_eq!(got.dims, dims, "dims of {}", got.name);
}

fn check_attribute(name: &str, got: &Attribute, want: &Value) {
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap())
            .collect()
    };
    match got {
        Attribute::Float(f) => assert_eq!(f64::from(*f), want["float"].as_f64().unwrap(), "{name}"),
        Attribute::Int(i) => assert_eq!(*i, want["int"].as_i64().unwrap(), "{name}"),
        Attribute::String(s) => assert_eq!(s, want["string"].as_str().unwrap(), "{name}"),
        Attribute::Ints(v) => {
            let w: Vec<i64> = want["ints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect();
            assert_eq!(v, &w, "{name}");
        }
        Attribute::Floats(v) => {
            let got: Vec<f64> = v.iter().map(|&f| f64::from(f)).collect();
            assert_eq!(got, floats(&want["floats"]), "{name}");
        }
        Attribute::Strings(v) => {
            let w: Vec<&str> = want["strings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(v, &w, "{name}");
        }
        Attribute::Tensor(t) => {
            let dims: Vec<usize> = want["tensor"]["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(t.dims, dims, "{name}");
            assert_eq!(
                t.data,
                HostData::Float(floats(&want["tensor"]["data"])),
                "{name}"
            );
        }
        Attribute::Other(k) => panic!("attribute {name} decoded as type {k}"),
    }
}

fn check_initializer(got: &HostTensor, want: &Value) {
    assert_eq!(got.name, want["name"].as_str().unwrap());
    assert_eq!(
        format!("{:?}", got.elem_type),
        want["elem_type"].as_str().unwrap(),
        "{}",
        got.name
    );
    let dims: Vec<usize> = want["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got.dims, dims, "{}", got.name);
    match &got.data {
        HostData::Float(values) => {
            let bits: Vec<String> = values
                .iter()
                .map(|v| format!("{:016x}", v.to_bits()))
                .collect();
            let want_bits: Vec<&str> = want["bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            assert_eq!(bits, want_bits, "{} values {values:?}", got.name);
        }
        HostData::Int(values) => {
            let w: Vec<i64> = want["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect();
            assert_eq!(values, &w, "{}", got.name);
        }
    }
}

/// Every value a node reads is a graph input, an initializer or the output of an earlier node.
fn assert_topological(graph: &Graph) {
    let mut known: HashSet<&str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();
    known.extend(graph.initializers.iter().map(|t| t.name.as_str()));
    for node in &graph.nodes {
        for input in node.inputs.iter().filter(|i| !i.is_empty()) {
            assert!(
                known.contains(input.as_str()),
                "{} reads {input} before it is produced",
                node.name
            );
        }
        known.extend(node.outputs.iter().map(String::as_str));
    }
}

fn check_model(file: &str, in_file_order: bool) {
    let all = expected();
    let want = &all[file];
    let graph = read_graph(&data_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(graph.opset, want["opset"].as_i64().unwrap());
    for (key, got) in [("inputs", &graph.inputs), ("outputs", &graph.outputs)] {
        let w = want[key].as_array().unwrap();
        assert_eq!(got.len(), w.len(), "{file} {key}");
        for (g, w) in got.iter().zip(w) {
            check_value_info(g, w);
        }
    }
    let inits = want["initializers"].as_array().unwrap();
    assert_eq!(graph.initializers.len(), inits.len());
    for (g, w) in graph.initializers.iter().zip(inits) {
        check_initializer(g, w);
    }
    let nodes = want["nodes"].as_array().unwrap();
    assert_eq!(graph.nodes.len(), nodes.len());
    assert_topological(&graph);
    for (i, w) in nodes.iter().enumerate() {
        let name = w["name"].as_str().unwrap();
        let node = if in_file_order {
            &graph.nodes[i]
        } else {
            graph
                .nodes
                .iter()
                .find(|n| n.name == name)
                .unwrap_or_else(|| panic!("no node {name}"))
        };
        assert_eq!(node.name, name);
        assert_eq!(node.op_type, w["op_type"].as_str().unwrap());
        assert_eq!(node.domain, w["domain"].as_str().unwrap());
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(node.inputs, strings(&w["inputs"]), "{name}");
        assert_eq!(node.outputs, strings(&w["outputs"]), "{name}");
        let attrs = w["attributes"].as_array().unwrap();
        assert_eq!(node.attributes.len(), attrs.len(), "{name}");
        for ((got_name, got), want) in node.attributes.iter().zip(attrs) {
            assert_eq!(got_name, want[0].as_str().unwrap());
            check_attribute(got_name, got, &want[1]);
        }
    }
}

#[test]
fn a_graph_in_order_keeps_its_order_and_every_fact() {
    check_model("mlp.onnx", true);
}

#[test]
fn a_graph_in_reverse_order_is_sorted_topologically() {
    check_model("mlp_reversed.onnx", false);
    let graph = read_graph(&data_dir().join("mlp_reversed.onnx")).unwrap();
    let ops: Vec<&str> = graph.nodes.iter().map(|n| n.op_type.as_str()).collect();
    // The chain fixes the order except for the Constant, which the sort takes as soon as it
    // is ready: the reversed file lists it last, and the Add is the first node that needs it.
    assert_eq!(
        ops,
        [
            "Gemm",
            "Tanh",
            "Constant",
            "Add",
            "Reshape",
            "Mul",
            "LeakyRelu",
            "Transpose"
        ]
    );
}

#[test]
fn every_dtype_and_storage_field_widens_exactly() {
    check_model("dtypes.onnx", true);
}

#[test]
fn external_data_is_read_from_the_model_folder() {
    check_model("external.onnx", true);
}

#[test]
fn from_bytes_without_a_folder_refuses_external_data() {
    let bytes = std::fs::read(data_dir().join("external.onnx")).unwrap();
    let err = OnnxModel::from_bytes(
        &bytes,
        None,
        &OnnxOptions::default(),
        DType::F64,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(err, OnnxError::InvalidGraph(_)), "{err}");
    assert!(err.to_string().contains("without a folder"), "{err}");
    let model = OnnxModel::from_bytes(
        &bytes,
        Some(&data_dir()),
        &OnnxOptions::default(),
        DType::F64,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        model.named_parameters()[0].1.to_f64s().unwrap(),
        [1.0, -2.0, 0.5, 4.0, 0.0, -0.125]
    );
}

fn load(file: &str, globs: &[&str]) -> curvature_onnx::Result<OnnxModel> {
    let options = OnnxOptions {
        params: globs.iter().map(|g| g.to_string()).collect(),
    };
    OnnxModel::load(data_dir().join(file), &options, DType::F64, Device::Cpu)
}

fn layout(entries: &[(&str, &[usize], usize)]) -> Vec<OnnxParameter> {
    entries
        .iter()
        .map(|&(name, dims, offset)| OnnxParameter {
            name: name.to_string(),
            dims: dims.to_vec(),
            offset,
            len: dims.iter().product(),
        })
        .collect()
}

#[test]
fn by_default_the_float_initializers_with_several_elements_are_the_parameters() {
    let model = load("mlp.onnx", &[]).unwrap();
    // `scale` is a float scalar and `shape` an int64 tensor: both stay constants.
    assert_eq!(
        model.parameter_layout(),
        layout(&[("W", &[2, 3], 0), ("b", &[2], 6)])
    );
    assert_eq!(model.num_params(), 8);
    assert_eq!(model.input_names(), ["x"]);
    assert_eq!(model.output_name(), "y");
    assert_eq!(model.num_inputs(), 1);
    let w = &model.named_parameters()[0].1;
    assert_eq!((w.dtype(), w.dims()), (DType::F64, &[2, 3][..]));
    assert_eq!(w.to_f64s().unwrap(), [0.5, -1.0, 2.0, 0.25, 0.125, -3.5]);
}

#[test]
fn globs_select_parameters_by_name_in_initializer_order() {
    let model = load("mlp.onnx", &["s*", "?"]).unwrap();
    // `shape` matches `s*` but holds integers; `W` and `b` match `?`.
    assert_eq!(
        model.parameter_layout(),
        layout(&[("W", &[2, 3], 0), ("b", &[2], 6), ("scale", &[], 8)])
    );
    let model = load("mlp.onnx", &["sc?le"]).unwrap();
    assert_eq!(model.parameter_layout(), layout(&[("scale", &[], 0)]));
}

#[test]
fn a_glob_matching_nothing_lists_the_available_names() {
    let err = load("mlp.onnx", &["W", "fc.*"]).unwrap_err();
    assert!(matches!(err, OnnxError::Selection(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'fc.*' matches no floating-point initializer"),
        "{msg}"
    );
    assert!(msg.contains("available: W, b, scale)"), "{msg}");
    let err = load("mlp.onnx", &["shape"]).unwrap_err();
    assert!(err.to_string().contains("'shape' matches no"), "{err}");
}

#[test]
fn an_integer_first_output_is_refused_at_load() {
    let err = OnnxModel::load(
        data_dir().join("hostile/integer_output.onnx"),
        &OnnxOptions::default(),
        DType::F64,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be floating point"), "{err}");
}

fn var(tape: &Tape, values: &[f64], dims: &[usize], dtype: DType) -> curvature_tape::Var {
    tape.constant(Tensor::from_f64s(values, dims.to_vec(), dtype, Device::Cpu).unwrap())
}

#[test]
fn the_forward_pass_checks_counts_dtypes_and_declared_dims() {
    let model = load("forward_two_inputs.onnx", &[]).unwrap();
    assert_eq!(model.input_names(), ["a", "k"]);
    let tape = Tape::new();
    let a = var(&tape, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2], DType::F64);
    let k = var(&tape, &[0.0, -4.0, 7.0], &[3], DType::F64);
    let y = model.forward_inputs(&[], &[a.clone(), k.clone()]).unwrap();
    assert_eq!(y.value().to_f64s().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

    let err = |inputs: &[curvature_tape::Var]| model.run(&[], inputs).unwrap_err().to_string();
    assert!(err(std::slice::from_ref(&a)).contains("takes 2 input(s), got 1"));
    let e = err(&[var(&tape, &[1.0; 6], &[3, 2], DType::F32), k.clone()]);
    assert!(e.contains("input 'a' is F32"), "{e}");
    let e = err(&[var(&tape, &[1.0; 6], &[2, 3], DType::F64), k.clone()]);
    assert!(
        e.contains("input 'a' has dims [2, 3], the model declares [n, 2]"),
        "{e}"
    );
    let e = err(&[var(&tape, &[1.0; 6], &[6], DType::F64), k.clone()]);
    assert!(e.contains("declares [n, 2]"), "{e}");
    let e = err(&[a.clone(), var(&tape, &[0.0; 4], &[4], DType::F64)]);
    assert!(
        e.contains("input 'k' gives dim 'n' size 4, input 'a' gave it 3"),
        "{e}"
    );
    let e = err(&[a.clone(), var(&tape, &[0.0, 1.5, 2.0], &[3], DType::F64)]);
    assert!(e.contains("element 1 is 1.5, not an integer"), "{e}");
    let e = err(&[
        a.clone(),
        var(&tape, &[0.0, 1.0, f64::NAN], &[3], DType::F64),
    ]);
    assert!(e.contains("element 2 is NaN"), "{e}");
    let e = err(&[a.clone(), var(&tape, &[1e300, 1.0, 2.0], &[3], DType::F64)]);
    assert!(e.contains("element 0 is"), "{e}");
    // The same errors through the Module trait keep their one-line message.
    let e = model
        .forward_inputs(&[], &[a, var(&tape, &[0.0; 4], &[4], DType::F64)])
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("onnx: ONNX model input 'k' gives dim 'n'"),
        "{e}"
    );
}

#[test]
fn selected_initializers_are_the_parameter_variables_and_the_rest_constants() {
    let tape = Tape::new();
    let x = var(&tape, &[0.0; 3], &[3], DType::F64);
    for (globs, theta_len, want) in [
        (&[][..], 4, vec![1.0, 1.0, 1.0, 1.0]),
        (&["*"][..], 5, vec![1.0, 1.0, 1.0, 1.0, 0.0]),
    ] {
        let model = load("forward_param_output.onnx", globs).unwrap();
        assert_eq!(model.num_params(), theta_len);
        let theta = tape.leaf(model.flat_params().unwrap());
        let y = model.forward_flat(&theta, &x).unwrap();
        assert_eq!(y.value().to_f64s().unwrap(), [1.0, -2.0, 0.5, 4.0]);
        // y is the initializer `w` itself: d(sum y)/dθ is 1 on w's coordinates, 0 on `bias`.
        let g = grad(&[y.sum_all().unwrap()], &[theta], GradOptions::default()).unwrap();
        assert_eq!(g[0].value().to_f64s().unwrap(), want);
    }
    let model = load("forward_param_output.onnx", &[]).unwrap();
    let wrong = var(&tape, &[0.0; 4], &[4], DType::F64);
    let e = model
        .run(&[wrong], std::slice::from_ref(&x))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("parameter 0 'w' has dims [4], the initializer [2, 2]"),
        "{e}"
    );
    let e = model.run(&[], &[x]).unwrap_err().to_string();
    assert!(e.contains("expected 1 parameter variable(s), got 0"), "{e}");
}

#[test]
fn an_imported_graph_runs_on_the_tape_with_its_external_weights() {
    // external.onnx computes y = x + w, with w (its one parameter) read from weights/w.bin.
    let model = load("external.onnx", &[]).unwrap();
    assert_eq!(model.parameter_layout(), layout(&[("w", &[2, 3], 0)]));
    assert_eq!(
        model.graph().external_files,
        [data_dir().join("weights/w.bin")],
        "the file the weights were read from is recorded"
    );
    let w = [1.0, -2.0, 0.5, 4.0, 0.0, -0.125];
    let x = [0.5, 1.5, -1.0, 2.0, 0.25, 3.0];
    let tape = Tape::new();
    let theta = tape.leaf(model.flat_params().unwrap());
    let y = model
        .forward_flat(&theta, &var(&tape, &x, &[2, 3], DType::F64))
        .unwrap();
    let sum: Vec<f64> = x.iter().zip(&w).map(|(a, b)| a + b).collect();
    assert_eq!(y.value().to_f64s().unwrap(), sum);
    // d/dθ Σ y² = 2 (x + w).
    let loss = y.square().unwrap().sum_all().unwrap();
    let g = grad(&[loss], &[theta], GradOptions::default()).unwrap();
    let want: Vec<f64> = sum.iter().map(|s| 2.0 * s).collect();
    assert_eq!(g[0].value().to_f64s().unwrap(), want);
}
