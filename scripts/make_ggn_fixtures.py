#!/usr/bin/env python3
"""Make the Gauss–Newton references in ``tests/fixtures/torch/ggn_<model>.safetensors``.

For each golden MLP in ``tests/data/`` (float64), with θ in the files' order (per layer the
weight row-major, then the bias):

- ``ggn`` ``[P, P]``: Jᵀ H_ℓ J with J the Jacobian of the model's output ``[n, O]`` w.r.t. θ
  (``torch.func.jacrev``) and H_ℓ the Hessian of the loss w.r.t. the output
  (``torch.func.hessian`` of the loss as a function of the output alone);
- ``ggn_diag`` ``[P]``: its diagonal;
- ``empirical_fisher`` ``[P, P]``: (1/n) Σᵢ gᵢ gᵢᵀ, gᵢ the gradient of the loss of the
  one-sample batch (xᵢ, yᵢ).

Run from the repository root: ``python3 scripts/make_ggn_fixtures.py``. Needs ``torch`` and
``safetensors``; CI reads the committed files.
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.func import hessian, jacrev

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
MODELS = [
    "seed_simplenet_tanh_mse",
    "seed_linear_sigmoid_sumsq",
    "mlp_4_6_5_3_tanh_sigmoid_mse",
    "mlp_5_8_4_tanh_xent",
]
ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}


def load(name):
    with safe_open(str(ROOT / "tests" / "data" / f"{name}.safetensors"), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k).to(torch.float64) for k in f.keys()}
    widths = json.loads(meta["widths"])
    hidden = [ACTIVATIONS[a] for a in json.loads(meta["activations"])]
    final = meta["final_activation"]
    final = None if final == "None" else ACTIVATIONS[final]
    shapes = []
    for i in range(len(widths) - 1):
        shapes += [(widths[i + 1], widths[i]), (widths[i + 1],)]
    theta = torch.cat(
        [t.reshape(-1) for i in range(len(widths) - 1) for t in (tensors[f"{i}.weight"], tensors[f"{i}.bias"])]
    )
    return meta["loss"], shapes, hidden, final, theta, tensors["x"], tensors["y"]


def model_fn(shapes, hidden, final):
    sizes = [torch.Size(s).numel() for s in shapes]

    def forward(theta, x):
        params = [p.reshape(s) for p, s in zip(theta.split(sizes), shapes)]
        h = x
        layers = len(params) // 2
        for i in range(layers):
            h = h @ params[2 * i].T + params[2 * i + 1]
            if i < layers - 1:
                h = hidden[i](h)
            elif final is not None:
                h = final(h)
        return h

    return forward


def loss_fn(loss, y):
    if loss == "mse":
        return lambda out: ((out - y) ** 2).mean()
    if loss == "sum_sq":
        return lambda out: (out**2).sum()
    labels = y.reshape(-1).long()
    return lambda out: torch.nn.functional.cross_entropy(out, labels)


def main():
    out_dir = ROOT / "tests" / "fixtures" / "torch"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        loss, shapes, hidden, final, theta, x, y = load(name)
        forward = model_fn(shapes, hidden, final)
        out = forward(theta, x)
        p = theta.numel()
        jac = jacrev(forward)(theta, x).reshape(out.numel(), p)
        h_out = hessian(loss_fn(loss, y))(out).reshape(out.numel(), out.numel())
        ggn = jac.T @ h_out @ jac
        grads = []
        for i in range(x.shape[0]):
            per_sample = loss_fn(loss, y[i : i + 1])
            grads.append(torch.func.grad(lambda t: per_sample(forward(t, x[i : i + 1])))(theta))
        g = torch.stack(grads)
        fisher = g.T @ g / x.shape[0]
        save_file(
            {
                "ggn": ggn.contiguous(),
                "ggn_diag": torch.diagonal(ggn).contiguous(),
                "empirical_fisher": fisher.contiguous(),
            },
            str(out_dir / f"ggn_{name}.safetensors"),
            metadata={"model": name, "loss": loss, "torch": torch.__version__},
        )
        print(f"{name}: P = {p}, trace(GGN) = {torch.trace(ggn).item():.6f}")


if __name__ == "__main__":
    main()
