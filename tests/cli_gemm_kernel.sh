#!/usr/bin/env bash
# cli_gemm_kernel.sh: forcing the reference's SGEMM kernel with EVA_GEMM_KERNEL, end to end. For
# every kernel this CPU runs (info --json "gemm_kernels_available"): info and the bench record
# name it, and verify passes the tiny EVA-02 and 8B goldens with it; a kernel this CPU cannot run
# (or an unknown name) is refused with exit 2 and a message naming the variable.
# Run by ctest as: bash tests/cli_gemm_kernel.sh <evabench>. Exit 0 pass, 1 fail, 77 skip (no python3).
set -u

EVABENCH=${1:?usage: cli_gemm_kernel.sh path/to/evabench}
SRC=${EVA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then echo "SKIP: python3 is needed to parse the JSON"; exit 77; fi
W=$(mktemp -d "${TMPDIR:-/tmp}/evabench-kernel.XXXXXX")
trap 'rm -rf "$W"' EXIT
TO=${EVA_CLI_TIMEOUT:-300}
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

env -u EVA_GEMM_KERNEL -u EVA_GEMM_PORTABLE timeout "$TO" "$EVABENCH" info --json >"$W/info.json" ||
  fail "info --json: exit $?"
KERNELS=$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["build"]["gemm_kernels_available"]))' \
  "$W/info.json")
DEFAULT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["build"]["gemm_kernel"])' "$W/info.json")
case " $KERNELS " in *" portable "*) ;; *) fail "portable kernel not listed as available: '$KERNELS'" ;; esac
case " $KERNELS " in *" $DEFAULT "*) ;; *) fail "default kernel $DEFAULT not among the available '$KERNELS'" ;; esac
if grep -qw avx512f /proc/cpuinfo 2>/dev/null && [ "$DEFAULT" != avx512 ]; then
  fail "this CPU has AVX-512F but the default kernel is $DEFAULT"
fi
echo "kernels available: $KERNELS (default $DEFAULT)"

for k in $KERNELS; do
  EVA_GEMM_KERNEL=$k timeout "$TO" "$EVABENCH" info --json >"$W/info_$k.json" || fail "$k: info --json exit $?"
  got=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["build"]["gemm_kernel"])' "$W/info_$k.json")
  [ "$got" = "$k" ] || fail "EVA_GEMM_KERNEL=$k: info names kernel '$got'"
  for g in eva02 8b; do
    if ! EVA_GEMM_KERNEL=$k timeout "$TO" "$EVABENCH" verify --golden "$SRC/golden/tiny/$g.h5" \
        --json "$W/verify_${k}_$g.json" >"$W/out" 2>"$W/err"; then
      fail "EVA_GEMM_KERNEL=$k verify $g: $(tail -n 3 "$W/out" "$W/err")"
    fi
  done
  got=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["build"]["gemm_kernel"])' \
    "$W/verify_${k}_eva02.json" 2>/dev/null)
  [ "$got" = "$k" ] || fail "EVA_GEMM_KERNEL=$k: the verify record names kernel '$got'"
done

# refusals: an unknown name, and a kernel this CPU or build cannot run
for bad in sse9 $(for k in avx2 avx512 neon; do case " $KERNELS " in *" $k "*) ;; *) echo "$k" ;; esac; done); do
  EVA_GEMM_KERNEL=$bad timeout "$TO" "$EVABENCH" verify --golden "$SRC/golden/tiny/eva02.h5" >"$W/out" 2>"$W/err"
  rc=$?
  [ $rc -eq 2 ] || fail "EVA_GEMM_KERNEL=$bad: exit $rc, want 2"
  grep -q "EVA_GEMM_KERNEL" "$W/err" || fail "EVA_GEMM_KERNEL=$bad: stderr does not name the variable: $(head -c 300 "$W/err")"
done

if [ $FAILS -ne 0 ]; then echo "cli_gemm_kernel: $FAILS failure(s)"; exit 1; fi
echo "cli_gemm_kernel: all passed"
