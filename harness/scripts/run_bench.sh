#!/usr/bin/env bash
# run_bench.sh: the short benchmark of `make run` (called by run.sh after verification).
#
# On the bundled default (EVA02-CLIP-B-16 with random weights, the reference, fp32):
#   1. evabench bench, image tower at batches 1,2,4,8 and text tower at 1,8,32, appending records to
#      REPORTS_DIR/bench.jsonl;
#   2. evabench profile of both towers at batch 1 -> REPORTS_DIR/profile-<variant>.json (with the
#      GEMM ceiling measured on this machine);
#   3. plot_reports.py -> REPORTS_DIR/summary.md, throughput.png, profile-<variant>.png (matplotlib).
# About a minute on a 2-core machine. Environment overrides: EVA_BENCH_VARIANT,
# EVA_BENCH_IMAGE_BATCHES, EVA_BENCH_TEXT_BATCHES, EVA_BENCH_ITERS.
# usage: bash harness/scripts/run_bench.sh path/to/evabench [REPORTS_DIR]   (default: beside evabench)
# exit: 0 ok, else the failing step's status
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EVABENCH=${1:-$ROOT/build/evabench}
REPORTS=${2:-$(dirname "$EVABENCH")/reports}
VARIANT=${EVA_BENCH_VARIANT:-EVA02-CLIP-B-16}
IMG_BATCHES=${EVA_BENCH_IMAGE_BATCHES:-1,2,4,8}
TXT_BATCHES=${EVA_BENCH_TEXT_BATCHES:-1,8,32}
ITERS=${EVA_BENCH_ITERS:-3}
if [ ! -x "$EVABENCH" ]; then
  echo "run_bench.sh: $EVABENCH is not an executable (usage: bash harness/scripts/run_bench.sh build/evabench [REPORTS_DIR])" >&2
  exit 2
fi
mkdir -p "$REPORTS"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)

echo "== evabench bench: $VARIANT, reference fp32, random weights (image batches $IMG_BATCHES, text batches $TXT_BATCHES)"
"$EVABENCH" bench --variant "$VARIANT" --tower image --batch "$IMG_BATCHES" --warmup 1 --iters "$ITERS" \
  --jsonl "$REPORTS/bench.jsonl" || exit $?
echo
"$EVABENCH" bench --variant "$VARIANT" --tower text --batch "$TXT_BATCHES" --warmup 1 --iters "$ITERS" --quiet \
  --jsonl "$REPORTS/bench.jsonl" || exit $?
echo "== evabench profile: $VARIANT, both towers, batch 1"
"$EVABENCH" profile --variant "$VARIANT" --tower both --batch 1 --warmup 1 --iters "$ITERS" \
  --json "$REPORTS/profile-$VARIANT.json" | sed -n '1,4p;/tower, batch/,/^$/p' || exit $?
echo
if [ -z "$PY" ]; then
  echo "run_bench.sh: no python3: summary.md and the charts were not written" >&2
  exit 2
fi
"$PY" "$ROOT/harness/scripts/plot_reports.py" --reports "$REPORTS"
