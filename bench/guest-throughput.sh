#!/usr/bin/env bash
# bench/guest-throughput.sh [PASSES] [BULK_MB]: a real Linux guest's TCP throughput through
# `moat serve --qemu` and through passt, with the same shared harness (../shared/guest: QEMU TCG,
# the smoke suite's 100 MB bulk download and ~16.6 MB upload to the host's loopback), alternating
# moat and passt for PASSES rounds (default 2). Prints one line per run and the medians.
# Needs root and an idle-ish machine; it is not part of any test target.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${MOAT_SHARED_DIR:-$ROOT/../shared}"
MOAT="${MOAT:-$ROOT/build/src/cli/moat}"
PASSES="${1:-2}" BULK_MB="${2:-100}"
OUT="$(mktemp -d /tmp/moat-guest-bench.XXXXXX)"
[[ -x "$MOAT" && -x "$SHARED/guest/validate-stack.sh" ]] || { echo "need $MOAT and $SHARED/guest" >&2; exit 2; }
export GUEST_CACHE="${GUEST_CACHE:-/var/tmp/guest-harness-cache}"
run() {  # NAME PASS
  local log="$OUT/$1.$2.log"
  if [[ $1 == moat ]]; then
    "$SHARED/guest/validate-stack.sh" --accel tcg --bulk-mb "$BULK_MB" \
      --stack-cmd "$MOAT serve --qemu {sock} --dns-upstream 127.0.0.1:53 --profile all --once --log-level warn" > "$log" 2>&1 || true
  else
    "$SHARED/guest/validate-passt.sh" --accel tcg --bulk-mb "$BULK_MB" --env XFAIL_TESTS=tcp-refused > "$log" 2>&1 || true
  fi
  local dl up sum
  dl=$(sed -n 's/^@@INFO bulk_MBps=//p' "$log" | tail -1)
  up=$(sed -n 's/^@@INFO upload_MBps=//p' "$log" | tail -1)
  sum=$(sed -n 's/^@@SUMMARY //p' "$log" | tail -1)
  echo "$1 pass $2: download ${dl:-?} MB/s, upload ${up:-?} MB/s ($sum)"
  echo "$1 ${dl:-0} ${up:-0}" >> "$OUT/results"
}
for ((p = 1; p <= PASSES; p++)); do run moat "$p"; run passt "$p"; done
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
for s in moat passt; do
  echo "median $s: download $(awk -v s=$s '$1==s {print $2}' "$OUT/results" | median) MB/s," \
       "upload $(awk -v s=$s '$1==s {print $3}' "$OUT/results" | median) MB/s"
done
echo "logs: $OUT"
