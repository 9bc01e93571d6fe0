#!/usr/bin/env bash
# R-TR-3 reconnect: one `moat serve --qemu` (no --once) serves a VM, the VM powers off
# (QEMU disconnects), and a second boot of the VM on the same socket is served by the same
# gateway (same PID, counters carried on: two DHCP leases acknowledged, gateway state kept).
source "$(dirname "$0")/lib.sh" "$@"
g_www 1
g_http4
SOCK="$G_DIR/moat.sock"
g_bg moat "$MOAT" serve --qemu "$SOCK" --profile all --dns-upstream 127.0.0.1:53 --ready-file "$G_DIR/ready"
MOAT_PID=$G_BG
g_wait 5 test -s "$G_DIR/ready" || { echo "FAIL: moat did not become ready"; G_RC=1; exit 1; }
set +e
rc=0
for boot in 1 2; do
  g_boot "stream,id=n0,server=off,addr.type=unix,addr.path=$SOCK" "$G_HERE/scripts/basic.sh" --env HTTP_PORT=8080
  r=$?
  echo "reconnect_test: boot $boot: guest exit status $r"
  [[ $r -eq 0 ]] || rc=1
  g_wait 5 grep -q "waiting for a reconnect" "$G_DIR/moat.log" || { echo "FAIL: no disconnect logged"; rc=1; }
  kill -0 "$MOAT_PID" || { echo "FAIL: moat exited after boot $boot"; rc=1; }
done
kill -USR1 "$MOAT_PID"
g_wait 3 grep -q "stats:" "$G_DIR/moat.log"
acks=$(grep 'stats:' "$G_DIR/moat.log" | tail -n 1 | grep -oE 'dhcp\.acks=[0-9]+' | cut -d= -f2)
echo "reconnect_test: dhcp.acks=$acks after two boots, connections: $(grep -c 'peer connected' "$G_DIR/moat.log")"
[[ "${acks:-0}" -ge 2 ]] || { echo "FAIL: counters did not carry over the reconnect"; rc=1; }
[[ $(grep -c 'peer connected' "$G_DIR/moat.log") -eq 2 ]] || { echo "FAIL: want two connections"; rc=1; }
kill -TERM "$MOAT_PID"; wait "$MOAT_PID"; t=$?
[[ $t -eq 0 ]] || { echo "FAIL: moat exit status $t after SIGTERM"; rc=1; }
[[ ! -e "$SOCK" ]] || { echo "FAIL: socket left behind"; rc=1; }
g_result "$rc"
