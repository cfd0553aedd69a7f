#!/usr/bin/env python3
"""Round trip: PyTorch model → scripts/export_torch.py → `curvature analyze` → compare.

For several random ``nn.Sequential`` models (MLPs in the MLP form, with each loss; CNNs and
normalised MLPs through every supported module in the ``layers`` form), exports the model and
data, runs the built ``curvature analyze --dtype f64 --device cpu``, and compares
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
from export_torch import export_mlp, export_model  # noqa: E402

TOL = 1e-10


def cases(generator):
    """(name, model, x, y, loss, exporter) in float64."""
    yield from mlp_cases(generator)
    yield from layer_cases(generator)


def layer_cases(generator):
    """Models of every supported module, exported in the ``layers`` form."""
    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    cnn = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.SiLU(), nn.AvgPool2d(2, stride=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(4, 3),
    )
    with torch.no_grad():
        bn = cnn[1]
        bn.running_mean.copy_(0.2 * randn(4))
        bn.running_var.copy_(0.5 + randn(4).abs())
    yield ("conv-bn-relu-pool cross_entropy", cnn, randn(5, 2, 6, 6),
           torch.randint(0, 3, (5,), generator=generator).to(torch.float64), "cross_entropy",
           export_model)
    mlp = nn.Sequential(
        nn.Linear(3, 6), nn.LayerNorm(6), nn.GELU(), nn.Dropout(0.2), nn.Linear(6, 5),
        nn.GELU(approximate="tanh"), nn.Linear(5, 4), nn.LeakyReLU(0.1), nn.Linear(4, 2),
    )
    yield "layernorm-gelu mlp mse", mlp, randn(8, 3), randn(8, 2), "mse", export_model
    conv1d = nn.Sequential(
        nn.Conv1d(2, 3, 2, stride=2, dilation=1), nn.BatchNorm1d(3), nn.ELU(0.5),
        nn.Softplus(), nn.Flatten(), nn.Linear(9, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid(),
    )
    yield "conv1d-bn-elu-softplus sum_sq", conv1d, randn(4, 2, 6), randn(4, 1), "sum_sq", \
        export_model


def mlp_cases(generator):
    """MLPs exported in the MLP form."""
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
        export_mlp,
    )
    yield (
        "4-6-3 tanh cross_entropy",
        nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)),
        data(4),
        torch.randint(0, 3, (n,), generator=generator).to(torch.float64),
        "cross_entropy",
        export_mlp,
    )
    yield (
        "2-5-1 sigmoid, final sigmoid, sum_sq",
        nn.Sequential(nn.Linear(2, 5), nn.Sigmoid(), nn.Linear(5, 1), nn.Sigmoid()),
        data(2),
        data(1),
        "sum_sq",
        export_mlp,
    )


def unsupported_modules_are_named():
    """Each unsupported module is an error naming its index, type and the rewrite; returns
    the number of messages that were not as expected."""
    x, y = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    cases = [
        (nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU())),
         "module 1 (Sequential): Sequential is not supported: nested Sequential: flatten it"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")),
         "module 0 (Conv2d): Conv2d with padding_mode='reflect' is not supported: "
         "use padding_mode='zeros'"),
        (nn.Sequential(nn.Linear(4, 4), nn.MultiheadAttention(4, 2)),
         "module 1 (MultiheadAttention): MultiheadAttention is not supported: "
         "nn.MultiheadAttention is not supported in a Sequential: write a Module in Rust"),
        (nn.Sequential(nn.Linear(4, 2), nn.Softplus(beta=2)),
         "module 1 (Softplus): Softplus with beta=2 is not supported: use beta=1"),
        (nn.Sequential(nn.Linear(4, 2, bias=False)),
         "module 0 (Linear): Linear without a bias is not supported: use bias=True"),
        (nn.Sequential(nn.Linear(4, 2), nn.Hardtanh()),
         "module 1 (Hardtanh): Hardtanh is not supported: supported modules: Linear"),
    ]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for model, expected in cases:
            try:
                export_model(model.double(), x, y, "sum_sq", os.path.join(tmp, "m.safetensors"))
                message = "(exported)"
            except ValueError as e:
                message = str(e)
            ok = message.startswith(expected)
            bad += not ok
            print(f"{'ok' if ok else 'UNEXPECTED'}: {message}")
    return bad


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
        for name, model, x, y, loss, export in cases(generator):
            model = model.to(torch.float64).eval()
            model_path = os.path.join(tmp, "model.safetensors")
            out_path = os.path.join(tmp, "results.safetensors")
            export(model, x, y, loss, model_path)
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
    unexpected = unsupported_modules_are_named()
    return 0 if worst <= TOL and unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
