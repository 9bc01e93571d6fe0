#!/usr/bin/env bash
# DHCPv6 (R-NET-8) against a real client: ISC dhclient -6 in a namespace moat attached to with
# --no-configure. Default mode (stateless): Information-request gets the DNS server, the
# refresh time and moat's DUID-LL. --dhcpv6 stateful: Solicit/Request leases the configured
# guest address, which the client then uses to ping the gateway. --dhcpv6 bogus: §5.2 error.
# moat-it-timeout: 120
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
command -v dhclient >/dev/null || { echo "FAIL: dhclient not installed (scripts/deps.sh)"; exit 1; }

start_bg dns "$NP" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 110
check "dns peer ready" wait_for 10 test -s "$T_DIR/dns.ready"

# mkscript OUT: a dhclient event script that records what it got into OUT (dhclient runs it
# with a clean environment, so the path is baked in) and, for a lease, applies the address.
mkscript() {
  local script="$1.sh"
  cat > "$script" <<SCRIPT
#!/bin/sh
case "\$reason" in
  INFORM6|BOUND6|REBOOT6|RENEW6|REBIND6)
    env | grep -E '^(reason|new_ip6_address|new_ip6_prefixlen|new_dhcp6_name_servers|new_dhcp6_server_id|new_max_life|new_preferred_life)=' | sort > "$1.tmp"
    if [ -n "\$new_ip6_address" ]; then ip -6 addr add "\$new_ip6_address/128" dev "\$interface" nodad; fi
    mv "$1.tmp" "$1"
    ;;
esac
exit 0
SCRIPT
  chmod +x "$script"
  echo "$script"
}
printf 'request dhcp6.name-servers, dhcp6.domain-search;\n' > "$T_DIR/dhclient6.conf"

# ll_ready NS: the TAP's link-local address finished DAD (dhclient binds to it).
ll_ready() { ip -n "$1" -6 addr show dev eth0 scope link | grep -q "inet6 fe80" && ! ip -n "$1" -6 addr show dev eth0 | grep -q tentative; }

# start_gw NS EXTRA_ARGS...: moat attach --no-configure into NS.
start_gw() {
  local ns="$1"; shift
  new_netns "$ns"
  # No SLAAC: the only global address must be the one DHCPv6 hands out. RAs still give routes.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.autoconf=0 net.ipv6.conf.default.accept_ra=1 \
    net.ipv6.conf.all.forwarding=0
  start_bg "moat-$ns" "$MOAT" attach --netns "/run/netns/$ns" --no-configure --ifname eth0 \
    --ipv6-enable on --dns-upstream 127.0.0.1:15353 --ready-file "$T_DIR/$ns.ready" --log-level debug "$@"
  GW_PID=$BG_PID
  check "$ns: moat ready" wait_for 10 test -s "$T_DIR/$ns.ready"
  check "$ns: link-local address usable" wait_for 15 ll_ready "$ns"
}

# --- Stateless (the default): Information-request -> Reply.
ns1="moat-it-d6a-$$"
start_gw "$ns1"
moat1=$GW_PID
out1="$T_DIR/inform.env"
start_bg dhclient-s ip netns exec "$ns1" dhclient -6 -S -d -v -cf "$T_DIR/dhclient6.conf" \
  -lf "$T_DIR/s.leases" -pf "$T_DIR/s.pid" -sf "$(mkscript "$out1")" eth0
dh1=$BG_PID
check "stateless: dhclient -S gets a Reply"       wait_for 20 test -s "$out1"
# dhclient 4.4 reports a stateless Reply as RENEW6 (its first one may say INFORM6).
check "stateless: a stateless exchange"           grep -qxE "reason=(INFORM6|RENEW6)" "$out1"
check "stateless: DNS server = gateway6"          grep -qx "new_dhcp6_name_servers=fd42:6d73:62::1" "$out1"
check "stateless: server id is DUID-LL of the gateway MAC" \
  grep -qx "new_dhcp6_server_id=0:3:0:1:2:6d:6f:0:0:1" "$out1"
check "stateless: no address handed out"          bash -c "! grep -q '^new_ip6_address=' '$out1'"
kill "$dh1" 2>/dev/null || true
# A Solicit in stateless mode is ignored (no Advertise): dhclient -6 gets no lease.
out1b="$T_DIR/solicit-stateless.env"
start_bg dhclient-n ip netns exec "$ns1" dhclient -6 -d -v -cf "$T_DIR/dhclient6.conf" \
  -lf "$T_DIR/n.leases" -pf "$T_DIR/n.pid" -sf "$(mkscript "$out1b")" eth0
dh1b=$BG_PID
sleep 3
check "stateless: Solicit gets no lease"          test ! -e "$out1b"
kill "$dh1b" 2>/dev/null || true
kill -USR1 "$moat1"
check "stateless: counters logged"                wait_for 3 grep -q "dhcp6.ignored=[1-9]" "$T_DIR/moat-$ns1.log"
check "stateless: replies counted"                grep -q "dhcp6.replies=[1-9]" "$T_DIR/moat-$ns1.log"

# --- Stateful: Solicit -> Advertise, Request -> Reply with the configured address.
ns2="moat-it-d6b-$$"
start_gw "$ns2" --dhcpv6 stateful --ipv6 fd42:6d73:62::77/64
out2="$T_DIR/bound.env"
start_bg dhclient-f ip netns exec "$ns2" dhclient -6 -d -v -cf "$T_DIR/dhclient6.conf" \
  -lf "$T_DIR/f.leases" -pf "$T_DIR/f.pid" -sf "$(mkscript "$out2")" eth0
check "stateful: dhclient -6 gets a lease"        wait_for 20 test -s "$out2"
check "stateful: reason BOUND6"                   grep -qx "reason=BOUND6" "$out2"
check "stateful: address = configured guest6"     grep -qx "new_ip6_address=fd42:6d73:62::77" "$out2"
check "stateful: valid 86400 s"                   grep -qx "new_max_life=86400" "$out2"
check "stateful: preferred 14400 s"               grep -qx "new_preferred_life=14400" "$out2"
check "stateful: DNS server"                      grep -qx "new_dhcp6_name_servers=fd42:6d73:62::1" "$out2"
check "stateful: address applied"                 wait_for 5 bash -c "ip -n '$ns2' -6 addr show dev eth0 | grep -q 'fd42:6d73:62::77'"
check "stateful: route from RA"                   wait_for 10 bash -c "ip -n '$ns2' -6 route | grep -q '^default via fe80::6d:6fff:fe00:1'"
check "stateful: ping gateway from the leased address" \
  ip netns exec "$ns2" ping -6 -c 2 -W 2 -i 0.2 -I fd42:6d73:62::77 fd42:6d73:62::1

# --- Usage errors (§5.2).
set +e
msg=$("$MOAT" attach --netns /run/netns/none --dhcpv6 bogus 2>&1); rc=$?
set -e
check "--dhcpv6 bogus: exit 2 (got $rc)"          test $rc -eq 2
check "--dhcpv6 bogus: one §5.2 line"             bash -c "grep -q '^moat: error: --dhcpv6: \"bogus\" is not one of stateless, stateful, off' <<< '$msg'"
finish
