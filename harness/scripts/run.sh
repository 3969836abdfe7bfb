#!/usr/bin/env bash
# run.sh: the main job behind `make run`:
#   bash harness/scripts/run.sh build/evabench [REPORTS_DIR]      (default REPORTS_DIR: build/reports)
#
# 1. Verifies every committed tiny golden (golden/tiny/*.h5) with the plain-C reference, writing
#    REPORTS_DIR/verify-<name>.md and .json (reports/README.md), and prints a summary table.
# 2. A short benchmark and profile with their summary and charts (run_bench.sh).
# It writes nothing outside REPORTS_DIR, so the source tree stays as it was; keep a run in the
# repository with harness/scripts/keep_reports.sh.
# Exit status: 0 when every golden passes, 1 when one fails, 2 on bad usage.
set -uo pipefail

EVABENCH=${1:-build/evabench}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPORTS=${2:-$(dirname "$EVABENCH")/reports}
if [ ! -x "$EVABENCH" ]; then
  echo "run.sh: $EVABENCH is not an executable (usage: bash harness/scripts/run.sh build/evabench [REPORTS_DIR])" >&2
  exit 2
fi
mkdir -p "$REPORTS"

shopt -s nullglob
goldens=("$ROOT"/golden/tiny/*.h5)
if [ ${#goldens[@]} -eq 0 ]; then
  echo "run.sh: no goldens in golden/tiny/ (expected the committed *.h5 files)" >&2
  exit 1
fi

status=0
summary=()
echo "== evabench verify: ${#goldens[@]} tiny goldens, --impl ref --precision fp32"
for g in "${goldens[@]}"; do
  name=$(basename "$g" .h5)
  md="$REPORTS/verify-$name.md"
  js="$REPORTS/verify-$name.json"
  log=$(mktemp)
  t0=$(date +%s.%N)
  "$EVABENCH" verify --golden "$g" --impl ref --precision fp32 --report "$md" --json "$js" >"$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  taps=$(grep -cE ' (pass|FAIL|N/A)' "$log" || true)
  case $rc in
    0) verdict=PASS ;;
    1) verdict=FAIL; status=1 ;;
    *) verdict="ERROR($rc)"; status=1 ;;
  esac
  first=$(sed -n 's/.*first failing tap: //p' "$log" | head -1)
  [ $rc -ge 2 ] && first=$(tail -1 "$log")
  summary+=("$(printf '%-10s %-7s %5s %8s  %s' "$name" "$verdict" "$taps" "$secs" "$first")")
  if [ $rc -ne 0 ]; then cat "$log" >&2; fi
  rm -f "$log"
done
echo
printf '%-10s %-7s %5s %8s  %s\n' golden verdict taps seconds "first failing tap"
for line in "${summary[@]}"; do echo "$line"; done
echo
echo "reports: $REPORTS/verify-<golden>.md and .json"

# ---- benchmark: validate first (above), then time ------------------------------------------------
echo
bash "$(dirname "${BASH_SOURCE[0]}")/run_bench.sh" "$EVABENCH" "$REPORTS" || status=$?

exit $status
