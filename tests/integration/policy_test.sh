#!/usr/bin/env bash
# moat-it-timeout: 300
# Policy enforcement end to end (SPEC §2.3, §2.4, R-POL-5/7/9/10, R-OBS-3): servers on
# public-looking (44.1.1.x), private (10.5.0.1) and metadata (169.254.169.254) addresses of a
# veth interface in this test's own namespace, plus host loopback behind the gateway.
#   default posture: public allowed; private, metadata and host refused at once (RST ->
#     ECONNREFUSED; UDP and ping -> ICMP administratively prohibited); DNS via the gateway works;
#   --rule allow/deny by CIDR, group, port and protocol;
#   --deny-response drop: the same refusals become timeouts;
#   deny by SNI / Host on an allowed address (gate path), a server-first banner through the gate;
#   published-port ingress decided by --default-ingress and ingress rules;
#   audit lines (flow_open / flow_deny / flow_close) checked with python.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"

ip link add pub0 type veth peer name pub1  # (no dummy module everywhere; a veth end holds the addresses)
ip link set pub1 up
ip link set pub0 up
for a in 44.1.1.1 44.1.1.2 10.5.0.1 169.254.169.254; do ip addr add "$a/32" dev pub0; done
sysctl -qw net.ipv4.ping_group_range="0 2147483647"  # the ICMP echo relay (R-ICMP-2)

www="$T_DIR/www"; mkdir -p "$www"; echo "policy test page" > "$www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=moat-test \
  -keyout "$T_DIR/key.pem" -out "$T_DIR/cert.pem" 2>/dev/null
start_bg http-pub timeout 200 python3 -m http.server --bind 44.1.1.1 --directory "$www" 8080
start_bg http-priv timeout 200 python3 -m http.server --bind 10.5.0.1 --directory "$www" 8080
start_bg http-meta timeout 200 python3 -m http.server --bind 169.254.169.254 --directory "$www" 8080
start_bg http-host timeout 200 python3 -m http.server --bind 127.0.0.1 --directory "$www" 18080
start_bg tls timeout 200 openssl s_server -accept 44.1.1.2:8443 -cert "$T_DIR/cert.pem" -key "$T_DIR/key.pem" -www -quiet
start_bg banner "$NP" serve-hold --bind 44.1.1.1 --port 2222 --max-seconds 200
start_bg udp-pub "$NP" udp-echo --bind 44.1.1.1 --port 5000 --max-seconds 200
start_bg udp-priv "$NP" udp-echo --bind 10.5.0.1 --port 5000 --max-seconds 200
start_bg dns "$NP" dns --port 15353 --name moat-test.example.com --addr 44.1.1.1 --ready-file "$T_DIR/dns.ready" --max-seconds 200
check "servers ready" wait_for 15 bash -c "test -s '$T_DIR/dns.ready' && curl -sf -o /dev/null http://44.1.1.1:8080/ \
  && curl -sf -o /dev/null http://10.5.0.1:8080/ && curl -sf -o /dev/null http://169.254.169.254:8080/ \
  && curl -sf -o /dev/null http://127.0.0.1:18080/ && curl -skf -o /dev/null https://44.1.1.2:8443/"

# run NAME MOAT-FLAGS... -- SCRIPT: one sandbox; guest output in $T_DIR/NAME.out.
run() {
  local name="$1"; shift
  local args=()
  while [[ "$1" != "--" ]]; do args+=("$1"); shift; done
  shift
  set +e
  timeout 120 "$MOAT" run --dns-upstream 127.0.0.1:15353 "${args[@]}" -- sh -c "$1" > "$T_DIR/$name.out" 2> "$T_DIR/$name-moat.log"
  local rc=$?
  set -e
  sed "s/^/[$name] /" "$T_DIR/$name.out"
  check "$name: moat run exits 0 (got $rc)" test $rc -eq 0
}
refused_fast() { awk -v t="$3" 'BEGIN { exit !(t < 1.0) }' && test "$2" = ECONNREFUSED; }
has() { grep -q -- "$2" "$T_DIR/$1.out"; }

