#!/usr/bin/env bash
# fuzz-smoke.sh BUILD_DIR SECONDS: runs every fuzz_* target for SECONDS on a scratch copy of
# its corpus (the checked-in corpus is not modified). Fails on the first crash.
set -euo pipefail
build="$1" secs="${2:-30}"
root="$(cd "$(dirname "$0")/.." && pwd)"
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz-smoke: no fuzz targets in $build/fuzz" >&2; exit 1; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0 failed=0
for t in "${targets[@]}"; do
  name="$(basename "$t")"; name="${name#fuzz_}"
  mkdir -p "$scratch/$name" "$scratch/artifacts"
  [[ -d "$root/fuzz/corpus/$name" ]] && cp -r "$root/fuzz/corpus/$name/." "$scratch/$name/" 2>/dev/null || true
  echo "fuzz-smoke: $name for ${secs}s"
  if "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$scratch/artifacts/${name}-" "$scratch/$name" > "$scratch/$name.log" 2>&1; then
    grep -E "stat::number_of_executed_units" "$scratch/$name.log" | sed "s/^/  /" || true
    passed=$((passed + 1))
  else
    echo "fuzz-smoke: $name FAILED; log tail:" >&2
    tail -n 40 "$scratch/$name.log" >&2
    mkdir -p "$root/fuzz/artifacts" && cp "$scratch"/artifacts/* "$root/fuzz/artifacts/" 2>/dev/null || true
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
