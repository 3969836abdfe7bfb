#!/usr/bin/env bash
# cli_zeroshot.sh: `evabench zeroshot` and `evabench classify` end to end on the parity data of
# golden/zeroshot/ (made by golden/make_zeroshot_data.py from open_clip's own zero-shot pipeline).
#   - predictions equal upstream's: top-1 for every image, top-5 for >= 95 % (every tiny model)
#   - --json has CLIP_benchmark's fields and the protocol; the second run hits the classifier cache
#   - a corrupt file and a non-image file: run completes, both skipped and listed, exit 0
#   - missing folder, empty class list, class-count mismatch, no class folders, small vocab: exit 2
#   - classify: labels ranked, probabilities summing to 1; an unreadable image: exit 2
# Usage: bash tests/cli_zeroshot.sh path/to/evabench   (exit 0 pass, 1 fail)
set -u
EVA="${1:?usage: cli_zeroshot.sh path/to/evabench}"
SRC="${EVA_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ZS="$SRC/golden/zeroshot"
T="$(mktemp -d /tmp/eva_cli_zs.XXXXXX)"
trap 'rm -rf "$T"' EXIT
export EVA_CACHE_DIR="$T/cache"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
PY=python3

expect_rc() { # want name cmd...
    local want=$1 name=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name (exit $rc)"; else
        bad "$name: exit $rc, expected $want"
        sed 's/^/     /' "$T/err" | tail -5
    fi
}

expect_rc 0 "zeroshot --help" "$EVA" zeroshot --help
grep -q -- "--predictions" "$T/out" || bad "zeroshot --help does not mention --predictions"
expect_rc 0 "classify --help" "$EVA" classify --help

# ---- parity with open_clip, every tiny model --------------------------------------------------
for m in eva02 eva01 8b; do
    expect_rc 0 "zeroshot $m" "$EVA" zeroshot --weights "$ZS/$m.safetensors" --data "$ZS/images" \
        --predictions "$T/$m.csv" --json "$T/$m.json" --batch 5
    $PY - "$T/$m.csv" "$ZS/$m.predictions.csv" "$m" <<'EOF' || bad "zeroshot $m: predictions differ from open_clip's"
import csv, sys
ours = list(csv.reader(open(sys.argv[1])))
up = list(csv.reader(open(sys.argv[2])))
assert ours[0] == up[0] == ["path", "label", "top1", "top2", "top3", "top4", "top5"], ours[0]
assert len(ours) == len(up), (len(ours), len(up))
n = len(up) - 1
top1 = sum(a[:3] == b[:3] for a, b in zip(ours[1:], up[1:]))
top5 = sum(a == b for a, b in zip(ours[1:], up[1:]))
print(f"     {sys.argv[3]}: top-1 identical {top1}/{n}, top-5 identical {top5}/{n}")
assert top1 == n and top5 * 100 >= 95 * n
EOF
done

# ---- JSON fields and cache --------------------------------------------------------------------
$PY - "$T/eva02.json" <<'EOF' || bad "zeroshot --json fields"
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("dataset", "model", "pretrained", "task", "metrics", "protocol"):
    assert k in j, k
