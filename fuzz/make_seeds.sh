#!/usr/bin/env bash
# make_seeds.sh EVABENCH OUTDIR: writes one seed folder per fuzz target under OUTDIR, from the
# files committed in the repository (tiny goldens and weights, parity images, prompt lists) and
# the built-in configs (printed by EVABENCH info --variant NAME --json). Idempotent.
set -euo pipefail
evabench=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"/{config,tokenizer,image,safetensors,weights,golden}

for v in $("$evabench" info | awk 'NR > 1 && $1 ~ /^EVA/ {print $1}'); do
  "$evabench" info --variant "$v" --json > "$out/config/$v.json"
done
# Single- and multi-line prompts: class names, templates, and a few hand-made hard strings.
head -n 64 "$root/golden/embed/imagenet_classnames.txt" | split -l 8 - "$out/tokenizer/classnames_"
cp "$root/golden/embed/openai_templates.txt" "$out/tokenizer/templates.txt"
printf 'a photo of a cat' > "$out/tokenizer/plain"
printf 'Caf\xc3\xa9 &amp; na\xc3\xafve \xe2\x80\x94 \xf0\x9f\x98\x80 \xff\xfe l\xc3\xa9gume   x' > "$out/tokenizer/mixed"
printf "it's can't WE'LL 1234567 ___ ..." > "$out/tokenizer/contractions"
cp "$root"/golden/parity/images/* "$out/image/"
for f in "$root"/golden/tiny/*.safetensors; do
  cp "$f" "$out/safetensors/"
  cp "$f" "$out/weights/"
done
# Small hand-made safetensors files: the header parser runs faster on these than on whole models.
st_seed() { # st_seed NAME JSON DATA_BYTES
  local hdr=$2 n=${#2}
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) \
    $((n >> 16 & 255)) $((n >> 24 & 255)))" > "$out/safetensors/$1"
  printf '%s' "$hdr" >> "$out/safetensors/$1"
  head -c "$3" /dev/zero >> "$out/safetensors/$1"
}
st_seed small_f32.st '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"k":"v"}}' 16
st_seed small_mixed.st '{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"h":{"dtype":"F16","shape":[1,2],"data_offsets":[6,10]},"i":{"dtype":"I64","shape":[],"data_offsets":[10,18]}}' 18
st_seed small_empty.st '{"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}}' 0
cp "$root"/golden/tiny/*.h5 "$root"/golden/parity/images.h5 "$out/golden/"
for d in tests/data/hostile_h5 fuzz/regress/golden; do
  if [ -d "$root/$d" ]; then cp "$root/$d"/* "$out/golden/" 2>/dev/null || true; fi
done
if [ -d "$root/tests/data/damaged_images" ]; then
  cp "$root"/tests/data/damaged_images/*.{png,jpg} "$out/image/" 2>/dev/null || true
fi
echo "seeds in $out: $(ls "$out" | while read -r t; do printf '%s=%s ' "$t" "$(ls "$out/$t" | wc -l)"; done)"
