#!/usr/bin/env bash
# 10,000 concurrent guest TCP connections (R-LIM-1, R-LIM-3): with --max-flows 12000 and the
# descriptor limits raised, the guest opens 10,000 connections to a host server (each greeted
# with one byte), holds them, checks every one is still alive, then closes them all cleanly
# (FIN both ways). moat's counters (SIGUSR1) must show tcp.active back to 0 and no resets.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
G="$T_DIR/guest"; mkdir -p "$G"
N=10000

# Descriptors: server N+, guest client N+, moat max_flows + pending + 2*udp + icmp + 64 (R-LIM-3).
hard="$(ulimit -Hn)"
if [[ "$hard" != unlimited && "$hard" -lt 16000 ]]; then
  ulimit -Hn 65536 2>/dev/null || true
  hard="$(ulimit -Hn)"
fi
if [[ "$hard" != unlimited && "$hard" -lt 16000 ]]; then
  echo "SKIP: hard RLIMIT_NOFILE is $hard, cannot be raised to 16000 here"; exit 77
fi
ulimit -n "$hard"
echo "RLIMIT_NOFILE $(ulimit -n)/$(ulimit -Hn)"

start_bg server "$NP" serve-hold --port 18600 --ready-file "$T_DIR/server.ready" --status-file "$T_DIR/server.status" --max-seconds 250
check "host server ready" wait_for 10 test -s "$T_DIR/server.ready"

cat > "$G/guest.sh" <<GUEST
#!/bin/sh
"$NP" hold --host 100.96.0.1 --port 18600 --count $N --parallel 200 --open-seconds 120 --ready-file "$G/held" --release-file "$G/release" --hold-seconds 60 --close-seconds 60 --max-seconds 240 > "$G/hold.out" 2>&1
echo "hold status \$?" >> "$G/hold.out"
touch "$G/closed"
i=0; while [ ! -e "$G/done" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
GUEST
chmod +x "$G/guest.sh"
start_bg moat timeout 250 "$MOAT" run --profile all --max-flows 12000 -- "$G/guest.sh"
moat_pid=$BG_PID
usr1() { kill -USR1 "$(pgrep -P "$moat_pid" -x moat || echo "$moat_pid")" 2>/dev/null || true; }
counter() { grep -o "stats: .*" "$T_DIR/moat.log" | tail -n 1 | grep -o " $1=[0-9]*" | cut -d= -f2 || true; }

check "the guest finished opening" wait_for 150 test -s "$G/held"
grep "^opened" "$G/hold.out" || true
check "$N/$N connections opened with their greeting" grep -q "^opened $N/$N " "$G/hold.out"
echo "server: $(cat "$T_DIR/server.status" 2>/dev/null)"
check "host server holds $N connections" wait_for 5 bash -c "grep -q ' open=$N ' '$T_DIR/server.status'"
usr1
check "moat reports tcp.active=$N while held" wait_for 5 bash -c "grep -o 'stats: .*' '$T_DIR/moat.log' | tail -n 1 | grep -q ' tcp.active=$N '"
echo "while held: tcp.active=$(counter tcp.active) tcp.opened=$(counter tcp.opened) limits.hits.max_flows=$(counter limits.hits.max_flows) limits.hits.max_pending_connects=$(counter limits.hits.max_pending_connects) tcp.host_resource_errors=$(counter tcp.host_resource_errors)"
touch "$G/release"
check "the guest closed everything" wait_for 90 test -e "$G/closed"
cat "$G/hold.out"
check "all $N alive after holding"            grep -q "^still alive after hold $N/$N " "$G/hold.out"
check "all $N closed cleanly (FIN both ways)" grep -q "^closed clean $N/$N reset 0 unfinished 0" "$G/hold.out"
check "guest hold status 0"                   grep -qx "hold status 0" "$G/hold.out"
check "host server saw $N clean closes, no resets" wait_for 5 bash -c "grep -q 'open=0 clean=$N reset=0' '$T_DIR/server.status'"
echo "server: $(cat "$T_DIR/server.status" 2>/dev/null)"
active0() { usr1; sleep 0.3; [[ "$(counter tcp.active)" == 0 ]]; }
check "moat's tcp.active back to 0 within 5 s" wait_for 5 active0
for c in tcp.active tcp.opened tcp.reset_by_guest tcp.reset_by_upstream tcp.timeouts tcp.host_resource_errors tcp.refused limits.hits.max_flows limits.hits.max_pending_connects; do
  printf '%s=%s ' "$c" "$(counter $c)"
done; echo
check "no resets by guest or upstream (got $(counter tcp.reset_by_guest)/$(counter tcp.reset_by_upstream))" \
  test "$(counter tcp.reset_by_guest)" = 0 -a "$(counter tcp.reset_by_upstream)" = 0
check "tcp.opened >= $N (got $(counter tcp.opened))" test "$(counter tcp.opened)" -ge $N
touch "$G/done"
check "moat run exits" wait_for 30 bash -c "! kill -0 $moat_pid 2>/dev/null"
set +e; wait "$moat_pid"; rc=$?; set -e
check "moat run status 0 (got $rc)" test $rc -eq 0
finish
