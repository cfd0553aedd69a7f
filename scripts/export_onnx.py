#!/usr/bin/env python3
"""Export a PyTorch model and its data for ``curvature analyze model.onnx``, in one step.

``export(model, inputs, y, loss, out_dir)`` writes, in ``out_dir``:

- ``model.onnx``: ``torch.onnx.export`` with the dynamo exporter at opset 18 (or the
  ``opset`` given, at least 18), in evaluation mode, in the model's own dtype (float64 weights
  stay float64). The exporter's graph optimizer is switched off (``optimize=False``): it folds
  each BatchNorm into the Conv before it (so the file's ``0.weight`` is no longer the model's
  ``0.weight`` and the batch-norm parameters disappear) and its constant folding bakes
  parameters into new constants (a Linear's weight becomes a transposed copy named
  ``val_12``). Unoptimized, every initializer is one of the model's parameters or buffers
  under its own name, so the parameters ``curvature`` differentiates with respect to are the
  model's own. Axis 0 of every input is the symbolic batch dim ``batch`` (``--static-batch``
  fixes it at the data's sample count instead), so the graph runs on any number of samples,
  as ``analyze --ranks`` and ``mpirun`` need.
- ``data.safetensors``: one float64 tensor per graph input, named after the input (the keys
  of ``inputs``, which become the graph's input names), and the target ``y`` (class labels as
  integral floats for ``cross_entropy`` and ``nll``). Integer inputs (token ids) are
  stored as integral floats too, since the data file holds floating-point tensors.

``Tensor.split`` into a list (GPT-2's ``q, k, v = qkv.split(d, dim=2)``) exports as
``SplitToSequence`` and ``SequenceAt``; slicing (``qkv[..., :d]``, …) exports as ``Slice``.

It then prints the command to run::

    curvature analyze DIR/model.onnx --data DIR/data.safetensors --loss LOSS

From the command line, a built-in example (``--example mlp``, ``cnn``, ``transformer``,
``two_inputs``, ``resnet18``: torchvision's ResNet-18 with ten classes on 32×32 images, or
``gpt2``: a nanoGPT-style block on int64 tokens) or your own model from a factory function that returns
``(model, inputs, y, loss)``::

    python3 scripts/export_onnx.py --example cnn --out DIR
    python3 scripts/export_onnx.py --module mypkg.models:make --out DIR

Needs ``torch`` (with its ``onnxscript`` dependency), ``onnx`` and ``safetensors``.
"""

import argparse
import importlib
import json
import struct
import sys
from pathlib import Path

import onnx
import torch
from safetensors.torch import save
from torch import nn

# The spellings of `curvature analyze --loss`.
LOSSES = ("mse", "sum_sq", "cross_entropy", "soft_cross_entropy", "nll", "bce_with_logits")
# Losses whose target holds class labels.
LABEL_LOSSES = ("cross_entropy", "nll")
MIN_OPSET = 18


class ExportError(ValueError):
    """A model or data set that cannot be exported as asked."""


def loss_fn(loss):
    """The PyTorch function of the loss named ``loss`` (as ``curvature`` defines it)."""
    functional = nn.functional
    table = {
        "mse": functional.mse_loss,
        "sum_sq": lambda out, _y: (out * out).sum(),
        # One label per row of the [n, classes] output, read from y in row-major order.
        "cross_entropy": lambda out, y: functional.cross_entropy(out, y.long().reshape(-1)),
        "soft_cross_entropy": functional.cross_entropy,
        "nll": lambda out, y: functional.nll_loss(out, y.long().reshape(-1)),
        "bce_with_logits": functional.binary_cross_entropy_with_logits,
    }
    if loss not in table:
        raise ExportError(f"unknown loss '{loss}' (known: {', '.join(LOSSES)})")
    return table[loss]


def onnx_export(model, args, opset, names, dynamic_shapes):
    """``torch.onnx.export`` with the dynamo exporter, unoptimized (see the module's doc)."""
    return torch.onnx.export(
        model,
        args,
        dynamo=True,
        opset_version=opset,
        optimize=False,
        input_names=names,
        output_names=["output"],
        dynamic_shapes=dynamic_shapes,
        verbose=False,
    )


