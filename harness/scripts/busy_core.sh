#!/usr/bin/env bash
# busy_core.sh: how much slower the B/16 image forward gets when another process holds a core.
#
# Each round times `evabench bench --variant EVA02-CLIP-B-16 --tower image --batch BATCH` on
# THREADS threads twice, one after the other: once as the machine is, once with BUSY extra
# processes spinning at the same priority (`sh -c 'while :; do :; done'`, nice 0, started before
# and killed after that run). It prints each round's median forward times and their ratio, and the
# median ratio over the rounds (acceptance: <= 2.2 with one busy process on a 2-core host).
#
# usage: bash harness/scripts/busy_core.sh [path/to/evabench]
# env:   ROUNDS (default 3), ITERS (timed forwards, default 5), BATCH (default 1),
#        THREADS (default: all CPUs), BUSY (spinning processes, default 1)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case "${1:-}" in -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
EVABENCH=${1:-$ROOT/build/evabench}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
BATCH=${BATCH:-1}
THREADS=${THREADS:-$(nproc)}
BUSY=${BUSY:-1}
[ -x "$EVABENCH" ] || { echo "busy_core: $EVABENCH is not an executable (build first)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "busy_core: needs python3" >&2; exit 2; }

W=$(mktemp -d "${TMPDIR:-/tmp}/busy_core.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

run() { # run NAME: one bench, its median ms on stdout
  "$EVABENCH" bench --variant EVA02-CLIP-B-16 --tower image --batch "$BATCH" --warmup 1 --iters "$ITERS" \
    --threads "$THREADS" --quiet --json "$W/$1.json"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["median_ms"])' "$W/$1.json"
}

echo "B/16 image forward, batch $BATCH, $THREADS threads: as the machine is vs with $BUSY spinning process(es)"
printf '%-6s %12s %12s %7s\n' round "quiet ms" "busy ms" ratio
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  q=$(run "q$r")
  PIDS=()
  for _ in $(seq 1 "$BUSY"); do
    nice -n 0 sh -c 'while :; do :; done' &
    PIDS+=($!)
  done
  b=$(run "b$r")
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  ratio=$(python3 -c "print(f'{$b / $q:.2f}')")
  ratios+=("$ratio")
  printf '%-6s %12.1f %12.1f %7s\n' "$r" "$q" "$b" "$ratio"
done
python3 -c 'import statistics,sys; print(f"median ratio busy/quiet: {statistics.median(map(float, sys.argv[1:])):.2f}")' "${ratios[@]}"
