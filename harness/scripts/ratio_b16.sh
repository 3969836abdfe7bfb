#!/usr/bin/env bash
# ratio_b16.sh: the plain-C reference against PyTorch on the same machine, in one run.
#
# Times the EVA02-CLIP-B-16 image tower at batch 1, fp32, random weights, through
#   - the reference:  evabench bench --variant EVA02-CLIP-B-16 --batch 1 (all CPUs, OpenMP), and
#   - PyTorch eager:  harness/bench_torch_cpu.py in the golden environment (torch 1.13 CPU,
#                     open_clip 2.24, timm 1.0.3; built with `bash golden/setup.sh` if missing),
#                     with the reference's thread count split the better of two ways (torch
#                     intra-op threads x BLAS threads: all x 1 or 1 x all; both measured each round),
# alternating the two ROUNDS times (so that a change of machine load hits both), and prints the
# ratio of the median times (C / PyTorch; the target is at most 1.0: as fast as PyTorch eager).
#
# PyTorch's fp32 matmuls go to the system BLAS. Debian's default libblas.so.3 is the reference
# (netlib) BLAS, ~50x slower than an optimised one, which would flatter the C reference; so
# PyTorch runs with OpenBLAS (libopenblas0-pthread) through LD_LIBRARY_PATH, without changing the
# system's BLAS alternative. If OpenBLAS is missing it is installed (as root) and the alternative
# is put back as it was; without it the ratio is printed with a warning.
#
# usage: bash harness/scripts/ratio_b16.sh [path/to/evabench] [--json OUT.json]
# env:   ITERS (timed forwards per round, default 10), WARMUP (default 2), ROUNDS (default 3),
#        THREADS (default: all CPUs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EVABENCH=""
JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT=${2:?--json needs a path}; shift 2 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) EVABENCH=$1; shift ;;
  esac
done
EVABENCH=${EVABENCH:-$ROOT/build/evabench}
ITERS=${ITERS:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}

if [ ! -x "$EVABENCH" ]; then
  echo "ratio_b16: $EVABENCH not found; building (cmake -S . -B build)" >&2
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$ROOT/build" -j "$(nproc)" >/dev/null
  EVABENCH=$ROOT/build/evabench
fi
PY=$ROOT/golden/.venv/bin/python
if ! "$PY" -c "import torch, open_clip, timm" 2>/dev/null; then
  echo "ratio_b16: golden environment missing; running golden/setup.sh" >&2
  bash "$ROOT/golden/setup.sh" >&2
fi

# ---- an optimised BLAS for PyTorch, without changing the system default ----------------------
OB_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ ! -f "$OB_DIR/libblas.so.3" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  prev_blas=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || true)
  prev_lapack=$(readlink -f /etc/alternatives/liblapack.so.3-x86_64-linux-gnu 2>/dev/null || true)
  echo "ratio_b16: installing libopenblas0-pthread for PyTorch's BLAS" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas0-pthread >&2 || true
  [ -n "$prev_blas" ] && update-alternatives --set libblas.so.3-x86_64-linux-gnu "$prev_blas" >/dev/null 2>&1 || true
  [ -n "$prev_lapack" ] && update-alternatives --set liblapack.so.3-x86_64-linux-gnu "$prev_lapack" >/dev/null 2>&1 || true
fi
if [ -f "$OB_DIR/libblas.so.3" ]; then
  TORCH_ENV=(env "LD_LIBRARY_PATH=$OB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  BLAS="OpenBLAS ($OB_DIR)"
else
  TORCH_ENV=(env)
  BLAS="system libblas.so.3 ($(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown))"
  echo "ratio_b16: WARNING: no OpenBLAS; PyTorch uses $BLAS, which may be the slow reference BLAS" >&2
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/ratio_b16.XXXXXX")
trap 'rm -rf "$W"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  echo "ratio_b16: round $r/$ROUNDS: reference..." >&2
  "$EVABENCH" bench --variant EVA02-CLIP-B-16 --tower image --batch 1 --warmup "$WARMUP" --iters "$ITERS" \
    --threads "$THREADS" --quiet --json "$W/c$r.json"
  # PyTorch at its better thread split: torch intra-op threads x BLAS threads = THREADS either way
  # (both at THREADS oversubscribes the cores and is slower, so it is not tried)
  echo "ratio_b16: round $r/$ROUNDS: PyTorch (torch $THREADS threads, BLAS 1)..." >&2
  "${TORCH_ENV[@]}" OPENBLAS_NUM_THREADS=1 "$PY" "$ROOT/harness/scripts/bench_torch_cpu.py" --model EVA02-B-16 --batch 1 \
    --warmup "$WARMUP" --iters "$ITERS" --threads "$THREADS" > "$W/ta$r.json"
  echo "ratio_b16: round $r/$ROUNDS: PyTorch (torch 1 thread, BLAS $THREADS)..." >&2
  "${TORCH_ENV[@]}" OPENBLAS_NUM_THREADS="$THREADS" "$PY" "$ROOT/harness/scripts/bench_torch_cpu.py" --model EVA02-B-16 \
    --batch 1 --warmup "$WARMUP" --iters "$ITERS" --threads 1 > "$W/tb$r.json"
  python3 - "$W/ta$r.json" "$W/tb$r.json" "$THREADS" > "$W/t$r.json" <<'PYEOF'
import json, sys
a, b = (json.loads(open(p).read()) for p in sys.argv[1:3])
a["blas_threads"], b["blas_threads"] = 1, int(sys.argv[3])
best = a if a["median_ms"] <= b["median_ms"] else b
best["other_split_median_ms"] = (b if best is a else a)["median_ms"]
print(json.dumps(best))
PYEOF
done

python3 - "$W" "$ROUNDS" "$BLAS" "$JSON_OUT" <<'PYEOF'
import json, statistics, sys
w, rounds, blas, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = [json.load(open(f"{w}/c{r}.json"))[0] for r in range(1, rounds + 1)]
t = [json.loads(open(f"{w}/t{r}.json").read()) for r in range(1, rounds + 1)]
cm = statistics.median(x["median_ms"] for x in c)
tm = statistics.median(x["median_ms"] for x in t)
ratio = cm / tm
print("EVA02-CLIP-B-16 image tower, batch 1, fp32, random weights, %d rounds x %d timed forwards" % (rounds, c[0]["iters"]))
print("  C reference : %9.1f ms  (per-round medians %s; %d threads; %s; gemm %s)" % (
    cm, ", ".join("%.1f" % x["median_ms"] for x in c), c[0]["host"]["omp_threads"], c[0]["build"]["flags"],
    c[0]["build"]["gemm_kernel"]))
print("  PyTorch     : %9.1f ms  (per-round medians %s, each the better of two thread splits: %s; torch %s eager, "
      "BLAS %s)" % (tm, ", ".join("%.1f" % x["median_ms"] for x in t),
                    ", ".join("torch %d x BLAS %d threads (other split %.1f ms)" % (x["threads"], x["blas_threads"],
                              x["other_split_median_ms"]) for x in t), t[0]["torch"], blas))
print("  device      : %s" % c[0]["device"])
print("ratio C/PyTorch = %.3f  (target <= 1.0: %s)" % (ratio, "met" if ratio <= 1.0 else "not met"))
if out:
    json.dump({"schema": "evabench-ratio/1", "variant": "EVA02-CLIP-B-16", "tower": "image", "batch": 1,
               "precision": "fp32", "c_median_ms": cm, "torch_median_ms": tm, "ratio": ratio,
               "torch_blas": blas, "rounds": rounds, "c_records": c, "torch_records": t}, open(out, "w"), indent=1)
PYEOF
