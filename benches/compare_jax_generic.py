"""Side-by-side CPU comparison of batched Hessian-vector products of generic functions:
curvature's PreparedHvp (compiled plan, and op by op with plans off) vs JAX (XLA CPU,
jit(vmap(jvp(grad)))).

The functions, sizes and K are those of `curvature::generic_functions` (src/generic_functions.rs):
rosenbrock (P = 100 000, K = 16), softmax_regression (X [1024, 784] . W [784, 10], K = 32),
residual_mlp (128 wide, n = 512, P = 34 048, K = 32), layernorm_mlp, logsumexp_loss and pinn
(a physics-informed loss with du/dx inside). Both sides draw every value (data, parameters,
probes) from the same counter-based SplitMix64 generator, bit for bit, so they compute the same
products: the first round compares them and prints the largest difference relative to the
largest entry of JAX's batch.

Usage (from the repository root):
    cargo build --release --example generic_hvp
    python3 benches/compare_jax_generic.py [--functions rosenbrock,softmax_regression,...]
        [--dtypes f32,f64] [--runs 10] [--rounds 3] [--markdown]

Needs `pip install "jax[cpu]"`. Each job runs in its own process (so peak RSS is per job) and
reports the median of --runs batches after warm-up; JAX, ours with the plan and ours op by op
alternate --rounds times, and the table shows the median over the rounds (a shared machine's
slow spells then hit every side alike) and the largest peak RSS.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

LAYER_NORM_EPS = 1e-5
DATA_X, DATA_Y, PARAMS, PROBES = 1, 2, 10, 99

# (samples, inputs, width, outputs, k), as GenericFunction::benchmark_sizes.
SIZES = {
    "rosenbrock": (1, 100_000, 1, 1, 16),
    "softmax_regression": (1024, 784, 1, 10, 32),
    "residual_mlp": (512, 128, 128, 10, 32),
    "layernorm_mlp": (512, 64, 128, 10, 32),
    "logsumexp_loss": (512, 64, 64, 100, 32),
    "pinn": (256, 1, 64, 1, 32),
}


def splitmix64(state):
    """SplitMix64's output function on a uint64 array (wrapping arithmetic)."""
    z = state + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed, count, lo, hi):
    """generic_functions::uniform: value i = lo + (hi - lo) * (splitmix64(seed * 2^40 + i) >> 11) * 2^-53."""
    index = np.arange(count, dtype=np.uint64) + np.uint64(seed << 40)
    unit = (splitmix64(index) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return lo + (hi - lo) * unit


def param_shapes(name, samples, inputs, width, outputs):
    return {
        "rosenbrock": [(inputs,)],
        "softmax_regression": [(inputs, outputs)],
        "residual_mlp": [(inputs, width), (width, width), (width, outputs)],
        "layernorm_mlp": [(inputs, width), (width,), (width, outputs), (outputs,)],
        "logsumexp_loss": [(inputs, width), (width, outputs)],
        "pinn": [(1, width), (width,), (width, width), (width,), (width, 1), (1,)],
    }[name]


def param_scale(name, shape):
    if name == "rosenbrock":
        return 1.0
    if name == "softmax_regression":
        return 0.01
    if len(shape) == 1:
        return 0.1
    return 1.0 / np.sqrt(float(shape[0]))


def build(name, sizes):
    """The parameters (f64 arrays), the data and the labels of GenericFunction::build."""
    samples, inputs, width, outputs, _ = sizes

    def tensor(seed, shape, scale):
        return uniform(seed, int(np.prod(shape)), -scale, scale).reshape(shape)

    params = [tensor(PARAMS + i, s, param_scale(name, s))
              for i, s in enumerate(param_shapes(name, *sizes[:4]))]
    data, labels = [], None
    if name == "softmax_regression":
        data = [tensor(DATA_X, (samples, inputs), 1.0)]
        labels = (7 * np.arange(samples)) % outputs
    elif name in ("residual_mlp", "layernorm_mlp"):
        data = [tensor(DATA_X, (samples, inputs), 1.0), tensor(DATA_Y, (samples, outputs), 1.0)]
    elif name == "logsumexp_loss":
        targets = uniform(DATA_Y, samples * outputs, 0.5, 1.5).reshape(samples, outputs)
        # Row sums in index order, as the Rust side adds them (cumsum is sequential).
        targets = targets / np.cumsum(targets, axis=1)[:, -1:]
        data = [tensor(DATA_X, (samples, inputs), 1.0), targets]
    elif name == "pinn":
        data = [tensor(DATA_X, (samples, 1), 1.0)]
    return params, data, labels


def jax_function(name, data, labels, jnp, jax):
    """The function of a parameter list, as GenericProblem::evaluate."""
    if name == "rosenbrock":
        def f(p):
            x = p[0]
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1.0) ** 2)
    elif name == "softmax_regression":
        x, rows = data[0], np.arange(len(labels))

        def f(p):
            return -jnp.mean(jax.nn.log_softmax(x @ p[0], axis=1)[rows, labels])
    elif name == "residual_mlp":
        x, y = data

        def f(p):
            h1 = jnp.tanh(x @ p[0])
            h2 = h1 + jnp.tanh(h1 @ p[1])
            return jnp.mean((h2 @ p[2] - y) ** 2)
    elif name == "layernorm_mlp":
        x, y = data

        def f(p):
            pre = x @ p[0] + p[1]
            centred = pre - jnp.mean(pre, axis=-1, keepdims=True)
            var = jnp.mean(centred ** 2, axis=-1, keepdims=True)
            h = jax.nn.gelu(centred * (var + LAYER_NORM_EPS) ** -0.5, approximate=False)
            return jnp.mean((h @ p[2] + p[3] - y) ** 2)
    elif name == "logsumexp_loss":
        x, t = data

        def f(p):
            z = jnp.tanh(x @ p[0]) @ p[1]
            return jnp.mean(jax.nn.logsumexp(z, axis=1)) - jnp.mean(jnp.sum(z * t, axis=1))
    elif name == "pinn":
        points = data[0][:, 0]

        def u(p, x):
            h1 = jnp.tanh(x * p[0][0] + p[1])
            h2 = jnp.tanh(h1 @ p[2] + p[3])
            return (h2 @ p[4] + p[5])[0]

        def f(p):
            values = jax.vmap(u, (None, 0))(p, points)
            du = jax.vmap(jax.grad(u, argnums=1), (None, 0))(p, points)
            return jnp.mean((du + values - jnp.cos(points)) ** 2)
    else:
        raise ValueError(name)
    return f


