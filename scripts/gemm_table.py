#!/usr/bin/env python3
"""The side-by-side GEMM table of `scripts/gpu_check.sh run`: `curvature gemm --json` lines and
`benches/gemm_cublas.py` lines (same schema) matched by shape, dtype and precision.

    python3 scripts/gemm_table.py FILE...     a markdown table of every line in FILEs
    python3 scripts/gemm_table.py label NAME  copies one JSON line from stdin to stdout with
                                              "label": NAME added (the workload it comes from)
    python3 scripts/gemm_table.py --self-test checks this script on made-up lines

"ours / torch" is torch's median time over ours (above 1: ours is faster). A tf32x3 row is
compared with torch in fp32 (cuBLAS has no split-TF32 mode; that is the accuracy it matches).
The targets (4096³, f32): ieee ≥ 0.85× cuBLAS fp32; tf32 ≥ 0.6× cuBLAS TF32; tf32x3 faster
than our ieee. Lines that are not JSON objects of the schema are counted and skipped.
"""

import json
import sys

TARGET_SHAPE = (4096, 4096, 4096, 1)


def key(line):
    return (line["m"], line["n"], line["k"], line["batch"], line["dtype"], line["precision"])


def read_lines(texts):
    """(ours, torch, skipped): our lines in order, torch's by key, and the unusable count."""
    ours, torch, skipped = [], {}, 0
    for text in texts:
        for raw in text.splitlines():
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                key(line)
                impl = line["impl"]
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if impl == "curvature":
                ours.append(line)
            elif impl == "torch":
                torch[key(line)] = line
            else:
                skipped += 1
    return ours, torch, skipped


def fmt_ms(line):
    if line is None:
        return "—", "—"
    if "error" in line or not isinstance(line.get("ms"), (int, float)):
        return "error: " + str(line.get("error", "no time"))[:60], "—"
    return f"{line['ms']:.4f}", f"{line.get('tflops', 0.0):.2f}"


def ratio(ours, torch):
    try:
        if "error" in ours or "error" in torch:
            return None
        return torch["ms"] / ours["ms"]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def shape_text(line):
    batch = f" ×{line['batch']}" if line["batch"] != 1 else ""
    return f"{line['m']}×{line['n']}×{line['k']}{batch}"


