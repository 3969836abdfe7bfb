#!/usr/bin/env bash
# cli_real_golden.sh: goldens of a user's checkpoint and inputs (make_golden.py --weights FILE
# --image ... --text ...) are reproducible and format-independent, and verify passes them.
#   1. golden/tiny/eva02-real.h5 is remade from its committed F16 weights, image and captions:
#      every dataset (/inputs, /acts) equal bit for bit to the committed file;
#   2. the same weights given as an official-style .pt (torch.save) give the same golden;
#   3. evabench verify passes the remade golden at every tap.
# Needs the golden environment (golden/.venv: torch, open_clip, timm; bash golden/setup.sh);
# without it the test reports itself skipped (exit 77).
# Run by ctest as: bash tests/cli_real_golden.sh <evabench>. Exit 0 pass, 1 fail, 77 skip.
set -u

EVABENCH=${1:?usage: cli_real_golden.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PY=${EVA_GOLDEN_PYTHON:-$SRC/golden/.venv/bin/python}
if [ ! -x "$PY" ] || ! "$PY" -c 'import open_clip, timm, torch, h5py' 2>/dev/null; then
  echo "SKIP: the golden environment ($PY with torch, open_clip, timm, h5py) is needed: bash golden/setup.sh"
  exit 77
fi
T=$SRC/golden/tiny
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-realgolden.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-600}
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
IMG=$SRC/golden/parity/images/png_rgb_224x224.png
C1="a pink circle and green squares on rainbow stripes"
C2="a photo of a cat."

same_golden() { # committed remade
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
other = []
b.visititems(lambda n, o: other.append(n) if isinstance(o, h5py.Dataset) else None)
if sorted(names) != sorted(other):
    print("datasets differ"); sys.exit(1)
bad = [n for n in names if not np.array_equal(a[n][:], b[n][:])]
for k in ("config", "compute_dtype", "texts", "images"):
    if a.attrs[k] != b.attrs[k]:
        bad.append("attribute " + k)
if bad:
    print("differ: " + ", ".join(bad[:6])); sys.exit(1)
PYEOF
}

# 1. from the committed safetensors
if timeout "$TO" "$PY" "$SRC/golden/make_golden.py" --weights "$T/eva02-real.safetensors" --out-dir "$W" \
     --name remade --image "$IMG" --text "$C1" "$C2" >"$W/log" 2>&1; then
  if out=$(same_golden "$T/eva02-real.h5" "$W/remade.h5"); then echo "ok: golden remade from the safetensors equals golden/tiny/eva02-real.h5"
  else fail "remade golden: $out"; fi
else fail "make_golden.py --weights: $(tail -3 "$W/log")"; fi

# 2. from the same weights pickled with torch.save (official .pt style)
"$PY" - "$T/eva02-real.safetensors" "$W/eva02-real.pt" <<'PYEOF' || fail "could not write the .pt"
import sys, torch
from safetensors.torch import load_file
torch.save(load_file(sys.argv[1]), sys.argv[2])
PYEOF
if timeout "$TO" "$PY" "$SRC/golden/make_golden.py" --weights "$W/eva02-real.pt" --config <(
     "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['config'])" "$T/eva02-real.h5") \
     --out-dir "$W" --name frompt --image "$IMG" --text "$C1" "$C2" >"$W/log" 2>&1; then
  if out=$(same_golden "$T/eva02-real.h5" "$W/frompt.h5"); then echo "ok: golden made from a .pt of the same weights is the same"
  else fail "golden from .pt: $out"; fi
else fail "make_golden.py --weights X.pt: $(tail -3 "$W/log")"; fi

# 3. verify at every tap
if [ -f "$W/remade.h5" ]; then
  if timeout "$TO" "$EVABENCH" verify --golden "$W/remade.h5" >"$W/v.txt" 2>&1; then
    echo "ok: verify: $(tail -1 "$W/v.txt")"
  else fail "verify of the remade golden: $(tail -3 "$W/v.txt")"; fi
fi

if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "PASS: real-input goldens"
