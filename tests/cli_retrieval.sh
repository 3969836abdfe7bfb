#!/usr/bin/env bash
# cli_retrieval.sh: `evabench retrieval` end to end on the parity data of golden/retrieval/ (made by
# golden/make_retrieval_data.py with CLIP_benchmark's own zeroshot_retrieval.evaluate).
#   - every recall@k (k = 1, 2, 5, 10, both directions) equals CLIP_benchmark's, for every tiny model
#     and the mscoco_captions, flickr30k and captions layouts; predictions equal torch.topk's lists
#   - the second run reads both embedding caches and gives the same numbers
#   - a corrupt image: skipped, counted and listed, its captions dropped; the numbers equal
#     CLIP_benchmark's on the annotations without that image; exit 0
#   - missing annotation file, malformed JSON/TXT/CSV, an entry pointing at a missing image, an
#     image without captions, a bad --recall-k, k above the image count: exit 2 naming file and
#     line/entry
# Usage: bash tests/cli_retrieval.sh path/to/evabench   (exit 0 pass, 1 fail)
set -u
EVA="${1:?usage: cli_retrieval.sh path/to/evabench}"
SRC="${EVA_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
G="$SRC/golden/retrieval"
W="$SRC/golden/zeroshot"
T="$(mktemp -d /tmp/eva_cli_rt.XXXXXX)"
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

# stderr must name every fragment
expect_msg() { # name fragment...
    local name=$1
    shift
    for f in "$@"; do grep -qF -- "$f" "$T/err" || bad "$name: message lacks '$f': $(head -c 300 "$T/err")"; done
}

# ours.json expected.json label: metrics equal (every key of the expected, exact values)
same_metrics() {
    $PY - "$1" "$2" "$3" <<'EOF'
import json, sys
ours, exp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = [(k, ours["metrics"].get(k), v) for k, v in exp["metrics"].items() if ours["metrics"].get(k) != v]
assert ours["task"] == "zeroshot_retrieval", ours["task"]
assert ours["dataset"] in (exp["dataset"], "captions"), (ours["dataset"], exp["dataset"])
print("     %s: %d/%d recalls equal to CLIP_benchmark's" % (sys.argv[3], len(exp["metrics"]) - len(bad), len(exp["metrics"])))
if bad:
    print("     differ:", bad)
    sys.exit(1)
EOF
}

expect_rc 0 "retrieval --help" "$EVA" retrieval --help
grep -q -- "--recall-k" "$T/out" || bad "retrieval --help does not mention --recall-k"

# ---- parity with CLIP_benchmark: 3 models x 3 layouts ----------------------------------------
for m in eva02 eva01 8b; do
    for lay in mscoco_captions flickr30k captions; do
        root="$G/coco"; exp="$m.mscoco_captions"
        [ "$lay" = flickr30k ] && root="$G/flickr" && exp="$m.flickr30k"
        expect_rc 0 "retrieval $m $lay" "$EVA" retrieval --weights "$W/$m.safetensors" --data "$root" \
            --dataset "$lay" --recall-k 1,2,5,10 --batch 5 --no-cache --json "$T/$m.$lay.json" --predictions "$T/$m.$lay.csv"
        same_metrics "$T/$m.$lay.json" "$G/expected/$exp.json" "$m $lay" || bad "retrieval $m $lay: metrics differ"
        cmp -s "$T/$m.$lay.csv" "$G/expected/$exp.predictions.csv" && ok "retrieval $m $lay: predictions equal" ||
            bad "retrieval $m $lay: predictions differ from torch.topk's"
        grep -q "images/s" "$T/out" && grep -q "captions/s" "$T/out" || bad "retrieval $m $lay: no images/s, captions/s"
        grep "speed:" "$T/out" | sed 's/^/     /'
    done
done

# ---- cache: the second run reads both caches, same numbers ------------------------------------
"$EVA" retrieval --weights "$W/eva02.safetensors" --data "$G/coco" --dataset mscoco_captions >/dev/null 2>&1
expect_rc 0 "retrieval eva02 mscoco_captions (cached)" "$EVA" retrieval --weights "$W/eva02.safetensors" \
    --data "$G/coco" --dataset mscoco_captions --recall-k 1,2,5,10 --json "$T/cached.json"
$PY - "$T/cached.json" <<'EOF' || bad "second run did not hit the caches"
import json, sys
p = json.load(open(sys.argv[1]))["protocol"]
assert p["image_cache"] == "hit" and p["caption_cache"] == "hit", (p["image_cache"], p["caption_cache"])
EOF
same_metrics "$T/cached.json" "$G/expected/eva02.mscoco_captions.json" "cached" || bad "cached run: metrics differ"

