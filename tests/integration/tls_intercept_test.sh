#!/usr/bin/env bash
# moat-it-timeout: 280
# TLS interception (SPEC R-TLS-4/5/9) through `moat run --tls`: upstream servers of the
# test's own (tls_lib.sh: a test CA passed as --tls-extra-ca), clients inside the sandbox
# that trust moat's CA (a second test CA given as --tls-ca-cert/--tls-ca-key) and see moat's
# leaf, never the upstream's:
#   curl h1 and --http2 (h2 stays h2, ALPN and SNI carried upstream), an h2 download from
#   nghttpd, openssl s_client (SNI + ALPN, no SNI -> IP-SAN leaf), a bad-certificate host
#   (502 naming host and reason + the audit line), alert mode, bypass (the guest sees the
#   upstream's own certificate), no-verify, the key log (0600, tshark decrypts the pcap),
#   half-close, and garbage on port 443 closing only its own flow (counted). moat runs with
#   the default --seccomp on, so a syscall OpenSSL needs at runtime would kill it (SIGSYS).
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_lib.sh"
PKI="$T_DIR/pki"
MOATCA="$T_DIR/moatca"

tls_make_ca "$PKI" "upstream test CA"
tls_make_ca "$MOATCA" "moat interception test CA"
tls_make_cert "$PKI" api "DNS:api.test,IP:44.7.0.1"
tls_make_cert "$PKI" api2 "DNS:api2.test"
tls_make_cert "$PKI" www "DNS:www.test"
tls_make_cert "$PKI" h2 "DNS:h2.test"
tls_make_cert "$PKI" half "DNS:half.test"
tls_make_bad_certs "$PKI"
tls_internet api.test=44.7.0.1 www.test=44.7.0.2 h2.test=44.7.0.3 api2.test=44.7.0.11 \
  wrongname.test=44.7.0.8 untrusted.test=44.7.0.10 half.test=44.7.0.12
tls_make_file "$T_DIR/htdocs/file.bin" 4194304
check "server: https echo"    tls_start_https_echo api 44.7.0.1 443 "$PKI/api.pem" "$PKI/api.key"
check "server: https echo h2" tls_start_https_echo api2 44.7.0.11 443 "$PKI/api2.pem" "$PKI/api2.key" --alpn h2,http/1.1
check "server: s_server"      tls_start_s_server www 44.7.0.2 443 "$PKI/www.pem" "$PKI/www.key"
check "server: nghttpd"       tls_start_nghttpd h2 44.7.0.3 443 "$PKI/h2.pem" "$PKI/h2.key" "$T_DIR/htdocs"
check "server: wrong name"    tls_start_s_server wrongname 44.7.0.8 443 "$PKI/wrongname.pem" "$PKI/wrongname.key"
check "server: untrusted"     tls_start_s_server untrusted 44.7.0.10 443 "$PKI/untrusted.pem" "$PKI/untrusted.key"

# A half-close upstream: reads the request until EOF (close_notify or FIN), then answers
# with the byte count and closes cleanly; bounded by its accept and socket timeouts.
cat > "$T_DIR/half.py" <<'PY'
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 443))
ls.listen(4)
ls.settimeout(200)
for _ in range(4):
    c, _ = ls.accept()
    c.settimeout(10)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        data = b""
        while True:
            b = t.recv(65536)
            if not b:
                break
            data += b
        body = b"got %d bytes, then EOF\n" % len(data)
        t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        print("served", len(data), flush=True)
        t.unwrap()
    except Exception as e:
        print("error", e, flush=True)
    c.close()
PY
start_bg half timeout 260 "$TLS_PY" "$T_DIR/half.py" 44.7.0.12 "$PKI/half.pem" "$PKI/half.key"
check "server: half-close" tls_wait_tcp 44.7.0.12 443

TLS_FLAGS=(--tls --tls-ca-cert "$MOATCA/ca.pem" --tls-ca-key "$MOATCA/ca.key" --tls-extra-ca "$PKI/ca.pem")
CA="$MOATCA/ca.pem"
C="curl -sS --max-time 10 --cacert $CA"
has() { grep -q -- "$2" "$T_DIR/$1.out"; }
stat_of() { local v; v=$(grep -o "$2=[0-9]*" "$T_DIR/$1-moat.log" | tail -n 1 | cut -d= -f2); echo "${v:-0}"; }

# ---- One run: the main paths ----
cat > "$T_DIR/main.sh" <<EOF
echo "h1 \$($C -o $T_DIR/h1.json -w '%{http_version}' https://api.test/h1path) \$(grep -c '"host": "api.test"' $T_DIR/h1.json)"
$C -v -o /dev/null https://api.test/issuer 2> $T_DIR/curl-v.txt; echo "issuer \$(grep -c 'issuer: .*moat interception test CA' $T_DIR/curl-v.txt)"
echo "h2 \$($C --http2 -o $T_DIR/h2.json -w '%{http_version}' https://api2.test/h2path) \$(grep -c '"alpn": "h2"' $T_DIR/h2.json)"
echo "h2file \$($C --http2 -o /dev/null -w '%{http_code} %{http_version} %{size_download}' https://h2.test/file.bin)"
openssl s_client -connect www.test:443 -servername www.test -alpn http/1.1 -CAfile $CA -verify_return_error \
  < /dev/null > $T_DIR/s_client.txt 2>&1; echo "sclient \$? \$(grep -c 'ALPN protocol: http/1.1' $T_DIR/s_client.txt) \$(grep -m1 -c 'Verify return code: 0 (ok)' $T_DIR/s_client.txt) \$(grep -c 'issuer=.*moat interception test CA' $T_DIR/s_client.txt)"
