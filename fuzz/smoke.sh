#!/usr/bin/env bash
# smoke.sh [SECONDS] [BUILD_DIR]: builds the fuzz targets with clang (ASan + UBSan + libFuzzer)
# and runs each for SECONDS (default 30) through ctest -L fuzz. Exit 0 when no target found
# anything. Build dir default: build-fuzz.
set -euo pipefail
secs=${1:-30}
build=${2:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
# clang and its libFuzzer runtime (Debian's clang-14 and libclang-rt-14-dev), installed if missing
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${DEPS:-1}" = 1 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v clang >/dev/null || export PATH=/usr/lib/llvm-14/bin:$PATH
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DEVABENCH_FUZZ=ON -DEVABENCH_CUDA=OFF \
  -DEVABENCH_NATIVE=OFF -DEVABENCH_FUZZ_SECONDS="$secs" >/dev/null
targets=$(cd "$root/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$build" -j "${JOBS:-2}" --target evabench $targets
cd "$build" && ctest -L fuzz --output-on-failure