# ---- a corrupt image: skipped, counted, its captions dropped -----------------------------------
mkdir -p "$T/coco"
cp -r "$G/coco/val2014" "$G/coco/coco_test_karpathy.json" "$T/coco/"
head -c 200 "$G/coco/val2014/COCO_val2014_000000000139.png" >"$T/coco/val2014/COCO_val2014_000000000139.png"
expect_rc 0 "retrieval with a corrupt image" "$EVA" retrieval --weights "$W/eva02.safetensors" --data "$T/coco" \
    --dataset mscoco_captions --recall-k 1,2,5,10 --json "$T/corrupt.json" --no-cache
expect_msg "corrupt image" "COCO_val2014_000000000139.png"
same_metrics "$T/corrupt.json" "$G/expected/eva02.mscoco_captions.without_COCO_val2014_000000000139.json" \
    "corrupt image" || bad "corrupt image: metrics differ from CLIP_benchmark without that image"
$PY - "$T/corrupt.json" <<'EOF' || bad "corrupt image: not counted/listed"
import json, sys
p = json.load(open(sys.argv[1]))["protocol"]
assert p["images_skipped"] == 1 and p["captions_dropped"] == 4 and p["images_evaluated"] == 11, p
assert p["skipped"][0]["path"] == "val2014/COCO_val2014_000000000139.png", p["skipped"]
EOF

# ---- bad input: exit 2 naming file and line/entry --------------------------------------------
run_bad() { # name dataset root fragment...
    local name=$1 ds=$2 root=$3
    shift 3
    expect_rc 2 "$name" "$EVA" retrieval --weights "$W/eva02.safetensors" --data "$root" --dataset "$ds" --no-cache
    expect_msg "$name" "$@"
}
mkdir -p "$T/bad/val2014"
cp "$G/coco/val2014/COCO_val2014_000000000042.jpg" "$T/bad/val2014/a.jpg"
cp "$T/bad/val2014/a.jpg" "$T/bad/a.jpg"
run_bad "missing annotation file" mscoco_captions "$T/bad" "$T/bad/coco_test_karpathy.json" "missing"
printf '{"images": [{"id": 1, "file_name": "a.jpg"}],\n "annotations": [\n  {"image_id": 1, "caption": "x",}\n]}\n' \
    >"$T/bad/coco_test_karpathy.json"
run_bad "malformed JSON" mscoco_captions "$T/bad" "coco_test_karpathy.json: line 3" "not valid JSON"
printf '{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 9, "file_name": "gone.jpg"}], "annotations": [{"image_id": 1, "caption": "x"}, {"image_id": 9, "caption": "y"}]}' \
    >"$T/bad/coco_test_karpathy.json"
run_bad "caption pointing at a missing image" mscoco_captions "$T/bad" "image id 9" "val2014/gone.jpg" "does not exist"
printf '{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "caption": "x"}]}' \
    >"$T/bad/coco_test_karpathy.json"
run_bad "image without captions (json)" mscoco_captions "$T/bad" "image id 2" "no caption"
printf '{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}' >"$T/bad/coco_test_karpathy.json"
run_bad "empty caption list" mscoco_captions "$T/bad" "coco_test_karpathy.json" "no captions"
printf 'image,caption\na.jpg,a dog, running\nb.png,no jpg here\n' >"$T/bad/flickr30k_test_karpathy.txt"
run_bad "malformed TXT" flickr30k "$T/bad" "flickr30k_test_karpathy.txt: line 3" ".jpg,"
printf 'image,caption\na.jpg,a dog\ngone.jpg,a cat\n' >"$T/bad/flickr30k_test_karpathy.txt"
run_bad "flickr caption pointing at a missing image" flickr30k "$T/bad" "gone.jpg" "does not exist"
printf 'path,caption\na.jpg,"open quote\n' >"$T/bad/captions.csv"
run_bad "malformed CSV" captions "$T/bad" "captions.csv: line 2" "not closed"
expect_rc 2 "bad --recall-k" "$EVA" retrieval --weights "$W/eva02.safetensors" --data "$G/coco" \
    --dataset mscoco_captions --recall-k 1,x
expect_msg "bad --recall-k" "--recall-k"
expect_rc 2 "k above the image count" "$EVA" retrieval --weights "$W/eva02.safetensors" --data "$G/coco" \
    --dataset mscoco_captions --recall-k 50 --no-cache
expect_msg "k above the image count" "recall@50"
expect_rc 2 "unknown --dataset" "$EVA" retrieval --weights "$W/eva02.safetensors" --data "$G/coco" --dataset coco

if [ "$fails" -ne 0 ]; then
    echo "cli_retrieval: $fails failure(s)"
    exit 1
fi
echo "cli_retrieval: all passed"
