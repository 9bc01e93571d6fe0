#!/usr/bin/env bash
# moat-it-timeout: 240
# Hardening (SPEC R-HARD-3, R-HARD-4, R-SEC-2): a running `moat run`, `attach` and `serve`
# started as root show Seccomp 2 (filter), NoNewPrivs 1, empty capability sets, the runas
# uid (nobody; `run` keeps real/saved uid 0 to signal its root child) and are non-dumpable
# (/proc/PID/status owned by root). Then every path a long-running gateway takes is driven under the
# filter: DNS over UDP and TCP, TCP, UDP, ping to the gateway and relayed, a published port,
# SIGUSR1, SIGHUP (audit reopen, with --audit and --pcap), SIGTERM: exit 0, never SIGSYS (159).
# Also: rootless `moat run` (setpriv to uid 65534, if the kernel allows user namespaces),
# --runas / --seccomp errors, and --seccomp log's warning.
source "$(dirname "$0")/lib.sh" "$@"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
NP="$TOOLS/netpeer.py"
G="$T_DIR/guest"; OUT="$T_DIR/out"
mkdir -p "$G" "$OUT"
# moat writes, reopens and removes its outputs as nobody after setup: the test's directories
# must let it (R-HARD-4; README "Hardening").
chmod 0711 "$T_DIR"; chmod 0777 "$G"; chown 65534 "$OUT"

NOBODY=65534
# status_is PID FIELD VALUE: the whitespace-normalised /proc/PID/status field equals VALUE.
status_is() { test "$(awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status" 2>/dev/null)" = "$3"; }
# hardened PID UIDS [CAPBND]: the checks of R-HARD-3/4 on a running moat.
hardened() {
  local pid="$1" uids="$2" bnd="${3:-0000000000000000}" what="$4"
  check "$what: seccomp filter (Seccomp: 2)" wait_for 5 status_is "$pid" Seccomp 2
  check "$what: NoNewPrivs: 1"      status_is "$pid" NoNewPrivs 1
  check "$what: CapEff 0"           status_is "$pid" CapEff 0000000000000000
  check "$what: CapPrm 0"           status_is "$pid" CapPrm 0000000000000000
  check "$what: CapInh 0"           status_is "$pid" CapInh 0000000000000000
  check "$what: CapAmb 0"           status_is "$pid" CapAmb 0000000000000000
  check "$what: CapBnd $bnd"        status_is "$pid" CapBnd "$bnd"
  check "$what: Uid $uids"          status_is "$pid" Uid "$uids"
  check "$what: non-dumpable (/proc/PID/status owned by root)" test "$(stat -c %u "/proc/$pid/status")" = 0
  check "$what: no core files (RLIMIT_CORE 0)" bash -c "grep -E '^Max core file size +0 +0 ' /proc/$pid/limits >/dev/null"
}
# sigcycle PID LOG AUDIT NAME: SIGUSR1 logs counters, SIGHUP reopens a rotated audit file.
sigcycle() {
  local pid="$1" log="$2" audit="$3" what="$4"
  kill -USR1 "$pid"
  check "$what: SIGUSR1 logs the counters" wait_for 5 grep -q 'stats:' "$log"
  mv "$audit" "$audit.1"
  kill -HUP "$pid"
  check "$what: SIGHUP reopens the rotated audit file as nobody" wait_for 5 test -e "$audit"
  check "$what: no reopen failure" bash -c "! grep -q 'keeping the old audit file' '$log'"
  check "$what: still running after SIGUSR1 and SIGHUP" kill -0 "$pid"
}

# --- peers on the host side: DNS upstream, TCP and UDP servers, a far namespace for ping --
start_bg dns "$NP" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 \
  --ready-file "$T_DIR/dns.ready" --max-seconds 220
