# TLS fixtures for integration tests (SPEC §3.9): a test CA and certificates, the upstream
# servers an intercepting moat talks to, and names for them that a guest inside `moat run`
# resolves through moat's DNS. Source it after lib.sh (it uses T_DIR, start_bg, wait_for):
#
#   source "$(dirname "$0")/lib.sh" "$@"
#   source "$(dirname "$0")/tls_lib.sh"
#   tls_make_ca "$T_DIR/pki"                                   # $T_DIR/pki/ca.pem, ca.key
#   tls_make_cert "$T_DIR/pki" api "DNS:api.test,IP:44.7.0.1"  # $T_DIR/pki/api.pem, api.key
#   tls_internet api.test=44.7.0.1                             # address up, name in the DNS
#   tls_start_https_echo api 44.7.0.1 443 "$T_DIR/pki/api.pem" "$T_DIR/pki/api.key"
#   tls_run guest -- "curl -sS --cacert $T_DIR/pki/ca.pem https://api.test/"
#   grep -q '^{' "$T_DIR/guest.out"; tls_requests api           # what reached the server
#
# Everything listens on addresses of this test's own namespace (lib.sh's unshare -n): the
# "internet" is a veth end (tlsnet0) holding the 44.x addresses the test gives its servers,
# as in policy_test.sh; the zone server is on 127.0.0.1. Every process is started with
# start_bg (killed by PID at exit) and with a --max-seconds / timeout bound of its own.
#
# Functions (each documented where it is defined):
#   certificates  tls_make_ca, tls_make_cert (--client, --expired, --days), tls_make_self_signed,
#                 tls_make_bad_certs (expired, wrongname, selfsigned, untrusted)
#   names         tls_internet NAME=ADDR..., tls_add_name, TLS_RUN_FLAGS; tls_run (one moat run);
#                 tls_intercept_flags (the --tls flags that trust the test CA upstream)
#   servers       tls_start_s_server, tls_start_mtls, tls_start_https_echo (+ tls_requests,
#                 tls_make_git_repo), tls_start_nghttpd (+ tls_make_file), tls_start_wss,
#                 tls_start_connect_proxy, tls_start_dot; tls_wait_tcp
# An upstream that does not speak TLS at all (handshake failures, 502 tests):
# tls_start_https_echo NAME ADDR 443 "" "" --plain.
#
# Tools (tests/integration/tools/): https_echo.py (HTTPS JSON echo over http/1.1 and h2,
# request log, mTLS, git smart HTTP), wss_echo.py / wss_client.py (WebSocket over TLS),
# connect_proxy.py (HTTP CONNECT proxy), dnszone.py --hosts-file / --dot-port (names, DoT).
# Python tools run with $TLS_PY (Debian's python3, which has websockets, requests and h2).

TLS_TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tools"
# Debian's python3 has python3-websockets and python3-requests; another python3 (pyenv) may
# come first in PATH without them. Guests use it too: "$TLS_PY" is a path on the host's
# filesystem, which the sandbox sees.
TLS_PY="${TLS_PY:-/usr/bin/python3}"
[[ -x "$TLS_PY" ]] || TLS_PY="$(command -v python3)"
TLS_DNS_PORT="${TLS_DNS_PORT:-15380}"
# How long a fixture server lives at most (they are killed at exit anyway).
TLS_SERVER_SECONDS="${TLS_SERVER_SECONDS:-280}"
TLS_RUN_FLAGS=()   # moat flags that make tls_internet's names resolvable (set by tls_internet)

# ---------------------------------------------------------------------------------------
# Certificates. All keys are P-256; files are PEM. A leaf's notBefore is one hour back.

# tls_make_ca DIR [CN]: a root CA, DIR/ca.pem + DIR/ca.key (CA:TRUE, keyCertSign, 30 days).
# Several CAs: use several DIRs (a leaf is signed by the CA of the DIR it is made in).
tls_make_ca() {
  local dir="$1" cn="${2:-moat test root CA}"
  mkdir -p "$dir/.ca"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -sha256 \
    -subj "/O=moat tests/CN=$cn" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>"$dir/.ca/req.err" \
    || { cat "$dir/.ca/req.err" >&2; return 1; }
  : > "$dir/.ca/index.txt"
  openssl rand -hex 8 > "$dir/.ca/serial"
  cat > "$dir/.ca/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
dir = $dir/.ca
database = $dir/.ca/index.txt
new_certs_dir = $dir/.ca
serial = $dir/.ca/serial
default_md = sha256
policy = p
unique_subject = no
email_in_dn = no
[p]
commonName = supplied
organizationName = optional
EOF
}

