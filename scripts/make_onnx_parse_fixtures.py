#!/usr/bin/env python3
"""Writes the ONNX files the parser tests read (crates/onnx/tests/data/parse/) with the `onnx`
package's helpers, and `expected.json`: for each valid model the facts the parser must recover
(opset, inputs, outputs, nodes with their attributes, initializers with their values), computed
here from the values put into the files. The files under `hostile/` are well-formed protobuf
that the importer must refuse at load time; the tests name the error each one gets.

Run from the repository root: python3 scripts/make_onnx_parse_fixtures.py
"""

import json
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = os.path.join("crates", "onnx", "tests", "data", "parse")
HOSTILE = os.path.join(OUT, "hostile")

ELEM = {
    TensorProto.FLOAT: "F32",
    TensorProto.DOUBLE: "F64",
    TensorProto.FLOAT16: "F16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.INT64: "I64",
    TensorProto.INT32: "I32",
    TensorProto.BOOL: "Bool",
}


def tensor(name, data_type, dims, **fields):
    """A TensorProto with exactly the given fields (no conversion, no validation)."""
    t = TensorProto()
    t.name = name
    t.data_type = data_type
    t.dims.extend(dims)
    for key, value in fields.items():
        if key == "raw_data":
            t.raw_data = value
        else:
            getattr(t, key).extend(value)
    return t


def f16_bits(values):
    return [int(b) for b in np.array(values, dtype=np.float16).view(np.uint16)]


def bf16_bits(values):
    """bfloat16 bit patterns of values that bfloat16 holds exactly (the top half of an f32)."""
    bits = []
    for v in values:
        (u,) = struct.unpack("<I", struct.pack("<f", v))
        assert u & 0xFFFF == 0, f"{v} is not a bfloat16 value"
        bits.append(u >> 16)
    return bits


def model(graph, opsets=(("", 17),)):
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets]
    )
    m.ir_version = 8
    return m


def value_fact(v):
    t = v.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append({"fixed": d.dim_value})
        elif d.HasField("dim_param"):
            dims.append({"symbolic": d.dim_param})
        else:
            dims.append("unknown")
    return {
        "name": v.name,
        "elem_type": ELEM[t.elem_type],
        "dims": dims if t.HasField("shape") else None,
    }


def mlp_graph(reverse):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    yt = helper.make_tensor_value_info("yt", TensorProto.FLOAT, [2, None])
    w = np.array([[0.5, -1.0, 2.0], [0.25, 0.125, -3.5]], dtype=np.float32)
    b = np.array([0.1, -0.2], dtype=np.float32)
    inits = [
        tensor("W", TensorProto.FLOAT, [2, 3], float_data=w.ravel().tolist()),
        tensor("b", TensorProto.FLOAT, [2], raw_data=b.tobytes()),
        tensor("scale", TensorProto.FLOAT, [], float_data=[1.5]),
        tensor("shape", TensorProto.INT64, [2], int64_data=[-1, 2]),
    ]
    c = tensor("", TensorProto.FLOAT, [2], float_data=[0.5, -0.25])
    nodes = [
        helper.make_node("Constant", [], ["c_out"], name="c", value=c),
        helper.make_node(
            "Gemm", ["x", "W", "b"], ["h"], name="fc", alpha=1.0, beta=0.5, transB=1
        ),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node(
            "Add",
            ["t", "c_out"],
            ["u"],
            name="add",
            tags=["first", "second"],
            coeffs=[0.5, 2.0],
        ),
        helper.make_node("Reshape", ["u", "shape"], ["r"], name="rs"),
        helper.make_node("Mul", ["r", "scale"], ["m"], name="mul"),
        helper.make_node("LeakyRelu", ["m"], ["y"], name="lr", alpha=0.1),
        helper.make_node("Transpose", ["y"], ["yt"], name="tp", perm=[1, 0]),
    ]
    if reverse:
        nodes = nodes[::-1]
    graph = helper.make_graph(nodes, "mlp", [x], [y, yt], initializer=inits)
    return graph, [(w.ravel(), "W"), (b, "b")]


