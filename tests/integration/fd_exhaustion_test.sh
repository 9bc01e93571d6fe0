#!/usr/bin/env bash
# fd exhaustion (R-LIM-3, issue 14): moat runs out of file descriptors (its RLIMIT_NOFILE is
# lowered with prlimit after start, below what the open connections need) while peers keep
# connecting to a published port. accept() then fails with EMFILE with a backlog still
# readable; moat must not spin on it (a spin detector: < 1 s of CPU over 3 s, not a speed
# assertion), must count it (ports.accept_emfile), and must serve the port again once the
# connections close.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
G="$T_DIR/guest"; mkdir -p "$G"

# The guest: a server that accepts and holds every connection (greeting "G"), until released.
cat > "$G/guest.sh" <<GUEST
#!/bin/sh
"$NP" serve-hold --bind 0.0.0.0 --port 8600 --ready-file "$G/server.ready" --max-seconds 100 > "$G/server.log" 2>&1 &
i=0; while [ ! -e "$G/release" ] && [ \$i -lt 900 ]; do sleep 0.1; i=\$((i+1)); done
kill \$! 2>/dev/null
exit 0
GUEST
chmod +x "$G/guest.sh"

# --runas root: the test lowers moat's fd limit with prlimit after start, which the kernel allows
# only for a target with the caller's uids (this sandbox gives root no CAP_SYS_RESOURCE over
# others); capabilities and seccomp are still dropped/installed as usual.
start_bg moat timeout 120 "$MOAT" run --runas root --profile all --ready-file "$T_DIR/moat.ready" \
  -p 127.0.0.1:18600:8600 -- "$G/guest.sh"
runner=$BG_PID
check "moat ready and guest server listening" wait_for 20 test -e "$G/server.ready" -a -s "$T_DIR/moat.ready"
# The gateway process: moat under timeout (the one holding the published listener).
mpid="$(pgrep -P "$runner" -x moat || true)"
check "found the moat process ($mpid)" test -n "$mpid"
r="$("$NP" connect --host 127.0.0.1 --port 18600 --greeting --timeout 5 --max-seconds 10 || true)"
check "published port works before ($r)" test "${r%% *}" = OK

# Leave room for a handful of connections only.
nfd=$(ls /proc/"$mpid"/fd | wc -l)
lim=$((nfd + 8))
prlimit --pid "$mpid" --nofile=$lim:$lim
echo "moat has $nfd fds open; RLIMIT_NOFILE now $lim"

# 40 connections: the first few become flows, the rest wait in the listener's backlog.
start_bg hold "$NP" hold --host 127.0.0.1 --port 18600 --count 40 --parallel 40 --open-seconds 4 \
  --hold-seconds 60 --release-file "$T_DIR/release-hold" --close-seconds 10 --ready-file "$T_DIR/hold.ready" --max-seconds 90
hold_pid=$BG_PID
check "connections opened (some wait in the backlog)" wait_for 15 test -e "$T_DIR/hold.ready"
cat "$T_DIR/hold.ready"; echo
check "moat hit its fd limit ($(ls /proc/"$mpid"/fd | wc -l) fds open)" test "$(ls /proc/"$mpid"/fd | wc -l)" -ge $((lim - 2))

# Spin detector: moat's CPU time over 3 s, next to a reference busy loop run over the same
# 3 s (on a loaded machine a spinning moat gets no more CPU than the reference does, so the
# comparison holds however busy the machine is). Not a speed assertion.
cpu() { awk '{ print $14 + $15 }' /proc/"$mpid"/stat; }
c0=$(cpu)
ref=$(python3 -c 'import time
end = time.monotonic() + 3
while time.monotonic() < end: pass
print(f"{time.process_time():.2f}")')
c1=$(cpu)
hz=$(getconf CLK_TCK)
used=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
echo "moat CPU over 3 s at EMFILE: $used s (a busy loop got $ref s meanwhile)"
check "no spin at EMFILE: $used s CPU in 3 s (< 1 s and < 1/4 of a busy loop's $ref s)" \
  awk -v u="$used" -v r="$ref" 'BEGIN { exit !(u < 1.0 && u < r / 4) }'

# Close the held connections: fds free up, the listener resumes.
touch "$T_DIR/release-hold"
set +e; wait "$hold_pid"; set -e
ok=""
for i in $(seq 1 30); do
  r="$("$NP" connect --host 127.0.0.1 --port 18600 --greeting --timeout 3 --max-seconds 6 || true)"
  if [ "${r%% *}" = OK ]; then ok=1; break; fi
  sleep 0.2
done
check "published port serves again after the connections closed ($r)" test -n "$ok"

kill -USR1 "$mpid" 2>/dev/null || true
check "ports.accept_emfile counted" wait_for 3 bash -c "grep -o 'ports.accept_emfile=[0-9]*' '$T_DIR/moat.log' | tail -n 1 | grep -qv '=0\$'"
grep -o 'ports.accept_emfile=[0-9]*' "$T_DIR/moat.log" | tail -n 1 || true
touch "$G/release"
check "moat run exits after the guest" wait_for 20 bash -c "! kill -0 $runner 2>/dev/null"
finish
