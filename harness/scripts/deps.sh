#!/usr/bin/env bash
# Installs the Debian packages evabench needs to build and test, if any is missing.
# Called by `make run` and `make test` (skip with DEPS=0); safe to run repeatedly (does nothing when all are present).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libhdf5-dev hdf5-tools libcjson-dev check zlib1g-dev
      libpng-dev libjpeg62-turbo-dev libutf8proc-dev python3 python3-numpy
      python3-matplotlib time
      python3-h5py
      libopenmpi-dev openmpi-bin)  # Open MPI: optional for the build (EVABENCH_MPI=AUTO), needed by cli_mpi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "evabench: installing missing packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
