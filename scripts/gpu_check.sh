#!/usr/bin/env bash
# The checks a lent GPU machine (no cargo, no network) runs, from binaries built here.
#
#   scripts/gpu_check.sh prepare [--anchor PATH/hvp_anchor.py]
#       on a build machine: builds the release binary and every test binary, and copies the
#       curvature binary, the test binaries that have CUDA tests (stripped) and the anchor
#       script into gpu_bundle/ (git-ignored).
#   scripts/gpu_check.sh run
#       on the GPU machine, from the repository root (tests/data is read from there): GPU and
#       driver info; every CUDA test with CURVATURE_REQUIRE_GPU=1, binaries in parallel; the
#       benchmark twice with its work counters; the JAX and PyTorch anchors in the same run
#       (when python3 has them); the GEMM side by side: `curvature gemm` and torch.matmul
#       (cuBLAS, benches/gemm_cublas.py) on 4096³ in every precision and 16-bit dtype and on the
#       workloads' GEMM shapes, ours also autotuned (CURVATURE_GEMM_TUNE=1), as a table with
#       ratios and the SGEMM targets (scripts/gemm_table.py); compute-sanitizer's memcheck, racecheck, synccheck and
#       initcheck on the kernel tests (when installed); the NCCL back end with one rank (when
#       libnccl is installed; the summary says whether it ran). Logs and summary.md go to $OUT
#       (default gpu_bundle/out). Everything is bounded to finish in under 10 minutes.
#   scripts/gpu_check.sh gemm
#       only the GEMM side by side of `run`, into $OUT/summary.md.
# CURVATURE_GPU_BUNDLE names another bundle directory than gpu_bundle/.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle="${CURVATURE_GPU_BUNDLE:-gpu_bundle}"

prepare() {
    local anchor=""
    if [ "${1:-}" = "--anchor" ]; then
        anchor="${2:?--anchor needs a path}"
    fi
    set -e
    cargo build --release
    rm -rf "$bundle" && mkdir -p "$bundle/tests"
    cp target/release/curvature "$bundle/"
    cargo test --release --workspace --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])