start_bg tcp "$NP" serve-send --port 17100 --bytes 1M --seed 7 --ready-file "$T_DIR/tcp.ready" --max-seconds 220
start_bg udp "$NP" udp-echo --port 17007 --ready-file "$T_DIR/udp.ready" --max-seconds 220
check "peers ready" wait_for 10 bash -c "test -s '$T_DIR/dns.ready' -a -s '$T_DIR/tcp.ready' -a -s '$T_DIR/udp.ready'"
far="moat-hfar-$$"
new_netns "$far"
ip link add hfar0 type veth peer name hfar1 netns "$far"
ip addr add 10.78.0.1/24 dev hfar0; ip link set hfar0 up
ip -n "$far" addr add 10.78.0.2/24 dev hfar1; ip -n "$far" link set hfar1 up
sysctl -qw net.ipv4.ping_group_range="0 2147483647"   # unprivileged ping sockets, nobody included
SHA="$("$NP" expect-sha --bytes 1M --seed 7)"
PUB_SHA="$("$NP" expect-sha --bytes 256K --seed 9)"
GW=(--profile all --dns-upstream 127.0.0.1:15353)

# The guest's traffic, one line per check (used by run and attach).
cat > "$G/traffic.sh" <<GUEST
#!/bin/sh
kdig @100.96.0.1 +short +timeout=2 +retry=1 moat-test.example.com | grep -qx 93.184.216.34 && echo "dns-udp OK"
kdig @100.96.0.1 +tcp +short +timeout=2 +retry=1 moat-test.example.com | grep -qx 93.184.216.34 && echo "dns-tcp OK"
[ "\$('$NP' fetch --host 100.96.0.1 --port 17100 --max-seconds 20 2>/dev/null)" = "$SHA" ] && echo "tcp OK"
'$NP' udp-ping --host 100.96.0.1 --port 17007 --count 3 --max-seconds 20 | grep -q "^OK 3/3" && echo "udp OK"
ping -c 2 -W 2 -i 0.2 100.96.0.1 > /dev/null && echo "ping-gw OK"
ping -c 2 -W 2 -i 0.3 10.78.0.2 > /dev/null && echo "ping-relay OK"
exit 0
GUEST
chmod +x "$G/traffic.sh"
traffic_ok() {  # OUTFILE WHAT
  local k
  for k in dns-udp dns-tcp tcp udp ping-gw ping-relay; do check "$2: $k under the filter" grep -qx "$k OK" "$1"; done
}
published_ok() {  # WHAT
  local r
  r="$("$NP" fetch --host 127.0.0.1 --port 18500 --max-seconds 20 2>/dev/null || true)"
  check "$1: published port (accept under the filter)" test "$r" = "$PUB_SHA"
}

# --- moat run as root ----------------------------------------------------------------------
cat > "$G/run.sh" <<GUEST
#!/bin/sh
trap 'echo hup >> "$G/run.signals"' HUP
trap 'echo term >> "$G/run.signals"; kill \$srv 2>/dev/null; exit 0' TERM
'$NP' serve-send --bind 0.0.0.0 --port 8500 --bytes 256K --seed 9 --ready-file "$G/pub.ready" --max-seconds 100 > /dev/null 2>&1 &
srv=\$!
"$G/traffic.sh" > "$G/run.out" 2>&1
touch "$G/run.done"
i=0
while [ \$i -lt 900 ]; do sleep 0.1; i=\$((i+1)); done
exit 3
GUEST
chmod +x "$G/run.sh"
start_bg run "$MOAT" run "${GW[@]}" -p 127.0.0.1:18500:8500 --audit "$OUT/run.audit" --pcap "$OUT/run.pcap" \
  --ready-file "$OUT/run.ready" -- "$G/run.sh"
RUN_PID=$BG_PID
check "run: ready" wait_for 15 test -s "$OUT/run.ready"
hardened "$RUN_PID" "0 $NOBODY 0 $NOBODY" 0000000000000000 "run"
check "run: guest traffic done" wait_for 60 test -e "$G/run.done"
cat "$G/run.out"
traffic_ok "$G/run.out" "run"
check "run: guest's published server ready" wait_for 10 test -e "$G/pub.ready"
published_ok "run"
sigcycle "$RUN_PID" "$T_DIR/run.log" "$OUT/run.audit" "run"
check "run: SIGHUP forwarded to the root child by moat (euid nobody)" wait_for 5 grep -qx hup "$G/run.signals"
kill -TERM "$RUN_PID"
check "run: SIGTERM forwarded, exits" wait_for 10 bash -c "! kill -0 $RUN_PID 2>/dev/null"
set +e; wait "$RUN_PID"; rc=$?; set -e
check "run: exit 0 (the child's status), not SIGSYS (got $rc)" test "$rc" -eq 0
check "run: the child saw SIGTERM" grep -qx term "$G/run.signals"
check "run: pcap written" test -s "$OUT/run.pcap"

