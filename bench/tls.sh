#!/usr/bin/env bash
# bench/tls.sh [OUTDIR] [SECONDS] [PASSES]      (make bench-tls; SPEC R-PERF-5, issue 11)
# TLS interception against the same C upstreams reached four ways, in one run:
#   direct     the client talks to the upstream itself
#   moat       the client runs inside `moat run --tls` (ephemeral CA, the test CA as
#              --tls-extra-ca): moat terminates the guest's TLS with a minted leaf and
#              re-encrypts to the upstream, verified
#   haproxy    HAProxy terminates with a fixed certificate and re-encrypts, verified, with
#              its server-side session reuse (the default), `mode http` (h2 on both sides
#              for the download), no idle-connection reuse for the conn/s backend (one
#              upstream connection per client connection, as moat)
#   mitmproxy  mitmdump in reverse mode (stream_large_bodies=1m, connection_strategy lazy so that h2 is
#              negotiated from the client's offer, upstream verified against the test CA)
# Figures (median of PASSES interleaved passes):
#   new connections/s   `openssl s_time -new -www` (a full handshake and one GET per
#                       connection; s_time sends no SNI, the request carries Host = the
#                       upstream's address) against `openssl s_server -www` (which closes each
#                       connection after its page), SECONDS of wall time; s_server's own count
#                       of finished handshakes gives upstream handshakes per client connection
#   h2 download Gbit/s  one `curl --http2` download of $BENCH_TLS_BYTES (1 GiB) from nghttpd,
#                       bounded by $BENCH_TLS_MAX_SECONDS (20 s; the rate of what arrived)
#   keep-alive req/s    `h2load -c1 -m1` (one h2 connection, one request at a time) against
#                       nghttpd, SECONDS long, with an Authorization header; the last row
#                       carries moat's secret placeholder instead (`--secret`, the next issue)
# Prints each figure, moat/haproxy, moat/mitmproxy and x/direct. A moat row prints "n/a" when
# moat refuses --tls (or --secret), or accepts it but does not intercept (the guest's
# handshake must show moat's CA). MOAT=path/to/moat picks another binary.
#
# Needs root. Everything runs in a private network namespace this script creates (unshare -n,
# a dead-end uplink as in the integration tests): the upstreams listen on 44.7.1.x addresses
# of a veth end inside it, the proxies on its loopback. Every process is killed by PID at exit.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "bench/tls.sh: needs root (network namespaces)" >&2; exit 1; fi
if [[ "${_MOAT_BENCH_NETNS:-}" != 1 ]]; then
  exec unshare -n -- env _MOAT_BENCH_NETNS=1 bash "$0" "$@"
