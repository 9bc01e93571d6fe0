#!/usr/bin/env bash
# fuzz-seed-capture.sh MOAT OUT_DIR: captures a real guest session with `moat run --pcap`
# and splits it into seed files for the frame fuzz targets (SPEC R-HARD-6: "seed corpora
# come from guest pcaps"). Writes OUT_DIR/session.pcap, OUT_DIR/ingress/ and
# OUT_DIR/vnet_frame/ (scripts/pcap-to-seeds.py); copy what is worth keeping into
# fuzz/corpus/<target>/ (see fuzz/README.md).
#
# Offline and self-contained, like the integration tests: it re-executes itself in a fresh
# network namespace (unshare -n, needs root) with a dead-end uplink, starts a DNS zone
# server (tests/integration/tools/dnszone.py) and an HTTP server on that namespace's
# loopback, and runs moat with --dns-upstream pointing at the zone server. The guest
# session: busybox udhcpc (DHCPv4), ping to the gateway over IPv4 and IPv6, kdig A/AAAA
# over UDP and TCP, curl to the gateway's HTTP port (mapped to the namespace's loopback),
# and a UDP datagram to a closed port. Everything started is killed by PID; every step has
# a timeout.
set -euo pipefail
if [[ $# -ne 2 ]]; then echo "usage: fuzz-seed-capture.sh MOAT OUT_DIR" >&2; exit 2; fi
if [[ $(id -u) -ne 0 ]]; then echo "fuzz-seed-capture: needs root (network namespaces)" >&2; exit 1; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ "${_MOAT_SEED_NETNS:-}" != 1 ]]; then
  exec unshare -n -- env _MOAT_SEED_NETNS=1 bash "$0" "$@"
fi
moat="$(readlink -f "$1")" out="$2"
[[ -x "$moat" ]] || { echo "fuzz-seed-capture: MOAT: '$1' is not an executable" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
source "$root/scripts/lib/uplink.sh"
moat_dead_end_uplink

pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
python3 "$root/tests/integration/tools/dnszone.py" --port 15301 --log "$out/dns.q" --ready-file "$out/dns.ready" --max-seconds 120 \
  > "$out/dns.log" 2>&1 &
pids+=($!)
mkdir -p "$out/www" && echo "hello from the seed capture" > "$out/www/index.html"
timeout 120 python3 -m http.server --bind 127.0.0.1 --directory "$out/www" 18080 > "$out/http.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -s "$out/dns.ready" ]] && break; sleep 0.1; done
[[ -s "$out/dns.ready" ]] || { echo "fuzz-seed-capture: DNS server did not start (see $out/dns.log)" >&2; exit 1; }

pcap="$out/session.pcap"
rm -f "$pcap"
timeout 90 "$moat" run --profile all --dns-upstream 127.0.0.1:15301 --pcap "$pcap" -- sh -c '
  busybox udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true >/dev/null 2>&1 || echo "udhcpc failed"
  ping -c 2 -W 2 -i 0.2 100.96.0.1 >/dev/null || echo "ping failed"
  ping -6 -c 2 -W 2 -i 0.2 fd42:6d73:62::1 >/dev/null || echo "ping6 failed"
  kdig +time=2 +retry=1 @100.96.0.1 www.example.com A >/dev/null || echo "kdig udp failed"
  kdig +time=2 +retry=1 @100.96.0.1 www.example.com AAAA >/dev/null || echo "kdig aaaa failed"
  kdig +time=2 +retry=1 +tcp @100.96.0.1 alias.example.com A >/dev/null || echo "kdig tcp failed"
  curl -s -m 5 http://100.96.0.1:18080/ >/dev/null || echo "curl failed"
  curl -s -m 5 -g "http://[fd42:6d73:62::1]:18080/" >/dev/null || echo "curl6 failed"
  printf x | busybox nc -u -w 1 100.96.0.1 9 >/dev/null 2>&1 || true
' > "$out/guest.log" 2> "$out/moat.log" || { echo "fuzz-seed-capture: moat run failed (see $out/moat.log)" >&2; exit 1; }
if [[ -s "$out/guest.log" ]]; then echo "fuzz-seed-capture: guest steps that failed:" >&2; cat "$out/guest.log" >&2; fi
[[ -s "$pcap" ]] || { echo "fuzz-seed-capture: no capture written" >&2; exit 1; }
rm -rf "$out/ingress" "$out/vnet_frame"
python3 "$root/scripts/pcap-to-seeds.py" "$pcap" "$out/ingress" --target ingress --prefix guest
python3 "$root/scripts/pcap-to-seeds.py" "$pcap" "$out/vnet_frame" --target vnet_frame --prefix guest --max 16 --per-kind 1
