#!/usr/bin/env bash
# bench/run.sh [OUTDIR] [DURATION_S] [PASSES] [MTU] [TESTS]
# Runs ../shared/bench/netbench for moat (custom stack via `moat attach`), pasta and
# slirp4netns in one invocation, PASSES times each (interleaved), then prints the
# comparison with ratios moat / best peer (bench/compare.py). Needs root. Everything runs in
# namespaces netbench creates; nothing leaves the machine.
set -euo pipefail
out="${1:-/tmp/moat-bench}"
dur="${2:-4}"
passes="${3:-2}"
mtu="${4:-65520}"
tests="${5:-tcp_out,tcp_out_p4,tcp_dl,tcp_in,tcp_in_ext,tcp_rr,tcp_rr_1cpu,tcp_crr,udp_out,dns,mem}"
source "$(dirname "$0")/common.sh"

# The custom-stack contract (bench/common.sh; DNS goes to the host resolv.conf, which netbench
# makes 127.0.0.1). --profile all: the benchmark reaches host services through the gateway,
# which the default policy refuses.
moat_cmd="exec $moat_attach --profile all"

for p in $(seq 1 "$passes"); do
  for stack in moat pasta slirp4netns; do
    json="$out/pass$p-$stack.json"
    args=(--stack "$stack" --mtu "$mtu" --duration "$dur" --tests "$tests" --json "$json" --label "$stack")
    if [[ $stack == moat ]]; then
      args=(--stack custom --custom-cmd "$moat_cmd" --custom-version-cmd "$moat --version" --mtu "$mtu"
            --duration "$dur" --tests "$tests" --json "$json" --label moat)
    fi
    echo "bench: pass $p $stack" >&2
    timeout 900 "$netbench" "${args[@]}" > "$out/pass$p-$stack.txt" 2> "$out/pass$p-$stack.err" || \
      echo "bench: netbench $stack exited $? (see $out/pass$p-$stack.err)" >&2
  done
done
python3 "$here/compare.py" "$out"/pass*-*.json | tee "$out/compare.md"
