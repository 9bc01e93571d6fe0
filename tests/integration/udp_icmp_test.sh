#!/usr/bin/env bash
# UDP and ICMP through moat: UDP echo via the gateway address to the host's 127.0.0.1 and ::1
# (R-ADDR-5, R-UDP); a closed host port reaches the guest as ICMP port unreachable, so its
# connected socket sees ECONNREFUSED (R-UDP-5); ping to the gateway (R-ICMP-1); ping relayed
# through unprivileged ping sockets to a second namespace reached through the host side
# (R-ICMP-2) — only once net.ipv4.ping_group_range allows it in the host-side namespace.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"

start_bg echo4 "$NP" udp-echo --port 17007 --ready-file "$T_DIR/echo4.ready" --max-seconds 120
start_bg echo6 "$NP" udp-echo --port 17007 --v6 --ready-file "$T_DIR/echo6.ready" --max-seconds 120
check "UDP echo servers ready" wait_for 10 bash -c "test -s '$T_DIR/echo4.ready' -a -s '$T_DIR/echo6.ready'"

# The far namespace: veth from this (host-side) namespace, 10.77.0.0/24 and fd77::/64.
far="moat-far-$$"
new_netns "$far"
ip link add vfar0 type veth peer name vfar1 netns "$far"
ip addr add 10.77.0.1/24 dev vfar0
ip -6 addr add fd77::1/64 dev vfar0 nodad
ip link set vfar0 up
ip -n "$far" addr add 10.77.0.2/24 dev vfar1
ip -n "$far" -6 addr add fd77::2/64 dev vfar1 nodad
ip -n "$far" link set vfar1 up
check "far namespace reachable from the host side (v4)" ping -c 1 -W 2 10.77.0.2
check "far namespace reachable from the host side (v6)" wait_for 5 ping -6 -c 1 -W 1 fd77::2

set +e
timeout 60 "$MOAT" run --profile all -- sh -c "
  '$NP' udp-ping --host 100.96.0.1 --port 17007 --count 5 --max-seconds 20 | sed 's/^/udp4 /'
  '$NP' udp-ping --host fd42:6d73:62::1 --port 17007 --count 5 --max-seconds 20 | sed 's/^/udp6 /'
  '$NP' udp-ping --host 100.96.0.1 --port 17007 --count 2 --size 8000 --max-seconds 20 | sed 's/^/udp4big /'
  '$NP' udp-ping --host fd42:6d73:62::1 --port 17007 --count 2 --size 8000 --max-seconds 20 | sed 's/^/udp6big /'
  '$NP' udp-ping --host 100.96.0.1 --port 17099 --count 1 --timeout 3 --max-seconds 20 | sed 's/^/closed4 /'
  '$NP' udp-ping --host fd42:6d73:62::1 --port 17099 --count 1 --timeout 3 --max-seconds 20 | sed 's/^/closed6 /'
  ping -c 3 -W 2 -i 0.2 100.96.0.1 > /dev/null && echo 'pinggw4 OK'
  ping -6 -c 3 -W 2 -i 0.2 fd42:6d73:62::1 > /dev/null && echo 'pinggw6 OK'
  ping -c 2 -W 2 -i 0.3 10.77.0.2 > /dev/null && echo 'pingfar4-disabled OK'
  exit 0
