#!/usr/bin/env bash
# The C ABI's other guest links (R-ABI-2, R-TR-5/6): examples/moat-capi-tap in two modes, each
# with a TAP in a namespace this test creates whose kernel stack plays the guest.
#  * --attach 1: the TAP fd is handed to moat_gateway_attach_fd (moat reads and writes it on
#    its loop thread; no rings): ping, a 2 MiB download checked by sha256, clean SIGTERM.
#  * --vnet-hdr 1: the TAP has IFF_VNET_HDR + TUNSETOFFLOAD(CSUM, TSO4, TSO6) and the gateway
#    vnet_hdr_len 10 with the same offloads, so the guest kernel's TSO super-frames and
#    partial checksums go through the rings as is: a 4 MiB upload (with half-close reply) and
#    a 2 MiB download intact, GSO frames seen from the guest, no drop.vnet_hdr. To the guest,
#    moat's TCP sends TSO super-frames (guest_offloads() = the mask): a 24 MiB download
#    arrives intact and the pulled frames carried gso_type (counted by the example and in
#    link.to_guest.gso_frames).
#  * --attach 1 --vnet-hdr 1: an IFF_VNET_HDR TAP handed to moat_gateway_attach_fd keeps its
#    header and gets opts.offloads: the 24 MiB download arrives intact as TSO super-frames.
# moat-it-timeout: 150
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
BRIDGE="$(readlink -f "$(dirname "$MOAT")/../../examples/moat-capi-tap")"
[[ -x "$BRIDGE" ]] || { echo "FAIL: $BRIDGE not built"; exit 1; }

www="$T_DIR/www"; mkdir -p "$www"
python3 -c 'import random; open("'"$www"'/blob.bin","wb").write(random.Random(7).randbytes(2*1024*1024+777))'
want_blob="$(sha256sum < "$www/blob.bin" | cut -d' ' -f1)"
python3 -c 'import random; open("'"$www"'/big.bin","wb").write(random.Random(8).randbytes(24*1024*1024+101))'
want_big="$(sha256sum < "$www/big.bin" | cut -d' ' -f1)"
start_bg http timeout 140 python3 -m http.server --bind 127.0.0.1 --directory "$www" 18080
start_bg sink "$NP" serve-sink --port 18082 --ready-file "$T_DIR/sink.ready" --max-seconds 140
start_bg dns "$NP" dns --port 15353 --name capi-fd.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 140
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/sink.ready' -a -s '$T_DIR/dns.ready' && curl -sf -o /dev/null http://127.0.0.1:18080/blob.bin"

cat > "$T_DIR/gw.json" <<JSON
{
  "net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}},
  "dns": {"upstreams": ["127.0.0.1:15353"]},
  "policy": {"profiles": ["all"]}
}
JSON

# setup_guest NS: the guest side of the TAP eth0 in namespace NS.
setup_guest() {
  local ns=$1
  ip netns exec "$ns" ip link set eth0 address 02:6d:6f:00:00:02
  ip netns exec "$ns" ip link set eth0 mtu 1500
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip addr add 100.96.0.2/30 dev eth0
  ip netns exec "$ns" ip route add default via 100.96.0.1
}

# stop_bridge PID NAME: SIGTERM, bounded wait, exit status must be 0.
stop_bridge() {
  kill -TERM "$1"
  set +e
  wait "$1"
  local rc=$?
  set -e
  check "$2: exits 0 on SIGTERM (got $rc)" test $rc -eq 0
}

# --- attach_fd: moat owns the TAP -----------------------------------------------------
new_netns capiattach
start_bg attach "$BRIDGE" --config "$T_DIR/gw.json" --netns /run/netns/capiattach --ifname eth0 --attach 1 \
  --ready-file "$T_DIR/attach.ready" --stats-file "$T_DIR/attach-stats.json" --max-seconds 120
ATTACH_PID=$BG_PID
check "attach: ready" wait_for 10 test -s "$T_DIR/attach.ready"
setup_guest capiattach
check "attach: guest pings the gateway (moat reads the TAP fd itself)" ip netns exec capiattach ping -c 2 -W 3 100.96.0.1
set +e
ip netns exec capiattach curl -sS --max-time 30 -o "$T_DIR/blob-attach.bin" http://100.96.0.1:18080/blob.bin; c=$?
set -e
check "attach: 2 MiB download succeeds (rc $c)" test $c -eq 0
check "attach: 2 MiB body sha256 matches" test "$(sha256sum < "$T_DIR/blob-attach.bin" | cut -d' ' -f1)" = "$want_blob"
dns="$(ip netns exec capiattach kdig @100.96.0.1 +notcp +timeout=3 +retry=1 capi-fd.example.com A +short 2>&1 || true)"
check "attach: DNS via the gateway (got '$dns')" test "$dns" = "93.184.216.34"
stop_bridge "$ATTACH_PID" attach
python3 - "$T_DIR/attach-stats.json" > "$T_DIR/attach.check" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
print("to_guest_bytes_ok", int(s["counters"]["link.to_guest.bytes"] > 2 * 1024 * 1024))
print("rings_unused", int(s["rings"]["to_guest"]["frames"] == 0 and s["rings"]["from_guest"]["frames"] == 0))
PY
cat "$T_DIR/attach.check"
check "attach: the frames went through the fd (link counters), the rings stayed empty" \
  bash -c "grep -q '^to_guest_bytes_ok 1$' '$T_DIR/attach.check' && grep -q '^rings_unused 1$' '$T_DIR/attach.check'"

