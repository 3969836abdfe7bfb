#!/usr/bin/env bash
# gpu-check.sh: the device checks of evabench, in two calls that each finish in under 5 minutes.
#
#   gpu-check.sh correctness OUTDIR   configure + build (sm_90a), ctest -L gpu (kernels vs their
#                                     CPU twins and oracles, whole model vs the reference, graphs,
#                                     determinism), `evabench verify --impl cuda` of every tiny golden
#                                     in fp32, tf32, bf16 and fp16, compute-sanitizer memcheck
#   gpu-check.sh performance OUTDIR   build (a no-op when the correctness call's build is there), the
#                                     bf16 GEMM ceilings (PyTorch and evabench's cuBLASLt), the
#                                     per-module profile of EVA02-B/16's image tower at batch 256, and
#                                     `evabench bench --impl cuda` against PyTorch eager and
#                                     torch.compile (harness/scripts/bench_pytorch.py, the same timed
#                                     region) for EVA02-B/16 and L/14 at batch 1 and 256 in bf16
#   gpu-check.sh --bundle-deps DIR    (on a Debian 12 machine with network) the build's library
#                                     dependencies as a folder to carry to a machine without them
#   gpu-check.sh --check-bundle DIR ROOTFS   builds and tests evabench (without CUDA) inside the
#                                     minimal Debian root file system ROOTFS (debootstrap) with only
#                                     the bundle DIR for its libraries, runs the unit suites that use
#                                     them, and lists every binary's libraries (ldd)
#
# Every step appends, as soon as it ends, a row to OUTDIR/summary.md, one JSON line to
# OUTDIR/results.jsonl ({"step", "status", "rc", "seconds", "data": the step's JSON output or
# null}) and its whole output to OUTDIR/steps.log, so a run that is killed keeps everything up to
# its last finished step. A step that would not fit the time budget (GPU_CHECK_BUDGET seconds,
# default 270) is recorded as skipped. Exit status 0 iff no step failed or timed out (fp16 refused
# for the post-norm families, by design, is recorded as refused; compute-sanitizer refusing the
# machine as unsupported).
#
# Environment: GPU_CHECK_BUILD=dir (default build-gpu), GPU_CHECK_JOBS=N (default nproc),
# GPU_CHECK_BUDGET=s, GPU_CHECK_COMPILE=0 (no torch.compile), GPU_CHECK_VARIANTS="EVA02-B-16 ..."
# (performance: the variants to bench). A bundle is used when a folder .gpudeps/ exists in the
# repository root and the build's libraries are missing from the system.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SCRIPTS="$ROOT/harness/scripts"

usage() {
  echo "usage: gpu-check.sh correctness|performance OUTDIR | --bundle-deps DIR | --check-bundle DIR ROOTFS" >&2
  exit 2
}

# ---- the bundle ---------------------------------------------------------------------------------
# The Debian 12 development packages of the build (headers, .so links, .pc files, pkgconf itself),
# then the runtime packages of every shared library they link, found from the libraries installed
# on this machine (ldd, dpkg -S), less the C runtime that every system has.
BUNDLE_DEV="libhdf5-dev libcjson-dev check libsubunit-dev libutf8proc-dev libpng-dev libjpeg62-turbo-dev
  zlib1g-dev pkgconf pkgconf-bin libpkgconf3"
BUNDLE_BASE="libc6 libgcc-s1 libstdc++6 libgomp1"

