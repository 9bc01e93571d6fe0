#!/usr/bin/env bash
# moat run: the sandboxed command sees its TAP configured per SPEC R-ADDR-6/7 and can ping
# the gateway over IPv4 and IPv6; exit statuses pass through (R-CLI-2).
source "$(dirname "$0")/lib.sh" "$@"

out="$T_DIR/ip.out"
"$MOAT" run --profile all -- sh -c 'ip -o addr show dev eth0; ip -o link show dev eth0; ip route; ip -6 route; cat /etc/resolv.conf; grep host.moat.internal /etc/hosts' > "$out" 2> "$T_DIR/run1.log"
check "run exits 0"                         test $? -eq 0
check "IPv4 address 100.96.0.2/30"          grep -q "inet 100.96.0.2/30" "$out"
check "IPv6 address fd42:6d73:62::2/64"     grep -q "inet6 fd42:6d73:62::2/64" "$out"
check "MTU 65520"                           grep -q "mtu 65520" "$out"
check "guest MAC"                           grep -q "link/ether 02:6d:6f:00:00:02" "$out"
check "IPv4 default route via gateway"      grep -q "^default via 100.96.0.1 dev eth0" "$out"
check "IPv6 default route via link-local"   grep -q "^default via fe80::6d:6fff:fe00:1 dev eth0" "$out"
check "resolv.conf names the gateway"       grep -q "^nameserver 100.96.0.1" "$out"
check "resolv.conf names the v6 gateway"    grep -q "^nameserver fd42:6d73:62::1" "$out"
check "hosts has host.moat.internal"        grep -q "host.moat.internal" "$out"
check "host resolv.conf untouched"          bash -c '! grep -q "100.96.0.1" /etc/resolv.conf'

check "ping -c 3 gateway (IPv4)"  "$MOAT" run --profile all -- ping -c 3 -W 2 -i 0.2 100.96.0.1
check "ping -c 3 gateway (IPv6)"  "$MOAT" run --profile all -- ping -6 -c 3 -W 2 -i 0.2 fd42:6d73:62::1
check "ping gateway link-local"   "$MOAT" run --profile all -- ping -6 -c 2 -W 2 -i 0.2 fe80::6d:6fff:fe00:1%eth0
# moat must never answer for other hosts (that would spoof them).
check "ping to a non-gateway address is not answered by moat" \
  bash -c "! '$MOAT' run --profile all -- ping -c 2 -W 1 -i 0.3 203.0.113.5 >/dev/null 2>&1"

set +e
"$MOAT" run --profile all -- sh -c 'exit 7' 2>/dev/null;            rc=$?; check "exit status 7 passes through" test $rc -eq 7
"$MOAT" run --profile all -- sh -c 'kill -9 $$' 2>/dev/null;        rc=$?; check "killed by SIGKILL -> 137 (got $rc)" test $rc -eq 137
"$MOAT" run --profile all -- /nonexistent/cmd 2>"$T_DIR/e127.log";   rc=$?; check "missing command -> 127 (got $rc)" test $rc -eq 127
printf 'not a program' > "$T_DIR/noexec"; chmod 0644 "$T_DIR/noexec"
"$MOAT" run --profile all -- "$T_DIR/noexec" 2>"$T_DIR/e126.log";   rc=$?; check "non-executable -> 126 (got $rc)" test $rc -eq 126
set -e

# Custom addressing (the netbench layout).
out2="$T_DIR/ip2.out"
"$MOAT" run --profile all --ipv4 10.0.2.100/24 --gateway4 10.0.2.2 --dns4 10.0.2.3 --mtu 1500 --ifname tap0 -- \
  sh -c 'ip -o addr show dev tap0; ip -o link show dev tap0; ip route; ping -c 2 -W 2 -i 0.2 10.0.2.2 >/dev/null && echo PING-OK; ping -c 1 -W 2 10.0.2.3 >/dev/null && echo DNS-PING-OK' \
  > "$out2" 2> "$T_DIR/run2.log"
check "custom address"      grep -q "inet 10.0.2.100/24" "$out2"
check "custom MTU"          grep -q "mtu 1500" "$out2"
check "custom route"        grep -q "^default via 10.0.2.2 dev tap0" "$out2"
check "custom gateway ping" grep -q "PING-OK" "$out2"
check "dns address ping"    grep -q "DNS-PING-OK" "$out2"

# --no-ipv6: no IPv6 address on the link.
out3="$T_DIR/ip3.out"
"$MOAT" run --profile all --no-ipv6 -- ip -o addr show dev eth0 > "$out3" 2>/dev/null
check "--no-ipv6 leaves no global IPv6 address" bash -c "! grep -q 'inet6 fd42' '$out3'"
check "nothing left behind in the test namespace" bash -c "! ip -o link | grep -qv -e 'lo:' -e deadend"
finish
