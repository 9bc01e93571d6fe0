#!/usr/bin/env bash
# The C ABI end to end (R-ABI, R-TR-7): examples/moat-capi-tap embeds a gateway through
# libmoat.so and moves frames between its in-process rings and a TAP inside a namespace this
# test creates, whose kernel stack plays the guest. Checks ping to the gateway, full TCP
# exchanges against servers on the host's loopback (handshake, data both ways, half-close
# and FIN, large transfers through both rings), DNS to the gateway forwarded to a local
# upstream, the stats JSON, the audit file, a bad config (§5.2 line, exit 2) and a clean SIGTERM.
# moat-it-timeout: 180
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
BRIDGE="$(readlink -f "$(dirname "$MOAT")/../../examples/moat-capi-tap")"
[[ -x "$BRIDGE" ]] || { echo "FAIL: $BRIDGE not built"; exit 1; }

# Host-side servers on loopback.
www="$T_DIR/www"; mkdir -p "$www"
python3 -c 'import random; open("'"$www"'/blob.bin","wb").write(random.Random(5).randbytes(2*1024*1024+333))'
start_bg http timeout 150 python3 -m http.server --bind 127.0.0.1 --directory "$www" 18080
start_bg sink "$NP" serve-sink --port 18082 --ready-file "$T_DIR/sink.ready" --max-seconds 150
start_bg sink6 "$NP" serve-sink --port 18082 --bind ::1 --ready-file "$T_DIR/sink6.ready" --max-seconds 150
start_bg dns "$NP" dns --port 15353 --name capi-test.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 150
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/sink.ready' -a -s '$T_DIR/sink6.ready' -a -s '$T_DIR/dns.ready' && curl -sf -o /dev/null http://127.0.0.1:18080/blob.bin"

# A bad config: one §5.2 line naming the key, exit 2, nothing created.
echo '{"net": {"mtu": "big"}}' > "$T_DIR/bad.json"
set +e
"$BRIDGE" --config "$T_DIR/bad.json" --max-seconds 5 > "$T_DIR/bad.out" 2>&1
rc=$?
set -e
cat "$T_DIR/bad.out"
check "bad config -> exit 2 (got $rc)" test $rc -eq 2
check "bad config -> '§5.2 line naming net.mtu'" grep -q '^moat: error: config:1:[0-9]*: net.mtu: ' "$T_DIR/bad.out"
# The same program linked against libmoat.a (the merged archive is complete and works).
STATIC="$(dirname "$BRIDGE")/moat-capi-tap-static"
set +e
"$STATIC" --config "$T_DIR/bad.json" --max-seconds 5 > "$T_DIR/bad-static.out" 2>&1
rc=$?
set -e
check "libmoat.a build: same error, exit 2 (got $rc)" bash -c "test $rc -eq 2 && cmp -s '$T_DIR/bad.out' '$T_DIR/bad-static.out'"

# The guest: a namespace whose TAP moat-capi-tap opens; moat's sockets stay here.
new_netns capiguest
cat > "$T_DIR/gw.json" <<JSON
{
  "net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "on"}},
  "dns": {"upstreams": ["127.0.0.1:15353"]},
  "policy": {"profiles": ["all"]},
  "audit": {"file": "$T_DIR/audit.jsonl"}
}
JSON
start_bg bridge "$BRIDGE" --config "$T_DIR/gw.json" --netns /run/netns/capiguest --ifname eth0 \
  --ready-file "$T_DIR/bridge.ready" --stats-file "$T_DIR/stats.json" --max-seconds 150
BRIDGE_PID=$BG_PID
check "moat-capi-tap ready" wait_for 10 test -s "$T_DIR/bridge.ready"
G() { ip netns exec capiguest "$@"; }
G ip link set eth0 address 02:6d:6f:00:00:02
G ip link set eth0 mtu 1500
G ip link set eth0 up
G ip addr add 100.96.0.2/30 dev eth0
G ip route add default via 100.96.0.1
G ip -6 addr add fd42:6d73:62::2/64 dev eth0 nodad
G ip -6 route add default via fd42:6d73:62::1