fi
out="${1:-/tmp/moat-bench-tls}"
secs="${2:-5}"
passes="${3:-2}"
BYTES="${BENCH_TLS_BYTES:-1073741824}"
MAXS="${BENCH_TLS_MAX_SECONDS:-20}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
moat="$(readlink -f "${MOAT:-$root/build/src/cli/moat}")"
[[ -x "$moat" ]] || { echo "bench/tls.sh: build moat first (make build)" >&2; exit 1; }
for t in openssl nghttpd curl h2load haproxy mitmdump; do
  command -v "$t" >/dev/null || { echo "bench/tls.sh: $t missing (bash scripts/deps.sh bench)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
# A copy of the binary: a rebuild of the tree during the run must not change (or remove) it.
cp "$moat" "$out/moat"
moat_version="$moat ($("$moat" --version 2>/dev/null | head -1 || true), built $(date -u -r "$moat" '+%F %T UTC'))"
moat="$out/moat"

# What tests/integration/tls_lib.sh expects from lib.sh: T_DIR, start_bg (PIDs killed at
# exit), wait_for.
T_DIR="$out"
T_PIDS=()
cleanup() {
  local p
  for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
start_bg() {
  local log="$T_DIR/$1.log"; shift
  "$@" > "$log" 2>&1 &
  T_PIDS+=($!)
  BG_PID=$!
}
wait_for() {
  local s="$1"; shift
  local n=$((s * 10)) i
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}
TLS_SERVER_SECONDS=$((passes * (4 * (3 * secs + MAXS) + 60) + 120))
source "$root/tests/integration/tls_lib.sh"
source "$root/scripts/lib/uplink.sh"
moat_dead_end_uplink   # moat's address-family detection needs a default route
sysctl -qw net.ipv4.ping_group_range="0 2147483647"  # (this namespace's; quiets moat's ICMP warning)

# --- Upstreams: s_server -www on 44.7.1.1:443, nghttpd on 44.7.1.2:443.
WWW=44.7.1.1
H2=44.7.1.2
ip link add benchnet0 type veth peer name benchnet1
ip link set benchnet1 up
ip link set benchnet0 up
ip addr add "$WWW/32" dev benchnet0
ip addr add "$H2/32" dev benchnet0
PKI="$out/pki"
tls_make_ca "$PKI" "moat bench upstream CA"
tls_make_cert "$PKI" www "DNS:www.bench.test,IP:$WWW" --days 2
tls_make_cert "$PKI" h2 "DNS:h2.bench.test,IP:$H2" --days 2
tls_make_cert "$PKI" fixed "DNS:www.bench.test,DNS:h2.bench.test,IP:127.0.0.1" --days 2  # HAProxy's
cat "$PKI/fixed.pem" "$PKI/fixed.key" > "$PKI/fixed.haproxy.pem"
CA="$PKI/ca.pem"
mkdir -p "$out/htdocs"
tls_make_file "$out/htdocs/big.bin" "$BYTES"
echo "ok" > "$out/htdocs/small.txt"
tls_start_s_server s_server "$WWW" 443 "$PKI/www.pem" "$PKI/www.key" -quiet \
  || { echo "bench/tls.sh: s_server did not start" >&2; exit 1; }
tls_start_nghttpd nghttpd "$H2" 443 "$PKI/h2.pem" "$PKI/h2.key" "$out/htdocs" \
  || { echo "bench/tls.sh: nghttpd did not start" >&2; exit 1; }

# --- HAProxy: 127.0.0.1:9441 (tcp, -> s_server), 127.0.0.1:9442 (http, h2 -> nghttpd).
cat > "$out/haproxy.cfg" <<EOF
global
  maxconn 4096
  ssl-server-verify required
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend conn
  mode http
  bind 127.0.0.1:9441 ssl crt $PKI/fixed.haproxy.pem alpn http/1.1
  default_backend www
backend www
  mode http
  http-reuse never
  server s $WWW:443 ssl verify required ca-file $CA sni str(www.bench.test)
frontend h2
  mode http
  bind 127.0.0.1:9442 ssl crt $PKI/fixed.haproxy.pem alpn h2,http/1.1
  default_backend h2
backend h2
  mode http
  server s $H2:443 ssl verify required ca-file $CA sni str(h2.bench.test) alpn h2
EOF
start_bg haproxy timeout "$TLS_SERVER_SECONDS" haproxy -db -f "$out/haproxy.cfg"
tls_wait_tcp 127.0.0.1 9441 && tls_wait_tcp 127.0.0.1 9442 || { echo "bench/tls.sh: haproxy did not start" >&2; exit 1; }

# --- mitmproxy: reverse mode, 127.0.0.1:9451 -> s_server, 127.0.0.1:9452 -> nghttpd.
mitm() {
  start_bg "mitm-$1" timeout "$TLS_SERVER_SECONDS" mitmdump -q --mode "reverse:https://$2:443" \
    --listen-host 127.0.0.1 --listen-port "$3" --set confdir="$out/mitm" --set stream_large_bodies=1m \
    --set connection_strategy=lazy --set ssl_verify_upstream_trusted_ca="$CA"
}
mitm www "$WWW" 9451
mitm h2 "$H2" 9452
tls_wait_tcp 127.0.0.1 9451 30 && tls_wait_tcp 127.0.0.1 9452 30 || { echo "bench/tls.sh: mitmdump did not start" >&2; exit 1; }

# --- moat: does it intercept? (flags accepted, and the guest sees a leaf from moat's CA)
MOAT_TLS=(--tls --tls-ephemeral-ca --tls-extra-ca "$CA" --dns-host "www.bench.test=$WWW" --dns-host "h2.bench.test=$H2"
  --log-level warn)
moat_state=ok
set +e
timeout 60 "$moat" run "${MOAT_TLS[@]}" -- sh -c "openssl s_client -connect www.bench.test:443 -servername www.bench.test \
  </dev/null 2>/dev/null | grep '^issuer='" > "$out/moat-probe.out" 2> "$out/moat-probe.err"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  moat_state="moat refuses --tls (exit $rc: $(grep -m1 . "$out/moat-probe.err" || true))"
elif grep -q "moat bench upstream CA" "$out/moat-probe.out" || ! grep -q . "$out/moat-probe.out"; then
  moat_state="moat accepts --tls but did not intercept ($(head -c 200 "$out/moat-probe.out"))"
fi
echo "bench: moat: $moat_state" >&2
# BENCH_TLS_FORCE_MOAT=1 measures the moat rows even so (a plain `moat run` when it does not
# intercept: for checking this script, not a figure to record).
if [[ "${BENCH_TLS_FORCE_MOAT:-}" == 1 && $moat_state != ok ]]; then
  moat_state=ok
  echo "bench: BENCH_TLS_FORCE_MOAT=1: measuring moat anyway (not intercepting: not a TLS figure)" >&2
fi
TOKEN_VALUE="bench-secret-$(openssl rand -hex 8)"
export BENCH_TLS_TOKEN="$TOKEN_VALUE"
secret_state=ok
if [[ $moat_state != ok ]]; then
  secret_state="$moat_state"
else
  set +e
  timeout 60 "$moat" run "${MOAT_TLS[@]}" --secret "BENCH_TLS_TOKEN@h2.bench.test" -- sh -c 'test -n "$BENCH_TLS_TOKEN" && test "$BENCH_TLS_TOKEN" != "'"$TOKEN_VALUE"'"' \
    > "$out/moat-secret-probe.out" 2> "$out/moat-secret-probe.err"
  rc=$?
  set -e
  [[ $rc -eq 0 ]] || secret_state="moat refuses --secret or exposes the value (exit $rc: $(grep -m1 . "$out/moat-secret-probe.err" || true))"
fi
echo "bench: moat with a secret: $secret_state" >&2

# --- The three measurements, as shell snippets run directly or inside the sandbox.
#   conn HOST:PORT            -> "conn N SECONDS"
#   dl URL                    -> "dl BYTES SECONDS"   (curl's own figures)
#   ka URL HEADER             -> "ka REQ_PER_S"
# The direct and proxy clients name the upstream www/h2.bench.test via curl --resolve / h2load's
# SNI; inside moat the names resolve through --dns-host.
cat > "$out/measure.sh" <<'EOF'
what="$1"; shift
case "$what" in
  conn)
    # s_time -www sends "GET <path> HTTP/1.0" and no Host; the path carries one (s_time sends
    # no SNI either: an intercepting moat must then see Host = the address, R-TLS-4).
    req="$(printf '/ HTTP/1.0\r\nHost: %s\r\nX-Bench: s_time' "$2")"
    t0=$(date +%s.%N)
    r=$(openssl s_time -connect "$1" -new -time "$SECS" -www "$req" 2>&1 | grep 'real seconds' | head -1)
    t1=$(date +%s.%N)
    n=$(echo "$r" | sed -n 's/^\([0-9]*\) connections in .*/\1/p')
    b=$(echo "$r" | sed -n 's/.* \([0-9]*\) bytes read per connection.*/\1/p')
    echo "conn ${n:-0} $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') ${b:-0}" ;;
  dl)
    curl -sS --http2 -k --max-time "$MAXS" $RESOLVE -o /dev/null -w 'dl %{size_download} %{time_total} %{http_version}\n' "$1" || true ;;
  ka)
    hdr="${2//\$BENCH_TLS_TOKEN/${BENCH_TLS_TOKEN:-}}"  # the guest's placeholder, under moat --secret
    h2load -c 1 -m 1 -D "$SECS" -H "$hdr" $H2LOAD_CONNECT "$1" 2>&1 | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/ka \1/p'
    ;;
