#!/usr/bin/env bash
# gpu-check.sh OUTDIR: every device check of evabench in one call (docs/architecture.md "# at hand"), at most about 6 minutes on an H100:
#   1. configure + build for sm_90a (Release, -DCMAKE_CUDA_ARCHITECTURES=90a)
#   2. ctest -L gpu (kernels vs CPU twins, whole model vs reference, determinism)
#   3. evabench verify --impl cuda of every golden/tiny/*.h5 in fp32, tf32, bf16, fp16
#   4. compute-sanitizer --tool memcheck on one tiny model's verify (fp32 and bf16)
#   5. throughput of --impl cuda (evabench bench) against PyTorch eager and torch.compile
#      (harness/bench_pytorch.py) for the EVA02-B/16 and L/14 image and text towers at batch 1
#      and 256 in bf16, with peak device memory, plus the card's bf16 GEMM ceiling, and the
#      per-module device profile of the B/16 image tower at batch 256 in bf16 (evabench profile)
# Writes OUTDIR/summary.md, OUTDIR/results.json, OUTDIR/gpu-check.log and OUTDIR/details.tar.gz
# (per-step logs and JSON): four files, so it fits what a device call brings back. Every step's
# status is recorded and the script goes on after a failure; exit 0 iff every step passed.
#
# Options (environment): GPU_CHECK_SKIP="build tests verify sanitizer bench" (any subset),
# GPU_CHECK_COMPILE=0 (no torch.compile), GPU_CHECK_BUILD=dir (default build-gpu),
# GPU_CHECK_JOBS=N (default nproc). Build dependencies missing on the device image (HDF5, cJSON,
# Check, utf8proc, PCRE2 headers) are taken from a carried folder .gpudeps/ if present: make it
# here with `bash harness/gpu-check.sh --bundle-deps .gpudeps` (reports/gpu/README.md).
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

if [ "${1:-}" = "--bundle-deps" ]; then
  # On a Debian/Ubuntu machine with network: download the -dev packages and their libraries and
  # unpack them into DIR (no root needed for the unpacking; nothing is installed here).
  DIR="${2:?usage: gpu-check.sh --bundle-deps DIR}"
  mkdir -p "$DIR/debs" && cd "$DIR/debs" || exit 2
  # Debian 12 names first, then their 64-bit-time successors (t64) of newer releases
  pk="libhdf5-dev libhdf5-103-1 libhdf5-103-1t64 libhdf5-hl-100 libhdf5-hl-100t64 libsz2 libaec0 libaec-dev
      libcjson-dev libcjson1 check libsubunit0 libsubunit-dev libutf8proc-dev libutf8proc2 libutf8proc3
      libpcre2-dev libpcre2-8-0 libpng-dev libpng16-16 libpng16-16t64 libjpeg62-turbo-dev libjpeg62-turbo
      zlib1g-dev libcurl4 libcurl4t64 libcurl3-gnutls libcurl4-openssl-dev"
  for p in $pk; do apt-get download "$p" >/dev/null 2>&1 || echo "gpu-check: could not download $p (skipped)" >&2; done
  for f in *.deb; do dpkg -x "$f" "$DIR/root"; done
  rm -rf "$DIR/debs"
  du -sh "$DIR"
  exit 0
fi

OUT="${1:?usage: gpu-check.sh OUTDIR   (or --bundle-deps DIR)}"
mkdir -p "$OUT/details" || exit 2
OUT="$(cd "$OUT" && pwd)"
DET="$OUT/details"
LOG="$OUT/gpu-check.log"
STEPS="$DET/steps.tsv"
: >"$LOG"; : >"$STEPS"
BUILD="${GPU_CHECK_BUILD:-$ROOT/build-gpu}"
JOBS="${GPU_CHECK_JOBS:-$(nproc)}"
SKIP=" ${GPU_CHECK_SKIP:-} "
T0=$(date +%s)
say() { echo "[gpu-check $(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG" >&2; }