# tls_make_cert DIR NAME SANS [--client] [--expired] [--days N]: a leaf signed by DIR's CA:
# DIR/NAME.pem (leaf), DIR/NAME.key, DIR/NAME.chain.pem (leaf + CA). SANS is the
# subjectAltName value, e.g. "DNS:api.test,DNS:*.api.test,IP:44.7.0.1"; the CN is its first
# entry. --client makes a client certificate (extendedKeyUsage clientAuth, for mTLS),
# --expired one that expired yesterday (valid for a day a month ago), --days N sets the
# lifetime (default 7).
tls_make_cert() {
  local dir="$1" name="$2" sans="$3"; shift 3
  local eku=serverAuth days=7 expired=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --client) eku=clientAuth ;;
      --expired) expired=1 ;;
      --days) days="$2"; shift ;;
      *) echo "tls_make_cert: unknown option $1" >&2; return 2 ;;
    esac
    shift
  done
  local cn="${sans%%,*}"; cn="${cn#*:}"
  local start end
  if [[ $expired -eq 1 ]]; then
    start="$(date -u -d '-32 days' +%Y%m%d%H%M%SZ)"; end="$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"
  else
    start="$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)"; end="$(date -u -d "+$days days" +%Y%m%d%H%M%SZ)"
  fi
  cat > "$dir/.ca/$name.ext" <<EOF
[x]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $eku
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/O=moat tests/CN=$cn" \
    -keyout "$dir/$name.key" -out "$dir/.ca/$name.csr" 2>"$dir/.ca/$name.err" \
  && openssl ca -batch -notext -config "$dir/.ca/ca.cnf" -cert "$dir/ca.pem" -keyfile "$dir/ca.key" \
    -in "$dir/.ca/$name.csr" -out "$dir/$name.pem" -startdate "$start" -enddate "$end" \
    -extfile "$dir/.ca/$name.ext" -extensions x 2>>"$dir/.ca/$name.err" \
    || { echo "tls_make_cert $name failed:" >&2; cat "$dir/.ca/$name.err" >&2; return 1; }
  cat "$dir/$name.pem" "$dir/ca.pem" > "$dir/$name.chain.pem"
}

# tls_make_self_signed DIR NAME SANS: DIR/NAME.pem + DIR/NAME.key, a self-signed leaf (not
# from any CA), for verification failures.
tls_make_self_signed() {
  local dir="$1" name="$2" sans="$3"
  local cn="${sans%%,*}"; cn="${cn#*:}"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -sha256 \
    -subj "/O=moat tests/CN=$cn" -keyout "$dir/$name.key" -out "$dir/$name.pem" \
    -addext "subjectAltName=$sans" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
  cp "$dir/$name.pem" "$dir/$name.chain.pem"
}

# tls_make_bad_certs DIR: the bad-certificate set for verification-failure tests (DIR must
# hold a CA from tls_make_ca):
#   DIR/expired.pem     DNS:expired.test, signed by DIR's CA, expired yesterday
#   DIR/wrongname.pem   signed by DIR's CA for DNS:other.test: serve it as wrongname.test
#   DIR/selfsigned.pem  DNS:selfsigned.test, self-signed
#   DIR/untrusted.pem   DNS:untrusted.test, signed by another CA (DIR/other-ca/ca.pem)
# (each with its .key and .chain.pem).
tls_make_bad_certs() {
  local dir="$1"
  tls_make_cert "$dir" expired "DNS:expired.test" --expired
  tls_make_cert "$dir" wrongname "DNS:other.test"
  tls_make_self_signed "$dir" selfsigned "DNS:selfsigned.test"
  tls_make_ca "$dir/other-ca" "another test CA"
  tls_make_cert "$dir/other-ca" untrusted "DNS:untrusted.test"
  local f
  for f in pem key chain.pem; do cp "$dir/other-ca/untrusted.$f" "$dir/untrusted.$f"; done
}

# ---------------------------------------------------------------------------------------
# Names and addresses: the "internet" of the test.

