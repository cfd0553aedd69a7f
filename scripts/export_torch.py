#!/usr/bin/env python3
"""Export a PyTorch ``nn.Sequential`` and its data to the model file `curvature analyze` reads.

The model is any ``nn.Sequential`` of the supported modules: ``Linear`` (with a bias),
``Conv1d``, ``Conv2d`` (zero padding), ``BatchNorm1d``/``BatchNorm2d`` (exported in evaluation
form, with their running statistics), ``LayerNorm`` (over the last axis), ``ReLU``,
``LeakyReLU``, ``ELU``, ``GELU`` (both approximations), ``SiLU``, ``Softplus`` (beta 1),
``Tanh``, ``Sigmoid``, ``Dropout``, ``Flatten``, ``MaxPool2d``, ``AvgPool2d`` and
``AdaptiveAvgPool2d``. Any other module is an error naming its index and type and how to
rewrite it. The file holds, all float64:

- every tensor of ``model.state_dict()`` under its own name (``0.weight``,
  ``1.running_mean``, …; ``num_batches_tracked`` is left out), ``x`` ``[n, …]`` and ``y``
  (``[n, …]`` like the output for ``mse``, the class labels ``[n]`` for ``cross_entropy``,
  anything with n rows for ``sum_sq``);
- metadata ``layers`` (a JSON list, one object per module: ``{"type": "Conv2d",
  "in_channels": 2, …}``), ``loss`` (``mse``, ``sum_sq`` or ``cross_entropy``) and ``params``
  (P).

From the command line, with a model saved by ``torch.save(model, "model.pt")`` and data saved
by ``torch.save({"x": x, "y": y}, "data.pt")``::

    python scripts/export_torch.py --model model.pt --data data.pt --loss mse \\
        --out model.safetensors
    curvature analyze model.safetensors --out results.safetensors --plot spectrum.svg

or from Python: ``export_model(model, x, y, "mse", "model.safetensors")``. The older MLP form
(metadata ``widths``, ``activations``) is still written by ``export_mlp`` (and
``scripts/export_torch_mlp.py``). Needs ``torch`` and ``safetensors``.
"""

import argparse
import json

import torch
from safetensors.torch import save_file
from torch import nn

LOSSES = ("mse", "sum_sq", "cross_entropy")
MLP_ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}

# Modules with advice on how to rewrite them.
ADVICE = {
    nn.Sequential: "nested Sequential: flatten it into the outer one",
    nn.MultiheadAttention: "nn.MultiheadAttention is not supported in a Sequential: write a "
    "Module in Rust (curvature_nn::MultiheadAttention)",
    nn.Embedding: "nn.Embedding is not supported in a Sequential: write a Module in Rust "
    "(curvature_nn::Embedding)",
    nn.Softmax: "end the model with the logits and use the cross_entropy loss",
    nn.LogSoftmax: "end the model with the logits and use the cross_entropy loss",
    nn.Identity: "remove it",
}


class UnsupportedModule(ValueError):
    """A module the model file cannot describe."""


def _pair(value):
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def _fail(index, module, why):
    raise UnsupportedModule(f"module {index} ({type(module).__name__}): {why}")


