#!/usr/bin/env bash
# run_target.sh BINARY NAME SECONDS EVABENCH: runs one libFuzzer target for SECONDS on its seeds
# (made by make_seeds.sh under ./fuzz-seeds on first use), with a scratch corpus in
# ./fuzz-corpus/NAME and crash/timeout/oom inputs written to ./fuzz-artifacts/NAME/.
# Exits non-zero on a finding, naming the artifact.
#
# NAME=golden runs in fork mode past libhdf5's own crashes (see fuzz/README.md), then fails only
# if an artifact crashes in evabench's code (fuzz/triage.sh) or makes `evabench verify` end with
# a signal or run over 30 s.
set -uo pipefail
bin=$1 name=$2 secs=$3 evabench=$4
here=$(cd "$(dirname "$0")" && pwd)
[ -d fuzz-seeds/"$name" ] || bash "$here/make_seeds.sh" "$evabench" fuzz-seeds >/dev/null || exit 1
mkdir -p fuzz-corpus/"$name" fuzz-artifacts/"$name"
if [ "$name" != golden ]; then
  exec "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix=fuzz-artifacts/"$name"/ fuzz-corpus/"$name" fuzz-seeds/"$name"
fi
"$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$secs" -timeout=10 \
  -rss_limit_mb=2560 -artifact_prefix=fuzz-artifacts/golden/ fuzz-corpus/golden fuzz-seeds/golden \
  >fuzz-artifacts/golden.log 2>&1
grep -E '^#[0-9]+' fuzz-artifacts/golden.log | tail -n 1
fails=0 n=0
for f in fuzz-artifacts/golden/*; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  where=$(bash "$here/triage.sh" "$bin" "$f" | awk '{print $1}')
  if [ "$where" = evabench ] || [ "$where" = unknown ]; then
    echo "FINDING ($where): $f"; bash "$here/triage.sh" "$bin" "$f"; fails=1
  fi
  EVABENCH_H5_TIMEOUT=5 timeout -s KILL 30 "$evabench" verify --golden "$f" >/dev/null 2>&1
  rc=$?
  if [ $rc -gt 2 ]; then echo "FINDING: evabench verify exited $rc on $f"; fails=1; fi
done
echo "fuzz_golden: $n artifacts (libhdf5 crashes, leaks, hangs), each ends verify with exit 0-2; findings in evabench: $fails"
exit $fails
