#!/usr/bin/env bash
# TCP through moat with the guest kernel's own stack: HTTP to the gateway address (mapped to the
# host's 127.0.0.1 / ::1, R-ADDR-5), a closed port refused at once (RST+ACK -> ECONNREFUSED,
# R-TCP-3), half-close (R-TCP-9), and DNS over UDP and TCP forwarded to --dns-upstream (R-DNS-1/4).
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"

# Host-side servers, all on loopback of the test namespace.
www="$T_DIR/www"; mkdir -p "$www"
python3 -c 'import random; open("'"$www"'/blob.bin","wb").write(random.Random(11).randbytes(3*1024*1024+17))'
printf 'hello from the host side\n' > "$www/index.txt"
start_bg http4 timeout 120 python3 -m http.server --bind 127.0.0.1 --directory "$www" 18080
start_bg http6 timeout 120 python3 -m http.server --bind ::1 --directory "$www" 18081
start_bg sink "$NP" serve-sink --port 18082 --ready-file "$T_DIR/sink.ready" --max-seconds 120
start_bg sink6 "$NP" serve-sink --port 18082 --bind ::1 --ready-file "$T_DIR/sink6.ready" --max-seconds 120
start_bg dns "$NP" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 120
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/sink.ready' -a -s '$T_DIR/sink6.ready' -a -s '$T_DIR/dns.ready' && curl -sf -o /dev/null http://127.0.0.1:18080/index.txt && curl -sf -o /dev/null 'http://[::1]:18081/index.txt'"
want_blob="$(sha256sum < "$www/blob.bin" | cut -d' ' -f1)"

# --- HTTP to the gateway, both families.
G="$T_DIR/guest"; mkdir -p "$G"
set +e
timeout 60 "$MOAT" run --profile all -- sh -c "
  curl -sS --max-time 10 -o '$G/index4.txt' http://100.96.0.1:18080/index.txt; echo \"curl4 \$?\"
  curl -sS --max-time 20 -o '$G/blob4.bin' http://100.96.0.1:18080/blob.bin; echo \"curl4blob \$?\"
  curl -sS --max-time 10 -o '$G/index6.txt' 'http://[fd42:6d73:62::1]:18081/index.txt'; echo \"curl6 \$?\"
  curl -sS --max-time 20 -o '$G/blob6.bin' 'http://[fd42:6d73:62::1]:18081/blob.bin'; echo \"curl6blob \$?\"
" > "$T_DIR/http.out" 2> "$T_DIR/http-moat.log"
rc=$?
set -e
cat "$T_DIR/http.out"
check "moat run (HTTP) exits 0 (got $rc)"                test $rc -eq 0
check "IPv4 curl http://100.96.0.1:18080 succeeds"       grep -qx "curl4 0" "$T_DIR/http.out"
check "IPv4 small body matches"                          cmp -s "$www/index.txt" "$G/index4.txt"
check "IPv4 3 MiB body sha256 matches"                   test "$(sha256sum < "$G/blob4.bin" 2>/dev/null | cut -d' ' -f1)" = "$want_blob"
check "IPv6 curl http://[fd42:6d73:62::1]:18081 succeeds" grep -qx "curl6 0" "$T_DIR/http.out"
check "IPv6 small body matches"                          cmp -s "$www/index.txt" "$G/index6.txt"
check "IPv6 3 MiB body sha256 matches"                   test "$(sha256sum < "$G/blob6.bin" 2>/dev/null | cut -d' ' -f1)" = "$want_blob"

# --- Closed host port: the guest's connect fails with ECONNREFUSED, quickly (no timeout).
set +e
timeout 60 "$MOAT" run --profile all -- sh -c "
  '$NP' connect --host 100.96.0.1 --port 18099 --timeout 10 --max-seconds 20
  '$NP' connect --host fd42:6d73:62::1 --port 18099 --timeout 10 --max-seconds 20