openssl s_client -connect 44.7.0.1:443 -noservername -CAfile $CA -verify_ip 44.7.0.1 -verify_return_error \
  < /dev/null > $T_DIR/s_client_nosni.txt 2>&1; echo "nosni \$? \$(grep -m1 -c 'Verify return code: 0 (ok)' $T_DIR/s_client_nosni.txt)"
echo "ipsan \$($C -o /dev/null -w '%{http_code}' https://44.7.0.1/ip)"
echo "bad \$($C -o $T_DIR/bad.txt -w '%{http_code}' https://wrongname.test/bad) \$(cat $T_DIR/bad.txt)"
echo "fronted \$($C -o /dev/null -w '%{http_code}' -H 'Host: evil.test' https://api.test/fronted)"
echo "bad2 \$($C --http2 -o $T_DIR/bad2.txt -w '%{http_code} %{http_version}' https://wrongname.test/bad2) \$(grep -c 'hostname mismatch' $T_DIR/bad2.txt)"
timeout 5 bash -c "exec 3<>/dev/tcp/44.7.0.1/443; printf '\\026\\003\\001\\000\\010\\001\\000\\000\\004abcd' >&3; cat <&3" > /dev/null 2>&1; echo "garbage \$?"
echo "after \$($C -o /dev/null -w '%{http_code}' https://api.test/after-garbage)"
$TLS_PY - <<'PY'
# Half-close: the request, then FIN (SHUT_WR on the TCP socket); the answer still arrives.
import socket, ssl
ctx = ssl.create_default_context(cafile="$CA")
ctx.set_alpn_protocols(["http/1.1"])
import os
s = ctx.wrap_socket(socket.create_connection(("half.test", 443), timeout=10), server_hostname="half.test")
s.sendall(b"GET /halfclose HTTP/1.1\r\nHost: half.test\r\n\r\n")
# FIN on the TCP connection under the TLS session (a second handle on the same socket).
d = socket.socket(fileno=os.dup(s.fileno()))
d.shutdown(socket.SHUT_WR)
d.close()
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except (ssl.SSLError, OSError) as e:
    pass
print("halfclose", data.split(b"\r\n", 1)[0].decode(), b"got 44 bytes, then EOF" in data)
PY
exit 0
EOF
tls_run main "${TLS_FLAGS[@]}" --audit "$T_DIR/main-audit.jsonl" --log-level debug -- "sh $T_DIR/main.sh"
check "main: moat run exits 0 (seccomp on: no SIGSYS)" test "$TLS_RC" -eq 0
check "main: curl h1 reaches the upstream through moat"     has main '^h1 1.1 1$'
check "main: curl sees moat's leaf (issuer: moat's CA)"       has main '^issuer 1$'
check "main: curl --http2: h2 end to end"                     has main '^h2 2 1$'
check "main: 4 MiB h2 download from nghttpd"                  has main '^h2file 200 2 4194304$'
check "main: s_client with SNI+ALPN: verified, moat's issuer" has main '^sclient 0 1 1 1$'
check "main: s_client without SNI: IP-SAN leaf verified"      has main '^nosni 0 1$'
check "main: curl by address (no SNI)"                        has main '^ipsan 200$'
check "main: bad upstream certificate -> 502 naming host and reason" \
  has main '^bad 502 moat: upstream wrongname.test:443 failed TLS verification: hostname mismatch$'
check "main: Host other than the SNI -> 421 (R-TLS-6 via src/http)" has main '^fronted 421$'
check "main: audit http_authority_mismatch" grep -q '"ev":"http_authority_mismatch".*"host":"evil.test"' "$T_DIR/main-audit.jsonl"
check "main: the 502 over h2 for an h2 guest"                  has main '^bad2 502 2 1$'
check "main: garbage on :443 is closed"                        has main '^garbage [01]$'
check "main: garbage on :443 does not disturb the next flow"  has main '^after 200$'
check "main: half-close: the answer arrives after the guest's FIN" has main '^halfclose HTTP/1.[01] 200 OK True$'
check "main: audit tls_upstream_verify_failed with the reason" \
  grep -q '"ev":"tls_upstream_verify_failed".*"reason":"hostname mismatch".*"host":"wrongname.test"' "$T_DIR/main-audit.jsonl"
