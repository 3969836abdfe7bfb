#!/usr/bin/env bash
# Builds the golden-generation environment golden/.venv (idempotent):
#   Debian's python3-torch (CPU), torchvision, numpy, h5py, Pillow, then open_clip_torch and timm
#   pinned from PyPI (golden/requirements.txt) in a venv that sees the system packages.
# Usage: bash golden/setup.sh      then golden/.venv/bin/python golden/make_golden.py ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pkgs=(python3 python3-venv python3-pip python3-torch python3-torchvision python3-numpy python3-h5py
      python3-pil python3-regex)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "golden/setup.sh: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [ ! -x "$here/.venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$here/.venv"
fi
if ! "$here/.venv/bin/python" -c "import open_clip, timm, ftfy, safetensors" 2>/dev/null; then
  "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
fi
if ! "$here/.venv/bin/python" -c "import clip_benchmark.metrics.zeroshot_retrieval, pycocotools.coco" 2>/dev/null; then
  "$here/.venv/bin/pip" install -q --no-deps -r "$here/requirements-nodeps.txt"
fi
"$here/.venv/bin/python" - <<'PY'
import open_clip.version
import torch, open_clip, timm, ftfy, safetensors, h5py, numpy
print("golden env: torch", torch.__version__, "open_clip", open_clip.version.__version__ if hasattr(open_clip,"version") else "?", "timm", timm.__version__,
      "ftfy", ftfy.__version__, "h5py", h5py.__version__, "numpy", numpy.__version__)
PY