def attribute_fact(a):
    if a.type == onnx.AttributeProto.FLOAT:
        return {"float": a.f}
    if a.type == onnx.AttributeProto.INT:
        return {"int": a.i}
    if a.type == onnx.AttributeProto.STRING:
        return {"string": a.s.decode()}
    if a.type == onnx.AttributeProto.INTS:
        return {"ints": list(a.ints)}
    if a.type == onnx.AttributeProto.FLOATS:
        return {"floats": list(a.floats)}
    if a.type == onnx.AttributeProto.STRINGS:
        return {"strings": [s.decode() for s in a.strings]}
    if a.type == onnx.AttributeProto.TENSOR:
        return {"tensor": {"dims": list(a.t.dims), "data": list(a.t.float_data)}}
    raise ValueError(a.type)


def node_facts(graph):
    facts = []
    for i, n in enumerate(graph.node):
        facts.append(
            {
                "name": n.name or f"#{i}",
                "op_type": n.op_type,
                "domain": n.domain,
                "inputs": list(n.input),
                "outputs": list(n.output),
                "attributes": [[a.name, attribute_fact(a)] for a in n.attribute],
            }
        )
    return facts


def write(name, m, directory=OUT):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(m.SerializeToString())


def dtypes_graph():
    f16 = [1.0, -2.5, 2.0**-20]  # 2^-20 is a float16 subnormal
    bf16 = [1.5, -0.375, 3.0 * 2.0**100]
    i32 = [7, -3, 2**31 - 1]
    i64 = [-(2**40), 5, 2**62]
    flags = [True, False, True]
    inits = [
        tensor("f32_raw", TensorProto.FLOAT, [2, 2], raw_data=np.array([1.25, -0.5, 3.0, 1e-3], "<f4").tobytes()),
        tensor("f32_data", TensorProto.FLOAT, [3], float_data=[0.1, -7.0, 1e30]),
        tensor("f64_raw", TensorProto.DOUBLE, [2], raw_data=np.array([0.1, -1e-300], "<f8").tobytes()),
        tensor("f64_data", TensorProto.DOUBLE, [2], double_data=[np.pi, -2.0**-1000]),
        tensor("f16_raw", TensorProto.FLOAT16, [3], raw_data=np.array(f16, "<f2").tobytes()),
        tensor("f16_data", TensorProto.FLOAT16, [3], int32_data=f16_bits(f16)),
        tensor("bf16_raw", TensorProto.BFLOAT16, [3], raw_data=struct.pack("<3H", *bf16_bits(bf16))),
        tensor("bf16_data", TensorProto.BFLOAT16, [3], int32_data=bf16_bits(bf16)),
        tensor("i32_raw", TensorProto.INT32, [3], raw_data=np.array(i32, "<i4").tobytes()),
        tensor("i32_data", TensorProto.INT32, [3], int32_data=i32),
        tensor("i64_raw", TensorProto.INT64, [3], raw_data=np.array(i64, "<i8").tobytes()),
        tensor("i64_data", TensorProto.INT64, [1, 3], int64_data=i64),
        tensor("bool_raw", TensorProto.BOOL, [3], raw_data=np.array(flags, "?").tobytes()),
        tensor("bool_data", TensorProto.BOOL, [3], int32_data=[int(v) for v in flags]),
        tensor("scalar", TensorProto.FLOAT, [], float_data=[42.0]),
        tensor("empty", TensorProto.FLOAT, [0, 3]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2])
    graph = helper.make_graph([], "dtypes", [x], [x], initializer=inits)
    values = {
        "f32_raw": np.array([1.25, -0.5, 3.0, 1e-3], np.float32).astype(float).tolist(),
        "f32_data": np.array([0.1, -7.0, 1e30], np.float32).astype(float).tolist(),
        "f64_raw": [0.1, -1e-300],
        "f64_data": [float(np.pi), -(2.0**-1000)],
        "f16_raw": np.array(f16, np.float16).astype(float).tolist(),
        "f16_data": np.array(f16, np.float16).astype(float).tolist(),
        "bf16_raw": bf16,
        "bf16_data": bf16,
        "i32_raw": i32,
        "i32_data": i32,
        "i64_raw": i64,
        "i64_data": i64,
        "bool_raw": [int(v) for v in flags],
        "bool_data": [int(v) for v in flags],
        "scalar": [42.0],
        "empty": [],
    }
    return graph, values


