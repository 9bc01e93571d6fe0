#!/usr/bin/env bash
# moat-it-timeout: 280
# The edges of TLS interception (SPEC R-TLS-7, R-TLS-8, R-DNS-9), through `moat run --tls
# --tls-ephemeral-ca` (seccomp on, as by default) against peers in this test's namespace:
#   QUIC: UDP to :443 is refused (ECONNREFUSED in the guest) and counted tls.quic_blocked;
#         --allow-quic lets it reach a UDP echo.
#   CONNECT: through tools/connect_proxy.py, HTTPS to an allowed host is intercepted inside
#         the tunnel (the guest sees moat's leaf, the upstream is verified against the test
#         CA); a target denied by policy gets 403 + X-Moat-Deny from moat and the proxy never
#         sees it; a malformed CONNECT gets 400; a ClientHello for another name in the tunnel
#         closes it with audit connect_sni_mismatch.
#   DoT:  kdig +tls to the gateway or any address is answered through moat's DNS (verified
#         with the merged CA bundle, by name and by address; a direct query goes to that
#         resolver, R-DNS-3 step 5); block-listed names are NXDOMAIN; without --tls TCP/853
#         is refused.
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_lib.sh"
PKI="$T_DIR/pki"

tls_make_ca "$PKI"
tls_make_cert "$PKI" api "DNS:api.test,IP:44.7.0.1"
tls_internet api.test=44.7.0.1 proxy.test=44.7.0.5
check "server: https echo"    tls_start_https_echo api 44.7.0.1 443 "$PKI/api.pem" "$PKI/api.key"
check "server: CONNECT proxy" tls_start_connect_proxy proxy 44.7.0.5 3128 --map api.test=44.7.0.1 \
  --map denied.test=44.7.0.1 --map other.test=44.7.0.1
# A UDP echo on 44.7.0.1:443 (what --allow-quic should reach), bounded in time.
start_bg udpecho timeout 200 "$TLS_PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('44.7.0.1', 443))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b'echo ' + d, a)
"
# A resolver at another address (R-DNS-3 step 5: moat asks it itself), plain DNS on :53.
tls_add_name direct.test 44.7.0.99
start_bg direct "$TLS_PY" "$TLS_TOOLS/dnszone.py" --bind 44.7.0.99 --port 53 --log "$T_DIR/direct.q" \
  --ready-file "$T_DIR/direct.ready" --max-seconds 200
check "server: direct resolver" wait_for 10 test -s "$T_DIR/direct.ready"
tls_intercept_flags "$PKI"

# Guest-side probes.
cat > "$T_DIR/probe.py" <<'PY'
import socket, sys
what = sys.argv[1]
if what == "udp":  # one datagram to 44.7.0.1:443 on a connected socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect(("44.7.0.1", 443))
    try:
        s.send(b"quic?")
        print("udp", s.recv(100).decode())
    except ConnectionRefusedError:
        print("udp refused")
    except socket.timeout:
        print("udp timeout")
elif what == "raw":  # a raw request head to the proxy; the answer's status line and headers
    s = socket.create_connection(("proxy.test", 3128), timeout=5)
    s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    print("raw " + " | ".join(head.split("\r\n")))
elif what == "dot-refused":
    try:
        socket.create_connection(("44.7.0.99", 853), timeout=3).close()
        print("dot connected")
    except ConnectionRefusedError:
        print("dot refused")
    except OSError as e:
        print("dot", type(e).__name__)
PY

C="curl -sS --max-time 15"
cat > "$T_DIR/guest.sh" <<EOF
$TLS_PY $T_DIR/probe.py udp
echo "proxy \$($C -x http://proxy.test:3128 -o $T_DIR/via-proxy.json -w '%{http_code}' https://api.test/via-proxy)"
openssl s_client -proxy proxy.test:3128 -connect api.test:443 -servername api.test -verify_return_error \
  < /dev/null > $T_DIR/sclient-proxy.txt 2>&1; echo "sclient \$?"
echo "deny \$($C -x http://proxy.test:3128 -o /dev/null -w '%{http_connect}' https://denied.test/ 2>/dev/null)"
$TLS_PY $T_DIR/probe.py raw 'CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n'
$TLS_PY $T_DIR/probe.py raw 'CONNECT denied.test HTTP/1.1\r\n\r\n'
openssl s_client -proxy proxy.test:3128 -connect api.test:443 -servername other.test \
  < /dev/null > $T_DIR/sclient-mismatch.txt 2>&1; echo "mismatch \$?"