" > "$T_DIR/udp.out" 2> "$T_DIR/udp-moat.log"
rc=$?
set -e
cat "$T_DIR/udp.out"
check "moat run exits 0 (got $rc)"                      test $rc -eq 0
check "UDP echo over IPv4 (gateway -> 127.0.0.1)"       grep -q "^udp4 OK 5/5" "$T_DIR/udp.out"
check "UDP echo over IPv6 (gateway -> ::1)"             grep -q "^udp6 OK 5/5" "$T_DIR/udp.out"
check "8 KB UDP datagrams over IPv4 echoed" grep -q "^udp4big OK 2/2" "$T_DIR/udp.out"
check "8 KB UDP datagrams over IPv6 echoed"             grep -q "^udp6big OK 2/2" "$T_DIR/udp.out"
check "UDP to a closed port -> ECONNREFUSED (IPv4)"     grep -q "^closed4 ERROR ECONNREFUSED" "$T_DIR/udp.out"
check "UDP to a closed port -> ECONNREFUSED (IPv6)"     grep -q "^closed6 ERROR ECONNREFUSED" "$T_DIR/udp.out"
check "ping the gateway (IPv4)"                         grep -qx "pinggw4 OK" "$T_DIR/udp.out"
check "ping the gateway (IPv6)"                         grep -qx "pinggw6 OK" "$T_DIR/udp.out"
check "without ping_group_range, relayed ping is not answered" bash -c "! grep -q pingfar4-disabled '$T_DIR/udp.out'"
check "... and moat names the sysctl in a warning"      grep -q "ping_group_range" "$T_DIR/udp-moat.log"

# Enable unprivileged ping sockets in this (the host side's) namespace; the sysctl is per
# namespace and, on Linux, governs ICMPv6 ping sockets too.
sysctl -qw net.ipv4.ping_group_range="0 2147483647"
set +e
timeout 60 "$MOAT" run --profile all -- sh -c "
  ping -c 3 -W 2 -i 0.2 10.77.0.2 > /dev/null && echo 'pingfar4 OK'
  ping -6 -c 3 -W 2 -i 0.2 fd77::2 > /dev/null && echo 'pingfar6 OK'
  ping -c 2 -W 1 -i 0.3 10.77.0.99 > /dev/null || echo 'pingnobody4 NOREPLY'
" > "$T_DIR/ping.out" 2> "$T_DIR/ping-moat.log"
set -e
cat "$T_DIR/ping.out"
check "ping 10.77.0.2 in the far namespace via moat's relay" grep -qx "pingfar4 OK" "$T_DIR/ping.out"
check "ping fd77::2 in the far namespace via moat's relay"   grep -qx "pingfar6 OK" "$T_DIR/ping.out"
check "ping to an absent address gets no reply"               grep -qx "pingnobody4 NOREPLY" "$T_DIR/ping.out"

# R-FRAG-1 / R-UDP-4 at MTU 1500: the guest kernel fragments a 20000-byte datagram, moat
# reassembles it; the echoed reply does not fit the link, so moat fragments it (IPv4
# fragments, IPv6 Fragment headers) and the guest kernel reassembles it.
set +e
timeout 60 "$MOAT" run --profile all --mtu 1500 --pcap "$T_DIR/frag.pcap" -- sh -c "
  '$NP' udp-ping --host 100.96.0.1 --port 17007 --count 2 --size 20000 --max-seconds 20 | sed 's/^/frag4 /'
  '$NP' udp-ping --host fd42:6d73:62::1 --port 17007 --count 2 --size 20000 --max-seconds 20 | sed 's/^/frag6 /'
  exit 0
" > "$T_DIR/frag.out" 2> "$T_DIR/frag-moat.log"
set -e
cat "$T_DIR/frag.out"
check "20000-byte UDP over IPv4 at MTU 1500 (fragmented both ways)" grep -q "^frag4 OK 2/2" "$T_DIR/frag.out"
check "20000-byte UDP over IPv6 at MTU 1500 (fragmented both ways)" grep -q "^frag6 OK 2/2" "$T_DIR/frag.out"
check "moat sent IPv4 fragments to the guest" \
  bash -c "tshark -r '$T_DIR/frag.pcap' -n -Y 'ip.src==100.96.0.1 && ip.flags.mf==1' 2>/dev/null | grep -q ."
check "moat sent IPv6 fragments to the guest" \
  bash -c "tshark -r '$T_DIR/frag.pcap' -n -Y 'ipv6.src==fd42:6d73:62::1 && ipv6.fragment' 2>/dev/null | grep -q ."
finish
