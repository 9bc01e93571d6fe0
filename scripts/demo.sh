#!/usr/bin/env bash
# make demo: moat, offline, inside a network namespace this script creates.
# A sandboxed command gets its address from moat and pings the gateway over IPv4 and IPv6;
# a policy allows one name and refuses a metadata address, with the audit lines and
# `moat policy explain` for both; a second namespace configures itself by DHCP and SLAAC
# like a VM would; the guest link is captured to a pcap and summarised by tshark.
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
source "$(dirname "$0")/lib/uplink.sh"
moat_dead_end_uplink
# moat relays guest pings through unprivileged ping sockets (R-ICMP-2); allow them here.
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# The demo's own "internet": a public address (44.1.1.1) and a metadata-style one
# (169.254.169.254) on a veth end inside this namespace, and a DNS server on 127.0.0.1 that
# answers api.example.com -> 44.1.1.1. moat's upstream is that server, never resolv.conf.
NP="$(cd "$(dirname "$0")/.." && pwd)/tests/integration/tools/netpeer.py"
ip link add world0 type veth peer name world1
ip link set world0 up; ip link set world1 up
ip addr add 44.1.1.1/32 dev world0; ip addr add 169.254.169.254/32 dev world0
python3 "$NP" dns --port 5353 --name api.example.com --addr 44.1.1.1 --max-seconds 300 > /dev/null 2>&1 &
PIDS+=($!)
DNS=(--dns-upstream 127.0.0.1:5353)

say "moat run -- CMD: the command runs in its own network namespace behind moat"
"$MOAT" run "${DNS[@]}" --pcap "$WORK/link.pcap" -- sh -c '
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
"$MOAT" run "${DNS[@]}" --rule allow@host:tcp -- sh -c '
  echo "\$ curl http://100.96.0.1:8080/   # the gateway address maps to the host loopback"
  curl -sS http://100.96.0.1:8080/
  echo "\$ curl http://100.96.0.1:8081/   # nothing listens there: refused at once, not a timeout"
  curl -sS -m 5 http://100.96.0.1:8081/ || true'

say "policy: egress denied by default; DNS and api.example.com:80 allowed by a domain rule (--audit records it)"
mkdir -p "$WORK/api"; echo "hello from api.example.com (44.1.1.1)" > "$WORK/api/index.html"
# (not `python3 -m http.server`: its bind does a reverse lookup of the address through resolv.conf)
timeout 60 python3 -c 'import http.server, os, socketserver, sys
os.chdir(sys.argv[1])
class Server(socketserver.TCPServer): allow_reuse_address = True
Server(("44.1.1.1", 80), http.server.SimpleHTTPRequestHandler).serve_forever()' "$WORK/api" > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/44.1.1.1/80) 2>/dev/null && break; sleep 0.1; done
POLICY=(--default-egress deny --rule allow@dns --rule allow@api.example.com:tcp:80)
echo "\$ moat run ${POLICY[*]} --audit audit.jsonl -- sh -c ..."
"$MOAT" run "${DNS[@]}" "${POLICY[@]}" --audit "$WORK/audit.jsonl" -- sh -c '
  echo "\$ curl http://api.example.com/   # resolved through moat: the answer pins the name to 44.1.1.1"
  curl -sS -m 5 http://api.example.com/
  echo "\$ curl http://169.254.169.254/latest/meta-data/   # metadata: refused at once (RST), no timeout"
  start=$(date +%s%N)
  curl -sS -m 5 http://169.254.169.254/latest/meta-data/ 2>&1 || true
  echo "  (refused after $(( ($(date +%s%N) - start) / 1000000 )) ms)"
  echo "\$ curl --resolve api.example.com:80:44.1.1.1 http://api.example.com/ after the pin: still allowed"
  curl -sS -m 5 --resolve api.example.com:80:44.1.1.1 http://api.example.com/' || true
echo "\$ cat audit.jsonl   # one JSON line per decision and per close"
grep -E '"ev":"(flow_open|flow_deny|flow_close)"' "$WORK/audit.jsonl" | sed 's/^/  /' || true
echo "\$ moat policy explain ${POLICY[*]} --dst api.example.com:80/tcp"
"$MOAT" policy explain "${POLICY[@]}" --dst api.example.com:80/tcp || true
echo "\$ moat policy explain ${POLICY[*]} --dst 169.254.169.254:80/tcp"
"$MOAT" policy explain "${POLICY[@]}" --dst 169.254.169.254:80/tcp || true

say "a published port: host 127.0.0.1:18080 -> the sandbox's port 80"
"$MOAT" run "${DNS[@]}" -p 127.0.0.1:18080:80 --ready-file "$WORK/pub.ready" -- \
  sh -c 'cd "$0" && exec timeout 20 python3 -m http.server 80 --bind 0.0.0.0' "$WORK/www" > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s "$WORK/pub.ready" ]] && curl -s -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.1; done
echo "\$ curl http://127.0.0.1:18080/   # on the host"
curl -sS http://127.0.0.1:18080/ || true

say "the guest link as captured by --pcap (tshark)"
tshark -r "$WORK/link.pcap" -n 2>/dev/null | head -n 16

say "moat attach --no-configure: the namespace configures itself by DHCP and SLAAC"
ip netns add "$NS"; ip -n "$NS" link set lo up
"$MOAT" attach "${DNS[@]}" --netns "/run/netns/$NS" --no-configure --ifname eth0 --ready-file "$WORK/ready" 2> "$WORK/attach.log" &
ATTACH_PID=$!
PIDS+=($ATTACH_PID)
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
kill -USR1 "$ATTACH_PID"; sleep 0.3
say "moat's counters (SIGUSR1)"
grep -o "stats: .*" "$WORK/attach.log" | tr ' ' '\n' | grep -vE "=0$|^stats:" | sed 's/^/  /' || true
say "done"
