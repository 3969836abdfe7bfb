#!/usr/bin/env bash
# keep_reports.sh: keeps a run's reports in the repository, deliberately.
#
# usage: bash harness/scripts/keep_reports.sh SRC_DIR [NAME]
#   Copies the records of SRC_DIR (default build/reports: what `make run` wrote) into
#   reports/<NAME>/, NAME defaulting to <date>_<cpu>-<n>c_<revision> of the run
#   (e.g. 2026-12-05_xeon-avx512-2c_9921a0c), rewrites absolute paths of this checkout, of the
#   checkout that made the run (SRC_DIR/../..) and of the build folder as paths relative to the
#   repository root, and regenerates summary.md and the charts
#   there. Nothing else under reports/ is touched; commit the new folder yourself.
# Exit: 0 ok, 2 bad usage (no such folder, target exists).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${1:-$ROOT/build/reports}
[ -d "$SRC" ] || { echo "keep_reports.sh: $SRC is not a folder (run 'make run' first)" >&2; exit 2; }
SRC=$(cd "$SRC" && pwd)
RUN_ROOT=$(cd "$SRC/../.." && pwd)
if [ -n "${2:-}" ]; then
  NAME=$2
else
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr 'A-Z' 'a-z' | sed 's/([^)]*)//g' |
        awk '{for (i = 1; i <= NF; i++) if ($i ~ /^(xeon|epyc|ryzen|core|neoverse|graviton)/) {print $i; exit}} END {}')
  isa=$(grep -qw avx512f /proc/cpuinfo && echo avx512 || (grep -qw avx2 /proc/cpuinfo && echo avx2 || uname -m))
  NAME="$(date -u +%Y-%m-%d)_${cpu:-cpu}-${isa}-$(nproc)c_$(git -C "$ROOT" rev-parse --short HEAD)"
fi
DEST=$ROOT/reports/$NAME
[ -e "$DEST" ] && { echo "keep_reports.sh: $DEST exists already" >&2; exit 2; }
mkdir -p "$DEST"
for f in "$SRC"/*.json "$SRC"/*.jsonl "$SRC"/*.md; do
  [ -f "$f" ] || continue
  case $(basename "$f") in summary.md) continue ;; esac
  # the run's own checkout (SRC is its build/reports) and this one become relative paths
  sed -e "s|$SRC/|reports/$NAME/|g" -e "s|$RUN_ROOT/||g" -e "s|$ROOT/||g" "$f" > "$DEST/$(basename "$f")"
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$ROOT/harness/scripts/plot_reports.py" --reports "$DEST"
echo "keep_reports.sh: kept $SRC as reports/$NAME (commit it with git add reports/$NAME)"
