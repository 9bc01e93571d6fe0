#!/usr/bin/env bash
# Nothing lost at exit (SPEC R-CLI-2, issue 14 deliverable 1). When `moat run`'s command
# exits, moat keeps serving until every flow has finished its work, at most
# run.drain_timeout (--drain-timeout), then resets what is left, counts it (run.drain_reset)
# and says so in one warning; the exit status stays the command's. Real kernel TCP in the
# run namespace:
#   * fire-and-forget upload `socat -u FILE:blob64M TCP:gw:PORT` x3: sha256 intact, EOF (no
#     RST) at the receiver, status = the command's (0, then 3);
#   * a UDP burst sent just before the command exits: every datagram arrives;
#   * a receiver that never reads: the drain stops at --drain-timeout with the warning, the
#     run.drain_reset counter, and an RST at the receiver;
#   * a SIGTERM during a drain stops moat at once (flows reset, status still the command's);
#   * --drain-timeout 0: the old behaviour, flows reset at once (and counted);
#   * serve --once: a VM (a kernel TCP client behind a TAP bridged onto the QEMU stream)
#     disconnects mid-transfer while the receiver is not reading yet: everything moat had
#     accepted from the guest (the audit's bytes_from_guest) reaches the receiver, then a FIN.
# moat-it-timeout: 420
source "$(dirname "$0")/lib.sh" "$@"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
DP="$TOOLS/drainpeer.py"
start_bg dns "$TOOLS/netpeer.py" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 \
  --ready-file "$T_DIR/dns.ready" --max-seconds 400
wait_for 5 test -f "$T_DIR/dns.ready"
GW=(--profile all --dns-upstream 127.0.0.1:15353)
GWIP=100.96.0.1

BLOB="$T_DIR/blob64M"
head -c 64M /dev/urandom > "$BLOB"
SIZE=$(stat -c %s "$BLOB")
WANT="$(sha256sum "$BLOB" | cut -d' ' -f1)"

# sink NAME PORT [ARGS...]: a one-connection receiver on 127.0.0.1:PORT writing $T_DIR/NAME.out
sink() {
  local name="$1" port="$2"; shift 2
  rm -f "$T_DIR/$name.out" "$T_DIR/$name.ready"
  start_bg "$name" "$DP" sink --port "$port" --out "$T_DIR/$name.out" --ready-file "$T_DIR/$name.ready" \
    --max-seconds 120 "$@"
  wait_for 5 test -s "$T_DIR/$name.ready"
}
# run_moat LOG CMD...: `moat run` with the test's gateway flags, bounded; sets RC.
run_moat() {
  local log="$T_DIR/$1.log"; shift
  set +e
  timeout 150 "$MOAT" run "${GW[@]}" "$@" > /dev/null 2> "$log"
  RC=$?
  set -e
}
# stat_of LOG NAME: the counter NAME in the last stats line of LOG (needs --log-level debug).
stat_of() { grep 'stats:' "$1" | tail -n 1 | grep -oE "(^| )$2=[0-9]+" | cut -d= -f2; }

# --- fire-and-forget uploads ---------------------------------------------------------------
# The receiver reads at 16 MB/s, so when socat has written its last byte and exits, megabytes
# are still in the guest kernel's socket, in moat and in the host's socket buffers.
SLOW=(--rate 16000000)
for i in 1 2 3; do
  port=$((18400 + i))
  sink "up$i" "$port" "${SLOW[@]}"
  if [[ $i -lt 3 ]]; then want_rc=0; cmd=(socat -u "FILE:$BLOB" "TCP:$GWIP:$port")
  else want_rc=3; cmd=(sh -c "socat -u 'FILE:$BLOB' 'TCP:$GWIP:$port'; exit 3")
  fi
  run_moat "up$i" --log-level debug -- "${cmd[@]}"
  check "upload $i: exit status is the command's ($want_rc)" test "$RC" -eq "$want_rc"
  wait_for 30 test -s "$T_DIR/up$i.out" || true
  check "upload $i: 64 MiB intact, EOF at the receiver (got: $(cat "$T_DIR/up$i.out" 2>/dev/null))" \
    test "$(cat "$T_DIR/up$i.out" 2>/dev/null)" = "$SIZE $WANT eof"
  check "upload $i: no drain warning" bash -c "! grep -q 'warning:.*drain' '$T_DIR/up$i.log'"
  check "upload $i: run.drain_reset=0" test "$(stat_of "$T_DIR/up$i.log" run.drain_reset)" = 0
  grep -h 'run: drain' "$T_DIR/up$i.log" || true