assert j["task"] == "zeroshot_classification"
assert set(j["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}, j["metrics"]
p = j["protocol"]
assert p["templates"] == "openai" and p["templates_count"] == 80
assert p["images_evaluated"] == 24 and p["images_skipped"] == 0 and p["skipped"] == []
assert len(p["weights_sha256"]) == 64 and p["impl"] == "ref" and p["precision"] == "fp32"
assert p["classifier_cache"] == "miss", p["classifier_cache"]
assert len(j["classnames"]) == 8 and len(j["templates"]) == 80
EOF
expect_rc 0 "zeroshot eva02 second run" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" \
    --json "$T/again.json"
grep -q "loaded from cache" "$T/err" && ok "second run: classifier loaded from cache" || bad "second run did not hit the cache"
expect_rc 0 "zeroshot --no-cache --templates simple --limit 10" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" \
    --data "$ZS/images" --no-cache --templates simple --limit 10 --json "$T/lim.json"
$PY -c "
import json,sys; p=json.load(open('$T/lim.json'))['protocol']
assert p['images_evaluated']==10 and p['templates_count']==7 and p['classifier_cache']=='disabled', p
" || bad "--limit/--templates simple/--no-cache not reflected in the JSON"

# ---- broken files: skipped, listed, exit 0 ----------------------------------------------------
cp -r "$ZS/images" "$T/broken"
head -c 300 "$ZS/images/n03_cat/img0_g.JPG" >"$T/broken/n03_cat/zz_truncated.jpg"
echo "not an image" >"$T/broken/n01_airplane/notes.txt"
expect_rc 0 "zeroshot with a corrupt file and a non-image" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" \
    --data "$T/broken" --json "$T/broken.json" --predictions "$T/broken.csv"
$PY - "$T/broken.json" <<'EOF' || bad "skipped files not counted/listed"
import json, sys
p = json.load(open(sys.argv[1]))["protocol"]
assert p["files_found"] == 26 and p["images_evaluated"] == 24 and p["images_skipped"] == 2, p
paths = sorted(s["path"] for s in p["skipped"])
assert paths == ["n01_airplane/notes.txt", "n03_cat/zz_truncated.jpg"], paths
assert all(s["reason"] for s in p["skipped"])
EOF
grep -q "skipped" "$T/err" && ok "skipped files reported on stderr" || bad "skipped files not reported on stderr"

# ---- refusals: exit 2 -------------------------------------------------------------------------
expect_rc 2 "missing folder" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$T/nope"
grep -q "$T/nope" "$T/err" || bad "missing folder: message does not name it"
: >"$T/empty.txt"
expect_rc 2 "empty class list" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" \
    --classnames "$T/empty.txt"
printf 'a\nb\n' >"$T/two.txt"
expect_rc 2 "class-name count mismatch" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" \
    --classnames "$T/two.txt"
mkdir -p "$T/noclasses"
expect_rc 2 "no class folders" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$T/noclasses"
mkdir -p "$T/emptyclasses/a" "$T/emptyclasses/b"
expect_rc 2 "class folders without files" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$T/emptyclasses"
expect_rc 2 "imagenet1k on 8 folders" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" \
    --dataset imagenet1k
expect_rc 2 "template without {}" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" \
    --templates "$T/two.txt"
expect_rc 2 "missing --data" "$EVA" zeroshot --weights "$ZS/eva02.safetensors"
expect_rc 2 "bad --batch" "$EVA" zeroshot --weights "$ZS/eva02.safetensors" --data "$ZS/images" --batch 0
if [ -f "$SRC/golden/tiny/eva02.safetensors" ]; then
    expect_rc 2 "text vocabulary smaller than BPE" "$EVA" zeroshot --weights "$SRC/golden/tiny/eva02.safetensors" \
        --data "$ZS/images"
    grep -q "vocabulary" "$T/err" || bad "small vocab: message does not say why"
fi

# ---- classify ---------------------------------------------------------------------------------
expect_rc 0 "classify two images" "$EVA" classify --weights "$ZS/eva02.safetensors" --labels "cat, dog,red car" \
    --json "$T/cl.json" "$ZS/images/n03_cat/img0_g.JPG" "$ZS/images/n01_airplane/img2_c.png"
$PY - "$T/cl.json" <<'EOF' || bad "classify JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j) == 2
for r in j:
    probs = [l["prob"] for l in r["labels"]]
    assert sorted(l["label"] for l in r["labels"]) == ["cat", "dog", "red car"]
    assert abs(sum(probs) - 1) < 1e-6 and probs == sorted(probs, reverse=True), probs
EOF
[ "$(grep -c '^  ' "$T/out")" -eq 6 ] && ok "classify prints 3 ranked labels per image" || bad "classify output"
expect_rc 2 "classify unreadable image" "$EVA" classify --weights "$ZS/eva02.safetensors" --labels "cat,dog" \
    "$T/two.txt" "$ZS/images/n03_cat/img0_g.JPG"
[ "$(grep -c '^  ' "$T/out")" -eq 2 ] && ok "classify still ranks the readable image" || bad "classify stopped early"
expect_rc 2 "classify empty label" "$EVA" classify --weights "$ZS/eva02.safetensors" --labels "cat,,dog" \
    "$ZS/images/n03_cat/img0_g.JPG"
expect_rc 2 "classify without images" "$EVA" classify --weights "$ZS/eva02.safetensors" --labels "cat,dog"

if [ "$fails" -ne 0 ]; then
    echo "cli_zeroshot: $fails failure(s)"
    exit 1
fi
echo "cli_zeroshot: all passed"