# tls_internet NAME=ADDR...: puts each ADDR on tlsnet0 (a veth end in this namespace, created
# on the first call) and makes NAME resolve to it for guests: a zone server (dnszone.py
# --hosts-file $T_DIR/tls-hosts) on 127.0.0.1:$TLS_DNS_PORT, which TLS_RUN_FLAGS names as
# moat's --dns-upstream. A name may be given several addresses, IPv4 or IPv6. Call it again
# (or tls_add_name) to add names. Queries are logged in $T_DIR/tls-dns.q ("udp NAME TYPE").
# Public-looking 44.x addresses pass moat's default policy (profile public); private ones
# need an allow rule.
tls_internet() {
  if ! ip link show tlsnet0 >/dev/null 2>&1; then
    ip link add tlsnet0 type veth peer name tlsnet1
    ip link set tlsnet1 up
    ip link set tlsnet0 up
  fi
  : >> "$T_DIR/tls-hosts"
  local kv
  for kv in "$@"; do tls_add_name "${kv%%=*}" "${kv#*=}" || return 1; done
  if [[ -z "${TLS_DNS_PID:-}" ]]; then
    start_bg tls-dns "$TLS_PY" "$TLS_TOOLS/dnszone.py" --port "$TLS_DNS_PORT" --hosts-file "$T_DIR/tls-hosts" \
      --log "$T_DIR/tls-dns.q" --ready-file "$T_DIR/tls-dns.ready" --max-seconds "$TLS_SERVER_SECONDS"
    TLS_DNS_PID=$BG_PID
    wait_for 10 test -s "$T_DIR/tls-dns.ready" || { echo "tls_internet: zone server not ready" >&2; return 1; }
  fi
  TLS_RUN_FLAGS=(--dns-upstream "127.0.0.1:$TLS_DNS_PORT")
}

# tls_add_name NAME ADDR: one more name (the address is added to tlsnet0 if it is new).
tls_add_name() {
  local name="$1" addr="$2"
  if [[ "$addr" == *:* ]]; then
    ip -6 addr show dev tlsnet0 | grep -q " $addr/" || ip addr add "$addr/128" dev tlsnet0 nodad
  else
    ip -4 addr show dev tlsnet0 | grep -q " $addr/" || ip addr add "$addr/32" dev tlsnet0
  fi
  echo "$name $addr" >> "$T_DIR/tls-hosts"
}

# tls_intercept_flags DIR: TLS_INTERCEPT=(--tls --tls-ephemeral-ca --tls-extra-ca DIR/ca.pem),
# the moat flags of an intercepting run whose upstreams carry leaves of DIR's CA (the
# ephemeral CA keeps $XDG_DATA_HOME untouched; the guest trusts it through R-TLS-10):
#   tls_intercept_flags "$PKI"; tls_run g "${TLS_INTERCEPT[@]}" -- "curl -sS https://api.test/"
tls_intercept_flags() {
  TLS_INTERCEPT=(--tls --tls-ephemeral-ca --tls-extra-ca "$1/ca.pem")
}

# tls_wait_tcp ADDR PORT [SECONDS]: waits until ADDR:PORT accepts a TCP connection.
tls_wait_tcp() {
  local a="${1//[\[\]]/}" p="$2" s="${3:-10}"
  wait_for "$s" timeout 1 bash -c "exec 3<>/dev/tcp/$a/$p" 2>/dev/null
}

# tls_run NAME [MOAT-FLAGS...] -- SCRIPT: one `moat run` with TLS_RUN_FLAGS (the names) and
# the given flags, SCRIPT run by sh in the sandbox; guest output in $T_DIR/NAME.out, moat's
# stderr in $T_DIR/NAME-moat.log, exit status in TLS_RC (also printed, with the output).
# Bounded by TLS_RUN_TIMEOUT seconds (default 120).
tls_run() {
  local name="$1"; shift
  local args=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do args+=("$1"); shift; done
  shift
  set +e
  timeout "${TLS_RUN_TIMEOUT:-120}" "$MOAT" run "${TLS_RUN_FLAGS[@]}" "${args[@]}" -- sh -c "$1" \
    > "$T_DIR/$name.out" 2> "$T_DIR/$name-moat.log"
  TLS_RC=$?
  set -e
  sed "s/^/[$name] /" "$T_DIR/$name.out"
  echo "[$name] exit $TLS_RC"
}