done
check "the uploads were still in flight when the command exited (the drain had work)" \
  test "$(grep -l 'run: draining 1 TCP flow' "$T_DIR"/up[123].log | wc -l)" = 3

# --- a UDP burst just before exit ------------------------------------------------------------
N=1000
rm -f "$T_DIR/udp.out"
start_bg udp "$DP" udp-count --port 18410 --out "$T_DIR/udp.out" --ready-file "$T_DIR/udp.ready" --max-seconds 60
wait_for 5 test -s "$T_DIR/udp.ready"
run_moat udp -- python3 -c "
import os, socket
def dropped():  # the guest kernel's own TX drops at its TAP (queue full), not moat's (/proc/net is this netns)
    for l in open('/proc/net/dev'):
        if l.strip().startswith('eth0:'):
            return int(l.split(':', 1)[1].split()[11])
d0 = dropped()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range($N):
    s.sendto(b'%06d' % i + b'u' * 1000, ('$GWIP', 18410))
open('$T_DIR/udp.tapdrops', 'w').write(str(dropped() - d0))
os._exit(0)  # at once: the last datagrams are still in the guest's TAP queue
"
check "udp burst: exit status 0" test "$RC" -eq 0
# Every datagram the guest kernel handed to moat's TAP arrives. A slow build (ASan) can fill
# the TAP's queue during the burst; those drops are the guest kernel's and are counted apart.
tapdrops=$(cat "$T_DIR/udp.tapdrops" 2>/dev/null || echo missing)
want=$((N - ${tapdrops//missing/0}))
sleep 0.5
wait_for 5 bash -c "test \"\$(cut -d' ' -f1 '$T_DIR/udp.out')\" = $want" || true
check "udp burst: every datagram moat was given arrived (got: $(cut -d' ' -f1 "$T_DIR/udp.out") of $N, guest TAP drops: $tapdrops)" \
  test "$tapdrops" != missing -a "$(cut -d' ' -f1 "$T_DIR/udp.out")" = "$want"

# --- a receiver that never reads: the drain ends at --drain-timeout ----------------------------
sink stuck 18420 --never-read
start=$(date +%s)
run_moat stuck --log-level debug --drain-timeout 2s -- timeout 3 socat -u "FILE:$BLOB" "TCP:$GWIP:18420"
took=$(($(date +%s) - start))
check "never-read: exit status is the command's (124 from timeout)" test "$RC" -eq 124
check "never-read: ONE warning names the drain timeout and the reset flow" \
  test "$(grep -c 'warning: run: drain timeout after .* (run.drain_timeout 2s): reset 1 TCP flow' "$T_DIR/stuck.log")" = 1
check "never-read: run.drain_reset=1" test "$(stat_of "$T_DIR/stuck.log" run.drain_reset)" = 1
check "never-read: the receiver saw the reset" wait_for 10 grep -q ECONNRESET "$T_DIR/stuck.out"
echo "never-read: moat run took ${took}s for a 3 s command and a 2 s drain (informational)"

# --- SIGTERM during a drain stops at once ------------------------------------------------------
sink stuck2 18425 --never-read
start_bg sigdrain "$MOAT" run "${GW[@]}" --log-level debug --drain-timeout 60s -- \
  timeout 2 socat -u "FILE:$BLOB" "TCP:$GWIP:18425"
SIG_PID=$BG_PID
check "sigterm: the drain started" wait_for 20 grep -q 'run: draining 1 TCP flow' "$T_DIR/sigdrain.log"
kill -TERM "$SIG_PID"
check "sigterm: moat stops without waiting out the 60 s drain" wait_for 5 bash -c "! kill -0 $SIG_PID 2>/dev/null"
set +e; wait "$SIG_PID"; rc=$?; set -e
check "sigterm: the status is still the command's (124)" test "$rc" -eq 124
check "sigterm: the warning says a signal stopped the drain" \
  grep -q 'warning: run: stopped by a signal after .*: reset 1 TCP flow' "$T_DIR/sigdrain.log"

# --- --drain-timeout 0: reset at once (the old behaviour) --------------------------------------
sink zero 18430 "${SLOW[@]}"
run_moat zero --log-level debug --drain-timeout 0 -- socat -u "FILE:$BLOB" "TCP:$GWIP:18430"
check "drain 0: exit status 0" test "$RC" -eq 0
wait_for 30 test -s "$T_DIR/zero.out" || true
check "drain 0: the upload was cut (got: $(cat "$T_DIR/zero.out" 2>/dev/null))" \
  test "$(cat "$T_DIR/zero.out" 2>/dev/null)" != "$SIZE $WANT eof"
check "drain 0: the warning says so" grep -q 'warning: run: drain timeout after .*: reset 1 TCP flow' "$T_DIR/zero.log"
check "drain 0: run.drain_reset=1" test "$(stat_of "$T_DIR/zero.log" run.drain_reset)" = 1

# --- serve --once: the VM disconnects mid-transfer ----------------------------------------------
new_netns drainvm
SOCK="$T_DIR/vm.sock"
start_bg serve "$MOAT" serve --qemu "$SOCK" --once "${GW[@]}" --log-level debug --drain-timeout 30s \
  --audit "$T_DIR/audit.jsonl" --ready-file "$T_DIR/serve.ready"
SERVE_PID=$BG_PID
check "serve ready" wait_for 5 test -s "$T_DIR/serve.ready"
sink vmup 18440 --delay 5
start_bg bridge ip netns exec drainvm "$DP" bridge --connect "$SOCK" --ifname eth0 --seconds 60 \
  --ready-file "$T_DIR/bridge.ready"
check "bridge connected" wait_for 5 test -s "$T_DIR/bridge.ready"
ip -n drainvm link set eth0 address 02:6d:6f:00:00:02
ip -n drainvm addr add 100.96.0.2/30 dev eth0
ip -n drainvm link set eth0 up
ip -n drainvm route add default via $GWIP
start_bg vmsend ip netns exec drainvm timeout 60 socat -u "FILE:$BLOB" "TCP:$GWIP:18440"
# The receiver does not read for 5 s: its buffer, moat's socket and moat's ring fill up.
sleep 3
touch "$SOCK.stop"  # the bridge exits: the VM disconnects with moat holding guest data
check "serve --once: exits after the drain" wait_for 30 bash -c "! kill -0 $SERVE_PID 2>/dev/null"
set +e; wait "$SERVE_PID"; rc=$?; set -e
check "serve --once: exit status 0" test "$rc" -eq 0
wait_for 30 test -s "$T_DIR/vmup.out" || true
got="$(cat "$T_DIR/vmup.out" 2>/dev/null)"
accepted="$(grep -o '"bytes_from_guest":[0-9]*' "$T_DIR/audit.jsonl" 2>/dev/null | head -n 1 | cut -d: -f2 || true)"
echo "serve --once: the receiver got '$got'; moat accepted ${accepted:-?} bytes from the VM"
check "serve --once: moat held guest data at the disconnect (accepted > 0, < 64 MiB)" \
  test "${accepted:-0}" -gt 0 -a "${accepted:-0}" -lt "$SIZE"
check "serve --once: every accepted byte reached the receiver, then EOF" \
  test "$got" = "$accepted $(head -c "${accepted:-0}" "$BLOB" | sha256sum | cut -d' ' -f1) eof"
check "serve --once: no drain warning" bash -c "! grep -q 'warning:.*drain' '$T_DIR/serve.log'"
finish