# --- 1. Default posture (profile public), with the audit log.
run default --audit "$T_DIR/default.jsonl" -- "
  curl -sS --max-time 5 -o /dev/null -w 'pub %{http_code}\n' http://44.1.1.1:8080/
  '$NP' connect --host 10.5.0.1 --port 8080 --timeout 5 | sed 's/^/priv /'
  '$NP' connect --host 169.254.169.254 --port 8080 --timeout 5 | sed 's/^/meta /'
  '$NP' connect --host 100.96.0.1 --port 18080 --timeout 5 | sed 's/^/host /'
  '$NP' udp-ping --host 44.1.1.1 --port 5000 --count 2 --timeout 3 | sed 's/^/udppub /'
  '$NP' udp-ping --host 10.5.0.1 --port 5000 --count 1 --timeout 3 | sed 's/^/udppriv /'
  ping -c 1 -W 3 44.1.1.1 > /dev/null && echo 'pingpub OK'
  ping -c 1 -W 3 10.5.0.1 2>&1 | grep -qi 'filtered' && echo 'pingpriv FILTERED'
  echo \"dns \$(kdig +timeout=3 +retry=0 @100.96.0.1 moat-test.example.com A +short)\"
"
check "default: public HTTP allowed"                    has default "^pub 200"
check "default: private refused at once"                refused_fast $(grep '^priv ' "$T_DIR/default.out")
check "default: metadata refused at once"               refused_fast $(grep '^meta ' "$T_DIR/default.out")
check "default: host (gateway) refused at once"         refused_fast $(grep '^host ' "$T_DIR/default.out")
check "default: public UDP allowed"                     has default "^udppub OK 2/2"
check "default: private UDP -> admin prohibited"        has default "^udppriv ERROR EHOSTUNREACH"
check "default: ping public relayed"                    has default "^pingpub OK"
check "default: ping private -> packet filtered"        has default "^pingpriv FILTERED"
check "default: DNS through the gateway"                has default "^dns 44.1.1.1"

# The audit lines: valid JSON, one per line, with the deciding rules.
cat > "$T_DIR/audit_check.py" <<'PY'
import json, sys
path, want = sys.argv[1], sys.argv[2]
ev = [json.loads(l) for l in open(path)]
def matches(e, k, v):  # a dict value matches member by member (the "rule" object)
    return all((e.get(k) or {}).get(a) == b for a, b in v.items()) if isinstance(v, dict) else e.get(k) == v
def find(**kw):
    return next((e for e in ev if all(matches(e, k, v) for k, v in kw.items())), None)
checks = {
  "open_public": lambda: find(ev="flow_open", dst="44.1.1.1:8080", verdict="allow", path="fast",
                              rule={"origin": "profile", "text": "allow@public"}),
  "close_public": lambda: [e for e in ev if e["ev"] == "flow_close" and e["dst"] == "44.1.1.1:8080"
                           and e["close"] == "fin" and e["bytes_to_guest"] > 0 and e["bytes_from_guest"] > 0
                           and e["duration_ms"] >= 0],
  "deny_private": lambda: find(ev="flow_deny", proto="tcp", dst="10.5.0.1:8080", verdict="deny",
                               rule={"origin": "default", "index": None}),
  "deny_host": lambda: find(ev="flow_deny", dst="100.96.0.1:18080", verdict="deny"),
  "deny_udp": lambda: find(ev="flow_deny", proto="udp", dst="10.5.0.1:5000"),
  "deny_icmp": lambda: find(ev="flow_deny", proto="icmp", dst="10.5.0.1"),
  "open_udp": lambda: find(ev="flow_open", proto="udp", dst="44.1.1.1:5000", verdict="allow"),
  "deny_sni": lambda: find(ev="flow_deny", dst="44.1.1.2:8443", name="blocked.example", name_src="sni",
                           path="gate", rule={"origin": "cli", "text": "deny@blocked.example"}),
  "deny_host_header": lambda: find(ev="flow_deny", dst="44.1.1.1:8080", name="blocked.example", name_src="host"),
  "open_inspect": lambda: find(ev="flow_open", dst="44.1.1.2:8443", path="inspect", name="ok.example",
                               name_src="sni", rule={"origin": "cli", "text": "allow@ok.example:tcp:8443+2222"}),
  "open_shared": lambda: find(ev="flow_open", dst="44.1.1.2:8443", path="inspect", name="ok.example",
                              name_src="sni", rule={"text": "allow@ok.example:tcp:8443"}),
  "common": lambda: all(set(e) >= {"ts", "gw", "ev"} and e["ts"].endswith("Z") and len(e["ts"]) == 27 for e in ev),
}
sys.exit(0 if checks[want]() else 1)
PY
ac() { python3 "$T_DIR/audit_check.py" "$T_DIR/$1.jsonl" "$2"; }
check "audit: every line is JSON with ts (RFC 3339 µs), gw, ev" ac default common
check "audit: flow_open for public HTTP, rule allow@public (profile), path fast" ac default open_public
check "audit: flow_close with byte counts, duration and close=fin" ac default close_public
check "audit: flow_deny for private TCP by the default" ac default deny_private
check "audit: flow_deny for the host service"             ac default deny_host
check "audit: flow_deny for private UDP"                  ac default deny_udp
check "audit: flow_deny for the private ping"             ac default deny_icmp
check "audit: flow_open for the public UDP peer"          ac default open_udp
check "audit file mode is 0600" test "$(stat -c %a "$T_DIR/default.jsonl")" = 600