def table(texts):
    """The markdown of the side-by-side table and the targets, from JSON-lines texts."""
    ours, torch, skipped = read_lines(texts)
    out = [
        "| workload | m×n×k | dtype | precision | tuned | ours ms | ours TFLOP/s | torch ms "
        "| torch TFLOP/s | ours / torch | plan |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    matched = set()
    for line in ours:
        k = key(line)
        comparator = k[:5] + ("ieee",) if k[5] == "tf32x3" else k
        other = torch.get(comparator)
        matched.add(comparator)
        r = ratio(line, other) if other else None
        ms, tf = fmt_ms(line)
        tms, ttf = fmt_ms(other)
        out.append(
            f"| {line.get('label', '')} | {shape_text(line)} | {k[4]} | {k[5]} "
            f"| {'yes' if line.get('tuned') else 'no'} | {ms} | {tf} | {tms} | {ttf} "
            f"| {'—' if r is None else f'{r:.2f}×'} | {line.get('plan', '')} |"
        )
    for k, line in torch.items():
        if k not in matched:
            tms, ttf = fmt_ms(line)
            out.append(
                f"| | {shape_text(line)} | {k[4]} | {k[5]} | | — | — | {tms} | {ttf} | — "
                f"| {line.get('plan', '')} |"
            )
    out.append("")
    out.extend(targets(ours, torch))
    if skipped:
        out.append(f"- {skipped} line(s) skipped: not JSON lines of the gemm schema")
    return "\n".join(out) + "\n"


def targets(ours, torch):
    """One line per target at 4096³ f32 (untuned rows): met, missed, or not measured."""
    def our(precision):
        for line in ours:
            if key(line) == TARGET_SHAPE + ("f32", precision) and not line.get("tuned"):
                return line
        return None

    lines = []
    for precision, bar, against in [("ieee", 0.85, "cuBLAS fp32"), ("tf32", 0.6, "cuBLAS TF32")]:
        mine, theirs = our(precision), torch.get(TARGET_SHAPE + ("f32", precision))
        r = ratio(mine, theirs) if mine and theirs else None
        lines.append(target_line(f"SGEMM 4096³ {precision} ≥ {bar}× {against}", r, bar))
    fast, plain = our("tf32x3"), our("ieee")
    r = ratio(fast, plain) if fast and plain else None
    lines.append(target_line("tf32x3 4096³ faster than our ieee", r, 1.0, strict=True))
    return lines


def target_line(what, r, bar, strict=False):
    if r is None:
        return f"- target {what}: not measured"
    met = r > bar if strict else r >= bar
    return f"- target {what}: {r:.2f}× — {'met' if met else 'MISSED'}"


def label(name):
    line = json.loads(sys.stdin.readline())
    line["label"] = name
    print(json.dumps(line))


def self_test():
    def line(impl, m, n, k, batch, dtype, precision, ms, **extra):
        d = {"bench": "gemm", "impl": impl, "m": m, "n": n, "k": k, "batch": batch,
             "dtype": dtype, "precision": precision, "ms": ms,
             "tflops": 2.0 * batch * m * n * k / (ms / 1e3) / 1e12, "plan": "p"}
        d.update(extra)
        return json.dumps(d)

    ours = "\n".join([
        line("curvature", 4096, 4096, 4096, 1, "f32", "ieee", 3.0, label="square"),
        line("curvature", 4096, 4096, 4096, 1, "f32", "tf32", 2.0),
        line("curvature", 4096, 4096, 4096, 1, "f32", "tf32x3", 2.5),
        line("curvature", 4096, 4096, 4096, 1, "f32", "ieee", 2.8, tuned=True),
        line("curvature", 10, 10, 1000, 141, "f32", "ieee", 0.02, label="seed"),
        line("curvature", 10, 1, 1000, 1, "f32", "ieee", 0.01, error="boom"),
        "not json",
        '{"impl": "curvature"}',
    ])
    torch = "\n".join([
        line("torch", 4096, 4096, 4096, 1, "f32", "ieee", 2.7),
        line("torch", 4096, 4096, 4096, 1, "f32", "tf32", 1.0),
        line("torch", 10, 10, 1000, 141, "f32", "ieee", 0.04),
        line("torch", 256, 256, 65536, 1, "f32", "ieee", 0.5),
    ])
    text = table([ours, torch])
    rows = [r for r in text.splitlines() if r.startswith("| ")]
    assert len(rows) == 1 + 7, text  # header, six of ours, torch's unmatched one
    assert "| square | 4096×4096×4096 | f32 | ieee | no | 3.0000 | 45.81 | 2.7000 | 50.90 | 0.90× |" in text, text
    assert "| 4096×4096×4096 | f32 | ieee | yes | 2.8000 |" in text and "| 0.96× |" in text, text
    # tf32x3 against torch's fp32: 2.7 / 2.5.
    assert "| f32 | tf32x3 | no | 2.5000 | 54.98 | 2.7000 | 50.90 | 1.08× |" in text, text
    assert "| seed | 10×10×1000 ×141 | f32 | ieee | no | 0.0200 |" in text and "| 2.00× |" in text, text
    assert "| error: boom | — |" in text, text
    assert "| | 256×256×65536 | f32 | ieee | | — | — | 0.5000 |" in text, text
    assert "- target SGEMM 4096³ ieee ≥ 0.85× cuBLAS fp32: 0.90× — met" in text, text
    assert "- target SGEMM 4096³ tf32 ≥ 0.6× cuBLAS TF32: 0.50× — MISSED" in text, text
    assert "- target tf32x3 4096³ faster than our ieee: 1.20× — met" in text, text
    assert "- 2 line(s) skipped" in text, text
    empty = table([""])
    assert "- target SGEMM 4096³ ieee ≥ 0.85× cuBLAS fp32: not measured" in empty, empty
    print("gemm_table.py self-test: ok")


def main(argv):
    if argv == ["--self-test"]:
        self_test()
        return 0
    if len(argv) == 2 and argv[0] == "label":
        label(argv[1])
        return 0
    if not argv or any(a.startswith("-") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    texts = []
    for path in argv:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                texts.append(f.read())
        except OSError as e:
            print(f"gemm_table.py: {path}: {e}", file=sys.stderr)
    sys.stdout.write(table(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