def jax_job(job):
    """Runs in a child process: times JAX's batch, optionally dumps it, prints one JSON line."""
    import time

    import jax
    if job["dtype"] == "f64":
        jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    import jax.flatten_util
    import jax.numpy as jnp

    name, sizes = job["function"], tuple(job["sizes"])
    dt = np.float64 if job["dtype"] == "f64" else np.float32
    params, data, labels = build(name, sizes)
    params = [jnp.asarray(p.astype(dt)) for p in params]
    data = [jnp.asarray(d.astype(dt)) for d in data]
    f = jax_function(name, data, labels, jnp, jax)
    theta, unravel = jax.flatten_util.ravel_pytree(params)
    k = sizes[4]
    probes = jnp.asarray(uniform(PROBES, k * theta.size, -1.0, 1.0).reshape(k, theta.size).astype(dt))
    g = jax.grad(lambda th: f(unravel(th)))
    hvp = jax.jit(jax.vmap(lambda v, th: jax.jvp(g, (th,), (v,))[1], in_axes=(0, None)))
    first = hvp(probes, theta).block_until_ready()
    if job.get("dump"):
        np.save(job["dump"], np.asarray(first))
    for _ in range(job["warmup"]):
        hvp(probes, theta).block_until_ready()
    times = []
    for _ in range(job["runs"]):
        start = time.perf_counter()
        hvp(probes, theta).block_until_ready()
        times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"ms": float(np.median(times)), "p": int(theta.size)}))


class JobFailed(Exception):
    """A job exited with an error; the message names it and gives the last line it printed."""


