#!/usr/bin/env bash
# cli_ckpt_formats.sh: every published checkpoint format, by its one documented path, gives the same
# embeddings as the same weights in our safetensors (golden/tiny), and vision-only pre-training
# weights are refused. The format fixtures are golden/formats/ (golden/make_format_fixtures.py: the
# tiny models written by the upstream writers in each format):
#   open_clip hub folder (F16, BF16)             evabench encode --weights DIR
#   transformers safetensors shards (BF16)       evabench encode --weights DIR | INDEX.json | SHARD
#   official .pt (F16, BF16), open_clip .bin,
#   transformers .bin shards (F16)               golden/convert_checkpoint.py IN OUT.safetensors, then encode
#   vision-only EVA_8B_psz14.bin (and a renamed copy): convert_checkpoint.py exits 2 naming the file to use
# Every encode is compared with `encode` of the golden/tiny weights on the same inputs: all five
# outputs (features, embeds, logits) must be equal bit for bit. (The memory of a large conversion is
# measured by golden/bench_convert_rss.py, a benchmark of about a minute, not run here.)
# Run by ctest as: bash tests/cli_ckpt_formats.sh <evabench>. Exit 0 pass, 1 fail, 77 skip.
set -u

EVABENCH=${1:?usage: cli_ckpt_formats.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
F=$SRC/golden/formats
T=$SRC/golden/tiny
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -c 'import numpy, h5py' 2>/dev/null; then
  echo "SKIP: python3 with numpy and h5py is needed (convert_checkpoint.py, comparing HDF5 outputs)"
  exit 77
fi
[ -d "$F" ] || { echo "SKIP: $F is missing"; exit 77; }

W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-ckpt.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# the tiny configs and the reference encodes (our safetensors)
for fam in eva02 bige 8b 18b; do
  "$PY" -c "import h5py,sys; open(sys.argv[2],'w').write(h5py.File(sys.argv[1],'r').attrs['config'])" \
    "$T/$fam.h5" "$W/$fam.json" || { fail "cannot read the config of $T/$fam.h5"; exit 1; }
  timeout "$TO" "$EVABENCH" encode --weights "$T/$fam.safetensors" --inputs "$T/$fam.h5" --out "$W/ref-$fam.h5" \
    >/dev/null 2>"$W/err" || { fail "reference encode of $fam: $(cat "$W/err")"; exit 1; }
done

same() { # ref.h5 got.h5 label
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ka, kb = sorted(a.keys()), sorted(b.keys())
if ka != kb:
    print(f"datasets differ: {ka} vs {kb}"); sys.exit(1)
bad = [k for k in ka if not np.array_equal(a[k][:], b[k][:])]
if bad:
    print("differ: " + ", ".join(f"{k} (max abs {float(np.abs(a[k][:] - b[k][:]).max()):.3g})" for k in bad)); sys.exit(1)
PYEOF
}

check_encode() { # label family weights [extra encode args...]
  local label=$1 fam=$2 wts=$3
  shift 3
  if ! timeout "$TO" "$EVABENCH" encode --weights "$wts" --config "$W/$fam.json" --inputs "$T/$fam.h5" \
       --out "$W/got.h5" "$@" >/dev/null 2>"$W/err"; then
    fail "$label: encode failed: $(cat "$W/err")"; return
  fi
  if out=$(same "$W/ref-$fam.h5" "$W/got.h5"); then echo "ok: $label: embeddings equal to golden/tiny/$fam.safetensors"
  else fail "$label: $out"; fi
}

convert() { # label in out -> 0 ok
  if ! timeout "$TO" "$PY" "$SRC/golden/convert_checkpoint.py" "$2" "$3" >/dev/null 2>"$W/err"; then
    fail "$1: convert_checkpoint.py failed: $(cat "$W/err")"; return 1
  fi
}

# ---- read directly ------------------------------------------------------------------------------
check_encode "hub folder, F16 (open_clip_model.safetensors)" eva02 "$F/hub-eva02"
check_encode "hub file, BF16" bige "$F/hub-bige/open_clip_model.safetensors"
check_encode "transformers safetensors shards, folder" 18b "$F/hf-18b-st"
check_encode "transformers safetensors shards, index JSON" 18b "$F/hf-18b-st/model.safetensors.index.json"
check_encode "transformers safetensors shards, one shard" 18b "$F/hf-18b-st/model-00002-of-00002.safetensors"

# ---- pickles: convert (streamed), then read -----------------------------------------------------
convert "official .pt F16" "$F/official/EVA02_CLIP_tiny_psz8.pt" "$W/o02.safetensors" &&
  check_encode "official .pt F16 (converted)" eva02 "$W/o02.safetensors"
convert "official .pt BF16" "$F/official/EVA_CLIP_tiny8b_psz7.pt" "$W/o8b.safetensors" &&
  check_encode "official .pt BF16 (converted)" 8b "$W/o8b.safetensors"
convert "official .fp16.pt" "$F/official/EVA_CLIP_tiny18b_psz7.fp16.pt" "$W/o18b.safetensors" &&
  check_encode "official .fp16.pt (converted)" 18b "$W/o18b.safetensors"
convert "open_clip .bin" "$F/hub-eva02/open_clip_pytorch_model.bin" "$W/ocbin.safetensors" &&
  check_encode "open_clip_pytorch_model.bin (converted)" eva02 "$W/ocbin.safetensors"
convert "transformers .bin shards" "$F/hf-8b-bin" "$W/hf8b.safetensors" &&
  check_encode "transformers .bin shards (converted)" 8b "$W/hf8b.safetensors"

# ---- refusals -----------------------------------------------------------------------------------
cp "$F/vision-only/EVA_8B_psz14.bin" "$W/model.bin"
for f in "$F/vision-only/EVA_8B_psz14.bin" "$W/model.bin"; do
  timeout "$TO" "$PY" "$SRC/golden/convert_checkpoint.py" "$f" "$W/v.safetensors" >/dev/null 2>"$W/err"
  rc=$?
  if [ $rc -ne 2 ] || [ "$(wc -l <"$W/err")" -ne 1 ] || ! grep -q "vision-only" "$W/err" ||
     ! grep -qF "$f" "$W/err" || ! grep -q "EVA_CLIP_" "$W/err"; then
    fail "vision-only $f: exit $rc, stderr: $(cat "$W/err")"
  else echo "ok: vision-only $(basename "$f") refused (exit 2): $(cat "$W/err")"; fi
done
grep -q "EVA_CLIP_8B_psz14_s9B.pt" <("$PY" "$SRC/golden/convert_checkpoint.py" "$F/vision-only/EVA_8B_psz14.bin" \
  "$W/v.safetensors" 2>&1) || fail "vision-only EVA_8B_psz14.bin: the message does not name EVA_CLIP_8B_psz14_s9B.pt"
[ -e "$W/v.safetensors" ] && fail "vision-only: an output file was written"
timeout "$TO" "$EVABENCH" encode --weights "$F/official/EVA_CLIP_tiny8b_psz7.pt" --config "$W/8b.json" \
  --inputs "$T/8b.h5" --out "$W/x.h5" >/dev/null 2>"$W/err"
rc=$?
if [ $rc -ne 2 ] || ! grep -q "convert_checkpoint.py" "$W/err"; then fail "encode of a .pt: exit $rc, $(cat "$W/err")"
else echo "ok: encode --weights X.pt refused (exit 2) with the conversion command"; fi

# ---- hostile pickles: exit 2, one line naming the file, nothing from the file executed --------
"$PY" - "$F/official/EVA02_CLIP_tiny_psz8.pt" "$W" <<'PYEOF' || fail "could not make the hostile files"
import os, pickle, sys, zipfile
src, w = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
open(os.path.join(w, "truncated.pt"), "wb").write(raw[: len(raw) // 2])
open(os.path.join(w, "garbage.pt"), "wb").write(b"not a checkpoint at all" * 10)
zin = zipfile.ZipFile(src)
pkl = [n for n in zin.namelist() if n.endswith("/data.pkl")][0]
prefix = pkl[: -len("data.pkl")]

def rewrite(name, replace):  # copy of the checkpoint with some records replaced or dropped
    with zipfile.ZipFile(os.path.join(w, name), "w", zipfile.ZIP_STORED) as z:
        for n in zin.namelist():
            if n in replace:
                if replace[n] is not None:
                    z.writestr(n, replace[n])
            else:
                z.writestr(n, zin.read(n))

class Evil:  # unpickling this would run a shell command
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(w, "PWNED"),))
rewrite("evil.pt", {pkl: pickle.dumps({"model": Evil()}, protocol=2)})
rewrite("badpkl.pt", {pkl: b"\x80\x02garbage"})
first = max((n for n in zin.namelist() if n.startswith(prefix + "data/")), key=lambda n: zin.getinfo(n).file_size)
rewrite("missing_record.pt", {first: None})
rewrite("short_record.pt", {first: zin.read(first)[:64]})
PYEOF
for f in truncated garbage evil badpkl missing_record short_record; do
  timeout "$TO" "$PY" "$SRC/golden/convert_checkpoint.py" "$W/$f.pt" "$W/h.safetensors" >/dev/null 2>"$W/err"
  rc=$?
  if [ $rc -ne 2 ] || [ "$(wc -l <"$W/err")" -ne 1 ] || ! grep -qF "$W/$f.pt" "$W/err"; then
    fail "hostile $f.pt: exit $rc, stderr: $(head -c 600 "$W/err")"
  else echo "ok: hostile $f.pt refused: $(cut -c1-150 "$W/err")"; fi
  [ -e "$W/h.safetensors" ] && { fail "hostile $f.pt: an output was written"; rm -f "$W/h.safetensors"; }
done
[ -e "$W/PWNED" ] && fail "evil.pt: code from the pickle ran"

if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "PASS: every checkpoint format"
