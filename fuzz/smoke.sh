#!/usr/bin/env bash
# smoke.sh [SECONDS] [BUILD_DIR]: builds the fuzz targets with clang (ASan + UBSan + libFuzzer)
# and runs each for SECONDS (default 30) through ctest -L fuzz. Exit 0 when no target found
# anything. Build dir default: build-fuzz.
set -euo pipefail
secs=${1:-30}
build=${2:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DEVABENCH_FUZZ=ON -DEVABENCH_CUDA=OFF \
  -DEVABENCH_NATIVE=OFF -DEVABENCH_FUZZ_SECONDS="$secs" >/dev/null
targets=$(cd "$root/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$build" -j "${JOBS:-2}" --target evabench $targets
cd "$build" && ctest -L fuzz --output-on-failure
