#!/usr/bin/env bash
# Regenerates every committed tiny golden under golden/tiny/ (deterministic: fixed seeds; rerunning
# gives byte-identical files with the same torch/open_clip/timm/numpy/h5py versions).
# Usage (repository root or anywhere):  bash golden/regen_tiny.sh
# Needs the golden env (bash golden/setup.sh). PYTHON overrides the interpreter.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="${PYTHON:-golden/.venv/bin/python}"
[ -x "$PY" ] || { echo "regen_tiny.sh: $PY not found; run: bash golden/setup.sh" >&2; exit 2; }
out=golden/tiny
mkdir -p "$out"
gen() { "$PY" golden/make_golden.py --out-dir "$out" "$@"; }
# family  images texts seed  extra weight files
gen --tiny eva01 --name eva01 --images 2 --texts 3 --seed 101 --extra-weights official
gen --tiny eva02 --name eva02 --images 3 --texts 4 --seed 102 --extra-weights f16,bf16,official
gen --tiny bige  --name bige  --images 2 --texts 3 --seed 103 --extra-weights official
gen --tiny 8b    --name 8b    --images 3 --texts 4 --seed 104 --extra-weights f16,bf16
gen --tiny 18b   --name 18b   --images 2 --texts 3 --seed 105 --extra-weights f16
# A real-input golden: a tiny EVA-02 with open_clip's 49408-token vocabulary (F16 weights; its
# random-input golden is replaced), then the golden of those weights on a committed test image and
# two captions, preprocessed and tokenized by open_clip (make_golden.py --weights).
gen --tiny eva02-vocab --name eva02-real --images 1 --texts 1 --seed 106 --dtype f16
"$PY" golden/make_golden.py --weights "$out/eva02-real.safetensors" --out-dir "$out" --name eva02-real \
    --image golden/parity/images/png_rgb_224x224.png \
    --text "a pink circle and green squares on rainbow stripes" "a photo of a cat."
# The same in float32 (compute_dtype float32: verify judges it with the fp32+golden32 rows).
"$PY" golden/make_golden.py --weights "$out/eva02-real.safetensors" --out-dir "$out" --name eva02-real32 \
    --image golden/parity/images/png_rgb_224x224.png \
    --text "a pink circle and green squares on rainbow stripes" "a photo of a cat." --compute-dtype float32
ls -l "$out"
