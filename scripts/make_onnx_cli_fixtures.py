#!/usr/bin/env python3
"""The ONNX models, data files and reference results of tests/cli_onnx.rs.

Two small graphs built with ``onnx.helper`` (float32 initializers, as PyTorch exports them):

* ``mlp.onnx``: ``Gemm(x, fc1.weight, fc1.bias, transB=1) → Tanh → Gemm(·, fc2.weight,
  fc2.bias, transB=1)``, x ``[batch, 3]``, output ``[batch, 2]``, and the same graph with
  the batch fixed at the 5 samples (``mlp_fixed_batch.onnx``);
* ``embedding.onnx``: ``Gather(table, ids) → Flatten``, int64 token ids ``[batch, 4]`` into
  a table ``[7, 3]``, output ``[batch, 12]`` (for the refusal of ids that are not tokens);
* ``two_inputs.onnx``: ``MatMul(a, left) ⊙ MatMul(b, right) + shift``, inputs a and b
  ``[batch, 3]``, output ``[batch, 2]``.

For each case the script writes the data file (the graph's inputs by name and the targets
``y``) and ``<case>_reference.safetensors``: the loss, its gradient, Hessian and Gauss–Newton
matrix in float64 over the parameters the case selects, computed here in closed form with
numpy: for per-sample outputs f_i with Jacobian J_i and second derivatives ∇²f_io, and a
loss with output gradient g_io and output Hessian S_i,

    H = Σ_i J_iᵀ S_i J_i + Σ_io g_io ∇²f_io,      GGN = Σ_i J_iᵀ S_i J_i,

with J and ∇²f written out by hand for each graph. The reference's metadata holds the
expected parameter layout (name, shape, offset into θ) and the ``--params`` patterns.

    python3 scripts/make_onnx_cli_fixtures.py   # writes tests/data/onnx/
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "onnx")
OPSET = 17
SAMPLES = 5


def f32(a):
    """The float64 values of ``a`` rounded to float32, as the ONNX file stores them."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def save_model(graph, name):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="curvature-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name))


def initializer(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def value_info(name, width, batch="batch"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, width])


# --- the MLP -------------------------------------------------------------------------------


def mlp_graph(params, batch="batch"):
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Gemm", ["t", "fc2.weight", "fc2.bias"], ["out"], transB=1),
    ]
    inits = [initializer(n, params[n]) for n in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]]
    inputs, outputs = [value_info("x", 3, batch)], [value_info("out", 2, batch)]
    return helper.make_graph(nodes, "mlp", inputs, outputs, inits)


