#!/usr/bin/env bash
# run_target.sh BINARY NAME SECONDS EVABENCH: runs one libFuzzer target for SECONDS on its seeds
# (made by make_seeds.sh under ./fuzz-seeds on first use), with a scratch corpus in
# ./fuzz-corpus/NAME and crash/timeout/oom files written to ./fuzz-artifacts/NAME/.
# Exits non-zero on a finding (libFuzzer's own exit status), printing the artifact's path.
set -euo pipefail
bin=$1 name=$2 secs=$3 evabench=$4
here=$(cd "$(dirname "$0")" && pwd)
[ -d fuzz-seeds/"$name" ] || bash "$here/make_seeds.sh" "$evabench" fuzz-seeds >/dev/null
mkdir -p fuzz-corpus/"$name" fuzz-artifacts/"$name"
# rss_limit: the golden target reads through libhdf5, which allocates freely on bad files.
exec "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
  -artifact_prefix=fuzz-artifacts/"$name"/ fuzz-corpus/"$name" fuzz-seeds/"$name"