echo "dot \$(kdig +timeout=3 +retry=0 +tls @100.96.0.1 api.test A +short 2>&1 | tr '\n' ' ')"
echo "dotname \$(kdig +timeout=3 +retry=0 +tls-ca +tls-hostname=dns.example @100.96.0.1 api.test A +short 2>&1 | tr '\n' ' ')"
echo "dotip \$(kdig +timeout=3 +retry=0 +tls-ca @100.96.0.1 api.test A +short 2>&1 | tr '\n' ' ')"
echo "dotany \$(kdig +timeout=3 +retry=0 +tls-ca @44.7.0.99 www.example.com A +short 2>&1 | tr '\n' ' ')"
echo "dotblocked \$(kdig +timeout=3 +retry=0 +tls @44.7.0.99 blocked.test A 2>&1 | grep -o 'status: [A-Z]*')"
exit 0
EOF
tls_run guest "${TLS_INTERCEPT[@]}" --log-level debug --rule deny@denied.test --dns-block blocked.test \
  --audit "$T_DIR/audit.jsonl" -- "sh $T_DIR/guest.sh"
check "moat run --tls exits 0" test "$TLS_RC" -eq 0
has() { grep -q -- "$1" "$T_DIR/guest.out"; }
counter() { grep -o "$1=[0-9]*" "$T_DIR/guest-moat.log" | tail -n 1 | cut -d= -f2; }

# R-TLS-7
check "QUIC: UDP to :443 is refused in the guest" has "^udp refused$"
check "QUIC: counted tls.quic_blocked ($(counter tls.quic_blocked))" test "$(counter tls.quic_blocked)" = 1

# R-TLS-8
check "CONNECT: HTTPS through the proxy, intercepted" has "^proxy 200$"
check "CONNECT: the echo answered inside the tunnel" grep -q '"path": "/via-proxy"' "$T_DIR/via-proxy.json"
check "CONNECT: the guest saw moat's leaf (issuer moat interception CA)" \
  grep -q "issuer=.*moat interception CA" "$T_DIR/sclient-proxy.txt"
check "CONNECT: ... and verified it through the merged bundle" has "^sclient 0$"
check "CONNECT: the upstream saw moat (SNI api.test) through the proxy" \
  bash -c "grep '\"path\": \"/via-proxy\"' '$T_DIR/api.jsonl' | grep -q '\"sni\": \"api.test\"'"
check "CONNECT: the proxy logged the allowed CONNECT" grep -q '"line": "CONNECT api.test:443 HTTP/1.1".*"result": "ok"' "$T_DIR/proxy.jsonl"
check "CONNECT: a denied target gets 403 (curl)" has "^deny 403$"
check "CONNECT: 403 Forbidden with X-Moat-Deny naming the rule" \
  bash -c "grep -q '^raw HTTP/1.1 403 Forbidden | X-Moat-Deny: [0-9][0-9]* ' '$T_DIR/guest.out'"
check "CONNECT: the proxy never saw the denied target" bash -c "! grep -q 'denied.test' '$T_DIR/proxy.jsonl'"
check "CONNECT: a malformed CONNECT gets 400" has "^raw HTTP/1.1 400 Bad Request "
check "CONNECT: a ClientHello for another name closes the tunnel" bash -c "grep -q '^mismatch ' '$T_DIR/guest.out' && ! grep -q '^mismatch 0$' '$T_DIR/guest.out'"
check "CONNECT: audit connect_sni_mismatch" grep -q '"ev": *"connect_sni_mismatch"' "$T_DIR/audit.jsonl"
check "CONNECT: counted tls.connect.denied" test "$(counter tls.connect.denied)" -ge 2

# R-DNS-9
check "DoT: kdig +tls to the gateway gets moat's answer" has "^dot 44.7.0.1 $"
check "DoT: verified by name with the merged bundle" has "^dotname 44.7.0.1 $"
check "DoT: verified by address (IP-SAN leaf)" has "^dotip 44.7.0.1 $"
check "DoT: to any address, verified, answered through moat's DNS" has "^dotany 93.184.216.34 $"
check "DoT: ... which asked that resolver itself (R-DNS-3 step 5, over TCP)" grep -q "^tcp www.example.com 1$" "$T_DIR/direct.q"
check "DoT: block-listed names are NXDOMAIN" has "^dotblocked status: NXDOMAIN$"
check "DoT: the queries went through moat's DNS (upstream asked for api.test)" grep -q "api.test" "$T_DIR/tls-dns.q"
check "DoT: the blocked name never reached the upstream" bash -c "! grep -q 'blocked.test' '$T_DIR/tls-dns.q'"
check "DoT: counted tls.dot.sessions" test "$(counter tls.dot.sessions)" -ge 3

# Without --tls: no QUIC blocking, DoT refused.
printf '%s\n' "$TLS_PY $T_DIR/probe.py udp" "$TLS_PY $T_DIR/probe.py dot-refused" "exit 0" > "$T_DIR/plain.sh"
tls_run plain -- "sh $T_DIR/plain.sh"
check "no --tls: UDP :443 reaches the echo" grep -q "^udp echo quic?$" "$T_DIR/plain.out"
check "no --tls: DoT (TCP/853) is refused" grep -q "^dot refused$" "$T_DIR/plain.out"

# --allow-quic: interception on, QUIC let through.
tls_run allowquic "${TLS_INTERCEPT[@]}" --allow-quic -- "$TLS_PY $T_DIR/probe.py udp"
check "--allow-quic: UDP :443 reaches the echo" grep -q "^udp echo quic?$" "$T_DIR/allowquic.out"

finish
