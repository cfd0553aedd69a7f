#!/usr/bin/env python3
"""Make the op fixtures in ``crates/onnx/tests/data/ops/`` with ONNX Runtime.

Each case is one ONNX node with seeded float32 inputs, run by ONNX Runtime's CPU provider;
its file ``<case>.safetensors`` holds the inputs ``in0``, ``in1``, … and the node's outputs
``out0``, … as float64 (the float32 values exactly). The tests in
``crates/onnx/tests/lower_*.rs`` build the same node by hand, run it on the
tape in float64 and compare with these outputs, so the lowering's reading of each op's
attributes (padding, ``auto_pad``, ``count_include_pad``, the pre-13 softmax axis, …) is
checked against ONNX Runtime's. Run from the repository root::

    python3 scripts/make_onnx_op_fixtures.py

Needs ``onnx``, ``onnxruntime``, ``numpy`` and ``safetensors``; CI reads the committed files.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent.parent / "crates" / "onnx" / "tests" / "data" / "ops"

# name: (op, opset, input shapes, positive inputs, output count, attributes)
CASES = {
    "gemm_transposed_broadcast": (
        "Gemm", 13, [[4, 3], [2, 4], [3, 1]], [], 1,
        dict(alpha=0.5, beta=-2.0, transA=1, transB=1),
    ),
    "matmul_batch_broadcast": ("MatMul", 13, [[2, 1, 2, 3], [4, 3, 2]], [], 1, {}),
    "matmul_vector_batch": ("MatMul", 13, [[3], [2, 3, 2]], [], 1, {}),
    "conv2d_groups_asymmetric": (
        "Conv", 13, [[2, 4, 5, 6], [6, 2, 3, 2], [6]], [], 1,
        dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 2, 1]),
    ),
    "conv1d_same_lower": (
        "Conv", 13, [[1, 2, 7], [3, 2, 4]], [], 1,
        dict(auto_pad="SAME_LOWER", strides=[2]),
    ),
    "conv2d_same_upper": (
        "Conv", 13, [[1, 2, 5, 5], [2, 2, 2, 3], [2]], [], 1,
        dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    ),
    "max_pool2d_dilated": (
        "MaxPool", 13, [[1, 2, 5, 6]], [], 1,
        dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], dilations=[1, 2]),
    ),
    "max_pool1d_ceil_exact": (
        "MaxPool", 13, [[2, 3, 7]], [], 1,
        dict(kernel_shape=[3], strides=[2], ceil_mode=1),
    ),
    "average_pool2d_exclude_pad": (
        "AveragePool", 13, [[1, 2, 5, 5]], [], 1,
        dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    ),
    "average_pool2d_include_pad": (
        "AveragePool", 13, [[1, 2, 5, 5]], [], 1,
        dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    ),
    "average_pool1d_asymmetric": (
        "AveragePool", 11, [[2, 1, 6]], [], 1,
        dict(kernel_shape=[3], pads=[2, 0]),
    ),
    "average_pool2d_same_lower": (
        "AveragePool", 13, [[1, 1, 3, 4]], [], 1,
        dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
    ),
    "average_pool2d_dilated": (
        "AveragePool", 19, [[1, 1, 5, 5]], [], 1,
        dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[0, 1, 0, 1]),
    ),
    "global_average_pool3d": ("GlobalAveragePool", 13, [[1, 2, 2, 3, 2]], [], 1, {}),
    "softmax_axis1": ("Softmax", 13, [[2, 3, 4]], [], 1, dict(axis=1)),
    "softmax_opset11": ("Softmax", 11, [[2, 3, 4]], [], 1, {}),
    "log_softmax_opset11_axis2": ("LogSoftmax", 11, [[2, 3, 4]], [], 1, dict(axis=2)),
    "log_softmax_axis0": ("LogSoftmax", 13, [[2, 3, 4]], [], 1, dict(axis=0)),
    "layer_norm_axis1": (
        "LayerNormalization", 17, [[2, 3, 4], [3, 4], [4]], [], 3,
        dict(axis=1, epsilon=0.25),
    ),
    "batch_norm": (
        "BatchNormalization", 15, [[2, 3, 2, 2], [3], [3], [3], [3]], [4], 1,
        dict(epsilon=0.125),
    ),
}


# The activations, variadic ops, reductions, normalisations and einsums of the second table,
# drawn from their own generator so that the first table's files stay as they are; inputs
# are uniform in [-spread, spread) (wide enough to reach HardSwish's and HardSigmoid's
# saturation).
# name: (op, opset, input shapes, positive inputs, output count, attributes, spread)
MORE_CASES = {
    "prelu_channel": ("PRelu", 16, [[2, 3, 2, 2], [3, 1, 1]], [], 1, {}, 2.0),
    "selu_default": ("Selu", 13, [[3, 4]], [], 1, {}, 2.0),
    "selu_attributes": ("Selu", 13, [[3, 4]], [], 1, dict(alpha=1.5, gamma=0.75), 2.0),
    "hard_sigmoid": ("HardSigmoid", 13, [[4, 5]], [], 1, dict(alpha=0.4, beta=0.6), 3.0),
    "hard_swish": ("HardSwish", 14, [[4, 5]], [], 1, {}, 5.0),
    "mish": ("Mish", 18, [[3, 4]], [], 1, {}, 3.0),
    "softsign": ("Softsign", 13, [[3, 4]], [], 1, {}, 3.0),
    "thresholded_relu": ("ThresholdedRelu", 13, [[3, 4]], [], 1, dict(alpha=0.5), 2.0),
    "celu": ("Celu", 13, [[3, 4]], [], 1, dict(alpha=0.7), 2.0),
    "sum_broadcast": ("Sum", 13, [[2, 3], [3], [1, 3]], [], 1, {}, 2.0),
    "mean_broadcast": ("Mean", 13, [[2, 1, 3], [4, 3]], [], 1, {}, 2.0),
    "reduce_sum_square": (
        "ReduceSumSquare", 13, [[2, 3, 4]], [], 1, dict(axes=[0, 2], keepdims=0), 2.0,
    ),
    "reduce_l1": ("ReduceL1", 13, [[2, 3, 4]], [], 1, dict(axes=[1]), 2.0),
    "reduce_l2": ("ReduceL2", 13, [[2, 3, 4]], [], 1, dict(axes=[-1], keepdims=0), 2.0),
    "reduce_log_sum_exp": ("ReduceLogSumExp", 13, [[2, 3, 4]], [], 1, dict(axes=[0, 2]), 4.0),
    "instance_norm": (
        "InstanceNormalization", 13, [[2, 3, 2, 3], [3], [3]], [], 1, dict(epsilon=0.1), 2.0,
    ),
    "group_norm_opset18": (
        "GroupNormalization", 18, [[2, 4, 3], [2], [2]], [], 1,
        dict(num_groups=2, epsilon=0.05), 2.0,
    ),
    "group_norm_opset21": (
        "GroupNormalization", 21, [[2, 4, 3], [4], [4]], [], 1,
        dict(num_groups=2, epsilon=0.05), 2.0,
    ),
    "einsum_attention": (
        "Einsum", 12, [[2, 2, 3, 4], [2, 2, 5, 4]], [], 1, dict(equation="bhqd,bhkd->bhqk"), 2.0,
    ),
    "einsum_bilinear": ("Einsum", 12, [[3, 4], [2, 4, 5]], [], 1, dict(equation="bn,anm->bam"), 2.0),
    "einsum_implicit": ("Einsum", 12, [[2, 3], [3, 4]], [], 1, dict(equation="ij,jk"), 2.0),
    "einsum_summed": ("Einsum", 12, [[2, 3, 4], [3, 5]], [], 1, dict(equation="ijk,jl->li"), 2.0),
    "einsum_transpose": ("Einsum", 12, [[2, 3, 4]], [], 1, dict(equation="abc->cb"), 2.0),
    "conv_transpose2d_groups": (
        "ConvTranspose", 13, [[1, 4, 3, 2], [4, 1, 2, 3], [2]], [], 1,
        dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]),
        2.0,
    ),
    "conv_transpose1d": (
        "ConvTranspose", 13, [[2, 2, 4], [2, 3, 3]], [], 1, dict(strides=[3], pads=[1, 2]), 2.0,
    ),
}


def run_case(name, op, opset, shapes, positive, outputs, attributes, rng, spread=2.0):
    inputs = []
    for i, shape in enumerate(shapes):
        values = rng.uniform(-spread, spread, size=shape)
        if i in positive:
            values = rng.uniform(0.5, 2.0, size=shape)
        inputs.append(values.astype(np.float32))
    in_names = [f"in{i}" for i in range(len(shapes))]
    out_names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op, in_names, out_names, **attributes)
    graph = helper.make_graph(
        [node],
        name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(in_names, shapes)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in out_names],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    results = session.run(out_names, dict(zip(in_names, inputs)))
    tensors = {n: v.astype(np.float64) for n, v in zip(in_names, inputs)}
    tensors.update({n: np.asarray(v, dtype=np.float64) for n, v in zip(out_names, results)})
    save_file(tensors, str(OUT / f"{name}.safetensors"))
    print(name, [list(v.shape) for v in results])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261129)
    for name, case in CASES.items():
        run_case(name, *case, rng)
    more = np.random.default_rng(20261130)
    for name, (*case, spread) in MORE_CASES.items():
        run_case(name, *case, more, spread)


if __name__ == "__main__":
    main()
