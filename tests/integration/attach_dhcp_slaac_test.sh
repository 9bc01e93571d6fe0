#!/usr/bin/env bash
# moat attach --no-configure: the namespace configures itself like a VM would — busybox udhcpc
# gets the DHCPv4 lease (R-NET-7) and the kernel forms a SLAAC address from moat's RA (R-NET-6).
# Also: the ready file (R-CLI-5), SIGUSR1 stats, SIGTERM ends moat within 2 s, the TAP goes away.
source "$(dirname "$0")/lib.sh" "$@"

ns="moat-it-$$"
new_netns "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.all.forwarding=0
ready="$T_DIR/ready"
start_bg moat "$MOAT" attach --profile all --netns "/run/netns/$ns" --no-configure --ifname eth0 --ready-file "$ready" --log-level debug
moat_pid=$BG_PID
check "ready file appears"               wait_for 10 test -s "$ready"
check "ready file holds moat's PID"      test "$(head -n 1 "$ready")" = "$moat_pid"
check "TAP created with guest MAC, MTU"  bash -c "ip -n '$ns' -o link show eth0 | grep -q 'mtu 65520.*link/ether 02:6d:6f:00:00:02'"
check "no address configured"            bash -c "! ip -n '$ns' -o addr show dev eth0 | grep -q 'inet '"

# udhcpc's event script records the lease and applies it.
cat > "$T_DIR/udhcpc.sh" <<SCRIPT
#!/bin/sh
[ "\$1" = bound ] || [ "\$1" = renew ] || exit 0
env | grep -E '^(ip|subnet|router|dns|mtu|lease|serverid|broadcast)=' | sort > "$T_DIR/lease.env"
ip addr add "\$ip/\$subnet" dev "\$interface"
ip route add default via "\$router" dev "\$interface"
SCRIPT
chmod +x "$T_DIR/udhcpc.sh"
check "udhcpc obtains a lease" timeout 20 ip netns exec "$ns" busybox udhcpc -i eth0 -n -q -t 5 -T 2 -s "$T_DIR/udhcpc.sh"
lease="$T_DIR/lease.env"
check "lease ip=100.96.0.2"            grep -qx "ip=100.96.0.2" "$lease"
check "lease subnet=255.255.255.252"   grep -qx "subnet=255.255.255.252" "$lease"
check "lease router=100.96.0.1"        grep -qx "router=100.96.0.1" "$lease"
check "lease dns=100.96.0.1"           grep -qx "dns=100.96.0.1" "$lease"
check "lease mtu=65520"                grep -qx "mtu=65520" "$lease"
check "lease time 86400"               grep -qx "lease=86400" "$lease"
check "server id = gateway"            grep -qx "serverid=100.96.0.1" "$lease"
check "ping gateway after DHCP"        ip netns exec "$ns" ping -c 2 -W 2 -i 0.2 100.96.0.1

# The kernel runs DAD on the SLAAC address (~1 s) before it can be used as a source.
slaac() { ip -n "$ns" -6 addr show dev eth0 scope global | grep "inet6 fd42:6d73:62:0:" | grep -qv tentative; }
check "SLAAC address from moat's RA"   wait_for 15 slaac
check "IPv6 default route from RA"     wait_for 5 bash -c "ip -n '$ns' -6 route | grep -q '^default via fe80::6d:6fff:fe00:1'"
check "RA MTU applied (65520)"         bash -c "test \$(ip netns exec '$ns' cat /proc/sys/net/ipv6/conf/eth0/mtu) -eq 65520"
check "ping gateway over SLAAC IPv6"   ip netns exec "$ns" ping -6 -c 2 -W 2 -i 0.2 fd42:6d73:62::1

kill -USR1 "$moat_pid"
check "SIGUSR1 logs counters"          wait_for 3 grep -q "link.from_guest.frames" "$T_DIR/moat.log"
t0=$(date +%s%N)
kill -TERM "$moat_pid"
check "SIGTERM: exits within 2 s"      wait_for 2 bash -c "! kill -0 $moat_pid 2>/dev/null"
set +e; wait "$moat_pid"; rc=$?; set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "exit status 0 after SIGTERM (got $rc, ${ms} ms)" test $rc -eq 0
check "TAP removed at exit"            bash -c "! ip -n '$ns' link show eth0 >/dev/null 2>&1"
finish