def export(model, inputs, y, loss, out_dir, opset=MIN_OPSET, dynamic_batch=True):
    """Write ``out_dir/model.onnx`` and ``out_dir/data.safetensors``; return their paths.

    ``inputs`` maps each graph input's name to its tensor, in the order ``model.forward``
    takes them; ``y`` is the target of ``loss`` (one of ``LOSSES``). With ``dynamic_batch``
    the inputs' axis 0 is one symbolic dim ``batch`` (so ``analyze --ranks`` and ``mpirun``
    can run the graph on shards of the samples); a model that does not export so (one
    sample, or code that fixes the batch size) is exported at its batch size, with a note.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET}")
    loss_fn(loss)
    if not inputs:
        raise ExportError("the model needs at least one input")
    names = list(inputs)
    if "y" in names:
        raise ExportError("an input may not be called 'y': the data file holds the target under it")
    if loss in LABEL_LOSSES:
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise ExportError(f"{loss} needs class labels, got non-integral values")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.onnx"
    data_path = out_dir / "data.safetensors"

    model.eval()
    args = tuple(inputs.values())
    program = None
    fell_back = False
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        try:
            program = onnx_export(model, args, opset, names, tuple({0: batch} for _ in names))
        except Exception as error:  # noqa: BLE001 (torch.export raises many kinds)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            print(f"export_onnx: a dynamic batch axis does not export ({first}); the graph "
                  f"takes exactly {len(y)} samples", file=sys.stderr)
            fell_back = True
    if program is None:
        program = onnx_export(model, args, opset, names, None)
    program.save(str(model_path))

    graph = onnx.load(str(model_path), load_external_data=False).graph
    graph_inputs = [i.name for i in graph.input]
    if graph_inputs != names:
        raise ExportError(f"the exported graph's inputs are {graph_inputs}, expected {names}")
    fixed = [i.name for i in graph.input
             if not any(d.dim_param for d in i.type.tensor_type.shape.dim[:1])]
    if dynamic_batch and not fell_back and fixed:
        # torch.export specialises a dim the model's code fixes instead of failing.
        print(f"export_onnx: the graph fixes the batch of {', '.join(fixed)} at {len(y)} "
              "samples (the model's code fixes it), so it runs in one process, not over ranks",
              file=sys.stderr)
    tensors = {name: t.detach().to(torch.float64).contiguous() for name, t in inputs.items()}
    tensors["y"] = y.detach().to(torch.float64).contiguous()
    save_safetensors(tensors, data_path, {"loss": loss, "inputs": json.dumps(names)})
    return model_path, data_path


def save_safetensors(tensors, path, metadata):
    """``safetensors.torch.save_file`` with the metadata in sorted order, so that the same
    tensors give the same bytes on every run."""
    raw = save(tensors, metadata=metadata)
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


def analyze_command(out_dir, loss):
    """The ``curvature analyze`` command line for an exported directory."""
    out_dir = Path(out_dir)
    return (
        f"curvature analyze {out_dir / 'model.onnx'} --data {out_dir / 'data.safetensors'} "
        f"--loss {loss}"
    )


def examples():
    """The built-in example models: name → factory returning ``(model, inputs, y, loss)``."""

    def mlp():
        gen = torch.Generator().manual_seed(0)
        model = nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3)
        ).double()
        x = torch.randn(16, 4, generator=gen, dtype=torch.float64)
        return model, {"x": x}, torch.randint(0, 3, (16,), generator=gen), "cross_entropy"

    def cnn():
        gen = torch.Generator().manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(4, 3),
        ).double()
        x = torch.randn(8, 2, 8, 8, generator=gen, dtype=torch.float64)
        return model, {"x": x}, torch.randint(0, 3, (8,), generator=gen), "cross_entropy"

    def transformer():
        gen = torch.Generator().manual_seed(0)
        model = TransformerBlock(8, 2, 16, 6).double()
        x = torch.randn(4, 6, 8, generator=gen, dtype=torch.float64)
        return model, {"x": x}, torch.randn(4, 6, 8, generator=gen, dtype=torch.float64), "mse"

    def two_inputs():
        gen = torch.Generator().manual_seed(0)
        model = TwoInputs(3, 2, 4, 2).double()
        x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
        z = torch.randn(8, 2, generator=gen, dtype=torch.float64)
        return model, {"x": x, "z": z}, torch.randn(8, 2, generator=gen, dtype=torch.float64), "mse"

    def resnet18():
        try:
            from torchvision.models import resnet18 as make_resnet18
        except ImportError as error:
            raise ExportError(f"the resnet18 example needs torchvision: {error}") from error
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        model = make_resnet18(num_classes=10).double()
        x = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64)
        return model, {"x": x}, torch.randint(0, 10, (2,), generator=gen), "cross_entropy"

    def gpt2():
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        vocab, t = 11, 6
        model = GptBlock(vocab, 8, 2, t).double()
        idx = torch.randint(0, vocab, (3, t), generator=gen)
        y = torch.randint(0, vocab, (3, t), generator=gen)
        return model, {"idx": idx}, y, "cross_entropy"

    return {
        "mlp": mlp,
        "cnn": cnn,
        "transformer": transformer,
        "two_inputs": two_inputs,
        "resnet18": resnet18,
        "gpt2": gpt2,
    }


class TransformerBlock(nn.Module):
    """Pre-norm block on ``[batch, t, d]``: h = x + MHA(LN₁(x)) with a causal mask,
    out = h + MLP(LN₂(h)) with an exact-GELU MLP. The causal mask is a boolean buffer (it
    exports as a constant, not as a parameter)."""

    def __init__(self, d, heads, hidden, t):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.register_buffer("causal", torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        a = self.ln1(x)
        h = x + self.attn(a, a, a, attn_mask=self.causal, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class GptBlock(nn.Module):
    """A nanoGPT-style model on int64 tokens ``[batch, t]``: token and position embeddings,
    one pre-norm block (a fused qkv Linear split with ``Tensor.split``, causal
    ``scaled_dot_product_attention``, a tanh-GELU MLP, residuals), a final LayerNorm and a
    head; the logits come out as ``[batch · t, vocab]``, one row per token, against the
    targets ``[batch, t]`` read in the same order."""

    def __init__(self, vocab, d, heads, t):
        super().__init__()
        self.heads = heads
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(t, d)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        d = x.shape[-1]
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        heads = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        a = nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        x = x + self.out(nn.functional.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return self.head(self.ln_f(x)).reshape(b * t, -1)


class TwoInputs(nn.Module):
    """Two inputs: head(concat(tanh(a(x)), sigmoid(b(z)))) over the feature axis."""

    def __init__(self, dx, dz, hidden, out):
        super().__init__()
        self.a = nn.Linear(dx, hidden)
        self.b = nn.Linear(dz, hidden)
        self.head = nn.Linear(2 * hidden, out)

    def forward(self, x, z):
        return self.head(torch.cat([torch.tanh(self.a(x)), torch.sigmoid(self.b(z))], dim=1))


def load_factory(spec):
    """The factory ``pkg.mod:function`` (the current folder is on the import path)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ExportError(f"--module expects 'pkg.module:factory', got '{spec}'")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ExportError(f"cannot import {module_name}: {error}") from error
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ExportError(f"'{attr}' in {module_name} is not a function")
    return factory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--example", choices=sorted(examples()))
    source.add_argument(
        "--module",
        metavar="PKG.MOD:FACTORY",
        help="a function returning (model, inputs: dict[str, Tensor], y, loss)",
    )
    parser.add_argument("--out", required=True, type=Path, help="the output folder")
    parser.add_argument("--opset", type=int, default=MIN_OPSET)
    parser.add_argument(
        "--static-batch",
        action="store_true",
        help="fix the inputs' axis 0 at the data's sample count (default: a symbolic batch dim)",
    )
    args = parser.parse_args()
    try:
        factory = examples()[args.example] if args.example else load_factory(args.module)
        model, inputs, y, loss = factory()
        export(model, inputs, y, loss, args.out, args.opset, not args.static_batch)
    except ExportError as error:
        sys.exit(f"export_onnx: {error}")
    print(analyze_command(args.out, loss))


if __name__ == "__main__":
    main()
