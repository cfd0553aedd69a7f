#!/usr/bin/env python3
"""Make the PyTorch reference fixtures in ``tests/fixtures/torch/`` (float64 throughout).

For each model below, at a fixed seed, the file ``<name>.safetensors`` holds:

- ``param.<name>``: every trainable parameter, named and ordered like ``model.named_parameters()``
  (θ is their row-major concatenation in that order);
- ``buffer.<name>``: every buffer (batch-norm running statistics);
- ``x`` (and ``x2``, … for further inputs) and ``y`` (class labels stored as floats for
  cross-entropy);
- ``loss`` ``[]``, ``grad`` ``[P]``, ``v`` ``[K, P]`` (random directions), ``hv`` ``[K, P]`` (the
  Hessian of the loss w.r.t. θ times each direction) and ``hessian_diag`` ``[P]``;
- metadata ``model`` (the architecture in words), ``loss``, ``params`` (a JSON list of
  ``[name, shape]`` in θ's order) and ``torch`` (the version that made the file).

The models are the ones people's networks are built from: a ReLU MLP, a GELU MLP, a small CNN
(conv → batch norm → ReLU → max pool → grouped conv → global average pool → linear), a token
classifier (embedding → dilated 1-D convolution → SiLU → linear) and a pre-norm
transformer block (LayerNorm, causal multi-head attention, GELU MLP, residuals). Run from the
repository root::

    python3 scripts/make_model_fixtures.py

Needs ``torch`` and ``safetensors``. CI reads the committed files; it does not need torch.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

torch.set_default_dtype(torch.float64)
# One thread and deterministic kernels: the files are the same bytes on every run.
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch"
K = 3  # directions per HVP batch


class Block(nn.Module):
    """Pre-norm transformer block: h = x + MHA(LN₁(x)) (causal), out = h + MLP(LN₂(h))."""

    def __init__(self, d, heads, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x):
        t = x.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        a = self.ln1(x)
        h = x + self.attn(a, a, a, attn_mask=causal, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class SequenceCnn(nn.Module):
    """Token classifier: embedding → dilated 1-D convolution → SiLU → mean over positions →
    linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 5, 3, padding=2, dilation=2)
        self.head = nn.Linear(5, 3)

    def forward(self, tokens):
        h = self.embed(tokens).transpose(1, 2)
        return self.head(nn.functional.silu(self.conv(h)).mean(dim=2))


def randomize_norms(model, gen):
    """Give norm layers non-trivial affine parameters and running statistics."""
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            with torch.no_grad():
                module.weight.copy_(1.0 + 0.3 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(0.5 * torch.randn(module.running_mean.shape, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))


def cases(gen):
    """(name, description, model, inputs, target, loss name, loss function)."""
    mse = nn.functional.mse_loss
    xent = nn.functional.cross_entropy

    relu = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    yield (
        "relu_mlp",
        "Sequential(Linear(4, 6), ReLU, Linear(6, 5), ReLU, Linear(5, 3))",
        relu,
        [torch.randn(8, 4, generator=gen)],
        torch.randn(8, 3, generator=gen),
        "mse",
        mse,
    )

    gelu = nn.Sequential(
        nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 5), nn.GELU(approximate="tanh"), nn.Linear(5, 3)
    )
    yield (
        "gelu_mlp",
        "Sequential(Linear(4, 6), GELU, Linear(6, 5), GELU(approximate='tanh'), Linear(5, 3))",
        gelu,
        [torch.randn(8, 4, generator=gen)],
        torch.randint(0, 3, (8,), generator=gen),
        "cross_entropy",
        xent,
    )

    cnn = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 2, groups=2),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    yield (
        "small_cnn",
        "Sequential(Conv2d(2, 4, 3, padding=1), BatchNorm2d(4) in eval mode, ReLU, MaxPool2d(2), "
        "Conv2d(4, 4, 2, groups=2), AdaptiveAvgPool2d((1, 1)), Flatten, Linear(4, 3)) "
        "on x [3, 2, 6, 6]",
        cnn,
        [torch.randn(3, 2, 6, 6, generator=gen)],
        torch.randint(0, 3, (3,), generator=gen),
        "cross_entropy",
        xent,
    )

    yield (
        "sequence_cnn",
        "embedding(10, 4) of tokens [3, 6], transposed to [3, 4, 6], Conv1d(4, 5, 3, padding=2, "
        "dilation=2), SiLU, mean over positions, Linear(5, 3)",
        SequenceCnn(),
        [torch.randint(0, 10, (3, 6), generator=gen)],
        torch.randint(0, 3, (3,), generator=gen),
        "cross_entropy",
        xent,
    )

    block = Block(8, 2, 16)
    yield (
        "transformer_block",
        "pre-norm block, d = 8, 2 heads, MLP 8 → 16 → 8 with exact GELU: "
        "h = x + MultiheadAttention(LN1(x)) with a causal mask, out = h + MLP(LN2(h)), "
        "on x [2, 4, 8]",
        block,
        [torch.randn(2, 4, 8, generator=gen)],
        torch.randn(2, 4, 8, generator=gen),
        "mse",
        mse,
    )


def make(name, description, model, inputs, target, loss_name, loss_fn, gen):
    randomize_norms(model, gen)
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [tuple(p.shape) for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    buffers = {k: v for k, v in buffers.items() if v.is_floating_point()}
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    theta.requires_grad_(True)

    def loss_of(flat):
        params = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split(sizes), shapes))))
        out = functional_call(model, {**params, **buffers}, tuple(inputs))
        return loss_fn(out, target)

    loss = loss_of(theta)
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    p = theta.numel()
    v = torch.randn(K, p, generator=gen)
    hv = torch.stack([torch.autograd.grad(grad @ v[k], theta, retain_graph=True)[0] for k in range(K)])
    eye = torch.eye(p)
    diag = torch.stack(
        [torch.autograd.grad(grad @ eye[i], theta, retain_graph=True)[0][i] for i in range(p)]
    )

    tensors = {f"param.{n}": t.detach().contiguous() for n, t in model.named_parameters()}
    tensors.update({f"buffer.{n}": t.detach().contiguous() for n, t in buffers.items()})
    for i, x in enumerate(inputs):
        tensors["x" if i == 0 else f"x{i + 1}"] = x.to(torch.float64).contiguous()
    tensors["y"] = target.to(torch.float64).contiguous()
    tensors["loss"] = loss.detach().reshape(())
    tensors["grad"] = grad.detach()
    tensors["v"] = v
    tensors["hv"] = hv.detach()
    tensors["hessian_diag"] = diag.detach()
    metadata = {
        "model": description,
        "loss": loss_name,
        "params": json.dumps([[n, list(s)] for n, s in zip(names, shapes)]),
        "torch": torch.__version__,
    }
    save_file(tensors, str(OUT / f"{name}.safetensors"), metadata=metadata)
    print(f"{name}: P = {p}, loss = {loss.item():.6f}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(15)
    torch.manual_seed(15)
    # The math attention kernel is the one with a double backward.
    with sdpa_kernel(SDPBackend.MATH):
        for case in cases(gen):
            make(*case, gen)


if __name__ == "__main__":
    main()