def run_measured(cmd):
    """Runs cmd, returns (its last stdout line as JSON, peak RSS in MiB of that process)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            last = (err.read().strip().splitlines() or ["(no message)"])[-1]
            raise JobFailed(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:5])}: {last}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def relative_difference(ours_file, jax_file):
    """max |ours - JAX| / max |JAX| over the whole [K, P] batch."""
    from safetensors.numpy import load_file
    ours = load_file(ours_file)["hvp"].astype(np.float64)
    theirs = np.load(jax_file).astype(np.float64)
    if ours.shape != theirs.shape:
        sys.exit(f"shape mismatch: ours {ours.shape}, JAX {theirs.shape}")
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def compare(name, dtype, args, scratch):
    sizes = SIZES[name]
    engines = ["plan", "op-by-op"]
    times = {"jax": [], "plan": [], "op-by-op": []}
    prepare, rss, diff = [], {key: 0.0 for key in times}, {}
    jax_dump = os.path.join(scratch, f"{name}-{dtype}-jax.npy")
    for round_index in range(args.rounds):
        dump = round_index == 0
        job = {"function": name, "sizes": sizes, "dtype": dtype, "runs": args.runs,
               "warmup": args.warmup, "dump": jax_dump if dump else None}
        out, peak = run_measured([sys.executable, __file__, "--jax-job", json.dumps(job)])
        times["jax"].append(out["ms"])
        rss["jax"] = max(rss["jax"], peak)
        for engine in engines:
            cmd = [args.binary, "--function", name, "--dtype", dtype, "--runs", str(args.runs),
                   "--warmup", str(args.warmup), "--engine", engine]
            ours_dump = os.path.join(scratch, f"{name}-{dtype}-{engine}.safetensors")
            if dump:
                cmd += ["--dump", ours_dump]
            out, peak = run_measured(cmd)
            if out["engine"] != engine:
                sys.exit(f"{name} {dtype}: {args.binary} ran {out['engine']}, expected {engine} "
                         "(a sweep plans cannot compile, or CURVATURE_PLAN=0 is set)")
            times[engine].append(out["ms"])
            rss[engine] = max(rss[engine], peak)
            if engine == "plan":
                prepare.append(out["prepare_ms"])
            if dump:
                diff[engine] = relative_difference(ours_dump, jax_dump)
    p = out["p"]
    return {"function": name, "dtype": dtype, "p": p, "k": sizes[4],
            **{key: median(v) for key, v in times.items()}, "prepare": median(prepare),
            "rss": rss, "diff": diff}


COLUMNS = ["function", "dtype", "P", "K", "plan ms", "op-by-op ms", "JAX ms", "JAX/plan",
           "JAX/op-by-op", "plan+primal ms", "plan/op-by-op/JAX RSS MiB", "rel diff plan, op-by-op"]


def row_cells(r):
    return [r["function"], r["dtype"], str(r["p"]), str(r["k"]), f"{r['plan']:.2f}",
            f"{r['op-by-op']:.2f}", f"{r['jax']:.2f}", f"{r['jax'] / r['plan']:.2f}",
            f"{r['jax'] / r['op-by-op']:.2f}", f"{r['plan'] + r['prepare']:.2f}",
            f"{r['rss']['plan']:.0f} / {r['rss']['op-by-op']:.0f} / {r['rss']['jax']:.0f}",
            f"{r['diff']['plan']:.1e}, {r['diff']['op-by-op']:.1e}"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", default=",".join(SIZES))
    parser.add_argument("--dtypes", default="f32,f64")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", default="target/release/examples/generic_hvp")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--jax-job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jax_job:
        jax_job(json.loads(args.jax_job))
        return
    for name in args.functions.split(","):
        if name not in SIZES:
            sys.exit(f"unknown function {name!r}, expected one of {', '.join(SIZES)}")
    widths = [22, 5, 7, 3, 9, 11, 9, 8, 12, 14, 25, 22]
    if args.markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join("---" for _ in COLUMNS) + "|")
    else:
        print(" ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(COLUMNS, widths))))
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.functions.split(","):
            for dtype in args.dtypes.split(","):
                try:
                    cells = row_cells(compare(name, dtype, args, scratch))
                except JobFailed as failure:
                    cells = [name, dtype] + ["-"] * (len(COLUMNS) - 3) + [f"failed: {failure}"]
                if args.markdown:
                    print("| " + " | ".join(cells) + " |", flush=True)
                else:
                    print(" ".join(c.rjust(w) if i > 1 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))), flush=True)
    print(f"ms: median over {args.rounds} rounds of the median of {args.runs} batches of K HVPs "
          "after warm-up; ours through PreparedHvp with the primal pass and its gradient graph "
          "recorded once (plan+primal ms adds that recording, which JAX's jit(vmap(jvp(grad))) "
          "redoes each call); JAX/plan > 1 means ours is faster; rel diff: max |ours - JAX| / "
          "max |JAX| over the first batch.")


if __name__ == "__main__":
    main()
