#!/usr/bin/env bash
# moat_control and runtime publishing through the C ABI (R-ABI-2, R-CTL-2/3, R-PUB-6):
# examples/moat-capi-tap bridges a TAP in a namespace this test creates (the kernel plays the
# guest, running a TCP sink on port 80) and answers control requests from a FIFO with
# moat_control(). The test publishes a host port at runtime, moves data host -> guest
# through it, holds a connection open across `unpublish` (it must survive while new
# connections are refused), reads policy.get / policy.explain and dns.pins (after a guest
# lookup through the gateway), and checks the audit trail.
# moat-it-timeout: 120
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
BRIDGE="$(readlink -f "$(dirname "$MOAT")/../../examples/moat-capi-tap")"
[[ -x "$BRIDGE" ]] || { echo "FAIL: $BRIDGE not built"; exit 1; }

start_bg dns "$NP" dns --port 15353 --ready-file "$T_DIR/dns.ready" --max-seconds 110
check "dns upstream ready" wait_for 10 test -s "$T_DIR/dns.ready"
cat > "$T_DIR/gw.json" <<JSON
{
  "net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}},
  "dns": {"upstreams": ["127.0.0.1:15353"]},
  "policy": {"rules": ["allow@*.github.com:tcp:443"]},
  "audit": {"file": "$T_DIR/audit.jsonl"}
}
JSON
mkfifo "$T_DIR/ctl.in"
exec 3<>"$T_DIR/ctl.in"  # read-write: writing never blocks, even if the bridge is gone
: > "$T_DIR/ctl.out"
new_netns capictl
start_bg bridge "$BRIDGE" --config "$T_DIR/gw.json" --netns /run/netns/capictl --ifname eth0 \
  --control-in "$T_DIR/ctl.in" --control-out "$T_DIR/ctl.out" --ready-file "$T_DIR/bridge.ready" --max-seconds 100
BRIDGE_PID=$BG_PID
check "moat-capi-tap ready" wait_for 10 test -s "$T_DIR/bridge.ready"
G() { ip netns exec capictl "$@"; }
G ip link set eth0 address 02:6d:6f:00:00:02
G ip link set eth0 up
G ip addr add 100.96.0.2/30 dev eth0
G ip route add default via 100.96.0.1
start_bg gsink ip netns exec capictl "$NP" serve-sink --port 80 --bind 0.0.0.0 --ready-file "$T_DIR/gsink.ready" --max-seconds 100
check "guest sink ready" wait_for 10 test -s "$T_DIR/gsink.ready"

# ctl ID JSON: sends one request, waits for the response line with that id, prints it.
ctl() {
  local id=$1 req=$2
  printf '%s\n' "$req" >&3
  wait_for 10 grep -q "^{\"id\":$id," "$T_DIR/ctl.out" || true
  grep "^{\"id\":$id," "$T_DIR/ctl.out" | head -1
}

r="$(ctl 1 '{"id":1,"method":"version"}')"
check "version answers with the ABI version (got $r)" bash -c "grep -q '\"abi\":1' <<< '$r'"
r="$(ctl 2 '{"id":2,"method":"publish","params":{"spec":"127.0.0.1:18090:80"}}')"
echo "$r"
check "publish at runtime -> listener reported" bash -c "grep -q 'tcp 127.0.0.1:18090 -> guest port 80' <<< '$r'"
r="$(ctl 3 '{"id":3,"method":"publish","params":{"spec":"127.0.0.1:18090:81"}}')"
check "publishing the same host port again -> conflict (got $r)" bash -c "grep -q '\"code\":\"conflict\"' <<< '$r'"

want="$("$NP" expect-sha --bytes 1M --seed 3)"
got="$("$NP" send --host 127.0.0.1 --port 18090 --bytes 1M --seed 3 --max-seconds 30 2>>"$T_DIR/send.log" || true)"
check "1 MiB host -> guest through the runtime-published port (want '$want', got '$got')" test "$got" = "$want"

