#!/usr/bin/env bash
# fuzz-fixup-compare.sh BUILD_DIR [RUNS] [SEED...]: what the length/checksum-repairing
# mutator (fuzz/frame_fixup.h) buys. Runs fuzz_ingress and fuzz_vnet_frame from BUILD_DIR
# for RUNS executions (default 10^6) per libFuzzer seed (default 1 2), once with plain
# LLVMFuzzerMutate (MOAT_FUZZ_NO_FIXUP=1) and once with the repair, each on a fresh scratch
# copy of the checked-in corpus, and prints the final cov: (edges) and ft: (features).
# For a build whose parsers verify checksums (as a release build does), configure with
# -DCMAKE_CXX_FLAGS=-UFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (fuzz/README.md).
set -euo pipefail
build="${1:?usage: fuzz-fixup-compare.sh BUILD_DIR [RUNS] [SEED...]}"
runs="${2:-1000000}"
shift $(( $# >= 2 ? 2 : $# ))
seeds=("$@"); [[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2)
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
printf '%-11s %5s %13s %13s\n' target seed "plain cov/ft" "fixup cov/ft"
for t in ingress vnet_frame; do
  [[ -x "$build/fuzz/fuzz_$t" ]] || { echo "fuzz-fixup-compare: no $build/fuzz/fuzz_$t" >&2; exit 2; }
  for s in "${seeds[@]}"; do
    res=()
    for mode in plain fixup; do
      d="$scratch/$t-$s-$mode"
      rm -rf "$d"; cp -r "$root/fuzz/corpus/$t" "$d"
      if [[ $mode == plain ]]; then
        MOAT_FUZZ_NO_FIXUP=1 "$build/fuzz/fuzz_$t" -runs="$runs" -seed="$s" -artifact_prefix="$d-" "$d" > "$d.log" 2>&1
      else
        "$build/fuzz/fuzz_$t" -runs="$runs" -seed="$s" -artifact_prefix="$d-" "$d" > "$d.log" 2>&1
      fi
      last="$(grep -E '^#[0-9]+' "$d.log" | tail -1)"
      res+=("$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1\/\2/p' <<<"$last")")
    done
    printf '%-11s %5s %13s %13s\n' "$t" "$s" "${res[0]}" "${res[1]}"
  done
done
