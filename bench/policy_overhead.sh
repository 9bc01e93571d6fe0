#!/usr/bin/env bash
# bench/policy_overhead.sh [OUTDIR] [DURATION_S] [PASSES]
# SPEC R-PERF-2: tcp_out and tcp_crr through moat with a large policy, against the `all`
# profile, with ../shared/bench/netbench's custom-stack contract (moat attach). Variants:
#   all      --profile all (no rules; the baseline)
#   large    --profile public,host + 1000 domain rules + a 100 000-entry block list
# (netbench's servers sit behind the gateway address, group `host`, so the large policy adds
# `host` to `public` to keep them reachable; the 1000 rules and the block list are all
# evaluated on every SYN and every query before the host rule decides.)
# Prints the medians and large / all. Needs root; everything stays in netbench's namespaces.
set -euo pipefail
out="${1:-/tmp/moat-policy-bench}"
dur="${2:-4}"
passes="${3:-2}"
source "$(dirname "$0")/common.sh"

# 1000 domain rules in a config file, 100 000 names in a block file.
python3 - "$out" <<'PY'
import sys
out = sys.argv[1]
with open(f"{out}/large.toml", "w") as f:
    f.write("schema = 1\n[policy]\nprofiles = [\"public\", \"host\"]\nrules = [\n")
    for i in range(1000):
        act = "allow" if i % 2 == 0 else "deny"
        f.write(f'  "{act}@svc{i}.example-{i % 37}.com:tcp:443",\n')
    f.write("]\n")
with open(f"{out}/block.txt", "w") as f:
    f.write("# 100 000 generated names\n")
    for i in range(100000):
        f.write(f"0.0.0.0 ads{i}.tracker-{i % 101}.net\n")
PY

declare -A variant=(
  [all]="exec $moat_attach --profile all"
  [large]="exec $moat_attach --config $out/large.toml --dns-block-file $out/block.txt"
)
for p in $(seq 1 "$passes"); do
  for v in all large; do
    echo "bench: pass $p $v" >&2
    timeout 600 "$netbench" --stack custom --custom-cmd "${variant[$v]}" --custom-version-cmd "$moat --version" \
      --duration "$dur" --tests tcp_out,tcp_crr --json "$out/pass$p-$v.json" --label "moat-$v" \
      > "$out/pass$p-$v.txt" 2> "$out/pass$p-$v.err" || echo "bench: $v exited $? (see $out/pass$p-$v.err)" >&2
  done
done
python3 - "$out" "$passes" <<'PY'
import json, statistics, sys
out, passes = sys.argv[1], int(sys.argv[2])
def med(v, test, key):
    xs = []
    for p in range(1, passes + 1):
        try:
            r = json.load(open(f"{out}/pass{p}-{v}.json"))["results"].get(test, {})
        except Exception:
            continue
        if isinstance(r.get(key), (int, float)) and r.get("ok", True):
            xs.append(float(r[key]))
    return statistics.median(xs) if xs else None
print("| test | metric | all | public+1000 rules+100k block | ratio (R-PERF-2 goal >= 0.95) |")
print("|---|---|---|---|---|")
for test, key, unit in (("tcp_out", "gbps", "Gbit/s"), ("tcp_crr", "cps", "conn/s")):
    a, l = med("all", test, key), med("large", test, key)
    ratio = "%.2f" % (l / a) if a and l else "-"
    fa = "%.2f" % a if a is not None else "-"
    fl = "%.2f" % l if l is not None else "-"
    print(f"| {test} | {unit} | {fa} | {fl} | {ratio} |")
PY
