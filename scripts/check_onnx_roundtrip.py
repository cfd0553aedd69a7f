#!/usr/bin/env python3
"""Round trip: PyTorch model → export_onnx.py → `curvature analyze model.onnx` → compare.

For each model of ``scripts/make_onnx_fixtures.py`` (an MLP with ReLU and GELU, a
Conv–BatchNorm–ReLU–MaxPool CNN, a pre-norm transformer block with causal attention, a model
with two inputs, a nanoGPT-style block on int64 tokens whose qkv is split with
``Tensor.split``), freshly exported to a temporary folder, runs the built command line::

    curvature analyze DIR/model.onnx --data DIR/data.safetensors --loss LOSS \\
        --dtype f64 --device cpu --out results.safetensors [--params GLOB]

and compares what it writes with ``torch.func`` in float64 (relative error
max|ours − torch| / max|torch|): the loss, the gradient, the Hessian diagonal, and eight
Hessian-vector products, which ``analyze`` does not write but which are its dense Hessian
(written for P ≤ 1024) times the seeded directions. For the models with a ``--params`` case the
gradient and Hessian of that selection are compared as well, and so are the gradient and
Hessian of the samples split over two ranks (``--ranks 2``). Exits non-zero when any error
exceeds 1e-10.

    cargo build --release && python3 scripts/check_onnx_roundtrip.py

Needs ``torch``, ``onnx`` and ``safetensors``.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_onnx import export  # noqa: E402
from make_onnx_fixtures import cases, randomize_norms, references  # noqa: E402

TOL = 1e-10
ROOT = Path(__file__).resolve().parent.parent


def rel_err(ours, torch_value):
    ours = ours.reshape(-1).to(torch.float64)
    torch_value = torch_value.reshape(-1).to(torch.float64)
    if ours.numel() != torch_value.numel():
        return float("inf")
    scale = torch_value.abs().max().item()
    diff = (ours - torch_value).abs().max().item()
    return diff / scale if scale > 0 else diff


def analyze(binary, folder, loss, params, results, extra=()):
    """Runs ``curvature analyze`` on an exported folder; returns the results' tensors."""
    command = [
        str(binary), "analyze", str(folder / "model.onnx"),
        "--data", str(folder / "data.safetensors"), "--loss", loss,
        "--dtype", "f64", "--device", "cpu", "--out", str(results), *extra,
    ]
    for glob in params:
        command += ["--params", glob]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr.strip()}")
    return load_file(str(results))


def compare(name, pairs):
    """Prints each comparison; returns whether all are within TOL."""
    ok = True
    for what, ours, theirs in pairs:
        err = rel_err(ours, theirs)
        passed = err <= TOL
        ok &= passed
        print(f"  {name} {what}: {err:.2e} {'ok' if passed else 'FAILED'}")
    return ok


def check(binary, work, name, model, inputs, target, loss, sub_glob, gen):
    randomize_norms(model, gen)
    model.eval()
    folder = work / name
    model_path, _ = export(model, inputs, target, loss, folder)
    ref, _ = references(model, model_path, inputs, target, loss, sub_glob, gen)
    out = analyze(binary, folder, loss, [], work / f"{name}.safetensors")
    hessian = out["hessian"]
    # The samples split over two in-process ranks (the export's batch axis is symbolic).
    split = analyze(binary, folder, loss, [], work / f"{name}_ranks.safetensors", ["--ranks", "2"])
    ok = compare(name, [
        ("--ranks 2 gradient", split["grad"], ref["grad"]),
        ("--ranks 2 Hessian", split["hessian"], hessian),
    ])
    ok &= compare(name, [
        ("loss", out["loss"], ref["loss"]),
        ("gradient", out["grad"], ref["grad"]),
        ("Hessian diagonal", out["hessian_diag"], ref["hessian_diag"]),
        ("HVPs (dense Hessian · V)", ref["v"] @ hessian.T, ref["hv"]),
    ])
    if sub_glob is not None:
        sub = analyze(binary, folder, loss, [sub_glob], work / f"{name}_sub.safetensors")
        ok &= compare(name, [
            (f"--params {sub_glob} gradient", sub["grad"], ref["sub_grad"]),
            (f"--params {sub_glob} Hessian", sub["hessian"], ref["sub_hessian"]),
        ])
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--curvature", type=Path, default=ROOT / "target" / "release" / "curvature",
        help="the built command line (default: target/release/curvature)",
    )
    args = parser.parse_args()
    if not args.curvature.is_file():
        sys.exit(f"{args.curvature} does not exist: run `cargo build --release` first")
    gen = torch.Generator().manual_seed(16)
    torch.manual_seed(16)
    ok = True
    with tempfile.TemporaryDirectory() as work, sdpa_kernel(SDPBackend.MATH):
        for case in cases(gen):
            try:
                ok &= check(args.curvature, Path(work), *case, gen)
            except RuntimeError as error:
                print(f"  {case[0]}: {error}")
                ok = False
    print("all within 1e-10" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
