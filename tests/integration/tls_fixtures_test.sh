#!/usr/bin/env bash
# moat-it-timeout: 240
# The TLS test fixtures (tls_lib.sh) work, through plain `moat run` (no interception: the
# guest trusts the test CA with --cacert / CAfile): names of the test's "internet" resolve
# through moat's DNS, and each upstream server answers a guest: openssl s_server -www (ALPN,
# SNI, no SNI), the HTTPS JSON echo (curl, Python urllib and requests, git ls-remote; its
# request log; HTTP/2), nghttpd over h2, wss echo, the CONNECT proxy, mTLS, and the
# bad-certificate set fails verification as it should. DoT is checked from the test's namespace (moat refuses TCP/853
# before R-DNS-9 lands).
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_lib.sh"
PKI="$T_DIR/pki"

tls_make_ca "$PKI"
tls_make_cert "$PKI" api "DNS:api.test,IP:44.7.0.1"
tls_make_cert "$PKI" api2 "DNS:api2.test"
tls_make_cert "$PKI" www "DNS:www.test"
tls_make_cert "$PKI" h2 "DNS:h2.test"
tls_make_cert "$PKI" ws "DNS:ws.test"
tls_make_cert "$PKI" mtls "DNS:mtls.test"
tls_make_cert "$PKI" client "DNS:client.test" --client
tls_make_cert "$PKI" dot "DNS:dot.test,IP:44.7.0.53"
tls_make_bad_certs "$PKI"
check "certificates: leaf verifies against the CA" bash -c "openssl verify -CAfile '$PKI/ca.pem' '$PKI/api.pem' >/dev/null"
check "certificates: leaf is P-256 with the SANs" bash -c "openssl x509 -in '$PKI/api.pem' -noout -text \
  | grep -q 'ASN1 OID: prime256v1' && openssl x509 -in '$PKI/api.pem' -noout -ext subjectAltName | grep -q 'DNS:api.test, IP Address:44.7.0.1'"
check "certificates: expired one is expired" bash -c "! openssl x509 -in '$PKI/expired.pem' -noout -checkend 0 >/dev/null"
check "certificates: untrusted one does not verify" bash -c "! openssl verify -CAfile '$PKI/ca.pem' '$PKI/untrusted.pem' >/dev/null 2>&1"

tls_internet api.test=44.7.0.1 www.test=44.7.0.2 h2.test=44.7.0.3 ws.test=44.7.0.4 proxy.test=44.7.0.5 \
  mtls.test=44.7.0.6 expired.test=44.7.0.7 wrongname.test=44.7.0.8 selfsigned.test=44.7.0.9 \
  untrusted.test=44.7.0.10 api2.test=44.7.0.11 dot.test=44.7.0.53
tls_make_file "$T_DIR/htdocs/file.bin" 4194304
GIT_HEAD="$(tls_make_git_repo "$T_DIR/git" repo)"
check "server: https echo"   tls_start_https_echo api 44.7.0.1 443 "$PKI/api.pem" "$PKI/api.key" --git-root "$T_DIR/git"
check "server: https echo h2" tls_start_https_echo api2 44.7.0.11 443 "$PKI/api2.pem" "$PKI/api2.key" --alpn h2,http/1.1
check "server: plain echo"   tls_start_https_echo api80 44.7.0.1 80 "" "" --plain
check "server: s_server"     tls_start_s_server www 44.7.0.2 443 "$PKI/www.pem" "$PKI/www.key"
check "server: nghttpd"      tls_start_nghttpd h2 44.7.0.3 443 "$PKI/h2.pem" "$PKI/h2.key" "$T_DIR/htdocs"
check "server: wss echo"     tls_start_wss ws 44.7.0.4 443 "$PKI/ws.pem" "$PKI/ws.key"
check "server: CONNECT proxy" tls_start_connect_proxy proxy 44.7.0.5 3128 --map api.test=44.7.0.1 --deny denied.test
check "server: mTLS"         tls_start_mtls mtls 44.7.0.6 443 "$PKI/mtls.pem" "$PKI/mtls.key" "$PKI/ca.pem"
check "server: expired"      tls_start_s_server expired 44.7.0.7 443 "$PKI/expired.pem" "$PKI/expired.key"
check "server: wrong name"   tls_start_s_server wrongname 44.7.0.8 443 "$PKI/wrongname.pem" "$PKI/wrongname.key"
check "server: self-signed"  tls_start_s_server selfsigned 44.7.0.9 443 "$PKI/selfsigned.pem" "$PKI/selfsigned.key"
check "server: untrusted"    tls_start_s_server untrusted 44.7.0.10 443 "$PKI/untrusted.pem" "$PKI/untrusted.key"
check "server: DoT"          tls_start_dot dot 44.7.0.53 "$PKI/dot.pem" "$PKI/dot.key"

