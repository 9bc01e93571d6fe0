#!/usr/bin/env bash
# bench/ab.sh MOAT_A MOAT_B [OUTDIR] [DURATION_S] [PASSES] [TESTS]
# A/B of two moat binaries (e.g. the last landed build against a refactor) with
# ../shared/bench/netbench's custom-stack contract, interleaved A, B, A, B, ... in one run on one
# machine, so a regression shows as a ratio rather than as run-to-run spread. Prints the median
# of each figure for A and B and B / A (higher is better for rates, lower for latency and
# memory, so each ratio is oriented "> 1 = B better"). Needs root; everything stays in
# netbench's namespaces.
set -euo pipefail
a="$(readlink -f "${1:?usage: bench/ab.sh MOAT_A MOAT_B [OUTDIR] [DUR] [PASSES] [TESTS]}")"
b="$(readlink -f "${2:?usage: bench/ab.sh MOAT_A MOAT_B [OUTDIR] [DUR] [PASSES] [TESTS]}")"
out="${3:-/tmp/moat-ab}"
dur="${4:-4}"
passes="${5:-2}"
tests="${6:-tcp_out,tcp_dl,tcp_in,tcp_rr_1cpu,tcp_crr,dns,mem}"
[[ -x "$a" && -x "$b" ]] || { echo "bench/ab.sh: both binaries must be executable" >&2; exit 2; }
MOAT="$a" source "$(dirname "$0")/common.sh"

for p in $(seq 1 "$passes"); do
  for side in A B; do
    bin="$a"; [[ $side == B ]] && bin="$b"
    cmd="exec ${moat_attach/#$moat/$bin} --profile all"
    echo "bench/ab: pass $p $side ($bin)" >&2
    timeout 900 "$netbench" --stack custom --custom-cmd "$cmd" --custom-version-cmd "$bin --version" \
      --duration "$dur" --tests "$tests" --json "$out/pass$p-$side.json" --label "$side" \
      > "$out/pass$p-$side.txt" 2> "$out/pass$p-$side.err" || \
      echo "bench/ab: netbench $side exited $? (see $out/pass$p-$side.err)" >&2
  done
done

python3 - "$out" <<'PY' | tee "$out/ab.md"
import glob, json, statistics, sys
from collections import defaultdict
out = sys.argv[1]
# (test, key, higher_is_better)
metrics = [("tcp_out", "gbps", True), ("tcp_dl", "gbps", True), ("tcp_in", "gbps", True),
           ("tcp_in_ext", "gbps", True), ("tcp_dl", "stack_cpu_s_per_GB", False),
           ("tcp_rr_1cpu", "tps", True), ("tcp_rr_1cpu", "p50_us", False), ("tcp_rr", "tps", True),
           ("tcp_crr", "cps", True), ("udp_out", "lost_pct", False), ("dns", "qps", True),
           ("dns", "p50_us", False), ("mem", "vmhwm_kb", False)]
vals = defaultdict(list)
for p in sorted(glob.glob(f"{out}/pass*-[AB].json")):
    try:
        js = json.load(open(p))
    except Exception as e:
        print(f"<!-- skipped {p}: {e} -->")
        continue
    side = js.get("label", "?")
    for test, res in js.get("results", {}).items():
        if not isinstance(res, dict) or not (res.get("ok", True) or test == "mem"):
            continue
        for t, k, _ in metrics:
            if t == test and isinstance(res.get(k), (int, float)):
                vals[(side, t, k)].append(float(res[k]))
print("| test | metric | A | B | B vs A (>1 = B better) | passes |")
print("|---|---|---|---|---|---|")
for t, k, hib in metrics:
    va, vb = vals.get(("A", t, k)), vals.get(("B", t, k))
    if not va or not vb:
        continue
    ma, mb = statistics.median(va), statistics.median(vb)
    r = (mb / ma if ma else float("inf")) if hib else (ma / mb if mb else float("inf"))
    print(f"| {t} | {k} | {ma:.4g} | {mb:.4g} | {r:.2f} | {len(va)}/{len(vb)} |")
PY