# A connection held open across unpublish: half before, half after; the guest's reply must
# match what was sent.
cat > "$T_DIR/hold.py" <<'PY'
import hashlib, os, socket, sys, time
d = sys.argv[1]
s = socket.create_connection(("127.0.0.1", 18090), timeout=20)
part = os.urandom(512 * 1024)
h = hashlib.sha256()
s.sendall(part); h.update(part)
open(os.path.join(d, "phase1"), "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
    time.sleep(0.05)
s.sendall(part); h.update(part)
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    reply += b
want = f"{2 * len(part)} {h.hexdigest()}"
print("OK" if reply.decode().strip() == want else f"MISMATCH want '{want}' got '{reply.decode().strip()}'")
PY
start_bg hold timeout 60 python3 "$T_DIR/hold.py" "$T_DIR"
HOLD_PID=$BG_PID
check "held connection sent its first half" wait_for 20 test -e "$T_DIR/phase1"
r="$(ctl 4 '{"id":4,"method":"unpublish","params":{"spec":"127.0.0.1:18090:80/tcp"}}')"
check "unpublish closes one listener (got $r)" bash -c "grep -q '\"closed\":1' <<< '$r'"
c="$("$NP" connect --host 127.0.0.1 --port 18090 --timeout 3 || true)"
check "new connections are refused after unpublish (got '$c')" bash -c "grep -q '^ECONNREFUSED' <<< '$c'"
touch "$T_DIR/go"
set +e
wait "$HOLD_PID"
set -e
check "the connection established before unpublish completed intact" grep -qx OK "$T_DIR/hold.log"
r="$(ctl 5 '{"id":5,"method":"unpublish","params":{"spec":"127.0.0.1:18090:80"}}')"
check "unpublish of a spec no longer published -> not_found (got $r)" bash -c "grep -q '\"code\":\"not_found\"' <<< '$r'"

ans="$(G kdig @100.96.0.1 +notcp +timeout=3 +retry=1 moat-test.example.com A +short 2>&1 || true)"
check "guest resolves through the gateway (got '$ans')" test "$ans" = "93.184.216.34"
r="$(ctl 20 '{"id":20,"method":"dns.pins","params":{"name":"moat-test.example.com"}}')"
check "dns.pins lists the pin the answer created (got $r)" \
  bash -c "grep -q '\"name\":\"moat-test.example.com\",\"address\":\"93.184.216.34\",\"expires_in_s\":' <<< '$r'"
r="$(ctl 6 '{"id":6,"method":"policy.get"}')"
check "policy.get lists the config rule with its origin" \
  bash -c "grep -q '{\"index\":0,\"origin\":\"config\",\"rule\":\"allow@\*.github.com:tcp:443\"}' <<< '$r'"
r="$(ctl 7 '{"id":7,"method":"policy.set","params":{"policy":["deny@*.github.com","allow@public"]}}')"
check "policy.set swaps the policy (got $r)" bash -c "grep -q '\"result\":{\"rules\":' <<< '$r'"
r="$(ctl 8 '{"id":8,"method":"policy.explain","params":{"dst":"api.github.com:443","ip":"140.82.112.3"}}')"
check "policy.explain uses the new policy: denied by rule #0 (got $r)" \
  bash -c "grep -q '\"allowed\":false' <<< '$r' && grep -q '\"rule\":0' <<< '$r'"
r="$(ctl 9 '{"id":9,"method":"flows"}')"
check "a method this build lacks -> unknown_method (got $r)" bash -c "grep -q '\"code\":\"unknown_method\"' <<< '$r'"
r="$(ctl 10 '{"id":10,"method":"publish","params":{"spec":"nonsense"}}')"
check "a bad spec -> invalid_config naming it (got $r)" bash -c "grep -q '\"code\":\"invalid_config\",\"message\":\"publish \\\\\"nonsense\\\\\"' <<< '$r'"

kill -TERM "$BRIDGE_PID"
set +e
wait "$BRIDGE_PID"
brc=$?
set -e
check "moat-capi-tap exits 0 on SIGTERM (got $brc)" test $brc -eq 0
check "audit: config_change for publish, unpublish and policy.set, by control" bash -c "
  grep -q '\"ev\":\"config_change\",\"what\":\"publish 127.0.0.1:18090:80\",\"by\":\"control\"' '$T_DIR/audit.jsonl' &&
  grep -q '\"ev\":\"config_change\",\"what\":\"unpublish 127.0.0.1:18090:80/tcp\",\"by\":\"control\"' '$T_DIR/audit.jsonl' &&
  grep -q '\"ev\":\"config_change\",\"what\":\"policy.set\",\"by\":\"control\"' '$T_DIR/audit.jsonl'"
finish