def describe(index, m):
    """The ``layers`` entry of module ``m`` at position ``index``."""
    t = type(m)
    if t is nn.Linear:
        if m.bias is None:
            _fail(index, m, "Linear without a bias is not supported: use bias=True")
        return {"type": "Linear", "in_features": m.in_features,
                "out_features": m.out_features, "bias": True}
    if t in (nn.Conv1d, nn.Conv2d):
        if m.padding_mode != "zeros":
            _fail(index, m, f"{t.__name__} with padding_mode={m.padding_mode!r} is not "
                  "supported: use padding_mode='zeros'")
        if isinstance(m.padding, str):
            _fail(index, m, f"padding={m.padding!r} is not supported: give the padding "
                  "as numbers")
        spatial = 1 if t is nn.Conv1d else 2
        return {"type": t.__name__, "in_channels": m.in_channels,
                "out_channels": m.out_channels,
                "kernel_size": list(m.kernel_size)[:spatial],
                "stride": list(m.stride)[:spatial], "padding": list(m.padding)[:spatial],
                "dilation": list(m.dilation)[:spatial], "groups": m.groups,
                "bias": m.bias is not None}
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not m.track_running_stats or m.running_mean is None:
            _fail(index, m, "batch norm without running statistics is not supported: use "
                  "track_running_stats=True")
        return {"type": t.__name__, "num_features": m.num_features, "eps": m.eps,
                "affine": m.affine}
    if t is nn.LayerNorm:
        if len(m.normalized_shape) != 1:
            _fail(index, m, "LayerNorm over more than the last axis is not supported: "
                  "normalise over the last axis only")
        if m.elementwise_affine and m.bias is None:
            _fail(index, m, "LayerNorm(bias=False) is not supported: use bias=True")
        return {"type": "LayerNorm", "normalized_shape": list(m.normalized_shape),
                "eps": m.eps, "elementwise_affine": m.elementwise_affine}
    if t in (nn.ReLU, nn.SiLU, nn.Tanh, nn.Sigmoid):
        return {"type": t.__name__}
    if t is nn.LeakyReLU:
        return {"type": "LeakyReLU", "negative_slope": m.negative_slope}
    if t is nn.ELU:
        return {"type": "ELU", "alpha": m.alpha}
    if t is nn.GELU:
        return {"type": "GELU", "approximate": m.approximate}
    if t is nn.Softplus:
        if m.beta != 1:
            _fail(index, m, f"Softplus with beta={m.beta} is not supported: use beta=1")
        return {"type": "Softplus", "beta": 1.0, "threshold": float(m.threshold)}
    if t is nn.Dropout:
        return {"type": "Dropout", "p": m.p}
    if t is nn.Flatten:
        return {"type": "Flatten", "start_dim": m.start_dim, "end_dim": m.end_dim}
    if t in (nn.MaxPool2d, nn.AvgPool2d):
        if m.ceil_mode:
            _fail(index, m, "ceil_mode=True is not supported: use ceil_mode=False")
        if t is nn.MaxPool2d and (_pair(m.dilation) != [1, 1] or m.return_indices):
            _fail(index, m, "dilation and return_indices are not supported: use the defaults")
        if t is nn.AvgPool2d and (not m.count_include_pad or m.divisor_override):
            _fail(index, m, "count_include_pad=False and divisor_override are not supported: "
                  "use the defaults")
        stride = m.stride if m.stride is not None else m.kernel_size
        return {"type": t.__name__, "kernel_size": _pair(m.kernel_size),
                "stride": _pair(stride), "padding": _pair(m.padding)}
    if t is nn.AdaptiveAvgPool2d:
        size = _pair(m.output_size)
        if None in size:
            _fail(index, m, "output_size with None is not supported: give both sizes")
        return {"type": "AdaptiveAvgPool2d", "output_size": size}
    advice = ADVICE.get(t, "supported modules: Linear, Conv1d, Conv2d, BatchNorm1d, "
                        "BatchNorm2d, LayerNorm, ReLU, LeakyReLU, ELU, GELU, SiLU, Softplus, "
                        "Tanh, Sigmoid, Dropout, Flatten, MaxPool2d, AvgPool2d, "
                        "AdaptiveAvgPool2d; write other modules in Rust (the Module trait)")
    _fail(index, m, f"{t.__name__} is not supported: {advice}")


def _f64(t):
    return t.detach().to(device="cpu", dtype=torch.float64).contiguous().clone()


def _data(x, y, loss, n_out=None):
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(LOSSES)})")
    x = _f64(torch.as_tensor(x))
    y = _f64(torch.as_tensor(y))
    if x.dim() == 0:
        raise ValueError("x needs a sample axis")
    if loss == "cross_entropy":
        y = y.reshape(-1)
        if y.shape != (x.shape[0],):
            raise ValueError(f"cross_entropy needs {x.shape[0]} labels, got {tuple(y.shape)}")
    return x, y


