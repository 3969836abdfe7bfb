#!/usr/bin/env bash
# cli_hostile_h5.sh: every file of tests/data/hostile_h5/ (HDF5 files that crash, hang or
# over-allocate inside libhdf5 1.10, found by fuzz/fuzz_golden, and hand-made ones from
# fuzz/make_hostile_h5.py) given to each command that reads a user's HDF5 file: verify --golden,
# encode --inputs, compare --candidate and compare --golden. Each run must end within 30 s with
# exit 0, 1 or 2, never a signal, with a message on stderr when it fails; fill_value.h5 must stay
# under 300 MB of peak RSS above the process's baseline (GNU time, when installed; the baseline is
# the peak RSS of `evabench info --json` in the same build: the linked CUDA libraries and the
# sanitizers' shadow memory alone take about 350 MB there, 10 MB in a plain build).
# Run by ctest as: bash tests/cli_hostile_h5.sh <evabench>. Exit 0 pass, 1 fail.
set -u
EVABENCH=${1:?usage: cli_hostile_h5.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DATA=$SRC/tests/data/hostile_h5
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-hostile.XXXXXX")
trap 'rm -rf "$W"' EXIT
# The guarded reader's wall-clock limit: a hanging file costs this much per run.
export EVABENCH_H5_TIMEOUT=${EVABENCH_H5_TIMEOUT:-3}
fails=0 runs=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check NAME FILE CMD...: runs CMD with a 30 s limit and checks how it ended (a failure must
# print a message naming FILE).
check() {
  local name=$1 file=$2; shift 2
  local t0 t1 rc
  t0=$(date +%s%N)
  timeout -s KILL 30 "$@" >"$W/out" 2>"$W/err"
  rc=$?
  t1=$(date +%s%N)
  runs=$((runs + 1))
  local ms=$(((t1 - t0) / 1000000))
  if [ $rc -gt 2 ]; then
    fail "$name: exit $rc after $ms ms (want 0, 1 or 2): $(head -c 400 "$W/err")"
  elif [ $rc -ne 0 ] && ! tail -n 1 "$W/err" | grep -qF -- "$file"; then
    fail "$name: exit $rc without a message naming $file: $(tail -n 1 "$W/err")"
  elif grep -q "Sanitizer" "$W/err" && ! grep -q "libhdf5 crashed" "$W/err"; then
    fail "$name: sanitizer report outside the guarded reader: $(head -c 400 "$W/err")"
  fi
  printf '%-48s exit %d  %6d ms  %s\n' "$name" "$rc" "$ms" "$(tail -n 1 "$W/err" | cut -c1-110)"
}

n=0
for f in "$DATA"/*; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  b=$(basename "$f")
  check "verify $b" "$b" "$EVABENCH" verify --golden "$f"
  check "encode $b" "$b" "$EVABENCH" encode --weights "$SRC/golden/tiny/eva02.safetensors" --inputs "$f" \
    --out "$W/out.h5"
  check "compare candidate $b" "$b" "$EVABENCH" compare --golden "$SRC/golden/tiny/eva02.h5" --candidate "$f"
  check "compare golden $b" "$b" "$EVABENCH" compare --golden "$f" --candidate "$SRC/golden/tiny/eva02.h5"
done
[ "$n" -ge 10 ] || fail "expected at least 10 hostile files in $DATA, found $n"

# Peak memory of the fill-value file (chunked pixel_values [1,3,9459,9459], nothing stored).
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f '%M' -o "$W/rss" "$EVABENCH" info --json >/dev/null 2>&1
  base=$(tail -n 1 "$W/rss")
  echo "baseline (evabench info --json): peak RSS $((base / 1024)) MB"
  for cmd in verify encode compare; do
    case $cmd in
      verify) args=(verify --golden "$DATA/fill_value.h5") ;;
      encode) args=(encode --weights "$SRC/golden/tiny/eva02.safetensors" --inputs "$DATA/fill_value.h5" --out "$W/o.h5") ;;
      compare) args=(compare --golden "$SRC/golden/tiny/eva02.h5" --candidate "$DATA/fill_value.h5") ;;
    esac
    /usr/bin/time -f '%M' -o "$W/rss" "$EVABENCH" "${args[@]}" >/dev/null 2>&1
    kb=$(tail -n 1 "$W/rss")
    echo "fill_value.h5 $cmd: peak RSS $((kb / 1024)) MB, $(((kb - base) / 1024)) MB above the baseline"
    [ $((kb - base)) -lt 307200 ] || fail "fill_value.h5 $cmd: peak RSS $kb KB, $((kb - base)) KB above the baseline: over 300 MB"
  done
else
  echo "note: /usr/bin/time not installed, peak RSS of fill_value.h5 not measured"
fi

echo "$runs runs on $n files, $fails failures"
[ $fails -eq 0 ] || exit 1
exit 0
