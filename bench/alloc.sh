#!/usr/bin/env bash
# bench/alloc.sh [OUTDIR] [SHORT_S] [LONG_S] [TESTS]
# Heap allocations of moat on the data path (issue 14 deliverable 6, STYLE: steady state
# allocates nothing), printed next to throughput: each netbench test runs twice against
# `moat attach` with bench/alloc_interpose.so preloaded (it counts every malloc/calloc/
# realloc/memalign in a shared file), once for SHORT_S and once for LONG_S seconds. The
# difference of the two runs cancels setup and teardown, so
#     steady-state allocations per unit = (allocs_long - allocs_short) / (units_long - units_short)
# with units = GB moved (tcp_*, udp_out), 1000 connections (tcp_crr), 1000 transactions
# (tcp_rr) or 1000 queries (dns). Needs root; everything runs in netbench's namespaces.
set -euo pipefail
out="${1:-/tmp/moat-alloc}"
short="${2:-2}"
long="${3:-6}"
tests="${4:-tcp_out,tcp_in,tcp_dl,tcp_rr,tcp_crr,udp_out,dns}"
source "$(dirname "$0")/common.sh"

cc -O2 -shared -fPIC -o "$out/alloc_interpose.so" "$here/alloc_interpose.c"
counter="$out/counter"

run_one() {  # TEST DURATION -> prints "ALLOCS BYTES JSON"
  local t="$1" d="$2" json="$out/$1-$2.json"
  head -c 16 /dev/zero > "$counter"
  local cmd="exec env LD_PRELOAD=$out/alloc_interpose.so MOAT_ALLOC_COUNT_FILE=$counter $moat_attach --profile all"
  timeout 300 "$netbench" --stack custom --custom-cmd "$cmd" --custom-version-cmd "$moat --version" \
    --tests "$t" --duration "$d" --json "$json" --label moat-alloc > "$out/$t-$d.txt" 2> "$out/$t-$d.err" ||
    echo "alloc: netbench $t ${d}s exited $? (see $out/$t-$d.err)" >&2
  local a b
  read -r a b < <(od -An -tu8 -w16 "$counter")
  echo "$a $b $json"
}

printf '%-9s %14s %14s %16s %s\n' test "short allocs" "long allocs" "per unit" "throughput (long run)"
IFS=, read -ra list <<< "$tests"
for t in "${list[@]}"; do
  read -r a1 _ j1 < <(run_one "$t" "$short")
  read -r a2 _ j2 < <(run_one "$t" "$long")
  python3 - "$t" "$a1" "$j1" "$a2" "$j2" <<'PY'
import json, sys
t, a1, j1, a2, j2 = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def res(p):
    try:
        return json.load(open(p))["results"][t]
    except Exception:
        return {}
r1, r2 = res(j1), res(j2)
# (units field, divisor, unit name, throughput text)
if "bytes" in r2:
    key, div, unit = "bytes", 1e9, "GB"
    tp = f'{r2.get("gbps", 0):.2f} Gbit/s'
elif "packets" in r2:
    key, div, unit = "packets", None, "GB"
    tp = f'{r2.get("recv_gbps", 0):.2f} Gbit/s received'
elif "connections" in r2:
    key, div, unit = "connections", 1e3, "1000 conns"
    tp = f'{r2.get("cps", 0):.0f} conn/s'
elif "transactions" in r2:
    key, div, unit = "transactions", 1e3, "1000 trans"
    tp = f'{r2.get("tps", 0):.0f} trans/s'
elif "answered" in r2:
    key, div, unit = "answered", 1e3, "1000 queries"
    tp = f'{r2.get("qps", 0):.0f} queries/s'
else:
    print(f"{t:<9} {a1:>14} {a2:>14} {'n/a':>16} (no result; see the .err files)")
    sys.exit(0)
if key == "packets":
    u1 = r1.get("packets", 0) * r1.get("datagram_len", 1400) / 1e9
    u2 = r2.get("packets", 0) * r2.get("datagram_len", 1400) / 1e9
else:
    u1, u2 = r1.get(key, 0) / div, r2.get(key, 0) / div
per = (a2 - a1) / (u2 - u1) if u2 > u1 else float("nan")
per = max(per, 0.0)
print(f"{t:<9} {a1:>14} {a2:>14} {per:>9.1f}/{unit:<6} {tp}")
PY
done