esac
EOF
measure() {  # measure LABEL [env...] -- ARGS...: runs measure.sh directly, appends to results
  local label="$1"; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  env SECS="$secs" MAXS="$MAXS" "${envs[@]}" bash "$out/measure.sh" "$@" 2>>"$out/measure.err" | sed "s/^/$label /" >> "$out/results.txt"
}
measure_moat() {  # measure_moat LABEL [moat flags...] -- ARGS...: the same inside moat run --tls
  local label="$1"; shift
  local flags=()
  while [[ "$1" != "--" ]]; do flags+=("$1"); shift; done
  shift
  local q="" a
  for a in "$@"; do q+=" '${a//\'/\'\\\'\'}'"; done
  set +e
  timeout $((secs + MAXS + 60)) "$moat" run "${MOAT_TLS[@]}" "${flags[@]}" -- \
    env SECS="$secs" MAXS="$MAXS" RESOLVE= H2LOAD_CONNECT= sh -c "bash '$out/measure.sh' $q" \
    2>>"$out/moat-run.err" | sed "s/^/$label /" >> "$out/results.txt"
  set -e
}
: > "$out/results.txt"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
# upstream_handshakes: s_server's count of finished handshakes (its -www page; costs one).
upstream_handshakes() {
  curl -sk --max-time 5 "https://$WWW/" | sed -n 's/^ *\([0-9]*\) server accepts that finished.*/\1/p' | head -1
}
R_WWW="--resolve www.bench.test:443:$WWW"
R_H2="--resolve h2.bench.test:443:$H2"
H_PLAIN="authorization: Bearer $TOKEN_VALUE"
for p in $(seq 1 "$passes"); do
  echo "bench: pass $p/$passes" >&2
  # new connections/s
  for who in direct moat haproxy mitmproxy; do
    [[ $who != moat || $moat_state == ok ]] || continue
    before=$(upstream_handshakes)
    case $who in
      direct) measure direct -- conn "$WWW:443" "$WWW" ;;
      moat) measure_moat moat -- conn "$WWW:443" "$WWW" ;;
      haproxy) measure haproxy -- conn 127.0.0.1:9441 "$WWW" ;;
      mitmproxy) measure mitmproxy -- conn 127.0.0.1:9451 "$WWW" ;;
    esac
    echo "$who up $(($(upstream_handshakes) - before - 1))" >> "$out/results.txt"
  done
  # one large h2 download
  measure direct RESOLVE="$R_H2" -- dl "https://h2.bench.test/big.bin"
  [[ $moat_state != ok ]] || measure_moat moat -- dl "https://h2.bench.test/big.bin"
  measure haproxy RESOLVE="--resolve h2.bench.test:9442:127.0.0.1" -- dl "https://h2.bench.test:9442/big.bin"
  measure mitmproxy RESOLVE="--resolve h2.bench.test:9452:127.0.0.1" -- dl "https://h2.bench.test:9452/big.bin"
  # keep-alive h2 requests/s, a header with a literal token; moat also with a secret placeholder
  measure direct H2LOAD_CONNECT="--connect-to=$H2:443" -- ka "https://h2.bench.test/small.txt" "$H_PLAIN"
  [[ $moat_state != ok ]] || measure_moat moat -- ka "https://h2.bench.test/small.txt" "$H_PLAIN"
  [[ $secret_state != ok ]] || measure_moat moat-secret --secret "BENCH_TLS_TOKEN@h2.bench.test" -- \
    ka "https://h2.bench.test/small.txt" 'authorization: Bearer $BENCH_TLS_TOKEN'
  measure haproxy H2LOAD_CONNECT="--connect-to=127.0.0.1:9442" -- ka "https://h2.bench.test/small.txt" "$H_PLAIN"
  measure mitmproxy H2LOAD_CONNECT="--connect-to=127.0.0.1:9452" -- ka "https://h2.bench.test/small.txt" "$H_PLAIN"