# --- moat attach as root ---------------------------------------------------------------------
ns="moat-h-$$"
new_netns "$ns"
start_bg attach "$MOAT" attach "${GW[@]}" --netns "/run/netns/$ns" --ifname eth0 -p 127.0.0.1:18500:8500 \
  --audit "$OUT/attach.audit" --pcap "$OUT/attach.pcap" --ready-file "$OUT/attach.ready"
ATT_PID=$BG_PID
check "attach: ready" wait_for 15 test -s "$OUT/attach.ready"
hardened "$ATT_PID" "$NOBODY $NOBODY $NOBODY $NOBODY" 0000000000000000 "attach"
rm -f "$G/pub.ready"
start_bg pubsrv ip netns exec "$ns" "$NP" serve-send --bind 0.0.0.0 --port 8500 --bytes 256K --seed 9 \
  --ready-file "$G/pub.ready" --max-seconds 100
timeout 120 ip netns exec "$ns" "$G/traffic.sh" > "$G/attach.out" 2>&1 || true
cat "$G/attach.out"
traffic_ok "$G/attach.out" "attach"
check "attach: guest's published server ready" wait_for 10 test -e "$G/pub.ready"
published_ok "attach"
sigcycle "$ATT_PID" "$T_DIR/attach.log" "$OUT/attach.audit" "attach"
kill -TERM "$ATT_PID"
check "attach: SIGTERM stops it" wait_for 5 bash -c "! kill -0 $ATT_PID 2>/dev/null"
set +e; wait "$ATT_PID"; rc=$?; set -e
check "attach: exit 0, not SIGSYS (got $rc)" test "$rc" -eq 0

# --- moat serve as root (a stand-in VM over the QEMU stream) --------------------------------
SOCK="$OUT/vm.sock"
start_bg serve "$MOAT" serve --qemu "$SOCK" "${GW[@]}" --audit "$OUT/serve.audit" --pcap "$OUT/serve.pcap" \
  --ready-file "$OUT/serve.ready"
SRV_PID=$BG_PID
check "serve: ready" wait_for 15 test -s "$OUT/serve.ready"
hardened "$SRV_PID" "$NOBODY $NOBODY $NOBODY $NOBODY" 0000000000000000 "serve"
check "serve: ARP over the stream (accept, frames)" timeout 10 "$TOOLS/vmpeer.py" stream-arp "$SOCK"
sigcycle "$SRV_PID" "$T_DIR/serve.log" "$OUT/serve.audit" "serve"
kill -TERM "$SRV_PID"
check "serve: SIGTERM stops it" wait_for 5 bash -c "! kill -0 $SRV_PID 2>/dev/null"
set +e; wait "$SRV_PID"; rc=$?; set -e
check "serve: exit 0, not SIGSYS (got $rc)" test "$rc" -eq 0
check "serve: socket file removed as nobody" test ! -e "$SOCK"

# --- --seccomp log / off, --runas ----------------------------------------------------------
start_bg slog "$MOAT" serve --qemu "$OUT/log.sock" "${GW[@]}" --seccomp log --runas "$NOBODY:$NOBODY" \
  --ready-file "$OUT/slog.ready"
