#!/usr/bin/env bash
# Connect storm (issue 14, TCP.md "Pending connects"): a guest SYN storm to a blackholed
# address fills limits.max_pending_connects (16 here); a connection to a healthy destination
# must still succeed during the storm (the busiest destination's oldest connect is failed as
# its timeout would be, tcp.connect_evicted), while more SYNs to the storm's own destination
# are refused (limits.hits.max_pending_connects).
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
G="$T_DIR/guest"; mkdir -p "$G"

# The blackhole: the dead-end uplink's default router gets a permanent neighbour entry, so
# SYNs to 203.0.113.7 leave deadend0 into deadend1, which drops them (not its MAC), and no
# error ever comes back: moat's connects stay pending until its connect timeout (30 s).
ip neigh replace 198.18.0.254 lladdr 02:00:00:00:00:fe dev deadend0 nud permanent

start_bg server "$NP" serve-hold --port 18700 --ready-file "$T_DIR/server.ready" --max-seconds 120
check "host server ready" wait_for 10 test -s "$T_DIR/server.ready"

cat > "$T_DIR/moat.toml" <<'TOML'
[limits]
max_pending_connects = 16
TOML

# The storm: keeps 32 connects in flight to the blackholed address for --seconds, opening a
# new one for each that fails (refused by moat, or failed as evicted), so the pending slots
# stay full for the whole test.
cat > "$G/storm.py" <<'PY'
import errno, selectors, socket, sys, time
host, port, parallel, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
st = {"opened": 0, "failed": 0, "connected": 0}
def one():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        st["failed"] += 1
        s.close()
        return
    st["opened"] += 1
    sel.register(s, selectors.EVENT_WRITE)
end = time.monotonic() + seconds
for _ in range(parallel):
    one()
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        st["failed" if e else "connected"] += 1
        sel.unregister(s)
        s.close()
        one()
    time.sleep(0.05)  # at most ~20 rounds a second: a storm, not a CPU hog
print(" ".join(f"{k}={v}" for k, v in st.items()))
PY

cat > "$G/guest.sh" <<GUEST
#!/bin/sh
python3 "$G/storm.py" 203.0.113.7 80 32 12 > "$G/storm.out" 2>&1 &
storm=\$!
sleep 3
for i in 1 2 3; do
  "$NP" connect --host 100.96.0.1 --port 18700 --timeout 5 --greeting --max-seconds 10 > "$G/healthy\$i.out" 2>&1
  sleep 0.5
done
touch "$G/probed"
i=0; while [ ! -e "$G/release" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
kill \$storm 2>/dev/null
exit 0
GUEST
chmod +x "$G/guest.sh"

start_bg moat timeout 120 "$MOAT" run --profile all --config "$T_DIR/moat.toml" -- "$G/guest.sh"
runner=$BG_PID
check "healthy connections tried during the storm" wait_for 60 test -e "$G/probed"
for i in 1 2 3; do
  r="$(cat "$G/healthy$i.out" 2>/dev/null || true)"
  check "healthy connection $i during the storm succeeds ($r)" test "${r%% *}" = OK
done
mpid="$(pgrep -P "$runner" -x moat || echo "$runner")"
kill -USR1 "$mpid" 2>/dev/null || true
counter() { grep -o "$1=[0-9]*" "$T_DIR/moat.log" | tail -n 1 | cut -d= -f2; }
check "counters logged" wait_for 3 bash -c "grep -q 'tcp.connect_evicted=' '$T_DIR/moat.log'"
hits=$(counter limits.hits.max_pending_connects); ev=$(counter tcp.connect_evicted)
echo "limits.hits.max_pending_connects=$hits tcp.connect_evicted=$ev"
check "the storm filled the pending-connect slots (hits $hits)" test "${hits:-0}" -gt 0
check "healthy connections took a slot from the storm (evicted $ev)" test "${ev:-0}" -ge 3
touch "$G/release"
check "moat run exits after the guest" wait_for 30 bash -c "! kill -0 $runner 2>/dev/null"
cat "$G/storm.out" 2>/dev/null || true
finish
