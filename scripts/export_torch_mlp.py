#!/usr/bin/env python3
"""Export a PyTorch MLP and its data to the model format `curvature analyze` reads.

The model is an ``nn.Sequential`` of ``nn.Linear`` layers with an ``nn.Tanh`` or ``nn.Sigmoid``
after every Linear but the last (and optionally a ``nn.Sigmoid``/``nn.Tanh`` after the last).
The file holds, all float64:

- ``{i}.weight`` ``[out, in]`` and ``{i}.bias`` ``[out]`` for the i-th *Linear* layer
  (activations are not counted), ``x`` ``[n, in]`` and ``y`` (``[n, out]`` for ``mse``, the
  class labels ``[n]`` for ``cross_entropy``, anything with n rows for ``sum_sq``);
- metadata ``widths``, ``activations`` (JSON lists), ``final_activation`` (``"None"`` or a
  name), ``loss`` (``mse``, ``sum_sq`` or ``cross_entropy``) and ``params`` (P).

From the command line, with a model saved by ``torch.save(model, "model.pt")`` and data saved
by ``torch.save({"x": x, "y": y}, "data.pt")``::

    python scripts/export_torch_mlp.py --model model.pt --data data.pt --loss mse \\
        --out model.safetensors
    curvature analyze model.safetensors --out results.safetensors --plot spectrum.svg

or from Python: ``export_mlp(model, x, y, "mse", "model.safetensors")``.
Needs ``torch`` and ``safetensors``.
"""

import argparse
import json

import torch
from safetensors.torch import save_file
from torch import nn

ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
LOSSES = ("mse", "sum_sq", "cross_entropy")


def _layers(model):
    """The Linear layers and the activation name after each (None where there is none)."""
    linears, after = [], []
    for index, module in enumerate(model):
        if isinstance(module, nn.Linear):
            if module.bias is None:
                raise ValueError(f"layer {index}: Linear layers need a bias (bias=True)")
            linears.append(module)
            after.append(None)
        elif type(module) in ACTIVATIONS:
            if not linears or after[-1] is not None:
                raise ValueError(f"layer {index}: an activation must follow a Linear layer")
            after[-1] = ACTIVATIONS[type(module)]
        else:
            raise ValueError(
                f"layer {index}: unsupported module {module!r} "
                "(only nn.Linear, nn.Tanh and nn.Sigmoid)"
            )
    if not linears:
        raise ValueError("the model has no Linear layer")
    for i, act in enumerate(after[:-1]):
        if act is None:
            raise ValueError(f"Linear layer {i} needs a Tanh or Sigmoid after it")
    for i in range(1, len(linears)):
        if linears[i].in_features != linears[i - 1].out_features:
            raise ValueError(
                f"Linear layer {i} takes {linears[i].in_features} inputs, "
                f"but layer {i - 1} gives {linears[i - 1].out_features}"
            )
    return linears, after


def _f64(t):
    return t.detach().to(device="cpu", dtype=torch.float64).contiguous().clone()


def export_mlp(model, x, y, loss, path):
    """Write ``model`` (an ``nn.Sequential``), inputs ``x``, targets ``y`` and the loss name to
    ``path``; returns the metadata written."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(LOSSES)})")
    linears, after = _layers(model)
    widths = [linears[0].in_features] + [layer.out_features for layer in linears]
    x = _f64(torch.as_tensor(x))
    n = x.shape[0]
    if x.shape != (n, widths[0]):
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (n, {widths[0]})")
    y = _f64(torch.as_tensor(y))
    if loss == "cross_entropy":
        y = y.reshape(-1)
        if y.shape != (n,):
            raise ValueError(f"cross_entropy needs {n} labels, got shape {tuple(y.shape)}")
    elif loss == "mse" and y.shape != (n, widths[-1]):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected ({n}, {widths[-1]})")
    elif loss == "sum_sq" and (y.dim() == 0 or y.shape[0] != n):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an nn.Sequential saved with torch.save")
    parser.add_argument("--data", required=True, help='{"x": ..., "y": ...} saved with torch.save')
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    args = parser.parse_args()
    model = torch.load(args.model, weights_only=False)
    data = torch.load(args.data, weights_only=False)
    x, y = (data["x"], data["y"]) if isinstance(data, dict) else data
    metadata = export_mlp(model, x, y, args.loss, args.out)
    print(f"wrote {args.out}: widths {metadata['widths']}, P = {metadata['params']}")


if __name__ == "__main__":
    main()
