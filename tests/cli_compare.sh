#!/usr/bin/env bash
# cli_compare.sh: `evabench compare` (a dump of any implementation against a golden) and
# `evabench encode --taps` (the reference's activations written as a golden), end to end.
# Run by ctest as: bash tests/cli_compare.sh <evabench>.
#
# The candidates are made here from the committed tiny EVA-02 golden with h5py: the golden itself,
# copies with taps nudged (the first failing tap must be the first in forward order, not in name
# order), a mis-shaped, an unknown and an integer tap, a NaN, other inputs, a subset, float16 and
# float64 copies, and copies keyed by official EVA-CLIP and transformers module names.
# Exit 0 pass, 1 fail, 77 skip (no python3 with numpy/h5py, or no tiny golden).
set -u

EVABENCH=${1:?usage: cli_compare.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TINY=$SRC/golden/tiny
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -c 'import numpy, h5py' 2>/dev/null; then
  echo "SKIP: python3 with numpy and h5py is needed to write the test's HDF5 files (apt install python3-h5py)"
  exit 77
fi
for f in eva02.h5 eva02.safetensors; do
  if [ ! -f "$TINY/$f" ]; then echo "SKIP: $TINY/$f is missing"; exit 77; fi
done
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-compare.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}
G=$TINY/eva02.h5

# ---- the candidates ------------------------------------------------------------------------------
"$PY" - "$G" "$W" <<'PYEOF' || { echo "FAIL: could not make the test files"; exit 1; }
import os, re, sys
import numpy as np, h5py

gp, w = sys.argv[1], sys.argv[2]
g = h5py.File(gp, "r")
acts = {k: g["acts/" + k][()] for k in g["acts"]}

def dump(name, taps=None, rename=lambda k: k, dtype=np.float32, change=None, attrs=None, inputs=True):
    with h5py.File(os.path.join(w, name), "w") as f:
        for k, v in g.attrs.items():
            if k in ("schema", "config"):
                f.attrs[k] = v
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        if inputs:
            for k in g["inputs"]:
                f["inputs/" + k] = g["inputs/" + k][()]
        for k, v in acts.items():
            if taps is None or k in taps:
                f.create_dataset("acts/" + rename(k), data=v.astype(dtype))
        if change:
            change(f)

def nudge(*taps, by=0.5):
    def fn(f):
        for t in taps:
            a = f["acts/" + t][()]
            a.flat[5] += by
            del f["acts/" + t]
            f["acts/" + t] = a
    return fn

def replace(tap, value):
    def fn(f):
        if "acts/" + tap in f:
            del f["acts/" + tap]
        f["acts/" + tap] = value
    return fn

dump("same.h5")
# blocks.0.norm1 runs before blocks.0.attn (pre-norm) but sorts after it by name
dump("nudged.h5", change=nudge("visual.trunk.blocks.0.attn", "visual.trunk.blocks.0.norm1"))
dump("nudged_late.h5", change=nudge("text.ln_final"))
dump("misshaped.h5", change=replace("visual.trunk.norm", acts["visual.trunk.norm"][:, :-1, :]))
dump("unknown.h5", change=replace("visual.trunk.blocks.9.attn", acts["visual.trunk.blocks.0.attn"]))
dump("integer.h5", change=replace("visual.trunk.norm", acts["visual.trunk.norm"].astype(np.int32)))
nan = acts["text.transformer.resblocks.1.mlp"].copy(); nan.flat[3] = np.nan
dump("nan.h5", change=replace("text.transformer.resblocks.1.mlp", nan))
dump("nocommon.h5", taps=[], change=replace("image_embeds", np.zeros_like(acts["image_features"])))
dump("noacts.h5", taps=[])
dump("subset.h5", taps=["visual.trunk.pos_drop", "visual.trunk.blocks.1", "text_features"])
def other_ids(f):
    ids = f["inputs/input_ids"][()]; ids[0, 1] += 1
    del f["inputs/input_ids"]; f["inputs/input_ids"] = ids
