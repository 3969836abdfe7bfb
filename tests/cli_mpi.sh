#!/usr/bin/env bash
# cli_mpi.sh: sharded evaluation under Open MPI equals one process, on the parity data.
#   - `mpirun -np 2` (and 3: uneven blocks) of `evabench retrieval` (mscoco_captions, flickr30k) and
#     `evabench zeroshot` give the same JSON metrics and byte-identical predictions as one process
#   - a rerun resumes from the per-rank caches (every rank hits) with the same numbers
#   - a failing rank ends the run with a non-zero status and a message naming the rank
# Skipped (77) only when the build has no MPI (`evabench retrieval --help` says so); a build with
# MPI but no mpirun fails. Open MPI's own allocations are reported as leaks by LeakSanitizer, so
# the mpirun runs set ASAN_OPTIONS=detect_leaks=0 (the single-process runs keep leak checking).
# Usage: bash tests/cli_mpi.sh path/to/evabench   (exit 0 pass, 1 fail, 77 skipped)
set -u
EVA="${1:?usage: cli_mpi.sh path/to/evabench}"
SRC="${EVA_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
G="$SRC/golden/retrieval"
W="$SRC/golden/zeroshot"
if ! "$EVA" retrieval --help | grep -q "MPI sharding available"; then
    echo "cli_mpi: skipped, this build has no MPI"
    exit 77
fi
command -v mpirun >/dev/null || { echo "FAIL cli_mpi: the build has MPI but mpirun is not on PATH"; exit 1; }
T="$(mktemp -d /tmp/eva_cli_mpi.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# shared memory without CMA (containers), no rsh agent needed for one host
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { # np cmd...
    local np=$1
    shift
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" mpirun -np "$np" --oversubscribe --allow-run-as-root "$@"
}

run() { # name cmd...
    local name=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq 0 ]; then ok "$name"; else
        bad "$name: exit $rc"
        sed 's/^/     /' "$T/err" | tail -8
    fi
}

same_metrics() { # a.json b.json: the "metrics" objects are equal
    python3 -c 'import json, sys
a, b = (json.load(open(p))["metrics"] for p in sys.argv[1:3])
sys.exit(a != b or not a)' "$1" "$2"
}

same() { # name a.json b.json a.csv b.csv
    same_metrics "$2" "$3" && ok "$1: JSON metrics equal" || bad "$1: JSON metrics differ"
    cmp -s "$4" "$5" && ok "$1: predictions identical" || bad "$1: predictions differ"
}

# ---- retrieval ----------------------------------------------------------------------------------
for lay in mscoco_captions flickr30k; do
    root="$G/coco"; [ "$lay" = flickr30k ] && root="$G/flickr"
    args=(retrieval --weights "$W/eva02.safetensors" --data "$root" --dataset "$lay" --recall-k 1,2,5,10 --batch 4)
    run "retrieval $lay, one process" "$EVA" "${args[@]}" --no-cache --json "$T/r1.json" --predictions "$T/r1.csv"
    for np in 2 3; do
        run "retrieval $lay, mpirun -np $np" mpi "$np" "$EVA" "${args[@]}" --no-cache --json "$T/r$np.json" \
            --predictions "$T/r$np.csv"
        same "retrieval $lay np $np vs one process" "$T/r$np.json" "$T/r1.json" "$T/r$np.csv" "$T/r1.csv"
    done
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["protocol"]["ranks"] != 3)' "$T/r3.json" ||
        bad "retrieval $lay: the JSON does not record 3 ranks"
done
# per-rank caches: a second sharded run resumes from them
args=(retrieval --weights "$W/eva01.safetensors" --data "$G/coco" --dataset mscoco_captions --recall-k 1,2,5,10
      --cache-dir "$T/cache")
run "retrieval, sharded, caches written" mpi 2 "$EVA" "${args[@]}" --json "$T/c1.json" --predictions "$T/c1.csv"
run "retrieval, sharded, resumed from the per-rank caches" mpi 2 "$EVA" "${args[@]}" --json "$T/c2.json" \
    --predictions "$T/c2.csv"
n=$(ls "$T/cache" | grep -c '^retrieval-')
[ "$n" -eq 4 ] && ok "4 per-rank cache files (2 ranks x images, captions)" || bad "expected 4 cache files, found $n"
python3 - "$T/c2.json" <<'EOF' || bad "the resumed run did not read the caches"
import json, sys
p = json.load(open(sys.argv[1]))["protocol"]
assert p["image_cache"] == "hit" and p["caption_cache"] == "hit", p
EOF
same "resumed run" "$T/c2.json" "$T/c1.json" "$T/c2.csv" "$T/c1.csv"
same "sharded eva01 vs CLIP_benchmark" "$T/c1.json" "$G/expected/eva01.mscoco_captions.json" "$T/c1.csv" \
    "$G/expected/eva01.mscoco_captions.predictions.csv"

# ---- zeroshot -----------------------------------------------------------------------------------
zargs=(zeroshot --weights "$W/eva02.safetensors" --data "$W/images" --batch 4 --no-cache)
run "zeroshot, one process" "$EVA" "${zargs[@]}" --json "$T/z1.json" --predictions "$T/z1.csv"
for np in 2 3; do
    run "zeroshot, mpirun -np $np" mpi "$np" "$EVA" "${zargs[@]}" --json "$T/z$np.json" --predictions "$T/z$np.csv"
    same "zeroshot np $np vs one process" "$T/z$np.json" "$T/z1.json" "$T/z$np.csv" "$T/z1.csv"
done

# ---- a failing rank ends the run, naming the rank -------------------------------------------------
for cmd in retrieval zeroshot; do
    if [ "$cmd" = retrieval ]; then a=("${args[@]}" --no-cache); else a=("${zargs[@]}"); fi
    EVA_SHARD_FAIL_RANK=1 mpi 2 "$EVA" "${a[@]}" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -ne 0 ] && grep -q "rank 1 of 2" "$T/err" && ok "$cmd: failing rank 1 ends the run (exit $rc)" ||
        { bad "$cmd: failing rank: exit $rc"; tail -5 "$T/err" | sed 's/^/     /'; }
done

if [ "$fails" -ne 0 ]; then
    echo "cli_mpi: $fails failure(s)"
    exit 1
fi
echo "cli_mpi: all passed"
