#!/usr/bin/env python3
"""Round trip: PyTorch model → scripts/export_torch_mlp.py → `curvature analyze` → compare.

For several random ``nn.Sequential`` MLPs (tanh and sigmoid layers, each loss), exports the
model and data, runs the built ``curvature analyze --dtype f64 --device cpu``, and compares
the loss, gradient and Hessian it writes with PyTorch's autograd in float64 (relative error
max|ours − torch| / max|torch|). Exits non-zero when any exceeds 1e-10.

    cargo build --release && python scripts/check_export_roundtrip.py
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from torch import nn
from torch.func import functional_call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_mlp import export_mlp  # noqa: E402

TOL = 1e-10


def cases(generator):
    """(name, model, x, y, loss) in float64."""
    torch.manual_seed(1234)
    n = 12

    def data(width):
        return torch.randn(n, width, generator=generator, dtype=torch.float64)

    yield (
        "3-7-5-2 tanh,sigmoid mse",
        nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 5), nn.Sigmoid(), nn.Linear(5, 2)),
        data(3),
        data(2),
        "mse",
    )
    yield (
        "4-6-3 tanh cross_entropy",
        nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)),
        data(4),
        torch.randint(0, 3, (n,), generator=generator).to(torch.float64),
        "cross_entropy",
    )
    yield (
        "2-5-1 sigmoid, final sigmoid, sum_sq",
        nn.Sequential(nn.Linear(2, 5), nn.Sigmoid(), nn.Linear(5, 1), nn.Sigmoid()),
        data(2),
        data(1),
        "sum_sq",
    )


def torch_loss(output, y, loss):
    if loss == "mse":
        return nn.functional.mse_loss(output, y)
    if loss == "sum_sq":
        return (output**2).sum()
    return nn.functional.cross_entropy(output, y.long())


def rel_err(ours, ref):
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(root, "target/release/curvature"))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(7)
    worst = 0.0
    print(f"torch {torch.__version__}; tolerance {TOL:g} (max|ours - torch| / max|torch|)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, x, y, loss in cases(generator):
            model = model.to(torch.float64)
            model_path = os.path.join(tmp, "model.safetensors")
            out_path = os.path.join(tmp, "results.safetensors")
            export_mlp(model, x, y, loss, model_path)
            subprocess.run(
                [args.binary, "analyze", model_path, "--dtype", "f64", "--device", "cpu",
                 "--out", out_path],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            ours = load_file(out_path)

            names = [k for k, _ in model.named_parameters()]
            shapes = [p.shape for _, p in model.named_parameters()]
            theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

            def f(flat):
                params, start = {}, 0
                for key, shape in zip(names, shapes):
                    size = shape.numel()
                    params[key] = flat[start:start + size].reshape(shape)
                    start += size
                return torch_loss(functional_call(model, params, (x,)), y, loss)

            theta = theta.clone().requires_grad_(True)
            value = f(theta)
            (grad,) = torch.autograd.grad(value, theta)
            hessian = torch.autograd.functional.hessian(f, theta.detach())
            errors = {
                "loss": rel_err(ours["loss"], value.detach().reshape(1)),
                "grad": rel_err(ours["grad"], grad),
                "hessian": rel_err(ours["hessian"], hessian),
            }
            worst = max(worst, *errors.values())
            shown = ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
            print(f"{name:<40} P = {theta.numel():>3}  loss {value.item():+.12e}  "
                  f"curvature {ours['loss'].item():+.12e}  rel. errors: {shown}")
    print(f"worst relative error {worst:.2e}: {'ok' if worst <= TOL else 'FAILED'}")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