def f64_bits(values):
    """Each value's float64 bit pattern in hex, so the tests compare values exactly."""
    return [format(struct.unpack("<Q", struct.pack("<d", v))[0], "016x") for v in values]


def initializer_fact(name, data_type, dims, data):
    fact = {"name": name, "elem_type": ELEM[data_type], "dims": list(dims), "data": data}
    if ELEM[data_type].startswith(("F", "BF")):
        fact["bits"] = f64_bits(data)
    return fact


def initializer_facts(graph, values):
    return [initializer_fact(t.name, t.data_type, t.dims, values[t.name]) for t in graph.initializer]


def external_model(directory, location, offset, length, bin_bytes, dims=(2, 3)):
    """A model whose one initializer `w` lives in `location`; writes `bin_bytes` there."""
    t = tensor("w", TensorProto.FLOAT, list(dims))
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add")
    if bin_bytes is not None:
        with open(os.path.join(directory, os.path.basename(location)), "wb") as f:
            f.write(bin_bytes)
    return model(helper.make_graph([node], "external", [x], [y], initializer=[t]))


def simple(nodes, inits=(), inputs=None, outputs=None, opsets=(("", 17),)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        nodes, "g", inputs if inputs is not None else [x], outputs or [y], initializer=list(inits)
    )
    return model(graph, opsets)


def hostile_models():
    add = lambda a, b, out, name: helper.make_node("Add", [a, b], [out], name=name)
    cases = {
        "cycle.onnx": simple([add("x", "v", "u", "first"), add("u", "x", "v", "second"), add("v", "x", "y", "last")]),
        "missing_initializer.onnx": simple([add("x", "w", "y", "add")]),
        "output_never_produced.onnx": simple([add("x", "x", "z", "add")]),
        "duplicate_producer.onnx": simple([add("x", "x", "y", "one"), add("x", "x", "y", "two")]),
        "input_also_produced.onnx": simple([add("x", "x", "x", "clobber"), add("x", "x", "y", "add")]),
        "unknown_op.onnx": simple([helper.make_node("FancyOp", ["x"], ["y"], name="fancy")]),
        "custom_domain.onnx": simple(
            [helper.make_node("Add", ["x", "x"], ["y"], name="custom", domain="com.example")],
            opsets=(("", 17), ("com.example", 1)),
        ),
        "subgraph_if.onnx": simple(
            [
                helper.make_node(
                    "If",
                    ["x"],
                    ["y"],
                    name="branch",
                    then_branch=helper.make_graph([], "then", [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])]),
                    else_branch=helper.make_graph([], "else", [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])]),
                )
            ]
        ),
        "data_dims_mismatch.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.FLOAT, [2, 3], float_data=[1.0, 2.0, 3.0])],
        ),
        "raw_dims_mismatch.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.DOUBLE, [4], raw_data=b"\0" * 24)],
        ),
        "huge_dims.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.FLOAT, [2**31, 2**20], raw_data=b"\0" * 8)],
        ),
        "overflowing_dims.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.FLOAT, [2**62, 2**62, 16], raw_data=b"\0" * 8)],
        ),
        "empty_overflowing_dims.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.FLOAT, [0, 2**40, 2**40])],
        ),
        "negative_dims.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.FLOAT, [-2], raw_data=b"\0" * 8)],
        ),
        "string_initializer.onnx": simple(
            [add("x", "w", "y", "add")],
            [tensor("w", TensorProto.STRING, [1], string_data=[b"hi"])],
        ),
        "no_default_opset.onnx": simple([add("x", "x", "y", "add")], opsets=(("com.example", 1),)),
        "no_outputs.onnx": model(helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], [])),
        "string_input.onnx": simple(
            [helper.make_node("Identity", ["x"], ["y"], name="id")],
            inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, [2])],
        ),
        "control_char_name.onnx": simple([add("x", "x", "y", "bad\nname\x1b[31m")]),
        "integer_output.onnx": simple(
            [helper.make_node("Shape", ["x"], ["y"], name="shape")],
            outputs=[helper.make_tensor_value_info("y", TensorProto.INT64, [1])],
        ),
    }
    for name, m in cases.items():
        write(name, m, HOSTILE)
    ext = os.path.join(HOSTILE, "external")
    os.makedirs(ext, exist_ok=True)
    data = np.arange(6, dtype="<f4").tobytes()
    write("escape.onnx", external_model(ext, "../outside.bin", 0, 24, None), ext)
    write("absolute.onnx", external_model(ext, "/etc/passwd", 0, 24, None), ext)
    write("past_end.onnx", external_model(ext, "short.bin", 8, 24, data), ext)
    write("offset_overflow.onnx", external_model(ext, "short.bin", 2**64 - 8, 24, None), ext)
    write("missing_file.onnx", external_model(ext, "absent.bin", 0, 24, None), ext)
    write("length_vs_dims.onnx", external_model(ext, "short.bin", 0, 16, None), ext)
    write("huge_dims_external.onnx", external_model(ext, "short.bin", 0, None, None, dims=(2**40, 2**20)), ext)
    with open(os.path.join(HOSTILE, "outside.bin"), "wb") as f:
        f.write(data)