# ---------------------------------------------------------------------------------------
# Servers. Each: NAME (log $T_DIR/NAME.log, PID in BG_PID and T_PIDS), the address and port
# to listen on, the certificate (leaf or chain) and key, then options; each returns once
# the port accepts connections (or fails after 10 s).

# tls_start_s_server NAME ADDR PORT CERT KEY [ARGS...]: `openssl s_server -www` (HTTP/1.x
# status page for any GET; ALPN http/1.1 offered unless ARGS says -alpn otherwise). What it
# prints (ACCEPT lines, errors) is in $T_DIR/NAME.log.
tls_start_s_server() {
  local name="$1" addr="$2" port="$3" cert="$4" key="$5"; shift 5
  local alpn=(-alpn http/1.1)
  [[ " $* " == *" -alpn "* ]] && alpn=()
  [[ "$addr" == *:* ]] && addr="[$addr]"
  start_bg "$name" timeout "$TLS_SERVER_SECONDS" openssl s_server -accept "$addr:$port" -cert "$cert" -key "$key" \
    -www "${alpn[@]}" "$@"
  tls_wait_tcp "$addr" "$port"
}

# tls_start_mtls NAME ADDR PORT CERT KEY CLIENT_CA [ARGS...]: `openssl s_server -www` that
# demands a client certificate signed by CLIENT_CA (-Verify 1 -verify_return_error): a
# client without one (or with another) fails the handshake. Make the client's with
# tls_make_cert DIR client "DNS:client.test" --client.
tls_start_mtls() {
  local name="$1" addr="$2" port="$3" cert="$4" key="$5" ca="$6"; shift 6
  tls_start_s_server "$name" "$addr" "$port" "$cert" "$key" -Verify 1 -verify_return_error -CAfile "$ca" "$@"
}

# tls_start_https_echo NAME ADDR PORT CERT KEY [ARGS...]: tools/https_echo.py, which answers
# every request with JSON of what arrived (method, path, Host, all headers in order, body
# length and hash, SNI, ALPN, client certificate) and logs the same JSON, one line per
# request, to $T_DIR/NAME.jsonl (see tls_requests). ARGS: --client-ca CA (mTLS),
# --alpn LIST (default http/1.1; --alpn h2,http/1.1 also serves HTTP/2, where "headers"
# holds the pseudo-headers as received and "host" is :authority), --git-root DIR (paths
# /git/... are git's smart HTTP over DIR's repositories: tls_make_git_repo), --plain (CERT
# and KEY are then ignored: pass "" "").
tls_start_https_echo() {
  local name="$1" addr="$2" port="$3" cert="$4" key="$5"; shift 5
  local tlsargs=()
  [[ -n "$cert" ]] && tlsargs=(--cert "$cert" --key "$key")
  start_bg "$name" "$TLS_PY" "$TLS_TOOLS/https_echo.py" --bind "$addr" --port "$port" "${tlsargs[@]}" \
    --log "$T_DIR/$name.jsonl" --ready-file "$T_DIR/$name.ready" --max-seconds "$TLS_SERVER_SECONDS" "$@"
  wait_for 10 test -s "$T_DIR/$name.ready"
}

# tls_make_git_repo ROOT NAME: a bare repository ROOT/NAME.git with one commit on main (file
# README), for tls_start_https_echo ... --git-root ROOT: then
# `git ls-remote https://HOST/git/NAME.git` lists it. Prints the commit's hash.
tls_make_git_repo() {
  local root="$1" name="$2" tmp="$1/.work-$2"
  mkdir -p "$root"
  git init -q -b main "$tmp"
  echo "moat TLS fixture repository $name" > "$tmp/README"
  git -C "$tmp" add README
  git -C "$tmp" -c user.name=moat-tests -c user.email=tests@moat.invalid commit -qm "fixture $name"
  git clone -q --bare "$tmp" "$root/$name.git"
  git -C "$tmp" rev-parse HEAD
  rm -rf "$tmp"
}

# tls_requests NAME [FIELD]: what tls_start_https_echo NAME logged, one JSON object a line:
# the requests, and {"handshake_error": ..., "peer": ...} for failed TLS handshakes. With
# FIELD: that field of each request (handshake errors left out), one a line; headers as
# "Name: value" lines.
tls_requests() {
  local f="$T_DIR/$1.jsonl"
  [[ -f "$f" ]] || return 0
  if [[ -z "${2:-}" ]]; then cat "$f"; return; fi
  "$TLS_PY" - "$f" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "method" not in r:
        continue
    v = r.get(sys.argv[2])
    if isinstance(v, list):
        print("\n".join("%s: %s" % tuple(h) for h in v))
    else:
        print(v)
PY
}

