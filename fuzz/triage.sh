#!/usr/bin/env bash
# triage.sh TARGET ARTIFACT...: replays each libFuzzer artifact through TARGET and says where it
# failed: "libhdf5" when the first stack frame outside the sanitizer runtime and libc lies in
# libhdf5, "evabench" when it lies in this project's code (a finding to fix). A hang is stopped by
# libFuzzer after 10 s and placed by the stack it was in; "timeout" when even that does not end
# within 30 s. One line per artifact.
set -u
target=$1; shift
for f in "$@"; do
  out=$(timeout 30 "$target" -timeout=10 -runs=1 "$f" 2>&1); rc=$?
  if [ $rc -eq 124 ]; then echo "timeout   $f"; continue; fi
  if [ $rc -eq 0 ]; then echo "clean     $f"; continue; fi
  # The first frame that is either in libhdf5 or in a source file of ours (frames of the sanitizer
  # runtime and of libc have no source path here, or a sysdeps/compiler-rt one).
  where=unknown
  while IFS= read -r frame; do
    case "$frame" in
      *libhdf5*) where=libhdf5; break ;;
      *sysdeps*|*compiler-rt*|*sanitizer*) ;;
      *.c:[0-9]*) where=evabench; break ;;
    esac
  done < <(echo "$out" | grep -E '^ +#[0-9]+ ')
  kind=$(echo "$out" | grep -oE 'ERROR: [A-Za-z]+: [a-z-]+|LeakSanitizer|deadly signal' | head -n 1)
  printf '%-9s %-45s %s\n' "$where" "${kind:-?}" "$f"
done