' | while read -r exe; do
        # Only binaries that hold CUDA tests travel (the carry limit is 64 MiB).
        if "$exe" --list 2>/dev/null | grep -qiE 'cuda|_emulated|_nvrtc'; then
            name=$(basename "$exe" | sed 's/-[0-9a-f]*$//')
            crate=$(echo "$exe" | sed 's|.*/deps/||')
            cp "$exe" "$bundle/tests/${name}__${crate##*-}"
        fi
    done
    strip "$bundle/curvature" "$bundle"/tests/* 2>/dev/null || true
    if [ -n "$anchor" ]; then
        cp "$anchor" "$bundle/hvp_anchor.py"
    fi
    cp benches/gemm_cublas.py scripts/gemm_table.py "$bundle/"
    du -sh "$bundle"
    ls "$bundle/tests"
}

run() {
    local out="${OUT:-$bundle/out}"
    mkdir -p "$out"
    local summary="$out/summary.md"
    export CURVATURE_REQUIRE_GPU=1
    export CURVATURE_TEST_DATA="$PWD/tests/data"
    export CURVATURE_BIN="$(cd "$bundle" && pwd)/curvature"
    echo "# GPU check" >"$summary"

    { nvidia-smi || echo "nvidia-smi missing"; } >"$out/gpu.txt" 2>&1
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)" >>"$summary"

    # The NCCL back end's one-rank test (in the `nccl` binary, also run below with the CUDA
    # tests): required, and reported, only where libnccl can be loaded.
    local nccl_pip
    nccl_pip="$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)/nvidia/nccl/lib"
    if [ -d "$nccl_pip" ]; then
        export LD_LIBRARY_PATH="$nccl_pip:${LD_LIBRARY_PATH:-}"
    fi
    if ldconfig -p 2>/dev/null | grep -q 'libnccl\.so' || ls "$nccl_pip"/libnccl.so* >/dev/null 2>&1; then
        export CURVATURE_REQUIRE_NCCL=1
        echo "- NCCL: libnccl found, the one-rank NCCL test is required (nccl__* below)" >>"$summary"
    else
        echo "- NCCL: libnccl not found, the one-rank NCCL test did not run (it skips)" >>"$summary"
    fi

    # Every CUDA test, one binary per job, in parallel.
    ls "$bundle"/tests/* | xargs -P 8 -I{} sh -c \
        'timeout 300 "{}" cuda --test-threads 1 >"'"$out"'/$(basename {}).log" 2>&1; echo "$? $(basename {})"' \
        >"$out/tests.status"
    echo "- CUDA test binaries (exit status, name):" >>"$summary"
    sed 's/^/  - /' "$out/tests.status" >>"$summary"
    grep -h "^test result" "$out"/*.log | awk '{p+=$4; f+=$6} END {print "- CUDA tests: " p " passed, " f " failed"}' >>"$summary"

    # The benchmark twice, with its work counters (JSON lines).
    for i in 1 2; do
        timeout 240 "$CURVATURE_BIN" bench --device cuda --runs 10 --json >"$out/bench$i.json" 2>"$out/bench$i.err"
        echo "- bench run $i (exit $?):" >>"$summary"
        sed 's/^/  - /' "$out/bench$i.json" >>"$summary"
    done

    # The anchors, on the same GPU in the same run.
    if [ -f "$bundle/hvp_anchor.py" ]; then
        timeout 240 python3 "$bundle/hvp_anchor.py" seed,mid,large torch,jax >"$out/anchors.json" 2>"$out/anchors.err"
        echo "- anchors (exit $?):" >>"$summary"
        sed 's/^/  - /' "$out/anchors.json" >>"$summary"
    fi

    gemm_side_by_side "$out" "$summary"

    # compute-sanitizer on the kernel tests.
    if command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck synccheck initcheck; do
            for exe in "$bundle"/tests/elementwise__* "$bundle"/tests/reduce__* "$bundle"/tests/matmul__*; do
                [ -e "$exe" ] || continue
                timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$exe" cuda --test-threads 1 \
                    >"$out/sanitizer-$tool-$(basename "$exe").log" 2>&1
                echo "- compute-sanitizer $tool $(basename "$exe"): exit $?" >>"$summary"
            done
        done
    else
        echo "- compute-sanitizer: not installed" >>"$summary"
    fi
    cat "$summary"
}

# The GEMM cases of the side-by-side table: label m n k batch dtype precision.
GEMM_CASES="
square 4096 4096 4096 1 f32 ieee
square 4096 4096 4096 1 f32 tf32
square 4096 4096 4096 1 f32 tf32x3
square 4096 4096 4096 1 f16 ieee
square 4096 4096 4096 1 bf16 ieee
seed 10 10 1000 1 f32 ieee
seed 10 1 1000 1 f32 ieee
seed 10 10 1000 141 f32 ieee
mid 65536 256 256 1 f32 ieee
mid 256 256 65536 1 f32 ieee
mid 65536 256 256 1 f32 tf32
mid 256 256 65536 1 f32 tf32
large 16384 4096 4096 1 f32 ieee
large 4096 4096 16384 1 f32 ieee
large 16384 4096 4096 1 f32 tf32
large 4096 4096 16384 1 f32 tf32
"

# `curvature gemm` (table rule, then autotuned) and torch.matmul on every case in the same
# run; the table and the targets into the summary. Ours stop starting new cases after 200 s
# and torch's are bounded to 90 s, so the section takes at most about 5 minutes.
gemm_side_by_side() {
    local out="$1" summary="$2" table="$bundle/gemm_table.py"
    local ours="$out/gemm_ours.json" torch_cases=()
    : >"$ours"
    export CURVATURE_GEMM_TUNE_FILE="$out/gemm-tune.txt"
    local deadline=$((SECONDS + 200))
    echo "$GEMM_CASES" | while read -r label m n k batch dtype precision; do
        [ -n "$label" ] || continue
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "ours: stopped before $m×$n×$k ×$batch $dtype $precision (time bound)" >>"$out/gemm_ours.err"
            break
        fi
        for tune in 0 1; do
            CURVATURE_GEMM_TUNE=$tune timeout 60 "$CURVATURE_BIN" gemm --m "$m" --n "$n" --k "$k" \
                --batch "$batch" --dtype "$dtype" --precision "$precision" --device cuda --runs 10 \
                --json 2>>"$out/gemm_ours.err" | python3 "$table" label "$label" >>"$ours" 2>>"$out/gemm_ours.err"
        done
    done
    while read -r label m n k batch dtype precision; do
        # cuBLAS has no split-TF32 mode: our tf32x3 rows are set beside its fp32 ones.
        [ -n "$label" ] && [ "$precision" != tf32x3 ] && torch_cases+=("$m,$n,$k,$batch,$dtype,$precision")
    done <<<"$GEMM_CASES"
    timeout 90 python3 "$bundle/gemm_cublas.py" --runs 10 "${torch_cases[@]}" \
        >"$out/gemm_torch.json" 2>"$out/gemm_torch.err"
    echo "- GEMM side by side (torch exit $?; ours/torch above 1: ours faster):" >>"$summary"
    echo >>"$summary"
    python3 "$table" "$ours" "$out/gemm_torch.json" >>"$summary" 2>&1
    echo >>"$summary"
}

case "${1:-}" in
prepare) shift && prepare "$@" ;;
run) run ;;
gemm)
    out="${OUT:-$bundle/out}"
    mkdir -p "$out"
    CURVATURE_BIN="$bundle/curvature" gemm_side_by_side "$out" "$out/summary.md"
    cat "$out/summary.md"
    ;;
*) echo "usage: $0 prepare [--anchor PATH] | run | gemm" >&2 && exit 2 ;;
esac