def export_model(model, x, y, loss, path, extra=None):
    """Write ``model`` (an ``nn.Sequential`` of supported modules), inputs ``x``, targets
    ``y``, the loss name and any ``extra`` tensors (by name) to ``path`` in the ``layers``
    form; returns the metadata written."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModule(f"the model is a {type(model).__name__}, not an nn.Sequential")
    layers = [describe(i, m) for i, m in enumerate(model)]
    if not layers:
        raise UnsupportedModule("the Sequential is empty")
    x, y = _data(x, y, loss)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        param = next(model.parameters(), None)
        out = model(x if param is None else x.to(param.dtype))
    model.train(was_training)
    if loss == "mse" and tuple(y.shape) != tuple(out.shape):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected {tuple(out.shape)}")
    if loss == "sum_sq" and (y.dim() == 0 or y.shape[0] != x.shape[0]):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected {x.shape[0]} rows")
    tensors = {k: _f64(v) for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    tensors["x"] = x
    tensors["y"] = y
    for name, value in (extra or {}).items():
        tensors[name] = _f64(value)
    params = sum(p.numel() for p in model.parameters())
    metadata = {"layers": json.dumps(layers), "loss": loss, "params": str(params)}
    save_file(tensors, str(path), metadata=metadata)
    return metadata


def _mlp_layers(model):
    """The Linear layers and the activation name after each (None where there is none)."""
    linears, after = [], []
    for index, module in enumerate(model):
        if isinstance(module, nn.Linear):
            if module.bias is None:
                raise ValueError(f"layer {index}: Linear layers need a bias (bias=True)")
            linears.append(module)
            after.append(None)
        elif type(module) in MLP_ACTIVATIONS:
            if not linears or after[-1] is not None:
                raise ValueError(f"layer {index}: an activation must follow a Linear layer")
            after[-1] = MLP_ACTIVATIONS[type(module)]
        else:
            raise ValueError(
                f"layer {index}: unsupported module {module!r} in the MLP form "
                "(only nn.Linear, nn.Tanh and nn.Sigmoid; export_model takes the others)"
            )
    if not linears:
        raise ValueError("the model has no Linear layer")
    for i, act in enumerate(after[:-1]):
        if act is None:
            raise ValueError(f"Linear layer {i} needs a Tanh or Sigmoid after it")
    return linears, after


def export_mlp(model, x, y, loss, path):
    """Write an MLP (``nn.Sequential`` of Linear layers, each but the last followed by Tanh or
    Sigmoid) in the MLP form (metadata ``widths``, ``activations``, ``final_activation``);
    returns the metadata written."""
    linears, after = _mlp_layers(model)
    widths = [linears[0].in_features] + [layer.out_features for layer in linears]
    x, y = _data(x, y, loss)
    n = x.shape[0]
    if x.shape != (n, widths[0]):
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (n, {widths[0]})")
    if loss == "mse" and y.shape != (n, widths[-1]):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected ({n}, {widths[-1]})")
    if loss == "sum_sq" and (y.dim() == 0 or y.shape[0] != n):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected {n} rows")
    tensors = {}
    for i, layer in enumerate(linears):
        tensors[f"{i}.weight"] = _f64(layer.weight)
        tensors[f"{i}.bias"] = _f64(layer.bias)
    tensors["x"] = x
    tensors["y"] = y
    params = sum(layer.weight.numel() + layer.bias.numel() for layer in linears)
    metadata = {
        "widths": json.dumps(widths),
        "activations": json.dumps(after[:-1]),
        "final_activation": after[-1] or "None",
        "loss": loss,
        "params": str(params),
    }
    save_file(tensors, str(path), metadata=metadata)
    return metadata


def main(export=export_model):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an nn.Sequential saved with torch.save")
    parser.add_argument("--data", required=True, help='{"x": ..., "y": ...} saved with torch.save')
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    args = parser.parse_args()
    model = torch.load(args.model, weights_only=False)
    data = torch.load(args.data, weights_only=False)
    x, y = (data["x"], data["y"]) if isinstance(data, dict) else data
    try:
        metadata = export(model, x, y, args.loss, args.out)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    print(f"wrote {args.out}: P = {metadata['params']}")


if __name__ == "__main__":
    main()