# tls_make_file PATH BYTES: a file of BYTES bytes to download (sparse: zeros, instant).
tls_make_file() {
  mkdir -p "$(dirname "$1")"
  truncate -s "$2" "$1"
}

# tls_start_nghttpd NAME ADDR PORT CERT KEY DOCROOT [ARGS...]: nghttpd (HTTP/2 over TLS,
# ALPN h2), serving DOCROOT (tls_make_file puts files there). -v is not set (it logs every
# frame); pass it in ARGS to see them in $T_DIR/NAME.log. --no-tls in ARGS: h2c.
tls_start_nghttpd() {
  local name="$1" addr="$2" port="$3" cert="$4" key="$5" root="$6"; shift 6
  local tlsargs=("$key" "$cert")
  [[ " $* " == *" --no-tls "* ]] && tlsargs=()
  start_bg "$name" timeout "$TLS_SERVER_SECONDS" nghttpd -a "$addr" -d "$root" "$@" "$port" "${tlsargs[@]}"
  tls_wait_tcp "$addr" "$port"
}

# tls_start_wss NAME ADDR PORT CERT KEY [--plain]: tools/wss_echo.py, a WebSocket echo
# server over TLS; events (open with path and headers, msg, close) as JSON lines in
# $T_DIR/NAME.jsonl. Clients: "$TLS_PY" "$TLS_TOOLS/wss_client.py" wss://NAME:PORT/path msg...
tls_start_wss() {
  local name="$1" addr="$2" port="$3" cert="$4" key="$5"; shift 5
  local tlsargs=()
  [[ -n "$cert" ]] && tlsargs=(--cert "$cert" --key "$key")
  start_bg "$name" "$TLS_PY" "$TLS_TOOLS/wss_echo.py" --bind "$addr" --port "$port" "${tlsargs[@]}" \
    --log "$T_DIR/$name.jsonl" --ready-file "$T_DIR/$name.ready" --max-seconds "$TLS_SERVER_SECONDS" "$@"
  wait_for 10 test -s "$T_DIR/$name.ready"
}

# tls_start_connect_proxy NAME ADDR PORT [ARGS...]: tools/connect_proxy.py, a plain HTTP
# CONNECT proxy that logs each request head as a JSON line in $T_DIR/NAME.jsonl ("line":
# "CONNECT api.test:443 HTTP/1.1", headers, result ok/denied/refused/bad) and splices. It
# resolves targets itself: pass --map NAME=ADDR for tls_internet's names (this namespace's
# resolver does not know them). --deny SUFFIX answers 403 without connecting.
tls_start_connect_proxy() {
  local name="$1" addr="$2" port="$3"; shift 3
  start_bg "$name" "$TLS_PY" "$TLS_TOOLS/connect_proxy.py" --bind "$addr" --port "$port" \
    --log "$T_DIR/$name.jsonl" --ready-file "$T_DIR/$name.ready" --max-seconds "$TLS_SERVER_SECONDS" "$@"
  wait_for 10 test -s "$T_DIR/$name.ready"
}

# tls_start_dot NAME ADDR CERT KEY: a resolver on ADDR serving tls_internet's names (and
# dnszone.py's fixed zone) over DNS-over-TLS on ADDR:853 and plain DNS on ADDR:53; queries in
# $T_DIR/NAME.q ("dot NAME TYPE" for DoT). Give CERT an IP SAN of ADDR (kdig +tls-ca checks
# it) and, for name checks, a DNS SAN (kdig +tls-hostname=NAME).
tls_start_dot() {
  local name="$1" addr="$2" cert="$3" key="$4"
  : >> "$T_DIR/tls-hosts"
  start_bg "$name" "$TLS_PY" "$TLS_TOOLS/dnszone.py" --bind "$addr" --port 53 --dot-port 853 \
    --dot-cert "$cert" --dot-key "$key" --hosts-file "$T_DIR/tls-hosts" --log "$T_DIR/$name.q" \
    --ready-file "$T_DIR/$name.ready" --max-seconds "$TLS_SERVER_SECONDS"
  wait_for 10 test -s "$T_DIR/$name.ready"
}
