#!/usr/bin/env bash
# make demo: moat, offline, inside a network namespace this script creates.
# A sandboxed command gets its address from moat and pings the gateway over IPv4 and IPv6;
# a second namespace configures itself by DHCP and SLAAC like a VM would; the guest link is
# captured to a pcap and summarised by tshark.
set -euo pipefail
BUILD="${1:-build}"
MOAT="$(readlink -f "$BUILD/src/cli/moat")"
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }
if [[ "${_MOAT_DEMO_NETNS:-}" != 1 ]]; then exec unshare -n -- env _MOAT_DEMO_NETNS=1 bash "$0" "$@"; fi

WORK="$(mktemp -d /tmp/moat-demo.XXXXXX)"
PIDS=()
NS="moat-demo-$$"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A dead-end uplink: moat sees IPv4 and IPv6 routes (R-ADDR-3) but nothing can leave.
ip link set lo up
ip link add deadend0 type veth peer name deadend1
ip link set deadend0 up; ip link set deadend1 up
ip addr add 198.18.0.1/24 dev deadend0
ip -6 addr add 2001:db8:ffff::1/64 dev deadend0 nodad
ip route add default via 198.18.0.254 dev deadend0
ip -6 route add default via 2001:db8:ffff::fe dev deadend0
# moat relays guest pings through unprivileged ping sockets (R-ICMP-2); allow them here.
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

say "moat run -- CMD: the command runs in its own network namespace behind moat"
"$MOAT" run --pcap "$WORK/link.pcap" -- sh -c '
  echo "\$ ip -brief addr show eth0";  ip -brief addr show eth0
  echo "\$ ip route; ip -6 route";     ip route; ip -6 route | grep default
  echo "\$ cat /etc/resolv.conf";      cat /etc/resolv.conf
  echo "\$ ping -c 3 100.96.0.1";      ping -c 3 -i 0.2 100.96.0.1 | tail -n 2
  echo "\$ ping -6 -c 3 fd42:6d73:62::1"; ping -6 -c 3 -i 0.2 fd42:6d73:62::1 | tail -n 2
  echo "\$ ping -c 2 -W 1 203.0.113.5   # a reserved address: the default policy refuses it (administratively prohibited)"
  ping -c 2 -W 1 203.0.113.5 | tail -n 2 || true'

say "flows: the sandbox fetches a page from a server on the host's loopback, through the gateway (--rule allow@host:tcp)"
mkdir -p "$WORK/www"
echo "hello from the host's 127.0.0.1:8080, served to the sandbox by moat" > "$WORK/www/index.html"
(cd "$WORK/www" && exec timeout 60 python3 -m http.server 8080 --bind 127.0.0.1) > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break; sleep 0.1; done
"$MOAT" run --rule allow@host:tcp -- sh -c '
  echo "\$ curl http://100.96.0.1:8080/   # the gateway address maps to the host loopback"
  curl -sS http://100.96.0.1:8080/
  echo "\$ curl http://100.96.0.1:8081/   # nothing listens there: refused at once, not a timeout"
  curl -sS -m 5 http://100.96.0.1:8081/ || true'

say "a published port: host 127.0.0.1:18080 -> the sandbox's port 80"
"$MOAT" run -p 127.0.0.1:18080:80 --ready-file "$WORK/pub.ready" -- \
  sh -c 'cd "$0" && exec timeout 20 python3 -m http.server 80 --bind 0.0.0.0' "$WORK/www" > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$WORK/pub.ready" ]] && curl -s -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.1; done
echo "\$ curl http://127.0.0.1:18080/   # on the host"
curl -sS http://127.0.0.1:18080/ || true

say "the guest link as captured by --pcap (tshark)"
tshark -r "$WORK/link.pcap" -n 2>/dev/null | head -n 16

say "moat attach --no-configure: the namespace configures itself by DHCP and SLAAC"
ip netns add "$NS"; ip -n "$NS" link set lo up
"$MOAT" attach --netns "/run/netns/$NS" --no-configure --ifname eth0 --ready-file "$WORK/ready" 2> "$WORK/attach.log" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$WORK/ready" ]] && break; sleep 0.1; done
cat > "$WORK/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
[ "$1" = bound ] || exit 0
echo "  lease: ip=$ip subnet=$subnet router=$router dns=$dns mtu=$mtu lease=${lease}s"
ip addr add "$ip/$subnet" dev "$interface"; ip route add default via "$router" dev "$interface"
SCRIPT
chmod +x "$WORK/udhcpc.sh"
echo "\$ busybox udhcpc -i eth0"
ip netns exec "$NS" busybox udhcpc -i eth0 -n -q -t 5 -T 2 -s "$WORK/udhcpc.sh" 2>/dev/null
# wait until the kernel's DAD on the SLAAC address is done (it is "tentative" until then)
for _ in $(seq 100); do ip -n "$NS" -6 addr show dev eth0 scope global | grep fd42 | grep -qv tentative && break; sleep 0.1; done
echo "\$ ip -6 addr (SLAAC from moat's router advertisement)"
ip -n "$NS" -6 -brief addr show dev eth0
echo "\$ ping -c 2 100.96.0.1; ping -6 -c 2 fd42:6d73:62::1"
ip netns exec "$NS" ping -c 2 -i 0.2 100.96.0.1 | tail -n 2 || true
ip netns exec "$NS" ping -6 -c 2 -i 0.2 fd42:6d73:62::1 | tail -n 2 || true
kill -USR1 "${PIDS[0]}"; sleep 0.3
say "moat's counters (SIGUSR1)"
grep -o "stats: .*" "$WORK/attach.log" | tr ' ' '\n' | grep -vE "=0$|^stats:" | sed 's/^/  /' || true
say "done"
