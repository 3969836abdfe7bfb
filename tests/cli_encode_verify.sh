#!/usr/bin/env bash
# cli_encode_verify.sh: `evabench encode` and `evabench verify` end to end, and their refusals of
# hostile input. Run by ctest as: bash tests/cli_encode_verify.sh <evabench>.
#
# Every hostile case must give exit status 2 and exactly one line on stderr that names the file
# (or option) concerned, with no sanitizer report (the test suite is built with ASan+UBSan; a
# leak or a UBSan report changes the exit status or adds lines, so it fails here too) and no hang
# (each run has a timeout). The hostile files are made here from the committed tiny EVA-02 golden.
# Exit 0 pass, 1 fail, 77 skip (no python3 with numpy/h5py, or no tiny golden).
set -u

EVABENCH=${1:?usage: cli_encode_verify.sh path/to/evabench}
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

W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-cli.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}

# ---- make the files ------------------------------------------------------------------------------
"$PY" - "$TINY" "$W" <<'PYEOF' || { echo "FAIL: could not make the test files"; exit 1; }
import json, os, struct, sys
import numpy as np, h5py

tiny, w = sys.argv[1], sys.argv[2]
P = lambda n: os.path.join(w, n)
raw = open(os.path.join(tiny, "eva02.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
data = raw[8 + n:]
g = h5py.File(os.path.join(tiny, "eva02.h5"), "r")
cfg = json.loads(g.attrs["config"])
pix = g["inputs/pixel_values"][:]
ids = g["inputs/input_ids"][:]
S, L, V = cfg["vision"]["image_size"], cfg["text"]["context_length"], cfg["text"]["vocab_size"]

def st(name, h, d=data):
    hb = json.dumps(h).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    open(P(name), "wb").write(struct.pack("<Q", len(hb)) + hb + d)

def tensors(h):
    return [k for k in h if k != "__metadata__"]

def f32_tensor(h, ndim_min=1):
    for k in tensors(h):
        if h[k]["dtype"] == "F32" and len(h[k]["shape"]) >= ndim_min and h[k]["shape"][0] > 1:
            return k

import copy
k2 = f32_tensor(hdr, 2)
open(P("names.txt"), "w").write(k2 + "\n")
# --- weights
open(P("w_empty.safetensors"), "wb").close()
open(P("w_trunc_header.safetensors"), "wb").write(raw[:8 + n // 2])
open(P("w_trunc_data.safetensors"), "wb").write(raw[:len(raw) - 1000])
open(P("w_short.safetensors"), "wb").write(raw[:5])
open(P("w_hdrlen.safetensors"), "wb").write(struct.pack("<Q", 1 << 60) + raw[8:])
hb = b'{"a": [1, 2,' + b" " * 20
open(P("w_notjson.safetensors"), "wb").write(struct.pack("<Q", len(hb)) + hb + data)
h = copy.deepcopy(hdr); h[k2]["data_offsets"] = [0, 1 << 40]; st("w_offs_range.safetensors", h)
h = copy.deepcopy(hdr); h[k2]["shape"] = [h[k2]["shape"][0] + 1] + h[k2]["shape"][1:]; st("w_offs_shape.safetensors", h)
h = copy.deepcopy(hdr); a, b = h[k2]["data_offsets"]; h[k2]["data_offsets"] = [b, a]; st("w_offs_reversed.safetensors", h)
def drop(h, d, name):  # remove a tensor and its bytes, keeping the data contiguous
    h = copy.deepcopy(h); a, b = h[name]["data_offsets"]; del h[name]
    for k in tensors(h):
        o = h[k]["data_offsets"]
        if o[0] >= b:
            h[k]["data_offsets"] = [o[0] - (b - a), o[1] - (b - a)]
    return h, d[:a] + d[b:]
h, d = drop(hdr, data, k2); st("w_missing.safetensors", h, d)
h = copy.deepcopy(hdr); end = len(data); h["visual.trunk.extra.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [end, end + 8]}
st("w_unexpected.safetensors", h, data + b"\0" * 8)
h = copy.deepcopy(hdr); h[k2]["dtype"] = "I32"; st("w_dtype.safetensors", h)
h = copy.deepcopy(hdr); h[k2]["dtype"] = "F8_E4M3"; st("w_dtype8.safetensors", h)
h = copy.deepcopy(hdr); h[k2]["shape"] = [-h[k2]["shape"][0]] + h[k2]["shape"][1:]; st("w_negdim.safetensors", h)
h = copy.deepcopy(hdr); h[k2]["shape"] = [1 << 62, 1 << 62]; st("w_hugedim.safetensors", h)
h = copy.deepcopy(hdr); c = copy.deepcopy(cfg); del c["vision"]["width"]
h["__metadata__"]["evabench.config"] = json.dumps(c); st("w_meta_bad.safetensors", h)
h = copy.deepcopy(hdr); del h["__metadata__"]; st("w_nometa.safetensors", h)
# --- configs
json.dump(cfg, open(P("c_good.json"), "w"))
open(P("c_notjson.json"), "w").write('{"name": "x", "vision": {')
c = copy.deepcopy(cfg); del c["vision"]["heads"]; json.dump(c, open(P("c_nofield.json"), "w"))
c = copy.deepcopy(cfg); c["vision"]["heads"] = 7; json.dump(c, open(P("c_heads.json"), "w"))
c = copy.deepcopy(cfg); c["text"]["heads"] = 5; json.dump(c, open(P("c_theads.json"), "w"))
c = copy.deepcopy(cfg); c["vision"]["patch_size"] = 0; json.dump(c, open(P("c_patch0.json"), "w"))
c = copy.deepcopy(cfg); c["vision"]["depth"] = 100000000; json.dump(c, open(P("c_depth.json"), "w"))
c = copy.deepcopy(cfg); c["vision"]["width"] = -96; json.dump(c, open(P("c_negwidth.json"), "w"))
c = copy.deepcopy(cfg); c["vision"]["mlp"] = "relu"; json.dump(c, open(P("c_mlp.json"), "w"))
c = copy.deepcopy(cfg); c["text"]["vocab_size"] = 1 << 40; json.dump(c, open(P("c_vocab.json"), "w"))
# --- inputs
def inputs(name, **ds):
    with h5py.File(P(name), "w") as f:
        for k, v in ds.items():
            f["inputs/" + k] = v
inputs("i_good.h5", pixel_values=pix, input_ids=ids)
inputs("i_good32.h5", pixel_values=pix, input_ids=ids.astype(np.int32))
inputs("i_pix.h5", pixel_values=pix)
inputs("i_ids.h5", input_ids=ids)
open(P("i_nothdf5.h5"), "w").write("this is not an HDF5 file\n")
open(P("i_empty.h5"), "wb").close()
inputs("i_size.h5", pixel_values=np.zeros((2, 3, S + 8, S + 8), np.float32))
inputs("i_channels.h5", pixel_values=np.zeros((2, 4, S, S), np.float32))
inputs("i_rank.h5", pixel_values=np.zeros((3, S, S), np.float32))
inputs("i_pixint.h5", pixel_values=np.zeros((1, 3, S, S), np.int32))
inputs("i_pixzero.h5", pixel_values=np.zeros((0, 3, S, S), np.float32))
big = ids.copy(); big[1, 3] = V; inputs("i_id_range.h5", input_ids=big)
neg = ids.copy(); neg[0, 5] = -1; inputs("i_id_neg.h5", input_ids=neg)
huge = ids.copy(); huge[0, 0] = 1 << 40; inputs("i_id_huge.h5", input_ids=huge)
inputs("i_ctx.h5", input_ids=ids[:, :10])
inputs("i_idsfloat.h5", input_ids=ids.astype(np.float32))
with h5py.File(P("i_noinputs.h5"), "w") as f:
    f["pixel_values"] = pix
with h5py.File(P("i_emptygroup.h5"), "w") as f:
    f.create_group("inputs")
with h5py.File(P("i_bigdecl.h5"), "w") as f:   # declares ~2 TB, stores nothing
    f.create_dataset("inputs/pixel_values", shape=(1 << 20, 3, S, S), dtype=np.float32, chunks=(1, 3, S, S))
with h5py.File(P("i_scalar.h5"), "w") as f:
    f["inputs/pixel_values"] = np.float32(1.0)
# --- goldens (copies of the tiny golden with one thing wrong)
def golden(name, edit, weights=os.path.join(tiny, "eva02.safetensors")):
    with h5py.File(P(name), "w") as f:
        for k, v in g.attrs.items():
            f.attrs[k] = v
        f.attrs["weights"] = weights
        for k in g["inputs"]:
            f["inputs/" + k] = g["inputs/" + k][:]
        for k in g["acts"]:
            f["acts/" + k] = g["acts/" + k][:]
        edit(f)
golden("g_good.h5", lambda f: None)
def scale(f):
    a = f["acts/visual.trunk.blocks.1.mlp"][:]; del f["acts/visual.trunk.blocks.1.mlp"]
    f["acts/visual.trunk.blocks.1.mlp"] = a * np.float32(1.01)
golden("g_perturbed.h5", scale)
def nan(f):
    a = f["acts/text.ln_final"][:]; a[0, 0, 0] = np.nan; del f["acts/text.ln_final"]; f["acts/text.ln_final"] = a
golden("g_nan.h5", nan)
def some(f):
    for k in list(f["acts"]):
        if "blocks.1" in k or "resblocks.1" in k:
            del f["acts/" + k]
golden("g_subset.h5", some)
golden("g_embeds.h5", lambda f: f.create_dataset("acts/image_embeds", data=(lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(g["acts/image_features"][:].astype(np.float64)).astype(np.float32)))
golden("g_unknown.h5", lambda f: f.create_dataset("acts/visual.trunk.blocks.0.foo", data=np.zeros((3, 26, 96), np.float32)))
golden("g_unknown_block.h5", lambda f: f.create_dataset("acts/visual.trunk.blocks.7", data=g["acts/visual.trunk.blocks.1"][:]))
golden("g_unknown_long.h5", lambda f: f.create_dataset("acts/" + "x" * 200, data=np.zeros((2,), np.float32)))
def wrongshape(f):
    a = f["acts/visual.trunk.norm"][:]; del f["acts/visual.trunk.norm"]; f["acts/visual.trunk.norm"] = a[:, :-1, :]
golden("g_shape.h5", wrongshape)
def intact(f):
    del f["acts/text.ln_final"]; f["acts/text.ln_final"] = np.zeros((4, 77, 32), np.int32)
golden("g_intact.h5", intact)
golden("g_noweights.h5", lambda f: None, weights="does_not_exist.safetensors")
golden("g_schema.h5", lambda f: f.attrs.__setitem__("schema", "something-else/9"))
golden("g_noschema.h5", lambda f: f.attrs.__delitem__("schema"))
golden("g_badcfg.h5", lambda f: f.attrs.__setitem__("config", "{not json"))
def badids(f):
    a = f["inputs/input_ids"][:]; a[2, 7] = V + 5; del f["inputs/input_ids"]; f["inputs/input_ids"] = a
golden("g_ids.h5", badids)
def badpix(f):
    del f["inputs/pixel_values"]; f["inputs/pixel_values"] = np.zeros((3, 3, S * 2, S * 2), np.float32)
golden("g_pix.h5", badpix)
golden("g_noacts.h5", lambda f: f.__delitem__("acts"))
def actgroup(f):
    f.create_group("acts/visual.trunk.norm_group")
golden("g_actgroup.h5", actgroup)
PYEOF

# ---- helpers -------------------------------------------------------------------------------------
fails=0
runs=0
run() { # run <outfile-prefix> args...  -> rc in $rc, stdout in $W/out, stderr in $W/err
  timeout "$TO" "$EVABENCH" "$@" >"$W/out" 2>"$W/err"
  rc=$?
  runs=$((runs + 1))
}
bad() { fails=$((fails + 1)); echo "FAIL: $*"; echo "  stderr: $(head -c 2000 "$W/err")"; }
sanitizer_clean() { ! grep -qE 'Sanitizer|runtime error:|LeakSanitizer|SUMMARY:' "$W/err"; }

# expect2 <label> <substring that must appear on stderr> -- <evabench args...>
expect2() {
  local label=$1 want=$2; shift 3
  run "$@"
  local lines
  lines=$(wc -l <"$W/err")
  if [ "$rc" -ne 2 ]; then bad "$label: exit $rc, expected 2"; return; fi
  if ! sanitizer_clean; then bad "$label: sanitizer report"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$label: $lines lines on stderr, expected one"; return; fi
  if ! grep -qF -- "$want" "$W/err"; then bad "$label: stderr does not name '$want'"; return; fi
  if ! grep -qE '^evabench (encode|verify): ' "$W/err"; then bad "$label: message does not start with 'evabench <cmd>: '"; return; fi
  echo "ok   $label: $(cat "$W/err")"
}
expect_rc() { # expect_rc <label> <rc> -- args...
  local label=$1 want=$2; shift 3
  run "$@"
  if [ "$rc" -ne "$want" ]; then bad "$label: exit $rc, expected $want"; return 1; fi
  if ! sanitizer_clean; then bad "$label: sanitizer report"; return 1; fi
  echo "ok   $label (exit $rc)"
}

GW=$TINY/eva02.safetensors
ENC=(encode --weights "$GW" --inputs "$W/i_good.h5" --out "$W/o.h5")
K2=$(head -1 "$W/names.txt")

# ---- help and the good paths ---------------------------------------------------------------------
expect_rc "encode --help" 0 -- encode --help && grep -q "usage: evabench encode" "$W/out" || bad "encode --help text"
expect_rc "verify --help" 0 -- verify --help && grep -q "usage: evabench verify" "$W/out" || bad "verify --help text"

expect_rc "encode good (config from weights metadata)" 0 -- "${ENC[@]}"
expect_rc "encode good --batch 1, int32 ids" 0 -- encode --weights "$GW" --inputs "$W/i_good32.h5" --out "$W/o1.h5" --batch 1
expect_rc "encode good --config" 0 -- encode --weights "$GW" --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/oc.h5"
expect_rc "encode images only" 0 -- encode --weights "$GW" --inputs "$W/i_pix.h5" --out "$W/op.h5"
expect_rc "encode texts only" 0 -- encode --weights "$GW" --inputs "$W/i_ids.h5" --out "$W/ot.h5"
"$PY" - "$W" "$TINY/eva02.h5" <<'PYEOF' || bad "encode outputs"
import sys, numpy as np, h5py
w, gp = sys.argv[1], sys.argv[2]
g = h5py.File(gp, "r")
o, o1, oc = (h5py.File(f"{w}/{n}.h5", "r") for n in ("o", "o1", "oc"))
need = ["image_features", "text_features", "image_embeds", "text_embeds", "logits_per_image"]
assert sorted(o.keys()) == sorted(need), sorted(o.keys())
for k in need:
    assert o[k].dtype == np.float32, (k, o[k].dtype)
    assert np.abs(o[k][:] - o1[k][:]).max() <= 1e-6, ("--batch 1 differs", k)
    assert np.array_equal(o[k][:], oc[k][:]), ("--config differs", k)
for k in ("image_features", "text_features", "logits_per_image"):
    d = np.abs(o[k][:].astype(np.float64) - g["acts/" + k][:]).max()
    assert d < 1e-4, (k, d)
e = o["image_embeds"][:].astype(np.float64)
assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)
ref = g["acts/image_features"][:].astype(np.float64); ref /= np.linalg.norm(ref, axis=1, keepdims=True)
assert np.abs(e - ref).max() <= 1e-5
p, t = h5py.File(f"{w}/op.h5", "r"), h5py.File(f"{w}/ot.h5", "r")
assert sorted(p.keys()) == ["image_embeds", "image_features"], sorted(p.keys())
assert sorted(t.keys()) == ["text_embeds", "text_features"], sorted(t.keys())
print("ok   encode outputs: datasets, dtypes, batch split, config sources, values against the golden")
PYEOF

expect_rc "verify good golden (report + json)" 0 -- verify --golden "$TINY/eva02.h5" --report "$W/r.md" --json "$W/r.json"
grep -q "first_failure" "$W/r.json" && grep -q "| \`image_embeds\`" "$W/r.md" || bad "verify report files"
grep -q "^image_embeds " "$W/out" && grep -q "^text_embeds " "$W/out" || bad "verify prints embeds rows"
expect_rc "verify copy with absolute weights path" 0 -- verify --golden "$W/g_good.h5"
for f in "$TINY"/eva02.official.safetensors "$TINY"/eva02.f16.safetensors "$TINY"/eva02.bf16.safetensors; do
  [ -f "$f" ] && expect_rc "verify with $(basename "$f")" 0 -- verify --golden "$TINY/eva02.h5" --weights "$f"
done
expect_rc "verify golden with a subset of taps" 0 -- verify --golden "$W/g_subset.h5"
expect_rc "verify golden with stored image_embeds" 0 -- verify --golden "$W/g_embeds.h5"
grep -c "^image_embeds " "$W/out" | grep -qx 1 || bad "image_embeds row appears once"

expect_rc "verify perturbed golden fails" 1 -- verify --golden "$W/g_perturbed.h5" --json "$W/p.json"
grep -q "first failing tap: visual.trunk.blocks.1.mlp" "$W/out" || bad "perturbed: first failing tap not named on stdout"
grep -q "visual.trunk.blocks.1.mlp" "$W/err" && [ "$(wc -l <"$W/err")" -eq 1 ] || bad "perturbed: stderr names the tap in one line"
grep -q '"first_failure":[[:space:]]*"visual.trunk.blocks.1.mlp"' "$W/p.json" || bad "perturbed: json first_failure"
expect_rc "verify golden with a NaN fails" 1 -- verify --golden "$W/g_nan.h5"
grep -q "text.ln_final" "$W/err" || bad "NaN: tap not named"

# --image / --text instead of --inputs
IMGS=("$SRC"/golden/parity/images/*.jpg)
if [ -f "${IMGS[0]}" ]; then
  expect_rc "encode --image" 0 -- encode --weights "$GW" --image "${IMGS[0]}" "${IMGS[1]:-${IMGS[0]}}" --out "$W/oimg.h5"
  "$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert f['image_embeds'].shape==(2,32) and 'text_embeds' not in f" \
    "$W/oimg.h5" || bad "encode --image outputs"
fi
expect2 "encode --image missing file" "$W/nope.png" -- encode --weights "$GW" --image "$W/nope.png" --out "$W/x.h5"
expect2 "encode --image not an image" "i_nothdf5.h5" -- encode --weights "$GW" --image "$W/i_nothdf5.h5" --out "$W/x.h5"
expect2 "encode --image without a value" "--image" -- encode --weights "$GW" --image --out "$W/x.h5"
expect2 "encode --inputs and --image" "--inputs" -- encode --weights "$GW" --inputs "$W/i_good.h5" --image "$W/nope.png" --out "$W/x.h5"
# the tiny model's 1000-token vocabulary cannot take CLIP BPE ids: a clean refusal
expect2 "encode --text with ids beyond the tiny vocab" "--text" -- encode --weights "$GW" --text "a photo of a cat" --out "$W/x.h5"

# ---- hostile weights (encode and verify) ---------------------------------------------------------
for c in empty trunc_header trunc_data short hdrlen notjson offs_range offs_shape offs_reversed missing unexpected \
         dtype dtype8 negdim hugedim; do
  expect2 "encode weights $c" "w_$c.safetensors" -- encode --weights "$W/w_$c.safetensors" --config "$W/c_good.json" \
    --inputs "$W/i_good.h5" --out "$W/x.h5"
  [ -e "$W/x.h5" ] && bad "weights $c: output file written on failure"
done
for c in empty hdrlen notjson missing; do
  expect2 "encode weights $c (config from metadata)" "w_$c.safetensors" -- encode --weights "$W/w_$c.safetensors" \
    --inputs "$W/i_good.h5" --out "$W/x.h5"
done
expect2 "encode weights missing tensor names it" "$K2" -- encode --weights "$W/w_missing.safetensors" --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode weights unexpected tensor names it" "visual.trunk.extra.weight" -- encode --weights "$W/w_unexpected.safetensors" --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode weights unsupported dtype names the tensor" "$K2" -- encode --weights "$W/w_dtype.safetensors" --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode weights metadata config lacks a field" "w_meta_bad.safetensors" -- encode --weights "$W/w_meta_bad.safetensors" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode weights without config metadata" "--variant" -- encode --weights "$W/w_nometa.safetensors" --inputs "$W/i_good.h5" --out "$W/x.h5"
for c in trunc_data notjson offs_range missing unexpected dtype negdim; do
  expect2 "verify weights $c" "w_$c.safetensors" -- verify --golden "$TINY/eva02.h5" --weights "$W/w_$c.safetensors"
done

# ---- hostile configs -----------------------------------------------------------------------------
for c in notjson nofield heads theads patch0 depth negwidth mlp vocab; do
  expect2 "encode config $c" "c_$c.json" -- encode --weights "$GW" --config "$W/c_$c.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
  expect2 "verify config $c" "c_$c.json" -- verify --golden "$TINY/eva02.h5" --config "$W/c_$c.json"
done
expect2 "encode unknown variant" "NoSuchVariant" -- encode --weights "$GW" --variant NoSuchVariant --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode --variant and --config" "--config" -- encode --weights "$GW" --variant EVA02-B-16 --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "verify golden config attribute not JSON" "g_badcfg.h5" -- verify --golden "$W/g_badcfg.h5"
expect2 "encode built-in variant that does not match the weights" "eva02.safetensors" -- encode --weights "$GW" --variant EVA02-B-16 --inputs "$W/i_ids.h5" --out "$W/x.h5"

# ---- hostile inputs ------------------------------------------------------------------------------
for c in nothdf5 empty size channels rank pixint pixzero id_range id_neg id_huge ctx idsfloat noinputs emptygroup bigdecl scalar; do
  expect2 "encode inputs $c" "i_$c.h5" -- encode --weights "$GW" --inputs "$W/i_$c.h5" --out "$W/x.h5"
  [ -e "$W/x.h5" ] && bad "inputs $c: output file written on failure"
done
expect2 "encode wrong image size names both shapes" "[2,3,48,48]" -- encode --weights "$GW" --inputs "$W/i_size.h5" --out "$W/x.h5"
grep -qF "[2,3,40,40]" "$W/err" || bad "wrong image size: expected shape not named"
expect2 "encode negative token id" "negative" -- encode --weights "$GW" --inputs "$W/i_id_neg.h5" --out "$W/x.h5"
expect2 "encode token id out of range" "out of range" -- encode --weights "$GW" --inputs "$W/i_id_range.h5" --out "$W/x.h5"

# ---- hostile goldens -----------------------------------------------------------------------------
for c in unknown unknown_block unknown_long shape intact noweights schema noschema ids pix noacts actgroup; do
  expect2 "verify golden $c" "g_$c.h5" -- verify --golden "$W/g_$c.h5"
done
expect2 "verify unknown tap is named" "visual.trunk.blocks.0.foo" -- verify --golden "$W/g_unknown.h5"
expect2 "verify out-of-range block is named" "visual.trunk.blocks.7" -- verify --golden "$W/g_unknown_block.h5"
expect2 "verify wrong tap shape is named" "visual.trunk.norm" -- verify --golden "$W/g_shape.h5"
expect2 "verify golden not HDF5" "i_nothdf5.h5" -- verify --golden "$W/i_nothdf5.h5"
expect2 "verify golden weights attribute to a missing file" "does_not_exist.safetensors" -- verify --golden "$W/g_noweights.h5"

# ---- missing files -------------------------------------------------------------------------------
expect2 "encode missing weights" "$W/nope.safetensors" -- encode --weights "$W/nope.safetensors" --config "$W/c_good.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode missing weights (metadata path)" "$W/nope.safetensors" -- encode --weights "$W/nope.safetensors" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode missing inputs" "$W/nope.h5" -- encode --weights "$GW" --inputs "$W/nope.h5" --out "$W/x.h5"
expect2 "encode missing config" "$W/nope.json" -- encode --weights "$GW" --config "$W/nope.json" --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode output folder missing" "$W/no/such/dir/o.h5" -- encode --weights "$GW" --inputs "$W/i_good.h5" --out "$W/no/such/dir/o.h5"
expect2 "verify missing golden" "$W/nope.h5" -- verify --golden "$W/nope.h5"
expect2 "verify missing --weights" "$W/nope.safetensors" -- verify --golden "$TINY/eva02.h5" --weights "$W/nope.safetensors"
expect2 "verify report to a missing folder" "$W/no/dir/r.json" -- verify --golden "$TINY/eva02.h5" --json "$W/no/dir/r.json"

# ---- options -------------------------------------------------------------------------------------
expect2 "encode unknown option" "--frobnicate" -- "${ENC[@]}" --frobnicate
expect2 "encode option without value" "--batch" -- "${ENC[@]}" --batch
expect2 "encode --batch 0" "--batch" -- "${ENC[@]}" --batch 0
expect2 "encode --batch abc" "--batch" -- "${ENC[@]}" --batch abc
expect2 "encode --batch huge" "--batch" -- "${ENC[@]}" --batch 99999999999999999999
expect2 "encode --impl bogus" "--impl" -- "${ENC[@]}" --impl bogus
expect2 "encode --precision bogus" "bogus" -- "${ENC[@]}" --precision bogus
expect2 "encode ref in bf16" "fp32 only" -- "${ENC[@]}" --precision bf16
expect2 "encode without --weights" "--weights" -- encode --inputs "$W/i_good.h5" --out "$W/x.h5"
expect2 "encode without --out" "--out" -- encode --weights "$GW" --inputs "$W/i_good.h5"
expect2 "encode --out onto the inputs" "$W/i_good.h5" -- encode --weights "$GW" --inputs "$W/i_good.h5" --out "$W/i_good.h5"
expect2 "verify without --golden" "--golden" -- verify
expect2 "verify ref in fp16" "fp32 only" -- verify --golden "$TINY/eva02.h5" --precision fp16
run verify --golden "$TINY/eva02.h5" --impl cuda
if [ "$rc" -eq 2 ]; then
  grep -q "CUDA" "$W/err" && [ "$(wc -l <"$W/err")" -eq 1 ] && echo "ok   verify --impl cuda refused: $(cat "$W/err")" ||
    bad "--impl cuda: message"
elif [ "$rc" -ne 0 ]; then
  bad "verify --impl cuda: exit $rc (expected 0 with a GPU, 2 without)"
else
  echo "ok   verify --impl cuda passes"
fi

echo
echo "$runs runs, $fails failures"
[ "$fails" -eq 0 ]
