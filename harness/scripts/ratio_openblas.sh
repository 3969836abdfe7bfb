#!/usr/bin/env bash
# ratio_openblas.sh: the reference's B/16 image forward as a share of OpenBLAS's SGEMM, in one run.
#
# Each round measures, one after the other (so that a change of machine load hits every figure):
#   - OpenBLAS: cblas_sgemm on 2048 x 2048 x 2048 fp32 (harness/scripts/openblas_sgemm.c, built
#     here against the system libopenblas), THREADS threads, the median of 5 products, with the
#     kernels OpenBLAS picks for this CPU (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that
#     command alone: some hosts set them for old OpenBLAS builds) and, when the avx2 kernel is
#     measured, also forced to its Haswell (AVX2 + FMA) kernels: what OpenBLAS runs on a CPU
#     without AVX-512 (AMD Zen 2/3, Intel client parts);
#   - the reference: evabench bench --variant EVA02-CLIP-B-16 --tower image --batch 1,8 on THREADS
#     threads, once per SGEMM kernel in KERNELS (EVA_GEMM_KERNEL=K).
# share = the forward's GFLOP/s (model FLOPs / median time) / OpenBLAS's GFLOP/s of the same
# round; the kernel's share is taken against OpenBLAS on the same instruction set (avx2 against
# Haswell, the others against OpenBLAS's own choice; both are printed). The table gives every
# round and the median over rounds. Acceptance: >= 0.6, goal 0.75.
#
# usage: bash harness/scripts/ratio_openblas.sh [path/to/evabench] [--json OUT.json]
# env:   KERNELS (default: every one of avx512 avx2 this CPU runs; elsewhere "auto"), ROUNDS
#        (default 3), ITERS (timed forwards per batch, default 5), WARMUP (default 1),
#        THREADS (default: all CPUs), N (OpenBLAS product size, default 2048)
# needs: libopenblas-dev (apt-get install libopenblas-dev), a C compiler, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EVABENCH=""
JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT=${2:?--json needs a path}; shift 2 ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "ratio_openblas: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) EVABENCH=$1; shift ;;
  esac
done
EVABENCH=${EVABENCH:-$ROOT/build/evabench}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-$(nproc)}
N=${N:-2048}
[ -x "$EVABENCH" ] || { echo "ratio_openblas: $EVABENCH is not an executable (build first: make run)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "ratio_openblas: needs python3" >&2; exit 2; }
if [ -z "${KERNELS:-}" ]; then
  KERNELS=""
  if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then KERNELS="avx512"; fi
  if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then KERNELS="$KERNELS avx2"; fi
  KERNELS=${KERNELS:-auto}
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/ratio_openblas.XXXXXX")
trap 'rm -rf "$W"' EXIT
if ! "${CC:-cc}" -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -o "$W/openblas_sgemm" \
     "$ROOT/harness/scripts/openblas_sgemm.c" -lopenblas 2>"$W/cc.log"; then
  cat "$W/cc.log" >&2
  echo "ratio_openblas: cannot build against OpenBLAS (apt-get install libopenblas-dev)" >&2
  exit 2
fi

for r in $(seq 1 "$ROUNDS"); do
  echo "ratio_openblas: round $r/$ROUNDS: OpenBLAS SGEMM ${N}^3 on $THREADS threads..." >&2
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$W/openblas_sgemm" "$N" "$THREADS" 5 >"$W/ob_native_$r.txt"
  case " $KERNELS " in
    *" avx2 "*)
      env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell "$W/openblas_sgemm" "$N" "$THREADS" 5 >"$W/ob_haswell_$r.txt" ;;
  esac
  for k in $KERNELS; do
    echo "ratio_openblas: round $r/$ROUNDS: evabench B/16 image batch 1,8, kernel $k..." >&2
    EVA_GEMM_KERNEL=$k "$EVABENCH" bench --variant EVA02-CLIP-B-16 --tower image --batch 1,8 --warmup "$WARMUP" \
      --iters "$ITERS" --threads "$THREADS" --quiet --json "$W/ref_${k}_$r.json"
  done
done

python3 - "$W" "$ROUNDS" "$KERNELS" "$THREADS" "$N" "$JSON_OUT" <<'PY'
import json, statistics, sys
w, rounds, kernels, threads, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5], sys.argv[6]

def openblas(kind, r):
    try:
        line = open(f"{w}/ob_{kind}_{r}.txt").read().split()
    except FileNotFoundError:
        return None
    f = dict(x.split("=", 1) for x in line[1:])
    return {"core": f["core"], "gflops": float(f["gflops_median"]), "median_ms": float(f["median_ms"])}

rows, summary = [], []
print(f"B/16 image forward vs OpenBLAS SGEMM {n}^3 fp32, {threads} threads, {rounds} rounds")
print(f"{'kernel':<8} {'batch':>5} {'round':>5} {'forward ms':>11} {'GFLOP/s':>8} {'OpenBLAS':>22} {'share':>6}"
      f" {'OpenBLAS (own choice)':>22} {'share':>6}")
for k in kernels:
    for batch in (1, 8):
        shares, shares_native = [], []
        for r in range(1, rounds + 1):
            recs = json.load(open(f"{w}/ref_{k}_{r}.json"))
            rec = next(x for x in recs if x["batch"] == batch)
            native = openblas("native", r)
            same = openblas("haswell", r) if k == "avx2" else native
            share = rec["gflops"] / same["gflops"]
            share_native = rec["gflops"] / native["gflops"]
            shares.append(share)
            shares_native.append(share_native)
            kern = rec["build"]["gemm_kernel"]
            if k != "auto" and kern != k:
                sys.exit(f"ratio_openblas: EVA_GEMM_KERNEL={k} but the bench record names kernel {kern}")
            rows.append({"kernel": k, "gemm_kernel": kern, "batch": batch, "round": r, "forward_ms": rec["median_ms"],
                         "gflops": rec["gflops"], "openblas_core": same["core"], "openblas_gflops": same["gflops"],
                         "share": share, "openblas_native_core": native["core"],
                         "openblas_native_gflops": native["gflops"], "share_native": share_native})
            print(f"{k:<8} {batch:>5} {r:>5} {rec['median_ms']:>11.1f} {rec['gflops']:>8.1f}"
                  f" {same['gflops']:>9.1f} ({same['core']:>10}) {share:>6.3f}"
                  f" {native['gflops']:>9.1f} ({native['core']:>10}) {share_native:>6.3f}")
        m, mn = statistics.median(shares), statistics.median(shares_native)
        summary.append({"kernel": k, "batch": batch, "share_median": m, "share_native_median": mn})
        print(f"{k:<8} {batch:>5} {'med':>5} {'':>11} {'':>8} {'':>22} {m:>6.3f} {'':>22} {mn:>6.3f}")
print("share: the forward's GFLOP/s / OpenBLAS's (same instruction set: avx2 vs Haswell kernels; "
      "own choice: the kernels OpenBLAS picks for this CPU); acceptance >= 0.6, goal 0.75")
if out:
    json.dump({"schema": "evabench-ratio-openblas/1", "threads": int(threads), "n": int(n), "rounds": rows,
               "summary": summary}, open(out, "w"), indent=1)
PY