# --- 2. Explicit rules by CIDR, group, port and protocol (before the default profile).
run rules --rule allow@10.5.0.0/16:tcp:8080 --rule deny@44.1.1.1:tcp:8080 --rule allow@host:tcp:18080 \
    --rule allow@private:udp -- "
  curl -sS --max-time 5 -o /dev/null -w 'priv %{http_code}\n' http://10.5.0.1:8080/
  '$NP' connect --host 44.1.1.1 --port 8080 --timeout 5 | sed 's/^/pub /'
  curl -sS --max-time 5 -o /dev/null -w 'host %{http_code}\n' http://100.96.0.1:18080/
  '$NP' connect --host 169.254.169.254 --port 8080 --timeout 5 | sed 's/^/meta /'
  '$NP' udp-ping --host 10.5.0.1 --port 5000 --count 2 --timeout 3 | sed 's/^/udppriv /'
  '$NP' connect --host 44.1.1.1 --port 2222 --timeout 5 | sed 's/^/pubother /'
"
check "rules: allow@10.5.0.0/16:tcp:8080 opens private HTTP" has rules "^priv 200"
check "rules: deny@44.1.1.1:tcp:8080 refuses that public port" refused_fast $(grep '^pub ' "$T_DIR/rules.out")
check "rules: allow@host:tcp:18080 reaches host loopback"     has rules "^host 200"
check "rules: metadata still refused (not private)"           refused_fast $(grep '^meta ' "$T_DIR/rules.out")
check "rules: allow@private:udp opens private UDP"            has rules "^udppriv OK 2/2"
check "rules: another port of 44.1.1.1 still allowed"         has rules "^pubother OK"

# --- 3. deny_response = drop: refusals become silence (timeouts).
run drop --deny-response drop -- "
  '$NP' connect --host 10.5.0.1 --port 8080 --timeout 2 | sed 's/^/priv /'
  '$NP' udp-ping --host 10.5.0.1 --port 5000 --count 1 --timeout 2 | sed 's/^/udppriv /'
  ping -c 1 -W 2 10.5.0.1 2>&1 | grep -qi 'filtered' && echo 'pingpriv FILTERED'
  curl -sS --max-time 5 -o /dev/null -w 'pub %{http_code}\n' http://44.1.1.1:8080/
"
check "drop: private TCP times out instead of RST"  has drop "^priv TIMEOUT"
check "drop: private UDP times out"                 has drop "^udppriv TIMEOUT"
check "drop: no ICMP for the private ping"          bash -c "! grep -q pingpriv '$T_DIR/drop.out'"
check "drop: public still allowed"                  has drop "^pub 200"

