#!/usr/bin/env bash
# cli_inputs.sh: `evabench tokenize` and `evabench preprocess` end to end: output format
# of tokenize (lines and --json), the /pixel_values file of preprocess (shape, argument order,
# values against open_clip's crops via python3+h5py when available), and the refusals: corrupt,
# truncated, empty, not-an-image and decompression-bomb images, bad options -> exit status 2 and
# one stderr line naming the file or option, no sanitizer report, bounded time.
# Run by ctest as: bash tests/cli_inputs.sh <evabench>. Exit 0 pass, 1 fail.
set -u
EVABENCH=${1:?usage: cli_inputs.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
IMG=$SRC/golden/parity/images
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-inputs.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-120}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# refuse CMD... : expects exit 2 and a single stderr line containing $WANT
refuse() {
  local want=$1; shift
  timeout "$TO" "$EVABENCH" "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  local lines; lines=$(wc -l <"$W/err")
  if [ $rc -ne 2 ]; then fail "'$*' exited $rc, want 2 ($(head -c 300 "$W/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then fail "'$*' printed $lines stderr lines, want 1: $(head -c 600 "$W/err")"; return; fi
  grep -qF -- "$want" "$W/err" || fail "'$*': message does not name '$want': $(cat "$W/err")"
}

# ---- tokenize --------------------------------------------------------------------------------------
out=$(timeout "$TO" "$EVABENCH" tokenize "a photo of a cat." "don't stop") || fail "tokenize exited $?"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "tokenize: want 2 lines"
first=$(echo "$out" | head -n1)
[ "$(echo "$first" | wc -w)" -eq 77 ] || fail "tokenize: want 77 ids per line"
case "$first" in "49406 320 1125 539 320 2368 269 49407 0 "*) ;; *) fail "tokenize ids: $first";; esac
out=$(timeout "$TO" "$EVABENCH" tokenize --json --context-length 8 "a b c d e f g h i" "x") || fail "tokenize --json exited $?"
[ "$out" = "[[49406,320,321,322,323,324,325,49407],[49406,343,49407,0,0,0,0,0]]" ] || fail "tokenize --json: $out"
out=$(timeout "$TO" "$EVABENCH" tokenize -- "--not-an-option") || fail "tokenize -- exited $?"
out=$(timeout "$TO" "$EVABENCH" tokenize $'bad \xff byte') || fail "tokenize of invalid UTF-8 exited $?"
timeout "$TO" "$EVABENCH" tokenize --help >/dev/null || fail "tokenize --help"
refuse "--context-length" tokenize --context-length 0 x
refuse "--context-length" tokenize --context-length abc x
refuse "--frobnicate" tokenize --frobnicate x
refuse "no TEXT" tokenize
refuse "/nonexistent/bpe.gz" tokenize --bpe /nonexistent/bpe.gz x

# ---- preprocess ------------------------------------------------------------------------------------
timeout "$TO" "$EVABENCH" preprocess --help >/dev/null || fail "preprocess --help"
timeout "$TO" "$EVABENCH" preprocess --size 224 --out "$W/px.h5" "$IMG/jpeg_rgb_500x375.jpg" "$IMG/png_la_150x200.png" \
  "$IMG/jpeg_cmyk_300x200.jpg" 2>"$W/err" || fail "preprocess exited $?: $(cat "$W/err")"
PY=/usr/bin/python3
if "$PY" -c 'import numpy, h5py, PIL' 2>/dev/null; then
  "$PY" - "$W/px.h5" "$SRC/golden/parity" <<'PYEOF' || fail "preprocess output differs from the parity crops"
import sys, h5py, numpy as np
from PIL import Image
f = h5py.File(sys.argv[1], "r")
px = f["/pixel_values"][...]
assert px.shape == (3, 3, 224, 224) and px.dtype == np.float32, (px.shape, px.dtype)
lut = h5py.File(sys.argv[2] + "/images.h5", "r")["lut"][...]
for i, n in enumerate(["jpeg_rgb_500x375.jpg", "png_la_150x200.png", "jpeg_cmyk_300x200.jpg"]):
    crop = np.asarray(Image.open("%s/expected/%s.s224.png" % (sys.argv[2], n)).convert("RGB"))
    want = np.stack([lut[c][crop[..., c]] for c in range(3)])
    assert np.array_equal(px[i], want), n
PYEOF
fi
# hostile files
: >"$W/empty.jpg"
echo "just some text" >"$W/text.png"
head -c 2000 "$IMG/png_odd_501x333.png" >"$W/trunc.png"
head -c 300 "$IMG/jpeg_rgb_500x375.jpg" >"$W/trunc.jpg"
cp "$IMG/png_rgb_224x224.png" "$W/corrupt.png"
printf '\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb' | dd of="$W/corrupt.png" bs=1 seek=3000 conv=notrunc 2>/dev/null
# bomb: a valid PNG header (with correct CRC) for 60000 x 60000, no image data
"${PY}" -c '
import struct, zlib, sys
ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
c = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + c(b"IHDR", ihdr) + c(b"IDAT", zlib.compress(b"\0" * 1000)) + c(b"IEND", b""))
' "$W/bomb.png" 2>/dev/null || printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\xea\x60\x00\x00\xea\x60\x08\x02\x00\x00\x00\x84\x2a\x2e\x26' >"$W/bomb.png"
for f in empty.jpg text.png trunc.png trunc.jpg corrupt.png bomb.png; do
  refuse "$W/$f" preprocess --size 224 --out "$W/o.h5" "$IMG/png_tiny_7x5.png" "$W/$f"
done
refuse "/nonexistent/img.png" preprocess --size 224 --out "$W/o.h5" /nonexistent/img.png
refuse "--size" preprocess --size 0 --out "$W/o.h5" "$IMG/png_tiny_7x5.png"
refuse "--size" preprocess --out "$W/o.h5" "$IMG/png_tiny_7x5.png"
refuse "--out" preprocess --size 224 "$IMG/png_tiny_7x5.png"
refuse "no IMAGE" preprocess --size 224 --out "$W/o.h5"

if [ $fails -ne 0 ]; then echo "cli_inputs: $fails failure(s)"; exit 1; fi
echo "cli_inputs: all passed"