check "main: the garbage flow audited as tls_error" grep -q '"ev":"tls_error".*"dst":"44.7.0.1:443".*"name":null.*"reason":"guest handshake' "$T_DIR/main-audit.jsonl"
check "main: no other tls_error" test "$(grep -c '"ev":"tls_error"' "$T_DIR/main-audit.jsonl")" -eq 1
check "main: the upstream saw the guest's SNI and ALPN (h1)" "$TLS_PY" -c "
import json
r = [json.loads(l) for l in open('$T_DIR/api.jsonl')]
g = next(x for x in r if x.get('path') == '/h1path')
assert g['sni'] == 'api.test' and g['alpn'] == 'http/1.1', g
n = next(x for x in r if x.get('path') == '/ip')
assert n['sni'] is None, n
"
check "main: the upstream saw h2 and the SNI (h2 echo)" "$TLS_PY" -c "
import json
r = [json.loads(l) for l in open('$T_DIR/api2.jsonl')]
g = next(x for x in r if x.get('path') == '/h2path')
assert g['alpn'] == 'h2' and g['sni'] == 'api2.test', g
"
echo "counters: tls.intercepted=$(stat_of main tls.intercepted) tls.verify_failed=$(stat_of main tls.verify_failed)" \
  "tls.handshake_failed=$(stat_of main tls.handshake_failed) tls.upstream_resumed=$(stat_of main tls.upstream_resumed)" \
  "tls.leaf_cache.hits=$(stat_of main tls.leaf_cache.hits)"
check "main: tls.intercepted counted"          test "$(stat_of main tls.intercepted)" -ge 8
check "main: tls.verify_failed = 2 (h1 and h2)" test "$(stat_of main tls.verify_failed)" -eq 2
check "main: the garbage counted (tls.handshake_failed)" test "$(stat_of main tls.handshake_failed)" -ge 1
check "main: upstream sessions resumed"        test "$(stat_of main tls.upstream_resumed)" -ge 1
check "main: leaf cache hits"                  test "$(stat_of main tls.leaf_cache.hits)" -ge 1

# ---- alert mode ----
printf '[tls]\nupstream_error = "alert"\nnon_tls = "reject"\n' > "$T_DIR/alert.toml"
tls_run alert -c "$T_DIR/alert.toml" "${TLS_FLAGS[@]}" --log-level debug -- \
  "openssl s_client -connect wrongname.test:443 -servername wrongname.test -CAfile $CA < /dev/null > $T_DIR/alert.txt 2>&1; echo \"alert \$? \$(grep -c 'alert handshake failure' $T_DIR/alert.txt)\"; \
   curl -sS --max-time 10 -o /dev/null http://api.test:443/plain 2>/dev/null; echo \"nontls \$?\""
check "alert: the guest handshake fails with handshake_failure" has alert '^alert 1 1$'
check "non_tls = reject: plain HTTP on :443 is reset (curl 56)"  has alert '^nontls 56$'
check "non_tls = reject: counted tls.non_tls"                    test "$(stat_of alert tls.non_tls)" -eq 1

# ---- bypass and no-verify ----
tls_run bypass "${TLS_FLAGS[@]}" --tls-bypass '*.www.test' --tls-no-verify untrusted.test -- \
  "openssl s_client -connect www.test:443 -servername www.test -CAfile $PKI/ca.pem -verify_return_error < /dev/null > $T_DIR/bypass.txt 2>&1; \
   echo \"bypass \$? \$(grep -c 'issuer=.*upstream test CA' $T_DIR/bypass.txt)\"; \
   echo \"noverify \$($C -o /dev/null -w '%{http_code}' https://untrusted.test/)\"; \
   echo \"verified \$($C -w ' %{http_code}' https://wrongname.test/ | tail -c 4)\""
check "bypass: the guest sees the upstream's own certificate" has bypass '^bypass 0 1$'
check "no-verify: an untrusted upstream is reached"           has bypass '^noverify 200$'
check "no-verify: other hosts are still verified"             has bypass '^verified *502$'

# ---- key log: 0600, usable by tshark ----
rm -f "$T_DIR/keys.log"
tls_run keylog "${TLS_FLAGS[@]}" --tls-keylog "$T_DIR/keys.log" --pcap "$T_DIR/keylog.pcap" -- \
  "echo \"kl \$($C -o /dev/null -w '%{http_code}' https://api.test/keylog-marker)\""
check "keylog: the request worked"      has keylog '^kl 200$'
check "keylog: the file is 0600"        test "$(stat -c %a "$T_DIR/keys.log")" = 600
check "keylog: guest and upstream secrets" test "$(grep -c '^CLIENT_TRAFFIC_SECRET_0 ' "$T_DIR/keys.log")" -ge 2
check "keylog: moat warned"             grep -q 'session keys' "$T_DIR/keylog-moat.log"
if command -v tshark > /dev/null; then
  tshark -r "$T_DIR/keylog.pcap" -o "tls.keylog_file:$T_DIR/keys.log" -Y http.request -T fields \
    -e http.request.uri > "$T_DIR/tshark.txt" 2>&1 || true
  check "keylog: tshark decrypts the guest's request in the pcap" grep -q '/keylog-marker' "$T_DIR/tshark.txt"
else
  echo "SKIP: tshark not installed"
fi
finish
