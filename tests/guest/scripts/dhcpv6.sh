#!/bin/sh
# Guest side of dhcpv6_test.sh (R-NET-8): ISC dhclient -6 (the host's /sbin/dhclient, which links
# only libc; run through the shipped ld.so) against moat's DHCPv6 server, with the event script
# dhclient6-event.sh. The busybox guest has no DHCPv6 client of its own.
#   MODE=stateful   the kernel's SLAAC address appears from the RA; Solicit/Advertise/Request/
#                   Reply lease LEASE6 (another address in the same prefix) with DNS = DNS6 and
#                   the search domain; the lease is then the only global address and carries
#                   ping, DNS and HTTP to the gateway; a restarted dhclient Confirms the lease
#                   (Reply Success) and `dhclient -r` Releases it.
#   MODE=stateless  dhclient -S: Information-request/Reply gives DNS = DNS6 and the domain, no
#                   address.
# Env: MODE, NET6 (the /64 without "::"), LEASE6, DNS6, DOMAIN, HTTP_PORT.
. /lib/harness.sh
GW6="$NET6::1"
DHC="/test/ld-linux-x86-64.so.2 --library-path /test /test/dhclient"
: > /tmp/d6.leases   # dhclient wants the lease file to exist
printf 'request dhcp6.name-servers, dhcp6.domain-search;\n' > /tmp/d6.conf
# dhclient6 ARGS...: dhclient -6 with this run's files, at most 60 s. d6_start ARGS...: the same
# with -d, in the background; d6_stop ends it (SIGTERM: it exits without releasing).
dhclient6() {
    timeout 60 $DHC -6 -v -cf /tmp/d6.conf -lf /tmp/d6.leases -pf /tmp/d6.pid \
        -sf /test/dhclient6-event.sh "$@" eth0 >> /tmp/d6.log 2>&1
}
d6_start() { rm -f /tmp/d6.pid; dhclient6 -d "$@" & D6=$!; }
d6_stop() {
    [ -s /tmp/d6.pid ] && kill "$(cat /tmp/d6.pid)" 2>/dev/null
    kill "$D6" 2>/dev/null; wait "$D6" 2>/dev/null; return 0
}
# wait_event REASONS N: the event script saw one of REASONS (an ERE) at least N times (10 s at
# most); shows the variables of the last one.
wait_event() {
    i=0
    while [ $i -lt 100 ]; do
        if [ "$(cat /tmp/d6.events 2>/dev/null | grep -cxE "$1")" -ge "$2" ]; then
            cat "/tmp/d6.$(grep -xE "$1" /tmp/d6.events | tail -n 1)"; return 0
        fi
        usleep 100000; i=$((i+1))
    done
    echo "no $1 event #$2; events: $(cat /tmp/d6.events 2>/dev/null | tr '\n' ' ')"; tail -n 15 /tmp/d6.log; return 1
}
# var REASON NAME: the value dhclient gave NAME at the last REASON event.
var() { sed -n "s/^$2=//p" "/tmp/d6.$1" 2>/dev/null; }
expect() { echo "$1=$2 (want $3)"; [ "$2" = "$3" ]; }
global6() { ip -6 addr show dev eth0 scope global; }

# slaac: the kernel's own address from the RA's prefix (a /64, not the lease), DAD done.
slaac() {
    i=0
    while [ $i -lt 100 ]; do
        a=$(global6 | grep -v tentative | sed -n "s|.*inet6 \($NET6:[0-9a-f:]*\)/64 .*|\1|p" | head -n 1)
        [ -n "$a" ] && { echo "$a" > /tmp/slaac; global6; return 0; }
        usleep 200000; i=$((i+1))
    done
    ip -6 addr; return 1
}
leased() {
    a=$(var BOUND6 new_ip6_address); s=$(cat /tmp/slaac)
    echo "SLAAC address: $s   DHCPv6 lease: $a"; global6
    expect new_ip6_address "$a" "$LEASE6" || return 1
    [ "$a" != "$s" ] || { echo "the lease is the SLAAC address"; return 1; }
    expect new_preferred_life "$(var BOUND6 new_preferred_life)" 14400 &&
        expect new_max_life "$(var BOUND6 new_max_life)" 86400 &&
        global6 | grep -q "inet6 $LEASE6/128" && global6 | grep -q "inet6 $s/64"
}
# dns_opts REASON: DNS servers (option 23) = DNS6, domain list (24) = DOMAIN, and a query to it.
dns_opts() {
    expect new_dhcp6_name_servers "$(var "$1" new_dhcp6_name_servers)" "$DNS6" &&
        expect new_dhcp6_domain_search "$(var "$1" new_dhcp6_domain_search)" "$DOMAIN." || return 1
    cat /tmp/d6.resolv
    ns=$(sed -n 's/^nameserver //p' /tmp/d6.resolv | head -n 1)
    nslookup -type=a harness.test "$ns" > /tmp/ns.out 2>&1; r=$?; cat /tmp/ns.out
    [ $r = 0 ] && grep -q "192.0.3.7" /tmp/ns.out
}
# lease_only: no more SLAAC; the lease, DAD done, is the source the kernel picks for the gateway.
lease_only() {
    echo 0 > /proc/sys/net/ipv6/conf/eth0/autoconf
    ip -6 addr del "$(cat /tmp/slaac)/64" dev eth0
    i=0
    while global6 | grep "inet6 $LEASE6/" | grep -q tentative && [ $i -lt 50 ]; do usleep 100000; i=$((i+1)); done
    global6; ip -6 route get "$GW6"
    ip -6 route get "$GW6" | grep -q "src $LEASE6 "
}
http6() { wget -q -O - "http://[$GW6]:$HTTP_PORT/hello.txt" > /tmp/hello; cat /tmp/hello; echo; grep -q "hello from the harness host" /tmp/hello; }
confirm() {
    wait_event BOUND6 2 > /dev/null || return 1
    grep -E "XMT: Confirm|status code" /tmp/d6.log
    grep -q "XMT: Confirm" /tmp/d6.log && grep -q "status code Success" /tmp/d6.log && global6 | grep -q "inet6 $LEASE6/128"
}
release() {
    dhclient6 -r
    wait_event RELEASE6 1 || return 1
    sed -n '/Forming Release/,$p' /tmp/d6.log | grep -E "XMT: Release|RCV|status"
    global6
    ! global6 | grep -q "inet6 $LEASE6/"
}

T_TIMEOUT=20
t_run slaac-address slaac
if [ "$MODE" = stateful ]; then
    d6_start
    t_run dhcpv6-bound wait_event BOUND6 1
    t_run leased-address-not-slaac leased
    t_run dhcpv6-dns-and-domain dns_opts BOUND6
    t_run lease-is-the-source lease_only
    t_run ping6-from-lease ping -6 -c 2 -W 3 "$GW6"
    t_run http-from-lease http6
    d6_stop
    d6_start   # restarted with the lease on file: Confirm
    t_run dhcpv6-confirm confirm
    t_run dhcpv6-release release   # -r also stops the running dhclient (its pid file)
    d6_stop
else
    d6_start -S
    # dhclient 4.4 reports a stateless Reply as RENEW6 (the first may say INFORM6)
    t_run dhcpv6-information-reply wait_event "INFORM6|RENEW6" 1
    r=$(grep -xE "INFORM6|RENEW6" /tmp/d6.events | tail -n 1)
    t_run dhcpv6-dns-and-domain dns_opts "$r"
    t_run no-address-in-stateless sh -c "! grep -q '^new_ip6_address=' /tmp/d6.$r"
    d6_stop
fi
t_summary