" > "$T_DIR/refused.out" 2> "$T_DIR/refused-moat.log"
set -e
cat "$T_DIR/refused.out"
r4="$(sed -n 1p "$T_DIR/refused.out")"; r6="$(sed -n 2p "$T_DIR/refused.out")"
fast() { awk -v t="$2" 'BEGIN { exit !(t < 1.0) }' && test "$1" = ECONNREFUSED; }
check "IPv4 closed port -> ECONNREFUSED in < 1 s (got '$r4')" fast $r4
check "IPv6 closed port -> ECONNREFUSED in < 1 s (got '$r6')" fast $r6

# --- Half-close: the guest sends 8 MiB, shuts down writing, and still reads the sink's reply.
want8="$("$NP" expect-sha --bytes 8M --seed 21)"
set +e
timeout 60 "$MOAT" run --profile all -- sh -c "
  '$NP' send --host 100.96.0.1 --port 18082 --bytes 8M --seed 21 --max-seconds 40
  '$NP' send --host fd42:6d73:62::1 --port 18082 --bytes 8M --seed 21 --max-seconds 40
" > "$T_DIR/halfclose.out" 2> "$T_DIR/halfclose-moat.log"
set -e
cat "$T_DIR/halfclose.out"
check "IPv4 half-close: reply after SHUT_WR = '$want8'" test "$(sed -n 1p "$T_DIR/halfclose.out")" = "$want8"
check "IPv6 half-close: reply after SHUT_WR = '$want8'" test "$(sed -n 2p "$T_DIR/halfclose.out")" = "$want8"

# --- DNS: UDP and TCP queries to the gateway reach --dns-upstream 127.0.0.1:15353.
set +e
timeout 60 "$MOAT" run --profile all --dns-upstream 127.0.0.1:15353 -- sh -c "
  echo \"udp: \$(kdig @100.96.0.1 +notcp +timeout=3 +retry=1 moat-test.example.com A +short)\"
  echo \"tcp: \$(kdig @100.96.0.1 +tcp +timeout=3 +retry=1 moat-test.example.com A +short)\"
  echo \"udp6: \$(kdig @fd42:6d73:62::1 +notcp +timeout=3 +retry=1 moat-test.example.com A +short)\"
  echo \"tcp6: \$(kdig @fd42:6d73:62::1 +tcp +timeout=3 +retry=1 moat-test.example.com A +short)\"
  kdig @100.96.0.1 +notcp +timeout=3 +retry=1 nonexistent.example.com A | grep -o 'status: [A-Z]*' | sed 's/^/udp-nx /'
  kdig @100.96.0.1 +tcp +timeout=3 +retry=1 nonexistent.example.com A | grep -o 'status: [A-Z]*' | sed 's/^/tcp-nx /'
" > "$T_DIR/dns.out" 2> "$T_DIR/dns-moat.log"
set -e
cat "$T_DIR/dns.out"
check "DNS over UDP (IPv4) answered by the upstream"  grep -qx "udp: 93.184.216.34" "$T_DIR/dns.out"
check "DNS over TCP (IPv4) answered by the upstream"  grep -qx "tcp: 93.184.216.34" "$T_DIR/dns.out"
check "DNS over UDP (IPv6) answered by the upstream"  grep -qx "udp6: 93.184.216.34" "$T_DIR/dns.out"
check "DNS over TCP (IPv6) answered by the upstream"  grep -qx "tcp6: 93.184.216.34" "$T_DIR/dns.out"
check "NXDOMAIN passes through (UDP)"                 grep -qx "udp-nx status: NXDOMAIN" "$T_DIR/dns.out"
check "NXDOMAIN passes through (TCP)"                 grep -qx "tcp-nx status: NXDOMAIN" "$T_DIR/dns.out"
check "the upstream saw the queries"                  test "$(grep -c 'query .* moat-test.example.com type=1' "$T_DIR/dns.log")" -ge 4
finish