done

load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" "$moat_state" "$secret_state" "$BYTES" "$load_start" "$load_end" "$moat_version" <<'PY' | tee "$out/tls.md"
import statistics, sys
out, moat_state, secret_state, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load_start, load_end, moat_version = sys.argv[5], sys.argv[6], sys.argv[7]
vals = {}
for line in open(f"{out}/results.txt"):
    f = line.split()
    if len(f) < 3:
        continue
    who, what = f[0], f[1]
    try:
        if what == "conn" and float(f[3]) > 0 and int(f[2]) > 0:
            v = int(f[2]) / float(f[3])
        elif what == "dl" and float(f[3]) > 0 and int(f[2]) > 0:
            v = int(f[2]) * 8 / float(f[3]) / 1e9
            if len(f) > 4 and f[4] != "2":
                continue  # not h2: not this figure
        elif what == "ka":
            v = float(f[2])
        else:
            continue
    except (ValueError, IndexError):
        continue
    vals.setdefault((who, what), []).append(v)
def med(who, what):
    xs = vals.get((who, what))
    return statistics.median(xs) if xs else None
def fmt(x, nd):
    return "n/a" if x is None else f"%.{nd}f" % x
def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else "%.2f" % (a / b)
rows = [("new connections/s (s_time -new)", "conn", 0), ("h2 download Gbit/s (curl, %d MiB)" % (size >> 20), "dl", 2),
        ("keep-alive h2 requests/s (h2load -c1 -m1)", "ka", 0)]