dump("otherinputs.h5", change=other_ids)
dump("noinputs.h5", inputs=False)
dump("f16.h5", dtype=np.float16)
dump("f16attr.h5", dtype=np.float16, attrs={"precision": "fp16", "impl": "a half-precision port"})
dump("f64.h5", dtype=np.float64)
dump("badschema.h5", attrs={"schema": "something-else/2"})
official = lambda k: "visual." + k[len("visual.trunk."):] if k.startswith("visual.trunk.") else k
dump("official.h5", rename=official)
dump("official_nudged.h5", rename=official, change=nudge("visual.blocks.1.mlp"))
hf_map = {"visual.trunk.pos_drop": "vision_model.embeddings", "visual.trunk.head": "visual_projection",
          "text.token_embedding": "text_model.embeddings.token_embedding",
          "text.ln_final": "text_model.final_layer_norm", "text_features": "text_projection"}
def hf(k):
    if k in hf_map:
        return hf_map[k]
    subs = {"": "", ".norm1": ".layer_norm1", ".attn": ".self_attn", ".norm2": ".layer_norm2", ".mlp": ".mlp",
            ".ln_1": ".layer_norm1", ".ln_2": ".layer_norm2"}
    m = re.fullmatch(r"visual\.trunk\.blocks\.(\d+)(.*)", k) or re.fullmatch(r"text\.transformer\.resblocks\.(\d+)(.*)", k)
    if m:
        tower = "vision_model" if k.startswith("visual") else "text_model"
        return f"{tower}.encoder.layers.{m.group(1)}{subs[m.group(2)]}"
    return k
hf_taps = [k for k in acts if k not in ("visual.trunk.patch_embed", "visual.trunk.norm")]
dump("transformers.h5", taps=hf_taps, rename=hf)
dump("transformers_nudged.h5", taps=hf_taps, rename=hf, change=nudge("text_model.encoder.layers.0.self_attn"))
open(os.path.join(w, "nothdf5.h5"), "w").write("this is not an HDF5 file\n")
print(len(acts), file=open(os.path.join(w, "n_acts"), "w"))
PYEOF
NACTS=$(cat "$W/n_acts")

