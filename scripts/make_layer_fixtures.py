#!/usr/bin/env python3
"""Make the model files in ``tests/data/layers/`` with ``scripts/export_torch.py`` (float64).

Each file is a small ``nn.Sequential`` in the ``layers`` form, its data, and PyTorch's
reference values as extra tensors: ``loss`` ``[1]``, ``grad`` ``[P]``, ``v`` ``[K, P]``
(random directions) and ``hv`` ``[K, P]`` (the loss Hessian times each direction), θ being the
parameters in ``model.parameters()`` order. Run from the repository root::

    python3 scripts/make_layer_fixtures.py

Needs ``torch`` and ``safetensors``; CI reads the committed files.
"""

import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import export_model  # noqa: E402

torch.set_default_dtype(torch.float64)
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "layers"
K = 3


def randomize_norms(model, gen):
    """Non-trivial affine parameters and running statistics for the norm layers."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def loss_fn(name, out, y):
    if name == "mse":
        return nn.functional.mse_loss(out, y)
    if name == "sum_sq":
        return (out**2).sum()
    return nn.functional.cross_entropy(out, y.long())


def cases(gen):
    """(file name, model, x, y, loss)."""
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    cnn = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(12, 3),
    )
    yield "small_cnn", cnn, randn(6, 2, 4, 4), torch.randint(0, 3, (6,), generator=gen), \
        "cross_entropy"
    mlp = nn.Sequential(
        nn.Linear(4, 6), nn.LayerNorm(6), nn.GELU(), nn.Linear(6, 5),
        nn.GELU(approximate="tanh"), nn.Dropout(0.1), nn.Linear(5, 2),
    )
    yield "gelu_layernorm_mlp", mlp, randn(7, 4), randn(7, 2), "mse"
    conv1d = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1, groups=2), nn.BatchNorm1d(4), nn.ELU(0.7), nn.Flatten(),
        nn.Linear(20, 6), nn.LeakyReLU(0.05), nn.Linear(6, 4), nn.Softplus(), nn.Linear(4, 3),
        nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid(),
    )
    yield "conv1d_activations", conv1d, randn(5, 2, 5), randn(5, 2), "sum_sq"
    pools = nn.Sequential(
        nn.Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1)), nn.SiLU(),
        nn.AvgPool2d(2, stride=1, padding=1), nn.AdaptiveAvgPool2d((2, 1)), nn.Flatten(),
        nn.Linear(4, 2),
    )
    yield "pool_cnn", pools, randn(4, 1, 6, 7), randn(4, 2), "mse"


def references(model, x, y, loss, gen):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(flat):
        params, start = {}, 0
        for key, shape in zip(names, shapes):
            params[key] = flat[start:start + shape.numel()].reshape(shape)
            start += shape.numel()
        return loss_fn(loss, functional_call(model, params, (x,)), y)

    theta = theta.clone().requires_grad_(True)
    value = f(theta)
    (grad,) = torch.autograd.grad(value, theta, create_graph=True)
    v = torch.randn(K, theta.numel(), generator=gen)
    hv = torch.stack([torch.autograd.grad(grad @ v[k], theta, retain_graph=True)[0]
                      for k in range(K)])
    return {"loss": value.detach().reshape(1), "grad": grad.detach(), "v": v, "hv": hv}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(15)
    torch.manual_seed(15)
    for name, model, x, y, loss in cases(gen):
        randomize_norms(model, gen)
        model.eval()
        y = y.to(torch.float64)
        refs = references(model, x, y, loss, gen)
        path = OUT / f"{name}.safetensors"
        meta = export_model(model, x, y, loss, path, extra=refs)
        print(f"{path.name}: P = {meta['params']}, loss {refs['loss'].item():.12e}")


if __name__ == "__main__":
    main()