# run_step NAME TIMEOUT_S CMD...: output to details/NAME.log; status line to steps.tsv
run_step() {
  local name="$1" tmo="$2"; shift 2
  local t=$(date +%s)
  say "start $name"
  timeout --kill-after=10 "$tmo" "$@" >"$DET/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t ))
  local status=pass
  [ $rc -ne 0 ] && status=fail
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=timeout
  printf '%s\t%s\t%d\t%d\n' "$name" "$status" "$rc" "$dt" >>"$STEPS"
  say "$name: $status (rc $rc, ${dt}s)"
  tail -n 3 "$DET/$name.log" | sed 's/^/    /' | tee -a "$LOG" >&2
  return $rc
}
skip_step() { printf '%s\tskipped\t-\t0\n' "$1" >>"$STEPS"; say "$1: skipped ($2)"; }
wants() { [[ "$SKIP" != *" $1 "* ]]; }

cd "$ROOT" || exit 2
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1;
  nvcc --version 2>&1 | tail -2; git rev-parse --short HEAD 2>&1; python3 -c 'import torch,timm;print("torch",torch.__version__,"timm",timm.__version__)' 2>&1; } >"$DET/environment.txt"
say "device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

# ---- dependencies: the device image may lack the -dev packages; use a carried bundle -----------
missing=""
for m in libcjson check libutf8proc libpcre2-8; do pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"; done
[ -e /usr/include/hdf5.h ] || [ -e /usr/include/hdf5/serial/hdf5.h ] || missing="$missing hdf5"
if [ -n "$missing" ]; then
  if [ -d "$ROOT/.gpudeps/root" ]; then
    R="$ROOT/.gpudeps/root"
    say "missing on this machine:$missing; using the carried bundle .gpudeps"
    ML=$(ls -d "$R"/usr/lib/*-linux-gnu 2>/dev/null | head -1)
    export PKG_CONFIG_PATH="$ML/pkgconfig:$R/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}"
    export PKG_CONFIG_SYSROOT_DIR=""
    # .pc files carry prefix=/usr: point them at the bundle
    for pc in "$ML"/pkgconfig/*.pc; do [ -f "$pc" ] && sed -i "s|^prefix=/usr\$|prefix=$R/usr|" "$pc"; done
    export CMAKE_PREFIX_PATH="$R/usr:${CMAKE_PREFIX_PATH:-}"
    export CPATH="$R/usr/include:$R/usr/include/hdf5/serial:${CPATH:-}"
    export LIBRARY_PATH="$ML:$ML/hdf5/serial:${LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH="$ML:$ML/hdf5/serial:${LD_LIBRARY_PATH:-}"
    EXTRA_CMAKE="-DHDF5_ROOT=$R/usr -DHDF5_C_INCLUDE_DIR=$R/usr/include/hdf5/serial"
    printf 'deps\tbundle\t0\t0\n' >>"$STEPS"
  else
    say "missing on this machine:$missing and no .gpudeps bundle: the build will likely fail"
    printf 'deps\tfail\t1\t0\n' >>"$STEPS"
  fi
else
  printf 'deps\tpass\t0\t0\n' >>"$STEPS"
fi

# ---- 1. build ------------------------------------------------------------------------------------
EVB="$BUILD/evabench"
if wants build; then
  run_step configure 180 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a ${EXTRA_CMAKE:-}
  run_step build 300 cmake --build "$BUILD" -j "$JOBS"
else
  skip_step build "GPU_CHECK_SKIP"
fi
have_build=0
[ -x "$EVB" ] && have_build=1

# ---- 2. GPU tests ----------------------------------------------------------------------------------
if wants tests && [ $have_build = 1 ]; then
  (cd "$BUILD" && run_step ctest_gpu 240 ctest -L gpu --output-on-failure --timeout 230)
else
  skip_step ctest_gpu "no build or GPU_CHECK_SKIP"
fi

# ---- 3. verify every tiny golden in every precision ---------------------------------------------------
if wants verify && [ $have_build = 1 ]; then
  for g in "$ROOT"/golden/tiny/*.h5; do
    fam=$(basename "$g" .h5)
    for p in fp32 tf32 bf16 fp16; do
      run_step "verify_${fam}_${p}" 60 "$EVB" verify --golden "$g" --impl cuda --precision "$p" \
        --json "$DET/verify_${fam}_${p}.json"
      rc=$?
      # fp16 is refused (exit 2, EVA_ERR_UNSUPPORTED) for the post-norm families by design
      if [ $rc -eq 2 ] && [ $p = fp16 ] && grep -q "refused" "$DET/verify_${fam}_${p}.log"; then
        sed -i "\$s/\tfail\t/\trefused\t/" "$STEPS"
      fi
    done
  done
else
  skip_step verify "no build or GPU_CHECK_SKIP"
fi

# ---- 4. compute-sanitizer --------------------------------------------------------------------------
if wants sanitizer && [ $have_build = 1 ] && command -v compute-sanitizer >/dev/null; then
  for p in fp32 bf16; do
    run_step "memcheck_eva02_$p" 180 compute-sanitizer --tool memcheck --error-exitcode 9 \
      "$EVB" verify --golden "$ROOT/golden/tiny/eva02.h5" --impl cuda --precision $p
  done
else
  skip_step memcheck "no build, no compute-sanitizer or GPU_CHECK_SKIP"
fi

# ---- 5. benchmark ------------------------------------------------------------------------------------
if wants bench; then
  run_step gemm_ceiling 60 python3 -c '
import torch,json
a=torch.randn(8192,8192,device="cuda",dtype=torch.bfloat16); b=torch.randn(8192,8192,device="cuda",dtype=torch.bfloat16)
for _ in range(3): a@b
torch.cuda.synchronize(); s=torch.cuda.Event(True); e=torch.cuda.Event(True); t=[]
for _ in range(10):
  s.record(); a@b; e.record(); e.synchronize(); t.append(s.elapsed_time(e))
t.sort(); ms=t[len(t)//2]; tf=2*8192**3/(ms/1e3)/1e12
print(json.dumps({"gemm":"bf16 8192^3 torch.matmul","median_ms":ms,"tflops":tf}))' 
  grep '^{' "$DET/gemm_ceiling.log" >"$DET/gemm_ceiling.json" 2>/dev/null
  if [ $have_build = 1 ]; then # CUDA events at every tap boundary; its own cuBLASLt bf16 8192^3 ceiling
    run_step profile_cuda_EVA02-B-16 90 "$EVB" profile --variant EVA02-B-16 --impl cuda --precision bf16 \
      --batch 256 --iters 5 --json "$DET/profile_cuda_EVA02-B-16.json"
  fi
  modes="eager,compile"; [ "${GPU_CHECK_COMPILE:-1}" = 0 ] && modes="eager"
  for v in EVA02-B-16 EVA02-L-14; do
    for tw in image text; do
      if [ $have_build = 1 ]; then
        run_step "bench_cuda_${v}_${tw}" 120 "$EVB" bench --variant "$v" --impl cuda --precision bf16 --tower $tw \
          --batch 1,256 --warmup 3 --iters 20 --json "$DET/bench_cuda_${v}_${tw}.json"
      fi
      run_step "bench_torch_${v}_${tw}" 200 env PYTHONUNBUFFERED=1 python3 "$ROOT/harness/scripts/bench_pytorch.py" \
        --variant "$v" --tower $tw --precision bf16 --batch 1,256 --modes "$modes" --warmup 3 --iters 20 \
        --json "$DET/bench_torch_${v}_${tw}.json"
    done
  done
else
  skip_step bench "GPU_CHECK_SKIP"
fi

# ---- summary ------------------------------------------------------------------------------------------
python3 - "$OUT" "$ROOT" <<'PY'
import json, glob, os, sys, subprocess
out, root = sys.argv[1], sys.argv[2]
det = os.path.join(out, "details")
steps = []
for line in open(os.path.join(det, "steps.tsv")):
    n, s, rc, dt = line.rstrip("\n").split("\t")
    steps.append({"step": n, "status": s, "rc": rc, "seconds": int(dt)})
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
env = open(os.path.join(det, "environment.txt")).read() if os.path.exists(os.path.join(det, "environment.txt")) else ""
verify = {os.path.basename(p)[7:-5]: load(p) for p in sorted(glob.glob(os.path.join(det, "verify_*.json")))}
bench = []
for p in sorted(glob.glob(os.path.join(det, "bench_*.json"))):
    r = load(p)
    if isinstance(r, dict): r = [r]
    for x in r or []:
        if isinstance(x, dict): bench.append(x)
ceil = load(os.path.join(det, "gemm_ceiling.json"))
ok = all(s["status"] in ("pass", "refused", "skipped", "bundle") for s in steps)
res = {"schema": "evabench-gpu-check/1", "ok": ok, "environment": env, "steps": steps, "verify": verify,
       "bench": bench, "gemm_ceiling": ceil}
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
L = ["# evabench gpu-check", "", "```", env.strip(), "```", "",
     f"Overall: **{'PASS' if ok else 'FAIL'}** (fp16 refusals of post-norm families count as expected)", "",
     "| step | status | rc | s |", "|---|---|---|---|"]
L += [f"| {s['step']} | {s['status']} | {s['rc']} | {s['seconds']} |" for s in steps]
if ceil: L += ["", f"bf16 GEMM ceiling (torch.matmul 8192³): {ceil.get('tflops', 0):.0f} TFLOP/s"]
L += ["", "## Throughput (bf16, items/s; median and p90 ms per batch)", "",
      "| variant | tower | impl | batch | median ms | p90 ms | items/s | peak device MiB |", "|---|---|---|---|---|---|---|---|"]
def g(r, k):
    v = r.get(k)
    return v
for r in sorted(bench, key=lambda r: (str(r.get("variant")), str(r.get("tower")), int(r.get("batch") or 0), str(r.get("impl")))):
    pk = r.get("peak_device_bytes")
    med, p90, thr = g(r, "median_ms"), g(r, "p90_ms"), g(r, "throughput")
    L.append(f"| {r.get('variant')} | {r.get('tower')} | {r.get('impl')} | {r.get('batch')} | "
             f"{med if med is None else f'{med:.3f}'} | {p90 if p90 is None else f'{p90:.3f}'} | "
             f"{thr if thr is None else f'{thr:.1f}'} | {'' if pk is None else f'{pk/2**20:.0f}'} |")
# speed-ups of cuda over pytorch at the same variant/tower/batch
norm = lambda v: str(v).replace("-CLIP", "").replace("bigE", "E")
idx = {(norm(r.get("variant")), r.get("tower"), r.get("batch"), r.get("impl")): r for r in bench}
L += ["", "| variant | tower | batch | cuda / eager | cuda / compile |", "|---|---|---|---|---|"]
for (v, t, b, i), r in sorted(idx.items(), key=lambda kv: str(kv[0])):
    if i != "cuda" or not r.get("median_ms"): continue
    def ratio(m):
        o = idx.get((v, t, b, m))
        return f"{o['median_ms'] / r['median_ms']:.2f}x" if o and o.get("median_ms") else "n/a"
    L.append(f"| {v} | {t} | {b} | {ratio('pytorch-eager')} | {ratio('pytorch-compile')} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
sys.exit(0 if ok else 1)
PY
rc=$?
(cd "$OUT" && tar czf details.tar.gz details && rm -rf details)
say "done in $(( $(date +%s) - T0 ))s: $OUT/summary.md, results.json, gpu-check.log, details.tar.gz"
exit $rc