print("| figure | direct | moat --tls | haproxy | mitmproxy | moat/haproxy | moat/mitmproxy | moat/direct | haproxy/direct | mitmproxy/direct |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, what, nd in rows:
    d, m, h, x = (med(w, what) for w in ("direct", "moat", "haproxy", "mitmproxy"))
    print(f"| {name} | {fmt(d, nd)} | {fmt(m, nd)} | {fmt(h, nd)} | {fmt(x, nd)} | {ratio(m, h)} | {ratio(m, x)} "
          f"| {ratio(m, d)} | {ratio(h, d)} | {ratio(x, d)} |")
d, s = med("direct", "ka"), med("moat-secret", "ka")
h, x = med("haproxy", "ka"), med("mitmproxy", "ka")
print(f"| moat with one secret in a header: keep-alive requests/s | {fmt(d, 0)} | {fmt(s, 0)} | {fmt(h, 0)} | {fmt(x, 0)} "
      f"| {ratio(s, h)} | {ratio(s, x)} | {ratio(s, d)} | | |")
print()
if moat_state != "ok":
    print(f"moat: n/a: {moat_state}")
if secret_state != "ok" and secret_state != moat_state:
    print(f"moat with a secret: n/a: {secret_state}")
# Upstream handshakes per client connection on the conn/s figure (s_server's count): 1.0
# means each client connection cost a full upstream handshake too.
# And the bytes s_time read per connection: s_server's page (~5 kB) on every path, or the path
# answered something else (an error page) and the conn/s figure is not comparable.
ups, conns, got = {}, {}, {}
for line in open(f"{out}/results.txt"):
    f = line.split()
    if len(f) >= 3 and f[1] == "up":
        ups[f[0]] = ups.get(f[0], 0) + int(f[2])
    elif len(f) >= 4 and f[1] == "conn":
        conns[f[0]] = conns.get(f[0], 0) + int(f[2])
        if len(f) >= 5:
            got.setdefault(f[0], []).append(f[4])
paths = ("direct", "moat", "haproxy", "mitmproxy")
print("upstream handshakes per client connection (conn/s figure): " + ", ".join(
    "%s %.2f" % (w, ups[w] / conns[w]) for w in paths if conns.get(w) and w in ups))
print("bytes read per connection (conn/s figure): " + ", ".join(
    "%s %s" % (w, "/".join(got[w])) for w in paths if w in got))
print("each figure is the median of its passes; raw lines in results.txt; load average at start %s, at end %s"
      % (load_start, load_end))
print("moat: %s" % moat_version)
PY