check "guest pings the gateway (ARP + ICMP through the rings)" G ping -c 2 -W 3 100.96.0.1
check "guest pings the gateway over IPv6 (NDP + ICMPv6)" G ping -6 -c 2 -W 3 fd42:6d73:62::1

want_blob="$(sha256sum < "$www/blob.bin" | cut -d' ' -f1)"
set +e
G curl -sS --max-time 30 -o "$T_DIR/blob4.bin" http://100.96.0.1:18080/blob.bin; c4=$?
set -e
check "IPv4 curl of a 2 MiB file through the gateway succeeds (rc $c4)" test $c4 -eq 0
check "IPv4 2 MiB body sha256 matches" test "$(sha256sum < "$T_DIR/blob4.bin" 2>/dev/null | cut -d' ' -f1)" = "$want_blob"

# Guest -> host 4 MiB, half-close, the sink's reply back, then FIN both ways.
want4="$("$NP" expect-sha --bytes 4M --seed 9)"
r4="$(G "$NP" send --host 100.96.0.1 --port 18082 --bytes 4M --seed 9 --max-seconds 60 2>>"$T_DIR/send.log" || true)"
check "IPv4 4 MiB upload + half-close reply = '$want4' (got '$r4')" test "$r4" = "$want4"
r6="$(G "$NP" send --host fd42:6d73:62::1 --port 18082 --bytes 4M --seed 9 --max-seconds 60 2>>"$T_DIR/send.log" || true)"
check "IPv6 4 MiB upload + half-close reply = '$want4' (got '$r6')" test "$r6" = "$want4"
check "the sinks saw two complete streams" bash -c "cat '$T_DIR/sink.log' '$T_DIR/sink6.log' | grep -c '^sink $want4\$' | grep -qx 2"

dns="$(G kdig @100.96.0.1 +notcp +timeout=3 +retry=1 capi-test.example.com A +short 2>&1 || true)"
check "DNS via the gateway answered by the local upstream (got '$dns')" test "$dns" = "93.184.216.34"

# SIGTERM: the example stops the gateway (moat_gateway_free) and writes the stats JSON.
kill -TERM "$BRIDGE_PID"
set +e
wait "$BRIDGE_PID"  # bounded: the bridge exits by itself after --max-seconds
brc=$?
set -e
check "moat-capi-tap exits 0 on SIGTERM (no leak or sanitizer report under ASan; got $brc)" test $brc -eq 0
check "stats JSON written" test -s "$T_DIR/stats.json"
python3 - "$T_DIR/stats.json" > "$T_DIR/stats.check" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
c = s["counters"]
print("from_guest_frames", c["link.from_guest.frames"])
print("to_guest_frames", c["link.to_guest.frames"])
print("tcp_opened", c["tcp.opened"])
print("to_guest_bytes_ok", int(c["link.to_guest.bytes"] > 2 * 1024 * 1024))
print("ring_drained", int(s["rings"]["from_guest"]["frames"] == 0))
PY
cat "$T_DIR/stats.check"
check "stats: frames counted both ways" grep -q '^to_guest_bytes_ok 1$' "$T_DIR/stats.check"
check "stats: TCP flows opened" bash -c "awk '/^tcp_opened/ {exit !(\$2 >= 3)}' '$T_DIR/stats.check'"
check "stats: ring drained at exit" grep -q '^ring_drained 1$' "$T_DIR/stats.check"
check "audit: gateway_start, flow_open x3, gateway_stop" bash -c "grep -q '\"ev\":\"gateway_start\"' '$T_DIR/audit.jsonl' && test \$(grep -c '\"ev\":\"flow_open\"' '$T_DIR/audit.jsonl') -ge 3 && grep -q '\"ev\":\"gateway_stop\"' '$T_DIR/audit.jsonl'"
finish