bundle_get() { # bundle_get DIR PKG...: download and unpack into DIR/root
  local dir="$1" p
  shift
  for p in "$@"; do
    (cd "$dir/debs" && apt-get download "$p" >/dev/null 2>&1) || { echo "gpu-check: cannot download $p" >&2; return 1; }
    echo "$p" >>"$dir/packages.txt"
  done
  for f in "$dir"/debs/*.deb; do dpkg -x "$f" "$dir/root"; done
  rm -f "$dir"/debs/*.deb
}

bundle_deps() {
  local dir="$1" libs pkgs p f l
  mkdir -p "$dir/debs" && dir="$(cd "$dir" && pwd)" || exit 2
  rm -rf "$dir/root" && : >"$dir/packages.txt"
  bundle_get "$dir" $BUNDLE_DEV || exit 1
  # the system files behind the bundle's .so links and programs, and everything they load
  # (HDF5's C++ and Fortran libraries and the static archives are not needed: removed)
  find "$dir/root" \( -name '*fortran*' -o -name '*_cpp*' -o -name '*.a' \) ! -name 'libcheck*' \
    ! -name 'libsubunit*' -exec rm -f {} +
  libs=$(cd "$dir/root" && find usr/lib usr/bin -name '*.so' -o -type f -path 'usr/bin/*' | sed 's|^|/|' |
           xargs -r realpath -e 2>/dev/null | sort -u)
  [ -n "$libs" ] || { echo "gpu-check: the build's -dev packages must be installed here (deps.sh)" >&2; exit 1; }
  libs="$libs $(for f in $libs; do ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'; done | xargs -r realpath -e | sort -u)"
  pkgs=$(for f in $libs; do dpkg -S "$f" 2>/dev/null || dpkg -S "${f#/usr}" 2>/dev/null; done | cut -d: -f1 | sort -u)
  for p in $BUNDLE_BASE $(cat "$dir/packages.txt"); do pkgs=$(printf '%s\n' $pkgs | grep -vx "$p"); done
  bundle_get "$dir" $pkgs || exit 1
  # absolute symbolic links (libfoo.so -> /usr/lib/...) would leave the bundle: make them relative
  find "$dir/root" -type l | while read -r l; do
    t=$(readlink "$l")
    case "$t" in /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$dir/root$t")" "$l" ;; esac
  done
  rm -rf "$dir/debs" "$dir/root/usr/share/doc" "$dir/root/usr/share/man"
  echo "gpu-check: bundled $(wc -l <"$dir/packages.txt") packages into $dir ($(du -sh "$dir" | cut -f1))"
}

# Exports what a build needs to find the bundle's headers, libraries, .pc files and pkgconf.
bundle_env() {
  local R="$1/root" ML
  ML="$R/usr/lib/x86_64-linux-gnu"
  export PATH="$R/usr/bin:$PATH"
  export PKG_CONFIG="$R/usr/bin/pkgconf"
  export PKG_CONFIG_LIBDIR="$ML/pkgconfig:$R/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$R"
  export CMAKE_PREFIX_PATH="$R/usr:${CMAKE_PREFIX_PATH:-}"
  export CPATH="$R/usr/include/x86_64-linux-gnu:${CPATH:-}" # multiarch headers (jconfig.h)
  # Debian 12 packages put some libraries (zlib, com_err, keyutils) under /lib
  export LIBRARY_PATH="$ML:$ML/hdf5/serial:$R/lib/x86_64-linux-gnu:${LIBRARY_PATH:-}"
  export LD_LIBRARY_PATH="$ML:$ML/hdf5/serial:$R/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  BUNDLE_CMAKE="-DHDF5_C_INCLUDE_DIR=$R/usr/include/hdf5/serial -DZLIB_ROOT=$R/usr -DPNG_PNG_INCLUDE_DIR=$R/usr/include
    -DPNG_LIBRARY=$ML/libpng16.so -DJPEG_INCLUDE_DIR=$R/usr/include -DJPEG_LIBRARY=$ML/libjpeg.so
    -DPKG_CONFIG_EXECUTABLE=$R/usr/bin/pkgconf"
}

# Inside ROOTFS (no -dev packages, no network needed): configure, build, unit tests, ldd.
check_bundle() {
  local dir rootfs
  dir="$(cd "$1" && pwd)" && rootfs="$(cd "$2" && pwd)" || usage
  for tool in gcc cmake make; do
    chroot "$rootfs" sh -c "command -v $tool" >/dev/null || { echo "gpu-check: $rootfs has no $tool" >&2; exit 2; }
  done
  if chroot "$rootfs" sh -c 'ls /usr/include/hdf5* /usr/include/cjson /usr/include/check.h' >/dev/null 2>&1; then
    echo "gpu-check: $rootfs has some of the -dev packages itself: not a fair check" >&2; exit 2
  fi
  rm -rf "$rootfs/evabench" && mkdir -p "$rootfs/evabench/src"
  git -C "$ROOT" archive HEAD | tar -x -C "$rootfs/evabench/src" || exit 3
  cp -a "$dir" "$rootfs/evabench/.gpudeps"
  chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash -c '
    set -e -o pipefail; cd /evabench; source <(sed -n "/^bundle_env() {/,/^}/p" src/harness/scripts/gpu-check.sh)
    bundle_env /evabench/.gpudeps
    cmake -S src -B build -DCMAKE_BUILD_TYPE=Release -DEVABENCH_CUDA=OFF -DEVABENCH_NATIVE=OFF $BUNDLE_CMAKE >cfg.log
    cmake --build build -j 2 >build.log 2>&1 || { tail -30 build.log; exit 1; }
    # the unit suites of every bundled library: HDF5, libpng/libjpeg/zlib, utf8proc, cJSON, Check
    (cd build && ctest -R "unit_(golden_io|image|tokenizer|config|safetensors|weights)" --output-on-failure | tail -4)
    echo "--- ldd (LD_LIBRARY_PATH = the bundle only):"
    for b in build/evabench build/test_unit_golden_io; do ldd $b | sed "s|^|$b: |"; done
    ! ldd build/evabench build/test_unit_golden_io | grep "not found"
    ./build/evabench info --variant EVA02-CLIP-B-16 | head -3'
}

case "${1:-}" in
  --bundle-deps) [ $# -eq 2 ] || usage; bundle_deps "$2"; exit $? ;;
  --check-bundle) [ $# -eq 3 ] || usage; check_bundle "$2" "$3"; exit $? ;;
  correctness|performance) [ $# -eq 2 ] || usage; MODE="$1" ;;
  *) usage ;;
esac

OUT="$2"
mkdir -p "$OUT/tmp" && OUT="$(cd "$OUT" && pwd)" || exit 2
TMPD="$OUT/tmp"
BUILD="${GPU_CHECK_BUILD:-$ROOT/build-gpu}"
JOBS="${GPU_CHECK_JOBS:-$(nproc)}"
BUDGET="${GPU_CHECK_BUDGET:-270}"
T0=$(date +%s)
ORIG_LD="${LD_LIBRARY_PATH:-}"
say() { echo "[gpu-check $MODE $(( $(date +%s) - T0 ))s] $*" >&2; }

# run_step NAME TIMEOUT_S EST_S JSON|- CMD...: skipped when EST_S no longer fits the budget; else
# runs CMD with a timeout, then appends the row, the JSON line (with JSON's contents, if written)
# and the output at once.
run_step() {
  local name="$1" tmo="$2" est="$3" json="$4" t rc dt status
  shift 4
  t=$(date +%s)
  if [ $(( t - T0 + est )) -gt "$BUDGET" ]; then
    record "$name" skipped - 0 - "would not fit the ${BUDGET}s budget"
    return 0
  fi
  say "start $name"
  timeout --kill-after=10 "$tmo" "$@" >"$TMPD/$name.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t ))
  status=pass
  [ $rc -ne 0 ] && status=fail
  { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && status=timeout
  { echo "===== $name: $status (rc $rc, ${dt}s): $*"; cat "$TMPD/$name.log"; echo; } >>"$OUT/steps.log"
  record "$name" "$status" "$rc" "$dt" "$json" "$(tail -n 1 "$TMPD/$name.log" | tr '|' '/' | cut -c1-120)"
  say "$name: $status (rc $rc, ${dt}s)"
  return $rc
}

# record NAME STATUS RC SECONDS JSON|- NOTE: one summary row and one JSON line
record() {
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$6" >>"$OUT/summary.md"
  python3 - "$@" >>"$OUT/results.jsonl" <<'PY'
import json, sys
name, status, rc, sec, path, note = sys.argv[1:7]
data = None
if path != "-":
    try:
        with open(path) as f: data = json.load(f)
    except Exception:
        data = None
print(json.dumps({"step": name, "status": status, "rc": None if rc == "-" else int(rc), "seconds": int(sec),
                  "note": note, "data": data}))
PY
}

# relabel STATUS: the last step failed for a reason that is not a failure of evabench (fp16 refused
# by design; compute-sanitizer that does not support the machine)
relabel() { # relabel NEW [OLD, default fail]
  local old="${2:-fail}"
  sed -i "\$ s/| $old |/| $1 |/" "$OUT/summary.md"
  sed -i "\$ s/\"status\": \"$old\"/\"status\": \"$1\"/" "$OUT/results.jsonl"
}

start_summary() {
  { echo "# evabench gpu-check: $MODE"; echo; echo '```';
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
    nvcc --version 2>&1 | tail -1; echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>&1)"
    python3 -c 'import torch;print("torch", torch.__version__)' 2>&1 | tail -1
    echo '```'; echo; echo "| step | status | rc | s | last line |"; echo "|---|---|---|---|---|"; } >"$OUT/summary.md"
  : >"$OUT/results.jsonl"; : >"$OUT/steps.log"
}

# The build's libraries: from the system, else from a carried .gpudeps bundle.
use_deps() {
  local missing=""
  ORIG_LD="${LD_LIBRARY_PATH:-}" # Python steps run without the bundle's libraries
  for m in libcjson check libutf8proc; do pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"; done
  [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ] || missing="$missing hdf5"
  BUNDLE_CMAKE=""
  if [ -z "$missing" ]; then record deps pass 0 0 - "system libraries"; return; fi
  if [ -d "$ROOT/.gpudeps/root" ]; then
    bundle_env "$ROOT/.gpudeps"
    record deps pass 0 0 - "missing:$missing; using the .gpudeps bundle"
  else
    record deps fail 1 0 - "missing:$missing and no .gpudeps bundle"
  fi
}

build() {
  run_step configure 120 30 - cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a $BUNDLE_CMAKE
  run_step build 240 60 - cmake --build "$BUILD" -j "$JOBS"
  [ -x "$BUILD/evabench" ]
}

correctness() {
  local EVB="$BUILD/evabench" g fam p rc
  run_step ctest_gpu 150 40 - bash -c "cd '$BUILD' && ctest -L gpu --output-on-failure --timeout 140"
  # on a GPU machine a skipped GPU suite (no usable device) is a failure
  grep -q "(Skipped)" "$TMPD/ctest_gpu.log" 2>/dev/null && relabel fail pass
  for g in "$ROOT"/golden/tiny/*.h5; do
    fam=$(basename "$g" .h5)
    for p in fp32 tf32 bf16 fp16; do
      run_step "verify_${fam}_${p}" 60 5 "$TMPD/verify_${fam}_${p}.json" "$EVB" verify --golden "$g" \
        --impl cuda --precision "$p" --json "$TMPD/verify_${fam}_${p}.json"
      rc=$?
      # fp16 is refused (exit 2) for the post-norm families by design
      if [ $rc -eq 2 ] && [ $p = fp16 ] && grep -q "refused" "$TMPD/verify_${fam}_${p}.log"; then relabel refused; fi
    done
  done
  if command -v compute-sanitizer >/dev/null; then
    for p in fp32 bf16; do
      run_step "memcheck_eva02_$p" 90 45 - compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$EVB" verify --golden "$ROOT/golden/tiny/eva02.h5" --impl cuda --precision $p ||
        { grep -q "Device not supported" "$TMPD/memcheck_eva02_$p.log" && relabel unsupported; }
    done
  else
    record memcheck skipped - 0 - "no compute-sanitizer on this machine"
  fi
}

performance() {
  local EVB="$BUILD/evabench" v tw modes
  run_step gemm_ceiling_torch 60 10 "$TMPD/ceiling.json" env LD_LIBRARY_PATH="$ORIG_LD" \
    python3 "$SCRIPTS/bench_pytorch.py" --ceiling --json "$TMPD/ceiling.json"
  run_step profile_cuda_EVA02-B-16 90 25 "$TMPD/profile.json" "$EVB" profile --variant EVA02-B-16 --impl cuda \
    --precision bf16 --batch 256 --iters 5 --json "$TMPD/profile.json"
  for v in ${GPU_CHECK_VARIANTS:-EVA02-B-16 EVA02-L-14}; do
    for tw in image text; do
      run_step "bench_cuda_${v}_${tw}" 120 20 "$TMPD/bc_${v}_${tw}.json" "$EVB" bench --variant "$v" --impl cuda \
        --precision bf16 --tower $tw --batch 1,256 --warmup 3 --iters 20 --json "$TMPD/bc_${v}_${tw}.json"
      modes="eager"
      [ "${GPU_CHECK_COMPILE:-1}" = 1 ] && [ $tw = image ] && modes="eager,compile"
      run_step "bench_torch_${v}_${tw}" 200 $([ $modes = eager ] && echo 25 || echo 90) "$TMPD/bt_${v}_${tw}.json" \
        env PYTHONUNBUFFERED=1 LD_LIBRARY_PATH="$ORIG_LD" python3 "$SCRIPTS/bench_pytorch.py" --variant "$v" --tower $tw --precision bf16 \
        --batch 1,256 --modes "$modes" --warmup 3 --iters 20 --json "$TMPD/bt_${v}_${tw}.json"
    done
  done
}

start_summary
say "device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
cd "$ROOT" || exit 2
use_deps
if build; then
  if [ "$MODE" = correctness ]; then correctness; else performance; fi
fi
LD_LIBRARY_PATH="$ORIG_LD" python3 "$SCRIPTS/gpu_summary.py" "$OUT/results.jsonl" >>"$OUT/summary.md" \
  2>>"$OUT/steps.log"
rm -rf "$TMPD"
say "done in $(( $(date +%s) - T0 ))s: $OUT/summary.md, results.jsonl, steps.log"
! grep -q '"status": "\(fail\|timeout\)"' "$OUT/results.jsonl"