def forward_models():
    """Graphs without nodes, for the forward pass's input and parameter checks: two inputs
    sharing the symbolic dim `n` (one of them int64), and an output that is an initializer."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["n"])
    graph = helper.make_graph([], "two_inputs", [a, k], [a])
    write("forward_two_inputs.onnx", model(graph))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2])
    inits = [
        tensor("w", TensorProto.FLOAT, [2, 2], float_data=[1.0, -2.0, 0.5, 4.0]),
        tensor("step", TensorProto.INT64, [], int64_data=[3]),
        tensor("bias", TensorProto.FLOAT, [1], float_data=[0.25]),
    ]
    graph = helper.make_graph([], "param_output", [x], [w], initializer=inits)
    write("forward_param_output.onnx", model(graph))


def main():
    os.makedirs(HOSTILE, exist_ok=True)
    expected = {}

    for name, reverse in (("mlp.onnx", False), ("mlp_reversed.onnx", True)):
        graph, _ = mlp_graph(reverse)
        m = model(graph, (("", 17), ("com.microsoft", 1)))
        write(name, m)
        expected[name] = {
            "opset": 17,
            "inputs": [value_fact(v) for v in graph.input],
            "outputs": [value_fact(v) for v in graph.output],
            "nodes": node_facts(graph),
            "initializers": initializer_facts(
                graph,
                {
                    "W": np.array([[0.5, -1.0, 2.0], [0.25, 0.125, -3.5]], np.float32).astype(float).ravel().tolist(),
                    "b": np.array([0.1, -0.2], np.float32).astype(float).tolist(),
                    "scale": [1.5],
                    "shape": [-1, 2],
                },
            ),
        }

    graph, values = dtypes_graph()
    write("dtypes.onnx", model(graph, (("", 13),)))
    expected["dtypes.onnx"] = {
        "opset": 13,
        "inputs": [value_fact(v) for v in graph.input],
        "outputs": [value_fact(v) for v in graph.output],
        "nodes": [],
        "initializers": initializer_facts(graph, values),
    }

    # External data: w (f32 [2, 3]) at offset 16, length 24, in weights/w.bin next to the model.
    w = np.array([[1.0, -2.0, 0.5], [4.0, 0.0, -0.125]], "<f4")
    os.makedirs(os.path.join(OUT, "weights"), exist_ok=True)
    with open(os.path.join(OUT, "weights", "w.bin"), "wb") as f:
        f.write(b"\xff" * 16 + w.tobytes() + b"\xee" * 8)
    m = external_model(OUT, "weights/w.bin", 16, 24, None)
    write("external.onnx", m)
    expected["external.onnx"] = {
        "opset": 17,
        "inputs": [value_fact(v) for v in m.graph.input],
        "outputs": [value_fact(v) for v in m.graph.output],
        "nodes": node_facts(m.graph),
        "initializers": [initializer_fact("w", TensorProto.FLOAT, [2, 3], w.astype(float).ravel().tolist())],
    }

    forward_models()
    hostile_models()
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