# --- 4. Deny by name on an allowed address (gate path); a server-first banner is not delayed.
run sni --rule deny@blocked.example --audit "$T_DIR/sni.jsonl" -- "
  openssl s_client -connect 44.1.1.2:8443 -servername ok.example < /dev/null > /dev/null 2>&1; echo \"tlsok \$?\"
  openssl s_client -connect 44.1.1.2:8443 -servername blocked.example < /dev/null > /dev/null 2>&1; echo \"tlsblocked \$?\"
  curl -sS --max-time 5 -o /dev/null -w 'httpok %{http_code}\n' http://44.1.1.1:8080/
  curl -sS --max-time 5 -o /dev/null -H 'Host: blocked.example' http://44.1.1.1:8080/ 2>/dev/null; echo \"httpblocked \$?\"
  '$NP' connect --host 44.1.1.1 --port 2222 --greeting --timeout 3 | sed 's/^/banner /'
"
check "sni: TLS with an allowed SNI completes"             has sni "^tlsok 0"
check "sni: TLS with SNI blocked.example is reset"        bash -c "grep -q '^tlsblocked [1-9]' '$T_DIR/sni.out'"
check "sni: HTTP without a name allowed"                   has sni "^httpok 200"
check "sni: HTTP with Host: blocked.example is reset"      bash -c "grep -q '^httpblocked [1-9]' '$T_DIR/sni.out'"
check "sni: server-first banner arrives on the gate path"  has sni "^banner OK"
check "audit: flow_deny names the SNI, the gate path and deny@blocked.example" ac sni deny_sni
check "audit: flow_deny for the Host header"                                   ac sni deny_host_header

# --- 5. Inspect path (R-TCP-5): the default denies, a name could allow. With
# policy.sni_requires_pin = false (config file) an SNI alone can allow, so no DNS pin is
# needed here: moat completes the handshake, reads the first flight, dials only on allow.
printf '[policy]\nsni_requires_pin = false\nfirst_flight_timeout = "500ms"\n' > "$T_DIR/inspect.toml"
run inspect --config "$T_DIR/inspect.toml" --default-egress deny --rule allow@ok.example:tcp:8443+2222 \
    --audit "$T_DIR/inspect.jsonl" -- "
  openssl s_client -connect 44.1.1.2:8443 -servername ok.example < /dev/null > /dev/null 2>&1; echo \"tlsok \$?\"
  openssl s_client -connect 44.1.1.2:8443 -servername other.example < /dev/null > /dev/null 2>&1; echo \"tlsother \$?\"
  curl -sk --max-time 5 -o /dev/null https://44.1.1.2:8443/ 2>/dev/null; echo \"tlsnosni \$?\"
  '$NP' connect --host 44.1.1.1 --port 2222 --greeting --timeout 3 | sed 's/^/banner /'
  '$NP' connect --host 44.1.1.1 --port 8080 --timeout 5 | sed 's/^/http /'
"
check "inspect: TLS with SNI ok.example is dialled and completes" has inspect "^tlsok 0"
check "inspect: another SNI is reset"                  bash -c "grep -q '^tlsother [1-9]' '$T_DIR/inspect.out'"
check "inspect: no SNI (IP literal) is reset"          bash -c "grep -q '^tlsnosni [1-9]' '$T_DIR/inspect.out'"
check "inspect: a server-first client is refused after the first-flight timeout" \
  bash -c "grep -q '^banner GREETING' '$T_DIR/inspect.out'"
check "inspect: a port no name can open is rejected at SYN" refused_fast $(grep '^http ' "$T_DIR/inspect.out")
check "audit: flow_open on the inspect path names the SNI and the rule" ac inspect open_inspect

