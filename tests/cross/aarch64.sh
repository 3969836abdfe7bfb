#!/bin/sh
# aarch64.sh: cross-compiles the reference SGEMM and ops for AArch64 (NEON) and runs the kernel
# check (gemm_kernels_check.c) under qemu-user. Not part of `make test`: it needs the Debian
# packages gcc-aarch64-linux-gnu and qemu-user (exit 77 = skipped when they are missing).
#   usage: tests/cross/aarch64.sh [OUT_DIR]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "aarch64.sh: skipped, needs gcc-aarch64-linux-gnu and qemu-user"
    exit 77
fi
inc=""
for d in "$root"/ref "$root"/ref/*/; do [ -d "$d" ] && inc="$inc -I$d"; done
src() { # the first of ref/NAME or ref/*/NAME
    for f in "$root/ref/$1" "$root"/ref/*/"$1"; do [ -f "$f" ] && { echo "$f"; return; }; done
    echo "aarch64.sh: $1 not found under ref/" >&2
    exit 2
}
flags="-std=c11 -O2 -Wall -Wextra -Wpedantic -Wno-unused-parameter -ffp-contract=off -D_DEFAULT_SOURCE"
# the ops and the worker pool build for AArch64 too (the ops' generic vectors become NEON)
# shellcheck disable=SC2086
$cc $flags $inc "$root/tests/cross/gemm_kernels_check.c" "$(src ref_gemm.c)" "$(src ref_ops.c)" \
    "$(src ref_pool.c)" "$(src eva_status.c)" -o "$out/gemm_kernels_check" -lm -lpthread
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/gemm_kernels_check"
