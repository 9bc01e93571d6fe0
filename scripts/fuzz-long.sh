#!/usr/bin/env bash
# fuzz-long.sh BUILD_DIR [RUNS] [TARGET...]: runs every fuzz_* target in BUILD_DIR/fuzz (or
# only the TARGETs named, without the fuzz_ prefix) for RUNS executions (default 10^6,
# SPEC R-HARD-6) on a scratch copy of its corpus; the checked-in corpus is not modified.
# Prints executions, coverage (cov: edges, ft: features), corpus size and exec/s per target,
# and fails if any target crashes, leaks, times out or runs out of memory. A failing
# target's crash artifact and log are kept in fuzz/artifacts/ (reproduce with
# `BUILD_DIR/fuzz/fuzz_NAME fuzz/artifacts/NAME-crash-...`, see fuzz/README.md).
#
# Environment: FUZZ_LONG_SEED (libFuzzer -seed, default 1: the same run twice),
# FUZZ_LONG_TIMEOUT (per-input seconds, default 10), FUZZ_LONG_RSS_MB (default 2048),
# FUZZ_LONG_MAX_SECONDS (a wall-clock cap per target, default 3600; a target stopped by
# it before RUNS counts as failed: it did not reach the bar).
set -euo pipefail
build="${1:?usage: fuzz-long.sh BUILD_DIR [RUNS] [TARGET...]}"
runs="${2:-1000000}"
shift $(( $# >= 2 ? 2 : $# ))
root="$(cd "$(dirname "$0")/.." && pwd)"
seed="${FUZZ_LONG_SEED:-1}" timeout_s="${FUZZ_LONG_TIMEOUT:-10}" rss="${FUZZ_LONG_RSS_MB:-2048}"
max_secs="${FUZZ_LONG_MAX_SECONDS:-3600}"
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "fuzz-long: RUNS must be a number, got '$runs'" >&2; exit 2; }

shopt -s nullglob
targets=()
if [[ $# -gt 0 ]]; then
  for n in "$@"; do
    [[ -x "$build/fuzz/fuzz_$n" ]] || { echo "fuzz-long: no target fuzz_$n in $build/fuzz" >&2; exit 2; }
    targets+=("$build/fuzz/fuzz_$n")
  done
else
  targets=("$build"/fuzz/fuzz_*)
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz-long: no fuzz targets in $build/fuzz (make fuzz-build)" >&2; exit 1; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0 failed=0 failed_names=()
printf '%-18s %10s %7s %7s %8s %9s %7s\n' target execs cov ft corpus exec/s secs
for t in "${targets[@]}"; do
  name="$(basename "$t")"; name="${name#fuzz_}"
  mkdir -p "$scratch/$name" "$scratch/artifacts"
  [[ -d "$root/fuzz/corpus/$name" ]] && cp -r "$root/fuzz/corpus/$name/." "$scratch/$name/" 2>/dev/null || true
  log="$scratch/$name.log"
  start=$(date +%s)
  rc=0
  "$t" -runs="$runs" -seed="$seed" -timeout="$timeout_s" -rss_limit_mb="$rss" -max_total_time="$max_secs" \
       -print_final_stats=1 -artifact_prefix="$scratch/artifacts/${name}-" "$scratch/$name" > "$log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")"
  eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  printf '%-18s %10s %7s %7s %8s %9s %7s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${eps:-?}" "$secs"
  if [[ $rc -ne 0 || -z "$execs" || "$execs" -lt "$runs" ]]; then
    if [[ $rc -eq 0 ]]; then echo "fuzz-long: $name stopped after ${execs:-0} of $runs executions (FUZZ_LONG_MAX_SECONDS=$max_secs)" >&2
    else echo "fuzz-long: $name FAILED (exit $rc); log tail:" >&2; fi
    tail -n 40 "$log" >&2
    mkdir -p "$root/fuzz/artifacts"
    cp "$log" "$root/fuzz/artifacts/$name.log"
    for a in "$scratch"/artifacts/"$name"-*; do cp "$a" "$root/fuzz/artifacts/" && echo "fuzz-long: kept $root/fuzz/artifacts/$(basename "$a")" >&2; done
    failed=$((failed + 1)); failed_names+=("$name")
  else
    passed=$((passed + 1))
  fi
done
echo "fuzz-long: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}; $runs runs each, seed $seed"
[[ $failed -eq 0 ]]