def embedding_graph(table):
    """Token ids ``[batch, 4]`` (int64) → rows of ``table`` [7, 3] → ``[batch, 12]``."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
        helper.make_node("Flatten", ["rows"], ["out"], axis=1),
    ]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])
    return helper.make_graph(
        nodes, "embedding", [ids], [value_info("out", 12)], [initializer("table", table)]
    )


def mlp_derivatives(params, x):
    """Per sample: outputs f [n, O], Jacobian J [n, O, P], second derivatives [n, O, P, P],
    over θ = (fc1.weight, fc1.bias, fc2.weight, fc2.bias) flattened row-major."""
    w1, b1, w2, b2 = (params[k] for k in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
    hidden, inputs = w1.shape
    outputs = w2.shape[0]
    n = x.shape[0]
    o_w1, o_b1 = 0, hidden * inputs
    o_w2 = o_b1 + hidden
    o_b2 = o_w2 + outputs * hidden
    p = o_b2 + outputs
    a = x @ w1.T + b1
    t = np.tanh(a)
    d1 = 1 - t**2  # tanh'
    d2 = -2 * t * d1  # tanh''
    f = t @ w2.T + b2
    jac = np.zeros((n, outputs, p))
    hess = np.zeros((n, outputs, p, p))
    for i in range(n):
        xt = np.append(x[i], 1.0)  # the first layer's input with a 1 for its bias

        def first(k, j):  # θ index of fc1.weight[k, j] (j = inputs: fc1.bias[k])
            return o_b1 + k if j == inputs else o_w1 + k * inputs + j

        for o in range(outputs):
            for k in range(hidden):
                jac[i, o, o_w2 + o * hidden + k] = t[i, k]
                for j in range(inputs + 1):
                    jac[i, o, first(k, j)] = w2[o, k] * d1[i, k] * xt[j]
                    mixed = d1[i, k] * xt[j]
                    hess[i, o, o_w2 + o * hidden + k, first(k, j)] = mixed
                    hess[i, o, first(k, j), o_w2 + o * hidden + k] = mixed
                    for j2 in range(inputs + 1):
                        hess[i, o, first(k, j), first(k, j2)] = w2[o, k] * d2[i, k] * xt[j] * xt[j2]
            jac[i, o, o_b2 + o] = 1.0
    return f, jac, hess


# --- the two-input graph -------------------------------------------------------------------


def two_inputs_graph(params):
    nodes = [
        helper.make_node("MatMul", ["a", "left"], ["u"]),
        helper.make_node("MatMul", ["b", "right"], ["v"]),
        helper.make_node("Mul", ["u", "v"], ["w"]),
        helper.make_node("Add", ["w", "shift"], ["out"]),
    ]
    inits = [initializer(n, params[n]) for n in ["left", "right", "shift"]]
    inputs = [value_info("a", 3), value_info("b", 3)]
    return helper.make_graph(nodes, "two_inputs", inputs, [value_info("out", 2)], inits)


def two_inputs_derivatives(params, a, b):
    """f_io = (a_i·left[:, o]) (b_i·right[:, o]) + shift_o over θ = (left, right, shift)."""
    left, right = params["left"], params["right"]
    inputs, outputs = left.shape
    n = a.shape[0]
    o_right = inputs * outputs
    o_shift = 2 * inputs * outputs
    p = o_shift + outputs
    u = a @ left
    v = b @ right
    f = u * v + params["shift"]
    jac = np.zeros((n, outputs, p))
    hess = np.zeros((n, outputs, p, p))
    for i in range(n):
        for o in range(outputs):
            for j in range(inputs):
                jac[i, o, j * outputs + o] = a[i, j] * v[i, o]
                jac[i, o, o_right + j * outputs + o] = u[i, o] * b[i, j]
                for j2 in range(inputs):
                    mixed = a[i, j] * b[i, j2]
                    hess[i, o, j * outputs + o, o_right + j2 * outputs + o] = mixed
                    hess[i, o, o_right + j2 * outputs + o, j * outputs + o] = mixed
            jac[i, o, o_shift + o] = 1.0
    return f, jac, hess


# --- losses --------------------------------------------------------------------------------


def mse(f, y):
    """Mean over all elements of (f − y)²: value, output gradients g [n, O], Hessians S."""
    n, outputs = f.shape
    c = 2.0 / (n * outputs)
    s = np.repeat(c * np.eye(outputs)[None], n, axis=0)
    return np.mean((f - y) ** 2), c * (f - y), s


def cross_entropy(f, labels):
    """Mean over samples of −log softmax(f_i)[label_i]."""
    n, outputs = f.shape
    z = f - f.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    onehot = np.eye(outputs)[labels.astype(int)]
    value = -np.mean(logp[np.arange(n), labels.astype(int)])
    s = np.stack([(np.diag(q) - np.outer(q, q)) / n for q in p])
    return value, (p - onehot) / n, s


def curvature(f, jac, hess, loss, y):
    value, g, s = loss(f, y)
    grad = np.einsum("io,iop->p", g, jac)
    ggn = np.einsum("iop,ioq,iqr->pr", jac, s, jac)
    hessian = ggn + np.einsum("io,iopq->pq", g, hess)
    return value, grad, hessian, ggn


def layout(params, names):
    entries, offset = [], 0
    for name in names:
        shape = list(params[name].shape)
        entries.append({"name": name, "shape": shape, "offset": offset})
        offset += int(np.prod(shape))
    return entries


def write_case(case, params, names, selected, patterns, derivatives, loss, inputs, y):
    f, jac, hess = derivatives
    value, grad, hessian, ggn = curvature(f, jac, hess, loss, y)
    full = layout(params, names)
    index = np.concatenate(
        [np.arange(e["offset"], e["offset"] + int(np.prod(e["shape"]))) for e in full if e["name"] in selected]
    )
    save_file({**inputs, "y": y}, os.path.join(OUT, f"{case}.safetensors"))
    reference = {
        "loss": np.array([value]),
        "grad": grad[index],
        "hessian": hessian[np.ix_(index, index)],
        "ggn": ggn[np.ix_(index, index)],
    }
    metadata = {
        "parameters": json.dumps(layout(params, selected), separators=(",", ":")),
        "params": json.dumps(patterns),
    }
    save_file(reference, os.path.join(OUT, f"{case}_reference.safetensors"), metadata=metadata)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(16)

    mlp = {
        "fc1.weight": f32(rng.normal(0, 0.7, (4, 3))),
        "fc1.bias": f32(rng.normal(0, 0.3, 4)),
        "fc2.weight": f32(rng.normal(0, 0.7, (2, 4))),
        "fc2.bias": f32(rng.normal(0, 0.3, 2)),
    }
    names = list(mlp)
    save_model(mlp_graph(mlp), "mlp.onnx")
    save_model(mlp_graph(mlp, SAMPLES), "mlp_fixed_batch.onnx")
    save_model(embedding_graph(f32(np.linspace(-1, 1, 21).reshape(7, 3))), "embedding.onnx")
    x = rng.uniform(-1, 1, (SAMPLES, 3))
    targets = rng.normal(0, 1, (SAMPLES, 2))
    labels = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    mlp_d = mlp_derivatives(mlp, x)
    write_case("mlp_mse", mlp, names, names, [], mlp_d, mse, {"x": x}, targets)
    write_case("mlp_xent", mlp, names, names, [], mlp_d, cross_entropy, {"x": x}, labels)
    write_case(
        "mlp_mse_fc2", mlp, names, ["fc2.weight", "fc2.bias"], ["fc2.*"], mlp_d, mse, {"x": x}, targets
    )

    two = {
        "left": f32(rng.normal(0, 0.8, (3, 2))),
        "right": f32(rng.normal(0, 0.8, (3, 2))),
        "shift": f32(rng.normal(0, 0.3, 2)),
    }
    save_model(two_inputs_graph(two), "two_inputs.onnx")
    a = rng.uniform(-1, 1, (SAMPLES, 3))
    b = rng.uniform(-1, 1, (SAMPLES, 3))
    two_d = two_inputs_derivatives(two, a, b)
    write_case("two_inputs_mse", two, list(two), list(two), [], two_d, mse, {"a": a, "b": b}, targets)


if __name__ == "__main__":
    main()
