#!/usr/bin/env bash
# golden_dump_example.sh: golden/examples/dump_taps.py (forward hooks on open_clip's EVA-CLIP)
# and `evabench compare` on the committed tiny EVA-02 model, including the three-command check of
# the README (encode --taps / dump / compare). Needs the golden environment (golden/.venv, made
# by `make golden-env`); ctest label `golden`, run by `make test-golden`.
# Run by ctest as: bash tests/golden_dump_example.sh <evabench>.
# Exit 0 pass, 1 fail, 77 skip (only when golden/.venv does not exist).
set -u

EVABENCH=${1:?usage: golden_dump_example.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VPY=$SRC/golden/.venv/bin/python
if [ ! -x "$VPY" ]; then
  echo "SKIP: $VPY is missing (make golden-env creates it)"
  exit 77
fi
TINY=$SRC/golden/tiny
G=$TINY/eva02.h5
GW=$TINY/eva02.safetensors
DUMP=$SRC/golden/examples/dump_taps.py
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-dump-example.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}

fails=0
bad() { fails=$((fails + 1)); echo "FAIL: $*"; echo "  stdout: $(tail -c 1500 "$W/out")"; echo "  stderr: $(head -c 1500 "$W/err")"; }
py() { timeout "$TO" "$VPY" "$DUMP" "$@" >"$W/out" 2>"$W/err"; rc=$?; }
ev() { timeout "$TO" "$EVABENCH" "$@" >"$W/out" 2>"$W/err"; rc=$?; }
expect() { # expect <label> <rc> <py|ev> args...
  local label=$1 want=$2 how=$3; shift 3
  "$how" "$@"
  if [ "$rc" -ne "$want" ]; then bad "$label: exit $rc, expected $want"; return 1; fi
  if grep -qE 'Sanitizer|runtime error:' "$W/err"; then bad "$label: sanitizer report"; return 1; fi
  echo "ok   $label (exit $rc)"
}

expect "dump --help" 0 py --help
expect "dump float32 (upstream open_clip in float32)" 0 py --golden "$G" --weights "$GW" --out "$W/f32.h5"
NTAPS=$("$VPY" -c 'import h5py, sys; print(len(h5py.File(sys.argv[1])["acts"]))' "$G")
expect "float32 upstream passes against the float64 golden" 0 ev compare --golden "$G" --candidate "$W/f32.h5"
grep -qF "PASS: all $NTAPS taps in common" "$W/out" || bad "f32: not every golden tap compared"

# 18B family: post-norm blocks, RMSNorm, official-named weights
expect "dump tiny 18B (official-named weights)" 0 py --golden "$TINY/18b.h5" --weights "$TINY/18b.safetensors" \
  --out "$W/18b.h5"
expect "tiny 18B float32 upstream passes" 0 ev compare --golden "$TINY/18b.h5" --candidate "$W/18b.h5"

expect "dump bfloat16, stored as float16" 0 py --golden "$G" --weights "$GW" --dtype bfloat16 --store float16 \
  --out "$W/bf16.h5"
expect "bfloat16 run fails the fp32 tolerances" 1 ev compare --golden "$G" --candidate "$W/bf16.h5" --precision fp32
grep -q "first failing tap: " "$W/out" && grep -q "error from the first failing tap on" "$W/out" ||
  bad "bf16 at fp32: first failing tap / growth not shown"
expect "bfloat16 run against the bf16 tolerances (its precision attribute)" 0 ev compare --golden "$G" \
  --candidate "$W/bf16.h5"
grep -qF "bf16 tolerances" "$W/out" || bad "bf16: tolerances not taken from the dump's precision attribute"

expect "dump a subset of taps" 0 py --golden "$G" --weights "$GW" --taps visual.trunk.blocks.1,text.ln_final \
  --out "$W/subset.h5"
expect "a subset passes, the rest absent" 0 ev compare --golden "$G" --candidate "$W/subset.h5"
grep -qF "absent from the candidate ($((NTAPS - 2)) taps" "$W/out" || bad "subset: absent taps not listed"

# The three commands of the README: our reference as the golden, upstream as the port.
expect "1/3 encode --taps" 0 ev encode --weights "$GW" --inputs "$G" --taps --out "$W/golden.h5"
expect "2/3 dump" 0 py --golden "$W/golden.h5" --weights "$GW" --out "$W/mine.h5"
expect "3/3 compare" 0 ev compare --golden "$W/golden.h5" --candidate "$W/mine.h5" --report "$W/r.md"
grep -qF "| result | **PASS**" "$W/r.md" || bad "three commands: report"

echo
echo "$fails failures"
[ "$fails" -eq 0 ]