SLOG_PID=$BG_PID
check "--seccomp log: ready" wait_for 15 test -s "$OUT/slog.ready"
check "--seccomp log: still a filter (Seccomp: 2)" wait_for 5 status_is "$SLOG_PID" Seccomp 2
check "--seccomp log: one warning" test "$(grep -c '^moat: warning: hardening.seccomp = log' "$T_DIR/slog.log")" -eq 1
kill -TERM "$SLOG_PID"; set +e; wait "$SLOG_PID"; rc=$?; set -e
check "--seccomp log: exit 0 (got $rc)" test "$rc" -eq 0
start_bg soff "$MOAT" serve --qemu "$OUT/off.sock" "${GW[@]}" --seccomp off --ready-file "$OUT/soff.ready"
SOFF_PID=$BG_PID
check "--seccomp off: ready" wait_for 15 test -s "$OUT/soff.ready"
check "--seccomp off: no filter, still no caps" wait_for 5 bash -c "grep -q '^Seccomp:.0' /proc/$SOFF_PID/status && grep -q '^CapEff:.0000000000000000' /proc/$SOFF_PID/status"
check "--seccomp off: one warning" test "$(grep -c '^moat: warning: hardening.seccomp = off' "$T_DIR/soff.log")" -eq 1
kill -TERM "$SOFF_PID"; set +e; wait "$SOFF_PID"; rc=$?; set -e
check "--seccomp off: exit 0 (got $rc)" test "$rc" -eq 0

expect_err() {  # STATUS PATTERN CMD...
  local want="$1" pat="$2"; shift 2
  local err="$T_DIR/err.txt" rc
  set +e; timeout 10 "$@" > /dev/null 2> "$err"; rc=$?; set -e
  if [[ $rc -ne $want ]]; then fail "$* -> status $rc, want $want ($(head -c 300 "$err"))"; return; fi
  if ! grep -qE "$pat" "$err"; then fail "$* -> stderr does not match /$pat/: $(head -c 300 "$err")"; return; fi
  pass "$* -> $want, $(head -n 1 "$err")"
}
expect_err 125 '^moat: error: --runas \(hardening.runas\): no such user "no-such-user-x"' \
  "$MOAT" run --runas no-such-user-x --pid-file "$OUT/bad.pid" -- true
check "--runas error: nothing left behind (no pid file)" test ! -e "$OUT/bad.pid"
expect_err 125 '^moat: error: --runas: "a:b:c" is not a user\[:group\]' "$MOAT" run --runas a:b:c -- true
expect_err 2 '^moat: error: --seccomp: "maybe" is not one of on, log, off' "$MOAT" serve --qemu "$OUT/x.sock" --seccomp maybe
check "--help lists --seccomp and --runas" bash -c "'$MOAT' run --help 2>&1 | grep -q -- --seccomp && '$MOAT' run --help 2>&1 | grep -q -- --runas"

# --- rootless moat run (uid 65534, a user namespace for the child) ---------------------------
RL=(setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups)
if ! "${RL[@]}" unshare -U -n true 2>/dev/null; then
  echo "SKIP (rootless part): the kernel refuses unprivileged user namespaces to uid $NOBODY"
else
  start_bg rootless env HOME="$OUT" "${RL[@]}" "$MOAT" run --profile all --ready-file "$OUT/rl.ready" -- \
    sh -c "ping -c 2 -W 2 -i 0.2 100.96.0.1 > /dev/null && echo ping-gw-OK > '$G/rl.out'; i=0; while [ ! -e '$G/rl.stop' ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done"
  RL_PID=$BG_PID
  check "rootless: ready" wait_for 15 test -s "$OUT/rl.ready"
  RL_MOAT="$(cat "$OUT/rl.ready")"
  check "rootless: seccomp filter" wait_for 5 status_is "$RL_MOAT" Seccomp 2
  check "rootless: NoNewPrivs: 1" status_is "$RL_MOAT" NoNewPrivs 1
  check "rootless: CapEff 0" status_is "$RL_MOAT" CapEff 0000000000000000
  check "rootless: Uid stays $NOBODY" status_is "$RL_MOAT" Uid "$NOBODY $NOBODY $NOBODY $NOBODY"
  check "rootless: non-dumpable (/proc/PID/status owned by root)" test "$(stat -c %u "/proc/$RL_MOAT/status")" = 0
  check "rootless: ping the gateway" wait_for 10 grep -q ping-gw-OK "$G/rl.out"
  touch "$G/rl.stop"
  set +e; wait "$RL_PID"; rc=$?; set -e
  check "rootless: exit 0 (got $rc)" test "$rc" -eq 0
fi
finish
