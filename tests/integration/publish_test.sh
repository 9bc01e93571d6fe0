#!/usr/bin/env bash
# Published ports (SPEC R-PUB): TCP, UDP, a range mapped pair by pair, an IPv6 bind, and a
# 0.0.0.0 bind reached from a non-loopback source (198.18.0.1, whose address the guest sees,
# R-PUB-5); bad specs are one-line --publish errors with status 125; a port already in use is a
# fatal error naming the spec.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
G="$T_DIR/guest"; mkdir -p "$G"

# The guest side: servers on all of the guest's addresses ("::" is dual-stack), then wait for
# the host side to finish (at most 90 s).
cat > "$G/guest.sh" <<GUEST
#!/bin/sh
NP='$NP'; G='$G'
"\$NP" serve-send --bind :: --port 8400 --bytes 4M --seed 61 --log-peers --ready-file "\$G/r8400" --max-seconds 100 > "\$G/s8400.log" 2>&1 &
"\$NP" udp-echo   --bind :: --port 8401 --log-peers --ready-file "\$G/r8401" --max-seconds 100 > "\$G/s8401.log" 2>&1 &
for p in 8410 8411 8412; do
  "\$NP" serve-send --bind :: --port \$p --bytes 1M --seed \$p --ready-file "\$G/r\$p" --max-seconds 100 > "\$G/s\$p.log" 2>&1 &
done
"\$NP" serve-send --bind :: --port 8420 --bytes 1M --seed 8420 --log-peers --ready-file "\$G/r8420" --max-seconds 100 > "\$G/s8420.log" 2>&1 &
"\$NP" serve-send --bind :: --port 8430 --bytes 1M --seed 8430 --log-peers --ready-file "\$G/r8430" --max-seconds 100 > "\$G/s8430.log" 2>&1 &
i=0
while [ \$i -lt 900 ]; do
  [ -e "\$G/r8400" ] && [ -e "\$G/r8401" ] && [ -e "\$G/r8410" ] && [ -e "\$G/r8411" ] && [ -e "\$G/r8412" ] && [ -e "\$G/r8420" ] && [ -e "\$G/r8430" ] && break
  sleep 0.1; i=\$((i+1))
done
touch "\$G/servers.ready"
i=0
while [ ! -e "\$G/release" ] && [ \$i -lt 900 ]; do sleep 0.1; i=\$((i+1)); done
kill \$(jobs -p) 2>/dev/null
exit 0
GUEST
chmod +x "$G/guest.sh"

start_bg moat timeout 120 "$MOAT" run --profile all --ready-file "$T_DIR/moat.ready" \
  -p 127.0.0.1:18400:8400 -p 127.0.0.1:18401:8401/udp -p 127.0.0.1:18410-18412:8410-8412 \
  -p 0.0.0.0:18420:8420 -p '[::1]:18430:8430/tcp' -- "$G/guest.sh"
moat_pid=$BG_PID
check "moat ready and guest servers listening" wait_for 20 test -e "$G/servers.ready" -a -s "$T_DIR/moat.ready"

r="$("$NP" fetch --host 127.0.0.1 --port 18400 --max-seconds 30 2> "$T_DIR/f18400.err" || true)"
check "TCP 127.0.0.1:18400 -> guest 8400: 4 MiB byte-identical" test "$r" = "$("$NP" expect-sha --bytes 4M --seed 61)"
r="$("$NP" udp-ping --host 127.0.0.1 --port 18401 --count 5 --max-seconds 30 || true)"
check "UDP 127.0.0.1:18401 -> guest 8401 echo ($r)" test "${r%% *}" = OK
for p in 0 1 2; do
  r="$("$NP" fetch --host 127.0.0.1 --port $((18410 + p)) --max-seconds 30 2>/dev/null || true)"
  check "range: host $((18410 + p)) -> guest $((8410 + p))" test "$r" = "$("$NP" expect-sha --bytes 1M --seed $((8410 + p)))"
