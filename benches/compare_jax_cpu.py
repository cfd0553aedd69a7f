"""Side-by-side CPU comparison of batched Hessian-vector products: curvature vs JAX (XLA CPU).

Runs, for each workload and dtype, JAX's jit(vmap(jvp(grad))) and our `curvature --json`
binary, each in its own process (so peak RSS is per job), and prints one table.

Usage (from the repository root, after `cargo build --release`):
    python3 benches/compare_jax_cpu.py [--workloads seed,mid] [--dtypes f32,f64] [--runs 10]
                                       [--rounds 3]

Needs `pip install "jax[cpu]"`. Each job reports the median of --runs runs after warm-up; the
two jobs alternate --rounds times, and the table shows the median over the rounds (a shared
machine's slow spells then hit both sides alike) and the largest peak RSS. GFLOP/s use the cost
model of shared PERFORMANCE.md (6 forward products per HVP direction).
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = {
    "seed": ([1, 10, 10, 1], 1000, 141),
    "mid": ([64, 256, 256, 256, 10], 1024, 64),
}

JAX_JOB = r"""
import json, sys, time
import numpy as np
widths, n, k, dtype, runs = json.loads(sys.argv[1])
import jax, jax.numpy as jnp
if dtype == "f64":
    jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
dt = jnp.float64 if dtype == "f64" else jnp.float32
key = jax.random.PRNGKey(0)
params = []
for a, b in zip(widths[:-1], widths[1:]):
    key, k1 = jax.random.split(key)
    params.append((jax.random.normal(k1, (a, b), dt) / np.sqrt(a), jnp.zeros(b, dt)))
key, kx, ky = jax.random.split(key, 3)
x = jax.random.normal(kx, (n, widths[0]), dt)
y = jax.random.normal(ky, (n, widths[-1]), dt)
def loss(p, x, y):
    h = x
    for i, (W, b) in enumerate(p):
        h = h @ W + b
        if i < len(p) - 1:
            h = jnp.tanh(h)
    return jnp.mean((h - y) ** 2)
leaves, tree = jax.tree_util.tree_flatten(params)
vs = []
for l in leaves:
    key, kv = jax.random.split(key)
    vs.append(jax.random.normal(kv, (k,) + l.shape, dt))
V = jax.tree_util.tree_unflatten(tree, vs)
hv = jax.jit(lambda p, V, x, y: jax.vmap(
    lambda v: jax.jvp(lambda q: jax.grad(loss)(q, x, y), (p,), (v,))[1])(V))
for _ in range(3):
    jax.block_until_ready(hv(params, V, x, y))
ts = []
for _ in range(runs):
    t0 = time.perf_counter()
    jax.block_until_ready(hv(params, V, x, y))
    ts.append(time.perf_counter() - t0)
print(json.dumps({"ms": float(np.median(ts)) * 1e3}))
"""


def run_measured(cmd):
    """Runs cmd, returns (stdout, peak RSS in MiB of that process)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return out, usage.ru_maxrss / 1024.0


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def fwd_flops(widths, n):
    return sum(2 * n * a * b for a, b in zip(widths[:-1], widths[1:]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="seed,mid")
    parser.add_argument("--dtypes", default="f32,f64")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", default="target/release/curvature")
    args = parser.parse_args()
    header = (f"{'workload':<8} {'dtype':<5} {'engine':<12} {'ours ms':>9} {'ours+primal ms':>15} {'JAX ms':>9} "
              f"{'JAX/ours':>9} {'GFLOP/s':>8} {'ours RSS MiB':>13} {'JAX RSS MiB':>12}")
    print(header)
    for name in args.workloads.split(","):
        widths, n, k = CONFIGS[name]
        for dtype in args.dtypes.split(","):
            job = json.dumps([widths, n, k, dtype, args.runs])
            jax_ms, hot, cold, jax_rss, ours_rss = [], [], [], 0.0, 0.0
            for _ in range(args.rounds):
                jax_out, rss = run_measured([sys.executable, "-c", JAX_JOB, job])
                jax_ms.append(json.loads(jax_out)["ms"])
                jax_rss = max(jax_rss, rss)
                ours_out, rss = run_measured([
                    args.binary, "bench", "--json", "--device", "cpu", "--workloads", name,
                    "--dtype", dtype, "--runs", str(args.runs)])
                ours = json.loads(ours_out.strip().splitlines()[-1])
                hot.append(ours["hvp_batch_ms"])
                cold.append(ours["hvp_batch_cold_ms"])
                ours_rss = max(ours_rss, rss)
            jax_ms, hot, cold = median(jax_ms), median(hot), median(cold)
            gflops = 6 * k * fwd_flops(widths, n) / (cold / 1e3) / 1e9
            print(f"{name:<8} {dtype:<5} {ours['engine']:<12} {hot:>9.2f} {cold:>15.2f} {jax_ms:>9.2f} "
                  f"{jax_ms / cold:>9.2f} {gflops:>8.1f} {ours_rss:>13.0f} {jax_rss:>12.0f}",
                  flush=True)
    print("engine: fused-narrow / fused-wide (the fused MLP sweep) or tape; ours ms: a batch of K "
          "HVPs through the prepared operator (primal pass done once); ours+primal ms: the primal "
          "pass included, like JAX's jit(vmap(jvp(grad))) which recomputes it each call; JAX/ours "
          "uses ours+primal; GFLOP/s: cost model over ours+primal.")


if __name__ == "__main__":
    main()