# DoT, from this namespace (not through moat).
dot="$(kdig +timeout=3 +retry=0 +tls +tls-ca="$PKI/ca.pem" +tls-hostname=dot.test @44.7.0.53 api.test A +short 2>&1)"
check "DoT: kdig +tls (verified, hostname dot.test) resolves api.test ($dot)" test "$dot" = 44.7.0.1
check "DoT: the server logged the query over TLS" grep -q '^dot api.test 1$' "$T_DIR/dot.q"

CA="$PKI/ca.pem"
C="curl -sS --max-time 10 --cacert $CA"
cat > "$T_DIR/guest.sh" <<EOF
echo "dns \$(kdig +timeout=3 +retry=0 @100.96.0.1 api.test A +short)"
echo "echo \$($C -H 'X-Fixture: one' 'https://api.test/some/path?q=1')"
echo "echo2 \$($C --http2 -H 'X-Fixture: two' 'https://api2.test/h2path')"
echo "echo2h1 \$($C --http1.1 -o /dev/null -w '%{http_version}' https://api2.test/h1path)"
echo "echo2big \$($C --http2 -o /dev/null -w '%{http_version} %{size_download}' https://api2.test/bytes/300000)"
echo "git \$(GIT_SSL_CAINFO=$CA git ls-remote https://api.test/git/repo.git refs/heads/main 2>&1 | tr '\t' ' ')"
echo "plain \$(curl -sS --max-time 10 http://api.test/plain)"
echo "ipsan \$($C -o /dev/null -w '%{http_code}' https://44.7.0.1/ip)"
$TLS_PY - <<'PY'
import json, ssl, urllib.request
import requests
ctx = ssl.create_default_context(cafile="$CA")
r = json.load(urllib.request.urlopen("https://api.test/urllib", context=ctx, timeout=10))
print("urllib", r["path"], r["host"], r["alpn"])
r = requests.post("https://api.test/requests", data=b"12345", verify="$CA", timeout=10).json()
print("requests", r["method"], r["path"], r["body_len"])
PY
echo "swww \$($C -o /dev/null -w '%{http_code} %{http_version}' https://www.test/)"
openssl s_client -connect www.test:443 -servername www.test -alpn http/1.1 -CAfile $CA -verify_return_error \
  < /dev/null > $T_DIR/s_client.txt 2>&1; echo "sclient \$? \$(grep -q 'ALPN protocol: http/1.1' $T_DIR/s_client.txt && echo alpn) \$(grep -q 'Verify return code: 0 (ok)' $T_DIR/s_client.txt && echo verified)"
openssl s_client -connect 44.7.0.2:443 -noservername -CAfile $CA < /dev/null > $T_DIR/s_client2.txt 2>&1; echo "nosni \$?"
echo "h2 \$($C --http2 -o /dev/null -w '%{http_code} %{http_version} %{size_download}' https://h2.test/file.bin)"
$TLS_PY $TLS_TOOLS/wss_client.py --cafile $CA wss://ws.test/chat hello world | sed 's/^/wss /'
echo "proxy \$($C -x http://proxy.test:3128 -o /dev/null -w '%{http_code}' https://api.test/via-proxy)"
echo "proxydeny \$($C -x http://proxy.test:3128 -o /dev/null -w '%{http_connect}' https://denied.test/ 2>/dev/null)"
echo "mtls \$($C --cert $PKI/client.pem --key $PKI/client.key -o /dev/null -w '%{http_code}' https://mtls.test/)"
$C -o /dev/null https://mtls.test/ 2>/dev/null; echo "mtls-nocert \$?"
for h in expired wrongname selfsigned untrusted; do
  $C -o /dev/null https://\$h.test/ 2>/dev/null; echo "bad \$h \$? \$(curl -sSk --max-time 10 -o /dev/null -w '%{http_code}' https://\$h.test/)"
