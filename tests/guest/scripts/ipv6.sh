#!/bin/sh
# Guest side of ipv6_test.sh: SLAAC from moat's router advertisement, the default route to the
# gateway's link-local address, ping, DNS and HTTP over IPv6 to the gateway (mapped to the
# host's ::1), and IPv4 still working beside it. Env: GW6, SMALL_MD5, HTTP_PORT.
. /lib/harness.sh
GW6="${GW6:-fd42:6d73:62::1}"
slaac() {
    i=0
    while [ $i -lt 100 ]; do
        if ip -6 addr show dev eth0 scope global | grep "inet6 fd42:6d73:62:" | grep -qv tentative; then
            ip -6 addr show dev eth0 scope global; return 0
        fi
        usleep 200000; i=$((i+1))
    done
    ip -6 addr; return 1
}
route6() { ip -6 route; ip -6 route | grep -q "^default via fe80::"; }
mtu6() { m=$(cat /proc/sys/net/ipv6/conf/eth0/mtu); echo "mtu=$m"; [ "$m" -ge 1280 ]; }
dns6() { nslookup -type=a harness.test "$GW6" > /tmp/ns.out 2>&1; r=$?; cat /tmp/ns.out; [ $r = 0 ] && grep -q "192.0.3.7" /tmp/ns.out; }
http6() {
    got=$(wget -q -O - "http://[$GW6]:$HTTP_PORT/small.bin" | md5sum | cut -d' ' -f1)
    echo "md5 got=$got want=$SMALL_MD5"; [ "$got" = "$SMALL_MD5" ]
}
http4() { wget -q -O - "http://$HARNESS_GW:$HTTP_PORT/hello.txt" | grep -q "hello from the harness host"; }
T_TIMEOUT=30
t_run slaac-address slaac
t_run ipv6-default-route route6
t_run ra-mtu mtu6
t_run ping6-gateway ping -6 -c 3 -W 3 "$GW6"
t_run dns-over-ipv6 dns6
t_run http-over-ipv6 http6
t_run ipv4-beside-ipv6 http4
t_summary
