#!/usr/bin/env bash
# fetch_bpe.sh: obtains the CLIP BPE merges file bpe_simple_vocab_16e6.txt.gz (spec/eva-clip.md §6)
# from the open_clip_torch 2.24.0 wheel on PyPI, checks its sha256 and stores it in
# golden/cache/ (git-ignored). Idempotent: exits at once when a file with the right hash is there.
# Prints the path on stdout. Exit 0 ok, 1 download/hash failure.
# Usage: bash golden/fetch_bpe.sh            (EVA_BPE_PATH overrides the destination)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${EVA_BPE_PATH:-$here/cache/bpe_simple_vocab_16e6.txt.gz}"
want=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
member=open_clip/bpe_simple_vocab_16e6.txt.gz

have_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ]; }
if have_ok "$dest"; then echo "$dest"; exit 0; fi

mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# 1. an installed open_clip (the golden venv) holds the same file; 2. else the wheel from PyPI.
for cand in "$here"/.venv/lib/python3*/site-packages/$member; do
  if have_ok "$cand"; then cp "$cand" "$tmp/bpe.gz"; fi
done
if [ ! -f "$tmp/bpe.gz" ]; then
  pip=""
  for p in "$here/.venv/bin/pip" pip3 pip; do command -v "$p" >/dev/null 2>&1 && { pip="$p"; break; }; done
  if [ -n "$pip" ]; then
    "$pip" download -q --no-deps --only-binary=:all: -d "$tmp" open_clip_torch==2.24.0 >&2 || true
  fi
  whl="$(ls "$tmp"/open_clip_torch-2.24.0-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$whl" ]; then
    # No pip: fetch the wheel through PyPI's JSON API.
    url="$(curl -fsSL https://pypi.org/pypi/open_clip_torch/2.24.0/json |
           python3 -c 'import json,sys; print([u["url"] for u in json.load(sys.stdin)["urls"] if u["filename"].endswith(".whl")][0])')"
    curl -fsSL -o "$tmp/oc.whl" "$url"
    whl="$tmp/oc.whl"
  fi
  python3 - "$whl" "$member" "$tmp/bpe.gz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))
PY
fi
if ! have_ok "$tmp/bpe.gz"; then
  echo "fetch_bpe.sh: sha256 of the merges file is not $want" >&2
  exit 1
fi
mv "$tmp/bpe.gz" "$dest"
echo "$dest"