done
exit 0
EOF
tls_run guest -- "sh $T_DIR/guest.sh"
check "moat run exits 0" test "$TLS_RC" -eq 0
has() { grep -q -- "$1" "$T_DIR/guest.out"; }
check "guest: api.test resolves through moat's DNS"           has "^dns 44.7.0.1$"
check "guest: curl reaches the HTTPS echo by name"             has '^echo {.*"host": "api.test"'
check "guest: the HTTPS echo over h2"                          has '^echo2 {.*"alpn": "h2".*"host": "api2.test"'
check "guest: the h2 echo still serves http/1.1"               has '^echo2h1 1.1$'
check "guest: a 300 kB h2 answer (flow control)"               has '^echo2big 2 300000$'
check "guest: git ls-remote over https"                        has "^git $GIT_HEAD refs/heads/main$"
check "guest: plain HTTP echo"                                 has '^plain {.*"path": "/plain"'
check "guest: IP-SAN certificate by address"                   has "^ipsan 200$"
check "guest: Python urllib"                                   has "^urllib /urllib api.test "
check "guest: Python requests (POST with a body)"              has "^requests POST /requests 5$"
check "guest: s_server -www over HTTP/1"                       has "^swww 200 1"
check "guest: s_client with SNI and ALPN, verified"            has "^sclient 0 alpn verified$"
check "guest: s_client without SNI"                            has "^nosni 0$"
check "guest: h2 download from nghttpd"                        has "^h2 200 2 4194304$"
check "guest: wss echo"                                        has "^wss echo world$"
check "guest: HTTPS through the CONNECT proxy"                 has "^proxy 200$"
check "guest: the proxy answers 403 for a denied target"       has "^proxydeny 403$"
check "guest: mTLS with a client certificate"                  has "^mtls 200$"
check "guest: mTLS without one fails"                          bash -c "grep -q '^mtls-nocert ' '$T_DIR/guest.out' && ! grep -q '^mtls-nocert 0$' '$T_DIR/guest.out'"
for h in expired wrongname selfsigned untrusted; do
  check "guest: $h.test fails verification (curl 60), answers with -k" has "^bad $h 60 200$"
done

# What the upstreams logged.
check "echo log: headers, SNI, ALPN of the curl request" "$TLS_PY" -c "
import json, sys
r = [json.loads(l) for l in open('$T_DIR/api.jsonl')]
g = next(x for x in r if x.get('path') == '/some/path?q=1')
assert g['method'] == 'GET' and g['host'] == 'api.test' and g['sni'] == 'api.test', g
assert g['alpn'] == 'http/1.1' and g['tls_version'] in ('TLSv1.3', 'TLSv1.2'), g
assert ['X-Fixture', 'one'] in g['headers'], g
assert any(x.get('path') == '/requests' and x['method'] == 'POST' and x['body_len'] == 5 for x in r)
assert any(x.get('path') == '/via-proxy' for x in r)
"
nosni_logged() { tls_requests api | grep '"path": "/ip"' | grep -q '"sni": null'; }
paths_listed() { tls_requests api path | grep -x /urllib >/dev/null && tls_requests api headers | grep -x 'X-Fixture: one' >/dev/null; }
check "echo log: the IP-SAN request had no SNI" nosni_logged
check "echo log (h2): pseudo-headers and headers as received" "$TLS_PY" -c "
import json
r = [json.loads(l) for l in open('$T_DIR/api2.jsonl')]
g = next(x for x in r if x.get('path') == '/h2path')
assert g['method'] == 'GET' and g['alpn'] == 'h2' and g['sni'] == 'api2.test', g
assert [':authority', 'api2.test'] in g['headers'] and ['x-fixture', 'two'] in g['headers'], g
assert any(x.get('path') == '/h1path' and x['alpn'] == 'http/1.1' for x in r)
"
check "tls_requests: fields of the logged requests" paths_listed
check "proxy log: the CONNECT line"  grep -q '"line": "CONNECT api.test:443 HTTP/1.1".*"result": "ok"' "$T_DIR/proxy.jsonl"
check "proxy log: the denied target" grep -q '"line": "CONNECT denied.test:443 HTTP/1.1".*"result": "denied"' "$T_DIR/proxy.jsonl"
check "wss log: path and Host"       grep -q '"ev": "open".*"host": "ws.test".*"path": "/chat"' "$T_DIR/ws.jsonl"
check "zone log: the guest's query"  grep -q '^udp api.test 1$' "$T_DIR/tls-dns.q"
finish