# ---- helpers -------------------------------------------------------------------------------------
fails=0
runs=0
run() { timeout "$TO" "$EVABENCH" "$@" >"$W/out" 2>"$W/err"; rc=$?; runs=$((runs + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*"; echo "  stderr: $(head -c 2000 "$W/err")"; }
sanitizer_clean() { ! grep -qE 'Sanitizer|runtime error:|LeakSanitizer|SUMMARY:' "$W/err"; }
expect2() { # expect2 <label> <substring of the one stderr line> -- <evabench args...>
  local label=$1 want=$2; shift 3
  run "$@"
  if [ "$rc" -ne 2 ]; then bad "$label: exit $rc, expected 2"; return; fi
  if ! sanitizer_clean; then bad "$label: sanitizer report"; return; fi
  if [ "$(wc -l <"$W/err")" -ne 1 ]; then bad "$label: $(wc -l <"$W/err") lines on stderr, expected one"; return; fi
  if ! grep -qF -- "$want" "$W/err"; then bad "$label: stderr does not name '$want'"; return; fi
  if ! grep -qE '^evabench (compare|encode): ' "$W/err"; then bad "$label: message does not start with 'evabench <cmd>: '"; return; fi
  echo "ok   $label: $(cat "$W/err")"
}
expect_rc() { # expect_rc <label> <rc> -- args...
  local label=$1 want=$2; shift 3
  run "$@"
  if [ "$rc" -ne "$want" ]; then bad "$label: exit $rc, expected $want"; return 1; fi
  if ! sanitizer_clean; then bad "$label: sanitizer report"; return 1; fi
  echo "ok   $label (exit $rc)"
}
out_has() { grep -qF -- "$2" "$W/out" || bad "$1: stdout lacks '$2'"; }
C() { echo compare --golden "$G" --candidate "$W/$1"; }

# ---- passes --------------------------------------------------------------------------------------
expect_rc "compare --help" 0 -- compare --help && out_has "--help" "usage: evabench compare"
expect_rc "golden against itself" 0 -- $(C same.h5) --json "$W/same.json" --report "$W/same.md"
out_has "itself" "PASS: all $NACTS taps in common within tolerance (0 absent"
grep -q '"result":[[:space:]]*"pass"' "$W/same.json" && grep -q '"first_failure":[[:space:]]*null' "$W/same.json" ||
  bad "itself: json result"
grep -qF '| result | **PASS**' "$W/same.md" || bad "itself: markdown result"
expect_rc "the golden as its own candidate (schema golden)" 0 -- compare --golden "$G" --candidate "$G"
expect_rc "candidate without /inputs" 0 -- $(C noinputs.h5)
expect_rc "float64 candidate" 0 -- $(C f64.h5)
expect_rc "float16 candidate, fp16 tolerances" 0 -- $(C f16.h5) --precision fp16
out_has "fp16" "fp16 tolerances"
expect_rc "float16 candidate, fp16 from its precision attribute" 0 -- $(C f16attr.h5)
out_has "fp16 attr" "fp16 tolerances"
expect_rc "float16 candidate fails the fp32 tolerances" 1 -- $(C f16.h5)
expect_rc "a subset of taps passes" 0 -- $(C subset.h5) --json "$W/subset.json"
out_has "subset" "absent from the candidate ($((NACTS - 3)) taps, not compared)"
grep -q "^visual.trunk.patch_embed " "$W/out" && bad "subset: an absent tap in the terminal table"
grep -q "^absent from the candidate.*: visual.trunk.patch_embed, " "$W/out" || bad "subset: absent taps listed"
"$PY" - "$W/subset.json" "$NACTS" <<'PYEOF' || bad "subset: json counts"
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert r["schema"] == "evabench-compare/1" and r["result"] == "pass", r["result"]
assert r["counts"] == {"pass": 3, "fail": 0, "absent": n - 3}, r["counts"]
assert len(r["absent"]) == n - 3 and "visual.trunk.patch_embed" in r["absent"]
assert [t["name"] for t in r["taps"] if t["verdict"] == "pass"] == ["visual.trunk.pos_drop", "visual.trunk.blocks.1", "text_features"]
PYEOF
expect_rc "official names (auto)" 0 -- $(C official.h5)
out_has "official" "names official"
expect_rc "transformers names (auto)" 0 -- $(C transformers.h5)
out_has "transformers" "names transformers"
expect_rc "transformers names (--names transformers)" 0 -- $(C transformers.h5) --names transformers

# ---- failures ------------------------------------------------------------------------------------
expect_rc "two taps nudged" 1 -- $(C nudged.h5) --json "$W/nudged.json" --report "$W/nudged.md"
out_has "nudged" "first failing tap: visual.trunk.blocks.0.norm1"
out_has "nudged" "error from the first failing tap on"
grep -q "^visual.trunk.blocks.0.attn .* FAIL$" "$W/out" || bad "nudged: the second nudged tap is a FAIL row"
grep -q "^visual.trunk.blocks.0.mlp .* pass$" "$W/out" || bad "nudged: an untouched tap passes"
[ "$(wc -l <"$W/err")" -eq 1 ] && grep -q "visual.trunk.blocks.0.norm1" "$W/err" || bad "nudged: stderr names the tap in one line"
grep -q '"first_failure":[[:space:]]*"visual.trunk.blocks.0.norm1"' "$W/nudged.json" || bad "nudged: json first_failure"
grep -qF '| first failing tap | `visual.trunk.blocks.0.norm1` |' "$W/nudged.md" || bad "nudged: markdown first failing tap"
grep -qF '## Error from the first failing tap on' "$W/nudged.md" || bad "nudged: markdown growth section"
expect_rc "late tap nudged" 1 -- $(C nudged_late.h5)
out_has "late" "first failing tap: text.ln_final"
expect_rc "NaN in a tap" 1 -- $(C nan.h5)
out_has "NaN" "first failing tap: text.transformer.resblocks.1.mlp"
expect_rc "official names, nudged" 1 -- $(C official_nudged.h5)
out_has "official nudged" "first failing tap: visual.trunk.blocks.1.mlp"
expect_rc "transformers names, nudged" 1 -- $(C transformers_nudged.h5)
out_has "transformers nudged" "first failing tap: text.transformer.resblocks.0.attn"

# ---- bad input (exit 2, one line naming the file and the entry) ------------------------------------
expect2 "mis-shaped tap" "/acts/visual.trunk.norm has shape [3,25,96], expected [3,26,96]" -- $(C misshaped.h5)
expect2 "unknown tap" "visual.trunk.blocks.9.attn" -- $(C unknown.h5)
expect2 "integer tap" "visual.trunk.norm" -- $(C integer.h5)
expect2 "no tap in common" "no tap in common" -- $(C nocommon.h5)
expect2 "empty dump" "noacts.h5" -- $(C noacts.h5)
expect2 "other inputs" "input_ids differ" -- $(C otherinputs.h5)
expect2 "other schema" "something-else/2" -- $(C badschema.h5)
expect2 "candidate not HDF5" "nothdf5.h5" -- $(C nothdf5.h5)
expect2 "golden not HDF5" "nothdf5.h5" -- compare --golden "$W/nothdf5.h5" --candidate "$W/same.h5"
expect2 "candidate missing" "$W/nope.h5" -- $(C nope.h5)
expect2 "official names read as open_clip" "/acts/visual.blocks.0: unknown tap" -- $(C official.h5) --names open_clip
expect2 "--names bogus" "--names" -- $(C same.h5) --names bogus
expect2 "--precision bogus" "bogus" -- $(C same.h5) --precision bogus
expect2 "without --candidate" "--candidate" -- compare --golden "$G"
expect2 "without --golden" "--golden" -- compare --candidate "$W/same.h5"
expect2 "unknown option" "--frobnicate" -- $(C same.h5) --frobnicate
expect2 "report to a missing folder" "$W/no/dir/r.json" -- $(C same.h5) --json "$W/no/dir/r.json"

# ---- encode --taps: the reference's activations as a golden ---------------------------------------
GW=$TINY/eva02.safetensors
expect_rc "encode --taps" 0 -- encode --weights "$GW" --inputs "$G" --taps --out "$W/ref.h5"
expect_rc "encode --taps --batch 1" 0 -- encode --weights "$GW" --inputs "$G" --taps --batch 1 --out "$W/ref1.h5"
"$PY" - "$G" "$W/ref.h5" "$W/ref1.h5" <<'PYEOF' || bad "encode --taps file"
import json, sys, numpy as np, h5py
g, r, r1 = (h5py.File(p, "r") for p in sys.argv[1:4])
A = lambda f, k: f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else str(f.attrs[k])
assert A(r, "schema") == "evabench-golden/1"
assert json.loads(A(r, "config"))["name"] == json.loads(A(g, "config"))["name"]
assert A(r, "impl") == "ref" and A(r, "precision") == "fp32" and A(r, "compute_dtype") == "float32", dict(r.attrs)
assert A(r, "weights").startswith("/") and A(r, "weights").endswith("eva02.safetensors"), A(r, "weights")
missing = sorted(set(g["acts"]) - set(r["acts"]))
assert not missing, missing
assert {"image_embeds", "text_embeds", "image_features", "text_features", "logits_per_image"} <= set(r["acts"])
assert np.array_equal(r["inputs/pixel_values"][()], g["inputs/pixel_values"][()])
assert np.array_equal(r["inputs/input_ids"][()], g["inputs/input_ids"][()])
for k in r["acts"]:
    assert r["acts/" + k].dtype == np.float32, k
    assert np.abs(r["acts/" + k][()] - r1["acts/" + k][()]).max() <= 1e-5, ("--batch 1 differs", k)
for k in ("image_features", "image_embeds", "text_features"):  # encode's own outputs stay at the root
    assert np.array_equal(r[k][()], r["acts/" + k][()]), k
print("ok   encode --taps file: attributes, every golden tap, inputs, batch split")
PYEOF
expect_rc "the upstream golden's taps against encode --taps" 0 -- $(C ref.h5)
out_has "ref vs upstream" "PASS: all $NACTS taps in common"
expect_rc "encode --taps as a golden for compare" 0 -- compare --golden "$W/ref.h5" --candidate "$G"
expect_rc "encode --taps as a golden for verify" 0 -- verify --golden "$W/ref.h5"
expect2 "encode --taps failure leaves no file" "nothdf5.h5" -- encode --weights "$GW" --inputs "$W/nothdf5.h5" --taps --out "$W/x.h5"
[ -e "$W/x.h5" ] && bad "encode --taps: output file written on failure"

echo
echo "$runs runs, $fails failures"
[ "$fails" -eq 0 ]
