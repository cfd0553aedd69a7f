#!/usr/bin/env python3
"""Make the ONNX fixtures in ``crates/onnx/tests/data/models/`` (float64 throughout).

Each model is exported by ``scripts/export_onnx.py`` into its own folder, which then holds:

- ``model.onnx`` and ``data.safetensors`` (the graph inputs by name and the target ``y``);
- ``reference.safetensors``: the model's ``output``, ``loss`` ``[]``, ``grad`` ``[P]``, ``v``
  ``[8, P]`` (seeded random directions), ``hv`` ``[8, P]`` (the Hessian times each direction)
  and ``hessian_diag`` ``[P]``, from ``torch.func`` in float64; where a model has a
  ``--params`` case, also ``sub_grad`` ``[S]`` and ``sub_hessian`` ``[S, S]``, the gradient
  and Hessian with respect to the initializers of θ that the glob in the metadata
  ``sub_params`` selects (``sub_names``; the others held fixed). Metadata: ``loss``,
  ``params`` (a JSON list of ``[name, shape]`` in θ's order) and ``torch``;
- ``ops.json``: the graph's op types, each with its count.

ONNX's reference evaluator runs each exported graph, which must give the model's output to
1e-12 relative, or the script fails.

θ is defined as the importer defines it by default: every floating-point initializer of the
exported graph with more than one element, in the graph's initializer order. Each one is
mapped to the torch parameter or buffer of the same name (so batch-norm running statistics are
part of θ) and must hold exactly its values; the script fails when one does not map. Run from
the repository root::

    python3 scripts/make_onnx_fixtures.py

Needs ``torch``, ``onnx`` and ``safetensors``. The tests read the committed files.
"""

import copy
import fnmatch
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops._op import OpRunUnaryNum
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.func import functional_call, grad, hessian, vjp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_onnx import (  # noqa: E402
    GptBlock,
    TransformerBlock,
    TwoInputs,
    export,
    loss_fn,
    save_safetensors,
)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
OUT = Path(__file__).resolve().parent.parent / "crates" / "onnx" / "tests" / "data" / "models"
DIRECTIONS = 8
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16)


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


class ExplicitBatchNorm2d(nn.Module):
    """Evaluation-mode batch norm written out, with BatchNorm2d's tensor names:
    (x − running_mean) / √(running_var + eps) · weight + bias. PyTorch's batch-norm kernel has
    no derivative with respect to the running statistics; this formula has."""

    def __init__(self, norm):
        super().__init__()
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().clone())
        self.bias = nn.Parameter(norm.bias.detach().clone())
        self.register_buffer("running_mean", norm.running_mean.detach().clone())
        self.register_buffer("running_var", norm.running_var.detach().clone())

    def forward(self, x):
        def channel(t):
            return t.reshape(1, -1, *([1] * (x.dim() - 2)))

        scale = channel(self.weight) / torch.sqrt(channel(self.running_var) + self.eps)
        return (x - channel(self.running_mean)) * scale + channel(self.bias)


def differentiable_copy(model):
    """A copy of ``model`` with each BatchNorm2d replaced by ``ExplicitBatchNorm2d``."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, ExplicitBatchNorm2d(child))
    return model


def cases(gen):
    """(name, model, inputs by graph-input name, target, loss, --params glob or None)."""

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    mlp = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 6),
        nn.GELU(approximate="tanh"), nn.Linear(6, 3),
    )
    yield "mlp", mlp, {"x": randn(10, 4)}, torch.randint(0, 3, (10,), generator=gen), \
        "cross_entropy", "6.*"

    cnn = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 3, 2, groups=3),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(3, 2),
    )
    yield "cnn", cnn, {"x": randn(2, 1, 6, 6)}, torch.randint(0, 2, (2,), generator=gen), \
        "cross_entropy", None

    block = TransformerBlock(4, 2, 8, 3)
    yield "transformer", block, {"x": randn(2, 3, 4)}, randn(2, 3, 4), "mse", "mlp.2.*"

    two = TwoInputs(3, 2, 4, 2)
    yield "two_inputs", two, {"x": randn(5, 3), "z": randn(5, 2)}, randn(5, 2), "mse", None

    gpt = GptBlock(5, 4, 2, 3)
    tokens = torch.randint(0, 5, (2, 3), generator=gen)
    yield "gpt2", gpt, {"idx": tokens}, torch.randint(0, 5, (2, 3), generator=gen), \
        "cross_entropy", "qkv.*"


def theta_names(path, model):
    """The importer's default θ: the names of the float initializers with more than one
    element, in graph order, each checked against the torch tensor of the same name."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    names = []
    for init in onnx.load(str(path)).graph.initializer:
        if init.data_type not in FLOAT_TYPES or int(np.prod(init.dims)) <= 1:
            continue
        if init.name not in tensors:
            raise SystemExit(
                f"{path}: initializer '{init.name}' {list(init.dims)} is no parameter or buffer "
                f"of the model (known: {sorted(tensors)})"
            )
        ours = tensors[init.name].detach().numpy()
        if not np.array_equal(numpy_helper.to_array(init), ours):
            raise SystemExit(f"{path}: initializer '{init.name}' differs from the model's tensor")
        names.append(init.name)
    return names