done
want20="$("$NP" expect-sha --bytes 1M --seed 8420)"
r="$("$NP" fetch --host 127.0.0.1 --port 18420 --max-seconds 30 2>/dev/null || true)"
check "0.0.0.0:18420 reached from 127.0.0.1" test "$r" = "$want20"
r="$("$NP" fetch --host 198.18.0.1 --src 198.18.0.1 --port 18420 --max-seconds 30 2>/dev/null || true)"
check "0.0.0.0:18420 reached from 198.18.0.1 (non-loopback)" test "$r" = "$want20"
r="$("$NP" fetch --host ::1 --port 18430 --max-seconds 30 2>/dev/null || true)"
check "[::1]:18430 -> guest 8430 over IPv6" test "$r" = "$("$NP" expect-sha --bytes 1M --seed 8430)"
r="$("$NP" connect --host 198.18.0.1 --port 18400 --timeout 3 --max-seconds 10 || true)"
check "a 127.0.0.1 publish is not reachable on 198.18.0.1 ($r)" test "${r%% *}" = ECONNREFUSED
sleep 0.3
echo "guest saw peers on 8420: $(grep -o 'peer .*' "$G/s8420.log" | tr '\n' ' ')"
check "guest sees the non-loopback peer's real address 198.18.0.1 (R-PUB-5)" grep -q "peer .*198\.18\.0\.1\]*:" "$G/s8420.log"
check "guest sees a loopback peer as the gateway 100.96.0.1 (R-PUB-5)"      grep -q "peer .*100\.96\.0\.1\]*:" "$G/s8420.log"
check "guest sees an IPv6 loopback peer as fd42:6d73:62::1 (R-PUB-5)"       grep -q "peer \[fd42:6d73:62::1\]:" "$G/s8430.log"
touch "$G/release"
check "moat run exits after the guest" wait_for 15 bash -c "! kill -0 $moat_pid 2>/dev/null"
set +e; wait "$moat_pid"; rc=$?; set -e
check "moat run status 0 (got $rc)" test $rc -eq 0

# Bad specs: status 125 and exactly one line naming --publish.
bad_spec() {
  local rc
  set +e; "$MOAT" run --profile all -p "$1" -- true > /dev/null 2> "$T_DIR/bad.err"; rc=$?; set -e
  if [[ $rc -eq 125 && $(wc -l < "$T_DIR/bad.err") -eq 1 ]] && grep -q '^moat: error: --publish: ' "$T_DIR/bad.err"; then
    pass "bad spec '$1' -> 125: $(cat "$T_DIR/bad.err")"
  else
    fail "bad spec '$1' -> status $rc, stderr: $(head -c 300 "$T_DIR/bad.err")"
  fi
}
for s in abc 8080 70000:80 1000-1002:80-81 80:80/sctp 1.2.3.4.5:80:80 '[::1:80:80' 0-1:80; do bad_spec "$s"; done

# A host port already in use: fatal, names the spec and the errno (R-PUB-2). The squatters are
# plain sockets (no SO_REUSEADDR) and, for UDP, also one with SO_REUSEADDR — on Linux two UDP
# sockets that both set SO_REUSEADDR may share a port, so moat must not set it on UDP listeners.
start_bg busy  "$NP" serve-sink --port 18450 --no-reuseaddr --ready-file "$T_DIR/busy.ready" --max-seconds 60
start_bg busyu "$NP" udp-echo --port 18451 --no-reuseaddr --ready-file "$T_DIR/busyu.ready" --max-seconds 60
start_bg busyr "$NP" udp-echo --port 18452 --ready-file "$T_DIR/busyr.ready" --max-seconds 60
check "port squatters ready" wait_for 10 test -s "$T_DIR/busy.ready" -a -s "$T_DIR/busyu.ready" -a -s "$T_DIR/busyr.ready"
in_use() {
  local spec="$1" rc
  set +e; timeout 20 "$MOAT" run --profile all -p "$spec" -- true > /dev/null 2> "$T_DIR/inuse.err"; rc=$?; set -e
  if [[ $rc -eq 125 ]] && grep -qF -- "$spec" "$T_DIR/inuse.err" && grep -qi 'in use' "$T_DIR/inuse.err"; then
    pass "port in use '$spec' -> 125: $(grep -F -- "$spec" "$T_DIR/inuse.err" | head -n 1)"
  else
    fail "port in use '$spec' -> status $rc, stderr: $(grep -v -e '^moat: warning: icmp' "$T_DIR/inuse.err" | head -c 300)"
  fi
}
in_use 127.0.0.1:18450:80
in_use 127.0.0.1:18451:80/udp
in_use 127.0.0.1:18452:80/udp
# Duplicate host bindings are an error (R-PUB-1), for TCP and UDP.
dup() {
  local rc
  set +e; timeout 20 "$MOAT" run --profile all -p "$1" -p "$2" -- true > /dev/null 2> "$T_DIR/dup.err"; rc=$?; set -e
  check "duplicate host binding '$1' + '$2' -> 125 naming the port (got $rc: $(grep -v -e '^moat: warning: icmp' -e '^moat: info' "$T_DIR/dup.err" | head -n 1))" \
    bash -c "test $rc -eq 125 && grep -q 18460 '$T_DIR/dup.err'"
}
dup 127.0.0.1:18460:80 127.0.0.1:18460:81
dup 127.0.0.1:18460:80/udp 127.0.0.1:18460:81/udp
finish
