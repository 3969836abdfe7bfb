#!/usr/bin/env bash
# cli_bench.sh: `evabench bench` and `evabench profile` end to end on a tiny config:
# records parse and carry every docs/cli.md field, JSON Lines append, profiles name every tap,
# the memory refusal (a variant that cannot fit: exit 2 with the bytes needed and available, before
# anything is allocated), profile --impl cuda (without a device or without CUDA: exit 2 with the
# reason; with a device: device-timed rows and a cuBLASLt ceiling), and bad options refused with exit 2.
# Run by ctest as: bash tests/cli_bench.sh <evabench>. Exit 0 pass, 1 fail, 77 skip (no python3).
set -u

EVABENCH=${1:?usage: cli_bench.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then echo "SKIP: python3 is needed to parse the JSON records"; exit 77; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# The tiny EVA-02 config of golden/tiny (2 blocks of width 96, text width 32).
cat > "$W/tiny.json" <<'EOF'
{"name": "tiny-eva02", "embed_dim": 32,
 "vision": {"image_size": 40, "patch_size": 8, "width": 96, "depth": 2, "heads": 4, "head_dim": 24,
            "mlp_hidden": 130, "mlp": "swiglu", "subln": true, "rope": true, "rope_ref_grid": 16,
            "postnorm": false, "qkv": "split", "qv_bias": true, "norm": "layernorm", "norm_eps": 1e-06,
            "head_bias": true},
 "text": {"context_length": 77, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 2,
          "mlp_hidden": 128, "norm_eps": 1e-05}}
EOF

# expect_refusal NAME WANT_SUBSTRING CMD...: exit 2 and a stderr line containing WANT_SUBSTRING.
expect_refusal() {
  local name=$1 want=$2; shift 2
  timeout "$TO" "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  if [ $rc -ne 2 ]; then fail "$name: exit $rc, want 2 ($(head -c 300 "$W/err"))"; return; fi
  if ! grep -q -- "$want" "$W/err"; then fail "$name: stderr lacks '$want': $(head -c 300 "$W/err")"; fi
}

# ---- --help ---------------------------------------------------------------------------------------
for c in bench profile; do
  timeout "$TO" "$EVABENCH" $c --help >"$W/out" 2>&1 || fail "$c --help exit $?"
  grep -q "usage: evabench $c" "$W/out" || fail "$c --help prints no usage"
done

# ---- bench: records -------------------------------------------------------------------------------
timeout "$TO" "$EVABENCH" bench --config "$W/tiny.json" --tower both --batch 1,3 --warmup 1 --iters 2 \
  --json "$W/bench.json" --jsonl "$W/bench.jsonl" >"$W/out" 2>"$W/err" || fail "bench exit $? ($(cat "$W/err"))"
grep -q "random(seed=0)" "$W/out" || fail "bench output does not say the weights are random"
timeout "$TO" "$EVABENCH" bench --config "$W/tiny.json" --batch 2 --iters 1 --warmup 0 --quiet \
  --weights "$SRC/golden/tiny/eva02.safetensors" --jsonl "$W/bench.jsonl" >"$W/out2" 2>"$W/err" \
  || fail "bench --weights exit $? ($(cat "$W/err"))"

"$PY" - "$W/bench.json" "$W/bench.jsonl" "$SRC/golden/tiny/eva02.safetensors" <<'PYEOF' || fail "bench records"
import json, sys
recs = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
bad = []
need = ["variant", "impl", "precision", "tower", "batch", "iters", "median_ms", "p90_ms", "throughput",
        "peak_host_bytes", "peak_device_bytes", "device", "build", "host", "weights", "gflops",
        "baseline_host_bytes", "weight_bytes", "activation_bytes", "rss_budget_bytes", "rss_within_budget"]
if not isinstance(recs, list) or len(recs) != 4: bad.append("--json: want a list of 4 records, got %r" % type(recs))
if len(lines) != 5: bad.append("--jsonl: want 5 lines (4 + 1 appended), got %d" % len(lines))
for r in recs + lines:
    for k in need:
        if k not in r: bad.append("record lacks %s" % k)
    if r.get("peak_device_bytes", 0) is not None: bad.append("peak_device_bytes must be null without a GPU")
    if not (r.get("median_ms", 0) > 0 and r.get("p90_ms", 0) >= r.get("median_ms", 1)): bad.append("median/p90 %r" % r)
    if not r.get("throughput", 0) > 0: bad.append("throughput")
    if not r.get("peak_host_bytes", 0) > 0: bad.append("peak_host_bytes")
    b = r.get("build", {})
    for k in ["git_rev", "compiler", "flags"]:
        if k not in b: bad.append("build lacks " + k)
    h = r.get("host", {})
    for k in ["cpu_model", "omp_threads"]:
        if k not in h: bad.append("host lacks " + k)
    if r.get("impl") != "ref" or r.get("precision") != "fp32" or r.get("variant") != "tiny-eva02": bad.append("ids %r" % r)
got = sorted((r["tower"], r["batch"], r["iters"]) for r in recs)
if got != [("image", 1, 2), ("image", 3, 2), ("text", 1, 2), ("text", 3, 2)]: bad.append("sweep %r" % got)
if any(r["weights"] != "random(seed=0)" for r in recs): bad.append("weights field of random runs")
if lines and lines[-1]["weights"] != sys.argv[3]: bad.append("weights field of --weights run: %r" % lines[-1]["weights"])
for b in bad: print(b)
sys.exit(1 if bad else 0)
PYEOF

# ---- profile --------------------------------------------------------------------------------------
timeout "$TO" "$EVABENCH" profile --config "$W/tiny.json" --tower both --batch 2 --iters 2 --ceiling 64 --all \
  --json "$W/prof.json" >"$W/out" 2>"$W/err" || fail "profile exit $? ($(cat "$W/err"))"
grep -q "GEMM ceiling" "$W/out" || fail "profile prints no GEMM ceiling"
"$PY" - "$W/prof.json" <<'PYEOF' || fail "profile record"
import json, sys
p = json.load(open(sys.argv[1]))
bad = []
for k in ["variant", "impl", "precision", "weights", "device", "build", "host", "gemm_ceiling_gflops", "profiles"]:
    if k not in p: bad.append("profile lacks " + k)
if not p.get("gemm_ceiling_gflops", 0) > 0: bad.append("ceiling not measured")
towers = {q["tower"]: q for q in p.get("profiles", [])}
if set(towers) != {"image", "text"}: bad.append("towers %r" % list(towers))
want = {"image": ["visual.trunk.patch_embed", "visual.trunk.pos_drop", "visual.trunk.blocks.0.norm1",
                  "visual.trunk.blocks.0.attn", "visual.trunk.blocks.0.norm2", "visual.trunk.blocks.0.mlp",
                  "visual.trunk.blocks.1", "visual.trunk.norm", "visual.trunk.head"],
        "text": ["text.token_embedding", "text.transformer.resblocks.0.ln_1", "text.transformer.resblocks.0.attn",
                 "text.transformer.resblocks.1.mlp", "text.ln_final"]}
for t, q in towers.items():
    names = [r["name"] for r in q["taps"]]
    for n in want[t]:
        if n not in names: bad.append("%s profile lacks tap %s" % (t, n))
    if abs(sum(r["share"] for r in q["taps"]) - 1) > 1e-6: bad.append("shares do not sum to 1")
    if not all(r["median_ms"] >= 0 for r in q["taps"]): bad.append("negative time")
    attn = [r for r in q["taps"] if r["kind"] == "attn"]
    if not attn or not all(r["gflop"] > 0 and r["gflops"] > 0 for r in attn): bad.append("attn GFLOP/s missing")
    if q["batch"] != 2 or q["iters"] != 2: bad.append("batch/iters")
for b in bad: print(b)
sys.exit(1 if bad else 0)
PYEOF

# ---- memory refusals (before anything is allocated) --------------------------------------------------
expect_refusal "18B fp32 on this machine" "GiB" env EVA_MEM_AVAILABLE=25769803776 \
  "$EVABENCH" bench --variant EVA-CLIP-18B
grep -q "needs .* GiB (.* bytes.*), .* GiB (25769803776 bytes) available" "$W/err" \
  || fail "18B refusal does not give the bytes needed and available: $(cat "$W/err")"
expect_refusal "profile 18B" "available" env EVA_MEM_AVAILABLE=25769803776 \
  "$EVABENCH" profile --variant EVA-CLIP-18B --ceiling 0
expect_refusal "tiny config with 1 MB available" "available" env EVA_MEM_AVAILABLE=1000000 \
  "$EVABENCH" bench --config "$W/tiny.json"

# ---- other refusals ------------------------------------------------------------------------------
# profile --impl cuda: no device (or no CUDA in this build) -> exit 2 with the reason; a device -> a profile
timeout "$TO" "$EVABENCH" profile --config "$W/tiny.json" --impl cuda --tower both --batch 2 --iters 2 \
  --ceiling 256 --json "$W/prof_cuda.json" >"$W/out" 2>"$W/err"
rc=$?
if [ $rc -eq 2 ]; then
  grep -qE "no CUDA device is available|this build has no CUDA" "$W/err" \
    || fail "profile --impl cuda: exit 2 without the device/build reason: $(head -c 300 "$W/err")"
elif [ $rc -eq 0 ]; then
  grep -q "GEMM ceiling: .* TFLOP/s (cuBLASLt 256^3 fp32" "$W/out" || fail "profile --impl cuda: no cuBLASLt ceiling"
  "$PY" -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["impl"] == "cuda"
assert sorted(q["tower"] for q in p["profiles"]) == ["image", "text"]
assert all(r["median_ms"] >= 0 for q in p["profiles"] for r in q["taps"])' "$W/prof_cuda.json" \
    || fail "profile --impl cuda record"
else
  fail "profile --impl cuda: exit $rc ($(head -c 300 "$W/err"))"
fi
expect_refusal "--batch 0" "--batch" "$EVABENCH" bench --config "$W/tiny.json" --batch 0
expect_refusal "--batch 1,,2" "--batch" "$EVABENCH" bench --config "$W/tiny.json" --batch 1,,2
expect_refusal "--batch 1," "--batch" "$EVABENCH" bench --config "$W/tiny.json" --batch 1,
expect_refusal "--tower" "--tower" "$EVABENCH" bench --config "$W/tiny.json" --tower pixels
expect_refusal "--iters 0" "--iters" "$EVABENCH" bench --config "$W/tiny.json" --iters 0
expect_refusal "unknown option" "--frobnicate" "$EVABENCH" bench --config "$W/tiny.json" --frobnicate
expect_refusal "unknown variant" "NoSuchModel" "$EVABENCH" bench --variant NoSuchModel
expect_refusal "no config" "--variant" "$EVABENCH" bench
expect_refusal "ref bf16" "bf16" "$EVABENCH" bench --config "$W/tiny.json" --precision bf16
expect_refusal "profile --batch x" "--batch" "$EVABENCH" profile --config "$W/tiny.json" --batch x
expect_refusal "--json unwritable" "$W/nodir/x.json" "$EVABENCH" bench --config "$W/tiny.json" --iters 1 \
  --json "$W/nodir/x.json"

# --threads sweep: one record per (thread count, batch), each naming its thread count and device
if timeout "$TO" "$EVABENCH" bench --config "$W/tiny.json" --batch 1,2 --threads 1,2 --iters 1 --warmup 0 --quiet \
    --json "$W/threads.json" 2>"$W/err"; then
  "$PY" - "$W/threads.json" <<'PYEOF' || fail "--threads 1,2 records"
import json, sys
recs = json.load(open(sys.argv[1]))
got = [(r["threads"], r["batch"]) for r in recs]
assert got == [(1, 1), (1, 2), (2, 1), (2, 2)], got
for r in recs:
    assert r["host"]["omp_threads"] == r["threads"], r["host"]
    assert f"({r['threads']} threads," in r["device"], r["device"]
PYEOF
else
  fail "--threads 1,2: $(head -c 300 "$W/err")"
fi
expect_refusal "--threads 0" "--threads" "$EVABENCH" bench --config "$W/tiny.json" --threads 0
expect_refusal "--threads 1,x" "--threads" "$EVABENCH" bench --config "$W/tiny.json" --threads 1,x

if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "PASS: bench/profile records, refusals"
exit 0
