#!/usr/bin/env python3
"""torch.matmul (cuBLAS) timed on the shapes `curvature gemm` times, one JSON line per case in
the schema of `curvature gemm --json`, so `scripts/gemm_table.py` can set them side by side.

    python3 benches/gemm_cublas.py [--runs N] CASE...

A CASE is `M,N,K,BATCH,DTYPE,PRECISION`: DTYPE f32, f64, f16 or bf16; PRECISION ieee (fp32
FMA: TF32 off), tf32 (TF32 on) or tf32x3 (cuBLAS has no split-TF32 mode: timed as ieee, the
accuracy it matches, and labelled tf32x3). Each case: operands of fixed pseudo-random values,
three warm-up products, then the median of N products, each timed by CUDA events around it.
A case that fails prints a JSON line with an "error" field; the exit status is 1 if any did.
"""

import json
import sys

DTYPES = ("f32", "f64", "f16", "bf16")
PRECISIONS = ("ieee", "tf32", "tf32x3")
WARM_UPS = 3


def parse_case(text):
    """(m, n, k, batch, dtype, precision) from `M,N,K,BATCH,DTYPE,PRECISION`."""
    parts = text.split(",")
    if len(parts) != 6:
        raise ValueError(f"case {text!r}: expected M,N,K,BATCH,DTYPE,PRECISION")
    m, n, k, batch = (int(p) for p in parts[:4])
    dtype, precision = parts[4], parts[5]
    if min(m, n, k, batch) < 1:
        raise ValueError(f"case {text!r}: dimensions must be at least 1")
    if dtype not in DTYPES or precision not in PRECISIONS:
        raise ValueError(f"case {text!r}: dtype in {DTYPES}, precision in {PRECISIONS}")
    return m, n, k, batch, dtype, precision


def set_tf32(torch, on):
    """TF32 for fp32 products on or off, by whichever switch this torch has."""
    matmul = torch.backends.cuda.matmul
    try:
        matmul.fp32_precision = "tf32" if on else "ieee"
    except (AttributeError, RuntimeError, ValueError):
        pass
    matmul.allow_tf32 = on


def time_case(torch, case, runs):
    m, n, k, batch, dtype, precision = case
    torch_dtype = {
        "f32": torch.float32,
        "f64": torch.float64,
        "f16": torch.float16,
        "bf16": torch.bfloat16,
    }[dtype]
    set_tf32(torch, precision == "tf32")
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape_a = (batch, m, k) if batch > 1 else (m, k)
    shape_b = (batch, k, n) if batch > 1 else (k, n)
    a = (torch.rand(shape_a, generator=gen, device="cuda") - 0.5).to(torch_dtype)
    b = (torch.rand(shape_b, generator=gen, device="cuda") - 0.5).to(torch_dtype)
    for _ in range(WARM_UPS):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    mid = len(times) // 2
    ms = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    flops = 2.0 * batch * m * n * k
    return {
        "bench": "gemm",
        "impl": "torch",
        "m": m,
        "n": n,
        "k": k,
        "batch": batch,
        "dtype": dtype,
        "precision": precision,
        "device": "cuda:0",
        "device_name": torch.cuda.get_device_name(0),
        "runs": runs,
        "ms": ms,
        "min_ms": times[0],
        "tflops": flops / (ms / 1e3) / 1e12,
        "plan": f"torch {torch.__version__} matmul (cuBLAS)"
        + (", TF32 off" if precision == "tf32x3" else ""),
    }


def main(argv):
    runs = 10
    if len(argv) >= 2 and argv[0] == "--runs":
        runs = int(argv[1])
        argv = argv[2:]
    if runs < 1 or not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cases = [parse_case(a) for a in argv]
    import torch

    if not torch.cuda.is_available():
        print("gemm_cublas.py: torch sees no CUDA device", file=sys.stderr)
        return 1
    failed = False
    for case in cases:
        try:
            line = time_case(torch, case, runs)
        except Exception as e:  # one case's failure (e.g. out of memory) is reported, not fatal
            failed = True
            m, n, k, batch, dtype, precision = case
            line = {"bench": "gemm", "impl": "torch", "m": m, "n": n, "k": k, "batch": batch,
                    "dtype": dtype, "precision": precision, "error": str(e)[:300]}
        print(json.dumps(line), flush=True)
    set_tf32(torch, False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