class ErfF64(OpRunUnaryNum):
    """Erf in the input's precision (the reference evaluator's own rounds through float32)."""

    op_domain = ""

    def _run(self, x):
        return (np.vectorize(math.erf, otypes=[x.dtype])(x),)


ErfF64.__name__ = "Erf"


def check_onnx_forward(path, inputs, output):
    """The exported graph, run by ONNX's reference evaluator, gives the model's output."""
    evaluator = ReferenceEvaluator(str(path), new_ops=[ErfF64])
    feeds = {n: inputs[n].numpy() for n in evaluator.input_names}
    (ours,) = evaluator.run(None, feeds)
    expected = output.numpy()
    err = np.abs(ours - expected).max() / max(np.abs(expected).max(), 1e-300)
    if ours.shape != expected.shape or err > 1e-12:
        raise SystemExit(f"{path}: ONNX's reference evaluator differs from torch ({err:e})")


def references(model, model_path, inputs, target, loss, sub_glob, gen):
    """The float64 ``torch.func`` references of an exported model, as the tensors and
    metadata of ``reference.safetensors``; ``gen`` draws the directions."""
    names = theta_names(model_path, model)
    reference = differentiable_copy(model)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    fixed = {k: v.detach() for k, v in state.items() if k not in names}
    shapes = [state[n].shape for n in names]
    sizes = [state[n].numel() for n in names]
    criterion = loss_fn(loss)
    args = tuple(inputs.values())

    def loss_of(flat, chosen=names, chosen_shapes=shapes, chosen_sizes=sizes, rest=fixed):
        parts = flat.split(chosen_sizes)
        params = {n: t.reshape(s) for n, t, s in zip(chosen, parts, chosen_shapes)}
        return criterion(functional_call(reference, {**rest, **params}, args), target)

    with torch.no_grad():
        output = model(*args)
    check_onnx_forward(model_path, inputs, output)

    theta = torch.cat([state[n].detach().reshape(-1) for n in names])
    p = theta.numel()
    value = loss_of(theta)
    gradient = grad(loss_of)(theta)
    v = torch.randn(DIRECTIONS, p, generator=gen)
    _, hvp_of = vjp(grad(loss_of), theta)
    hv = torch.stack([hvp_of(v[k])[0] for k in range(DIRECTIONS)])
    diag = torch.diagonal(hessian(loss_of)(theta))

    tensors = {
        "output": output,
        "loss": value.detach().reshape(()),
        "grad": gradient,
        "v": v,
        "hv": hv,
        "hessian_diag": diag,
    }
    metadata = {
        "loss": loss,
        "torch": torch.__version__,
        "params": json.dumps([[n, list(s)] for n, s in zip(names, shapes)]),
    }
    if sub_glob is not None:
        chosen = [n for n in names if fnmatch.fnmatchcase(n, sub_glob)]
        if not chosen:
            raise SystemExit(f"{model_path}: the glob '{sub_glob}' selects nothing of {names}")
        rest = {**fixed, **{n: state[n].detach() for n in names if n not in chosen}}
        sub_shapes = [state[n].shape for n in chosen]
        sub_sizes = [state[n].numel() for n in chosen]

        def sub_loss(flat):
            return loss_of(flat, chosen, sub_shapes, sub_sizes, rest)

        sub_theta = torch.cat([state[n].detach().reshape(-1) for n in chosen])
        tensors["sub_grad"] = grad(sub_loss)(sub_theta)
        tensors["sub_hessian"] = hessian(sub_loss)(sub_theta)
        metadata["sub_params"] = sub_glob
        metadata["sub_names"] = json.dumps(chosen)
    tensors = {k: t.detach().contiguous() for k, t in tensors.items()}
    return tensors, metadata


def op_counts(model_path):
    """The graph's op types, each with its count, sorted by name."""
    graph = onnx.load(str(model_path)).graph
    return dict(sorted(Counter(n.op_type for n in graph.node).items()))


def make(name, model, inputs, target, loss, sub_glob, gen):
    randomize_norms(model, gen)
    model.eval()
    out_dir = OUT / name
    model_path, _ = export(model, inputs, target, loss, out_dir)
    tensors, metadata = references(model, model_path, inputs, target, loss, sub_glob, gen)
    save_safetensors(tensors, out_dir / "reference.safetensors", metadata)
    ops = op_counts(model_path)
    (out_dir / "ops.json").write_text(json.dumps(ops, indent=1) + "\n")
    print(f"{name}: P = {tensors['grad'].numel()}, loss = {tensors['loss'].item():.6f}, "
          f"ops = {sorted(ops)}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(16)
    torch.manual_seed(16)
    # The math attention kernel is the one with a double backward.
    with sdpa_kernel(SDPBackend.MATH):
        for case in cases(gen):
            make(*case, gen)


if __name__ == "__main__":
    main()