# --- virtio-net headers through the rings ----------------------------------------------
new_netns capivnet
start_bg vnet "$BRIDGE" --config "$T_DIR/gw.json" --netns /run/netns/capivnet --ifname eth0 --vnet-hdr 1 \
  --ready-file "$T_DIR/vnet.ready" --stats-file "$T_DIR/vnet-stats.json" --max-seconds 120
VNET_PID=$BG_PID
check "vnet: ready" wait_for 10 test -s "$T_DIR/vnet.ready"
setup_guest capivnet
ip netns exec capivnet ethtool -k eth0 2>/dev/null | grep -E '^(tcp-segmentation-offload|tx-checksumming):' || true
check "vnet: guest pings the gateway" ip netns exec capivnet ping -c 2 -W 3 100.96.0.1
want4="$("$NP" expect-sha --bytes 4M --seed 11)"
r4="$(ip netns exec capivnet "$NP" send --host 100.96.0.1 --port 18082 --bytes 4M --seed 11 --max-seconds 60 2>>"$T_DIR/send.log" || true)"
check "vnet: 4 MiB upload (guest TSO super-frames) + half-close reply = '$want4' (got '$r4')" test "$r4" = "$want4"
set +e
ip netns exec capivnet curl -sS --max-time 30 -o "$T_DIR/blob-vnet.bin" http://100.96.0.1:18080/blob.bin; c=$?
set -e
check "vnet: 2 MiB download succeeds (rc $c)" test $c -eq 0
check "vnet: 2 MiB body sha256 matches" test "$(sha256sum < "$T_DIR/blob-vnet.bin" | cut -d' ' -f1)" = "$want_blob"
set +e
ip netns exec capivnet curl -sS --max-time 60 -o "$T_DIR/big-vnet.bin" http://100.96.0.1:18080/big.bin; c=$?
set -e
check "vnet: 24 MiB bulk download (TSO super-frames to the guest) succeeds (rc $c)" test $c -eq 0
check "vnet: 24 MiB body sha256 matches" test "$(sha256sum < "$T_DIR/big-vnet.bin" | cut -d' ' -f1)" = "$want_big"
rm -f "$T_DIR/big-vnet.bin"
stop_bridge "$VNET_PID" vnet
grep 'gso frames' "$T_DIR/vnet.log" || true
check "vnet: the guest sent GSO super-frames through the rings" \
  bash -c "grep -Eq 'gso frames to moat [1-9][0-9]*,' '$T_DIR/vnet.log'"
check "vnet: moat sent TSO super-frames to the guest through the rings (pulled with gso_type set)" \
  bash -c "grep -Eq 'gso frames to moat [0-9]+, to tap [1-9][0-9]*' '$T_DIR/vnet.log'"
python3 - "$T_DIR/vnet-stats.json" > "$T_DIR/vnet.check" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
print("vnet_hdr_drops", s["drops"]["vnet_hdr"])
print("gso_to_guest_ok", int(s["counters"].get("link.to_guest.gso_frames", 0) > 0))
PY
cat "$T_DIR/vnet.check"
check "vnet: no drop.vnet_hdr" grep -q '^vnet_hdr_drops 0$' "$T_DIR/vnet.check"
check "vnet: link.to_guest.gso_frames > 0" grep -q '^gso_to_guest_ok 1$' "$T_DIR/vnet.check"

# --- attach_fd with an IFF_VNET_HDR TAP: TSO to the guest over the attached fd -------------
new_netns capiattvnet
start_bg attvnet "$BRIDGE" --config "$T_DIR/gw.json" --netns /run/netns/capiattvnet --ifname eth0 --attach 1 --vnet-hdr 1 \
  --ready-file "$T_DIR/attvnet.ready" --stats-file "$T_DIR/attvnet-stats.json" --max-seconds 120
ATTVNET_PID=$BG_PID
check "attach+vnet: ready" wait_for 10 test -s "$T_DIR/attvnet.ready"
setup_guest capiattvnet
check "attach+vnet: guest pings the gateway" ip netns exec capiattvnet ping -c 2 -W 3 100.96.0.1
set +e
ip netns exec capiattvnet curl -sS --max-time 60 -o "$T_DIR/big-att.bin" http://100.96.0.1:18080/big.bin; c=$?
set -e
check "attach+vnet: 24 MiB download succeeds (rc $c)" test $c -eq 0
check "attach+vnet: 24 MiB body sha256 matches" test "$(sha256sum < "$T_DIR/big-att.bin" | cut -d' ' -f1)" = "$want_big"
rm -f "$T_DIR/big-att.bin"
stop_bridge "$ATTVNET_PID" attach+vnet
python3 - "$T_DIR/attvnet-stats.json" > "$T_DIR/attvnet.check" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
print("gso_to_guest_ok", int(s["counters"].get("link.to_guest.gso_frames", 0) > 0))
print("vnet_hdr_drops", s["drops"]["vnet_hdr"])
PY
cat "$T_DIR/attvnet.check"
check "attach+vnet: TSO super-frames went to the attached TAP, no drop.vnet_hdr" \
  bash -c "grep -q '^gso_to_guest_ok 1$' '$T_DIR/attvnet.check' && grep -q '^vnet_hdr_drops 0$' '$T_DIR/attvnet.check'"
finish
