#!/usr/bin/env bash
# moat-it-timeout: 600
# Bulk TCP over an impaired guest link (--impair loss=0.05,reorder=0.1,duplicate=0.02,seed=7,
# SPEC R-TR impairment on both directions): 1 GiB guest->host and 1 GiB host->guest must arrive
# byte-identical (sha256). Rates are printed; no timing assertion beyond the generous bound.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
# Size: MOAT_IT_IMPAIR_BYTES (default 32 MiB). Under 5 % loss a Linux guest without SACK (moat
# does not negotiate it, SPEC R-TCP-2) spends most of the time in retransmission timeouts:
# guest->host runs at ~20 Mbit/s, host->guest at ~130-350 Mbit/s on this 2-core machine, so
# 1 GiB takes ~7 minutes. Worse, the guest's retransmission timer backs off exponentially
# while a hole stays open (a 13 s silence was seen at 32 MiB), so CI moves 8 MiB per
# direction within a 240 s bound; MOAT_IT_IMPAIR_BYTES=1073741824 runs the full size.
GIB=${MOAT_IT_IMPAIR_BYTES:-8388608}
SIZE="$((GIB / 1048576)) MiB"
IMPAIR="loss=0.05,reorder=0.1,duplicate=0.02,seed=7"
LIMIT=${MOAT_IMPAIR_LIMIT:-240}   # seconds per direction

start_bg sink "$NP" serve-sink --port 18300 --ready-file "$T_DIR/sink.ready" --max-seconds 590
start_bg src  "$NP" serve-send --port 18301 --bytes $GIB --seed 51 --ready-file "$T_DIR/src.ready" --max-seconds 590
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/sink.ready' -a -s '$T_DIR/src.ready'"
want_up="$("$NP" expect-sha --bytes $GIB --seed 50)"
want_down="$("$NP" expect-sha --bytes $GIB --seed 51)"

transfer() {
  local name="$1"; shift
  local rc
  set +e
  timeout $((LIMIT + 15)) "$MOAT" run --profile all --log-level debug --impair "$IMPAIR" -- timeout "$LIMIT" "$@" > "$T_DIR/$name.out" 2> "$T_DIR/$name.log" &
  local pid=$!
  T_PIDS+=($pid)
  wait $pid; rc=$?
  set -e
  echo "$name: status $rc, result '$(cat "$T_DIR/$name.out")'; $(grep -E '^(send|fetch):' "$T_DIR/$name.log" || echo 'no rate line')"
}

transfer up   "$NP" send  --host 100.96.0.1 --port 18300 --bytes $GIB --seed 50 --max-seconds $((LIMIT + 5))
check "$SIZE guest->host under impairment byte-identical" test "$(cat "$T_DIR/up.out")" = "$want_up"
transfer down "$NP" fetch --host 100.96.0.1 --port 18301 --max-seconds $((LIMIT + 5))
check "$SIZE host->guest under impairment byte-identical" test "$(cat "$T_DIR/down.out")" = "$want_down"
# The impairment really applied (moat logs its counters at exit with --log-level debug).
counter() { grep -o "stats: .*" "$T_DIR/$1.log" | tail -n 1 | grep -o " $2=[0-9]*" | cut -d= -f2 || true; }
for d in up down; do
  for c in impair.dropped impair.reordered impair.duplicated; do
    v="$(counter $d $c)"
    check "$d: $c > 0 (got '${v}')" test "${v:-0}" -gt 0
  done
  echo "$d: tcp.retransmits=$(counter $d tcp.retransmits) tcp.fast_retransmits=$(counter $d tcp.fast_retransmits) link.from_guest.frames=$(counter $d link.from_guest.frames) link.to_guest.frames=$(counter $d link.to_guest.frames)"
done
echo "rates (informational):"; grep -hE '^(send|fetch):' "$T_DIR/up.log" "$T_DIR/down.log" || true
finish
