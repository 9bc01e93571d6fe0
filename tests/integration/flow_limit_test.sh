#!/usr/bin/env bash
# --max-flows (R-LIM-1, R-TCP-1 step 4, R-TCP-16): with a limit of 20, 20 guest connections are
# held; the 21st is refused at once with RST (the guest sees ECONNREFUSED, no hang) while the 20
# stay intact; after they close, the limit is available again (new connections, then 20 more).
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
G="$T_DIR/guest"; mkdir -p "$G"

start_bg server "$NP" serve-hold --port 18500 --ready-file "$T_DIR/server.ready" --status-file "$T_DIR/server.status" --max-seconds 120
check "host server ready" wait_for 10 test -s "$T_DIR/server.ready"

cat > "$G/guest.sh" <<GUEST
#!/bin/sh
NP='$NP'; G='$G'
"\$NP" hold --host 100.96.0.1 --port 18500 --count 20 --parallel 20 --ready-file "\$G/held" --release-file "\$G/release" --hold-seconds 60 --max-seconds 90 > "\$G/hold1.out" 2>&1 &
i=0; while [ ! -e "\$G/held" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
"\$NP" connect --host 100.96.0.1 --port 18500 --timeout 10 --greeting --max-seconds 20 > "\$G/c21.out" 2>&1
"\$NP" connect --host fd42:6d73:62::1 --port 18500 --timeout 10 --greeting --max-seconds 20 > "\$G/c21v6.out" 2>&1
touch "\$G/probed"
wait
# After the release: poll for at most 3 s until a new connection goes through, then 20 again.
i=0
while [ \$i -lt 15 ]; do
  "\$NP" connect --host 100.96.0.1 --port 18500 --timeout 5 --greeting --max-seconds 10 > "\$G/after.out" 2>&1 && break
  sleep 0.2; i=\$((i+1))
done
echo "\$i" > "\$G/after.tries"
"\$NP" hold --host 100.96.0.1 --port 18500 --count 20 --parallel 20 --hold-seconds 0.5 --max-seconds 60 > "\$G/hold2.out" 2>&1
echo "hold2 \$?" >> "\$G/hold2.out"
GUEST
chmod +x "$G/guest.sh"

start_bg moat timeout 150 "$MOAT" run --profile all --max-flows 20 -- "$G/guest.sh"
moat_pid=$BG_PID
check "20 connections held" wait_for 30 test -s "$G/held"
check "the 21st connect was tried" wait_for 30 test -e "$G/probed"
cat "$G/hold1.out" "$G/c21.out" "$G/c21v6.out" 2>/dev/null || true
check "20/20 opened, each with its greeting" grep -q "^opened 20/20 " "$G/hold1.out"
read -r e21 t21 < "$G/c21.out" || true
check "21st (IPv4) refused with ECONNREFUSED (got '$e21')" test "$e21" = ECONNREFUSED
check "21st (IPv4) refused fast: ${t21:-?} s < 1 s" awk -v t="${t21:-99}" 'BEGIN { exit !(t < 1.0) }'
read -r e21b t21b < "$G/c21v6.out" || true
check "21st (IPv6) refused with ECONNREFUSED (got '$e21b', ${t21b:-?} s)" bash -c "test '$e21b' = ECONNREFUSED && awk -v t='${t21b:-99}' 'BEGIN { exit !(t < 1.0) }'"
kill -USR1 "$(pgrep -P "$moat_pid" -x moat || echo "$moat_pid")" 2>/dev/null || true
check "limits.hits.max_flows counted" wait_for 3 bash -c "grep -o 'limits.hits.max_flows=[0-9]*' '$T_DIR/moat.log' | tail -n 1 | grep -qv '=0\$'"
touch "$G/release"
check "moat run exits" wait_for 60 bash -c "! kill -0 $moat_pid 2>/dev/null"
set +e; wait "$moat_pid"; rc=$?; set -e
check "moat run status 0 (got $rc)" test $rc -eq 0
cat "$G/hold1.out" "$G/after.out" "$G/hold2.out" 2>/dev/null || true
check "held connections survived the refused ones: 20/20 alive" grep -q "^still alive after hold 20/20 " "$G/hold1.out"
check "held connections closed cleanly"       grep -q "^closed clean 20/20 reset 0 " "$G/hold1.out"
check "after release, a new connection works (tries: $(cat "$G/after.tries" 2>/dev/null))" grep -q "^OK " "$G/after.out"
check "after release, 20 connections again"   grep -q "^opened 20/20 " "$G/hold2.out"
check "... and they close cleanly"            grep -qx "hold2 0" "$G/hold2.out"
# R-LIM-3: with too few file descriptors for the flow limits, moat reduces the limits
# proportionally at start (and says so) instead of failing later with EMFILE.
fdlog="$T_DIR/fdlimit.log"
( ulimit -n 1000 && exec "$MOAT" run --profile all -- true ) 2> "$fdlog" || true  # ulimit -n sets soft and hard
# The budget counts dns.max_inflight (256 upstream sockets) and the DNS-over-TCP sessions
# (64, two fds each) and listeners (16) too, and scales dns.max_inflight with the rest.
check "low fd limit: flow limits reduced with a warning" \
  grep -q "file-descriptor limit (1000) is below what the limits need (7376); reducing them to max_flows 452, max_pending_connects 56, udp sessions 113, icmp sessions 28, dns.max_inflight 28" "$fdlog"
finish