# --- 6. Pins (R-POL-7): allow-by-name needs the address to have been resolved through moat.
if "$MOAT" run --help 2>&1 | grep -q -- --dns-host; then
  # No lookup through moat (curl --resolve): no pin, so no name can allow -> refused at SYN.
  # A lookup through moat pins ok.example -> 44.1.1.2: then it is allowed. An SNI of
  # ok.example towards an address never resolved to it (44.1.1.1) is refused: the spoof defence.
  run pins --default-egress deny --rule allow@ok.example:tcp:8443+8080 --dns-host ok.example=44.1.1.2 -- "
    curl -sk --max-time 5 --resolve ok.example:8443:44.1.1.2 -o /dev/null https://ok.example:8443/ 2>/dev/null; echo \"resolve \$?\"
    curl -sk --max-time 5 -o /dev/null -w 'dns %{http_code}\n' https://ok.example:8443/
    '$NP' connect --host 44.1.1.1 --port 8080 --timeout 5 | sed 's/^/spoof /'
    curl -sS --max-time 5 -o /dev/null -H 'Host: ok.example' http://44.1.1.1:8080/ 2>/dev/null; echo \"spoofhost \$?\"
  "
  check "pins: curl --resolve (no pin) is refused"              has pins "^resolve 7"
  check "pins: curl resolving through moat (pinned) succeeds"  has pins "^dns 200"
  check "pins: an unpinned address is refused at once"        refused_fast $(grep '^spoof ' "$T_DIR/pins.out")
  check "pins: Host: ok.example on an unpinned address refused" bash -c "grep -q '^spoofhost [1-9]' '$T_DIR/pins.out'"
  # A shared address (a CDN) pinned to a denied and an allowed name: V0 (pins only) is deny,
  # the allowed SNI opens it on the inspect path, the denied SNI does not. (bad.example must
  # resolve to be pinned, hence its UDP allow: R-POL-8 ignores the protocol for queries.)
  run shared --default-egress deny --rule allow@bad.example:udp --rule deny@bad.example:tcp --rule allow@ok.example:tcp:8443 \
      --dns-host ok.example=44.1.1.2 --dns-host bad.example=44.1.1.2 --audit "$T_DIR/shared.jsonl" -- "
    kdig +timeout=3 +retry=0 @100.96.0.1 ok.example A +short > /dev/null
    kdig +timeout=3 +retry=0 @100.96.0.1 bad.example A +short > /dev/null
    openssl s_client -connect 44.1.1.2:8443 -servername ok.example < /dev/null > /dev/null 2>&1; echo \"tlsok \$?\"
    openssl s_client -connect 44.1.1.2:8443 -servername bad.example < /dev/null > /dev/null 2>&1; echo \"tlsbad \$?\"
  "
  check "shared: the allowed SNI passes (inspect path)" has shared "^tlsok 0"
  check "shared: the denied SNI is reset"               bash -c "grep -q '^tlsbad [1-9]' '$T_DIR/shared.out'"
  check "audit: inspect-path flow_open for the pinned, allowed SNI" ac shared open_shared
else
  echo "SKIP: pins (this moat has no DNS forwarder yet)"
fi

# --- 7. Ingress (R-POL-11): published ports are decided with the peer address and guest port.
ingress() {  # NAME MOAT-FLAGS...: publish 127.0.0.1:18500 -> guest 80; the host fetches.
  local name="$1"; shift
  start_bg "$name-moat" timeout 60 "$MOAT" run --dns-upstream 127.0.0.1:15353 --ready-file "$T_DIR/$name.ready" \
    -p 127.0.0.1:18500:80 "$@" -- sh -c "timeout 30 python3 -m http.server --bind 0.0.0.0 --directory '$www' 80 &
      until (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null; do sleep 0.1; done; touch '$T_DIR/$name.up'; wait"
  local pid=$BG_PID
  wait_for 15 test -s "$T_DIR/$name.ready" -a -e "$T_DIR/$name.up" || true
  set +e
  curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:18500/ > "$T_DIR/$name.out" 2>/dev/null
  echo " $?" >> "$T_DIR/$name.out"
  set -e
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sed "s/^/[$name] /" "$T_DIR/$name.out"; echo
}
ingress ing-default
check "ingress: allowed by default (profile public)"        grep -q "^200 0" "$T_DIR/ing-default.out"
ingress ing-deny --default-ingress deny
check "ingress: --default-ingress deny closes the connection" bash -c "! grep -q '^200' '$T_DIR/ing-deny.out'"
ingress ing-rule --default-ingress deny --rule allow:ingress@loopback:tcp:80
check "ingress: allow:ingress@loopback:tcp:80 opens it again" grep -q "^200 0" "$T_DIR/ing-rule.out"

finish
