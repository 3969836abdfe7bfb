#!/usr/bin/env bash
# run.sh BUILD_DIR SOURCE_DIR: installs the evabench build in BUILD_DIR into a scratch prefix,
# then builds tests/example against it twice, with find_package(evabench) and with pkg-config,
# and runs both. Exit 0 when both build and the example passes.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# 1. CMake package
cmake -S "$src/tests/example" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_C_FLAGS="${EXAMPLE_CFLAGS:-}" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/check_my_layernorm"
# 2. pkg-config
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib64/pkgconfig:$(ls -d "$work"/prefix/lib/*/pkgconfig 2>/dev/null | tr '\n' ':')"
cc -std=c11 ${EXAMPLE_CFLAGS:-} -o "$work/pc_example" "$src/tests/example/check_my_layernorm.c" $(pkg-config --cflags --libs evaref)
"$work/pc_example"
echo "install_example: find_package(evabench) and pkg-config evaref both build and pass"
