#!/usr/bin/env bash
# tcp.idle_timeout, udp.idle_timeout and icmp.gateway_echo from a config file (§4.2; they were
# refused as unimplemented before): an established TCP flow idle longer than tcp.idle_timeout
# is closed by moat (the guest's next read sees a reset), one kept busy survives; a UDP session
# idle longer than udp.idle_timeout is gone (udp.sessions_active falls to 0); with
# gateway_echo = false the gateway no longer answers ping.
source "$(dirname "$0")/lib.sh" "$@"
G="$T_DIR/guest"; mkdir -p "$G"

cat > "$T_DIR/echo.py" <<'PY'
import socket, threading, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 18801)); ls.listen(8); ls.settimeout(1)
end = time.monotonic() + 60
def serve(c):
    c.settimeout(30)
    try:
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
while time.monotonic() < end:
    try:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    except socket.timeout:
        pass
PY
start_bg echo python3 "$T_DIR/echo.py"
sleep 0.5

cat > "$T_DIR/moat.toml" <<'T'
[tcp]
idle_timeout = "2s"
[udp]
idle_timeout = "1s"
[icmp]
gateway_echo = false
T

cat > "$G/guest.py" <<'PY'
import socket, sys, time
def conn():
    s = socket.create_connection(("100.96.0.1", 18801), timeout=5)
    s.sendall(b"x"); assert s.recv(10) == b"x"
    return s
idle, busy = conn(), conn()
for _ in range(8):  # 4 s: busy stays active every 0.5 s, idle says nothing
    time.sleep(0.5)
    busy.sendall(b"b"); assert busy.recv(10) == b"b"
try:
    idle.sendall(b"y")
    got = idle.recv(10)
    print("idle: got %r" % got)
except OSError as e:
    print("idle: closed (%s)" % e.__class__.__name__)
busy.sendall(b"z")
print("busy: %r" % busy.recv(10))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"u", ("100.96.0.1", 18802))
print("udp: sent", flush=True)
time.sleep(3)
PY
"$MOAT" run --profile all --config "$T_DIR/moat.toml" -- sh -c "
  python3 '$G/guest.py' > '$G/out.txt' 2>&1
  ping -c 1 -W 2 100.96.0.1 > '$G/ping.txt' 2>&1; echo \"ping \$?\" >> '$G/ping.txt'
  kill -USR1 \$PPID; sleep 0.3" > "$T_DIR/moat.log" 2>&1
rc=$?
cat "$G/out.txt"
check "moat run exits 0 (got $rc)" test "$rc" -eq 0
check "the idle TCP flow was closed by tcp.idle_timeout" grep -Eq "^idle: (closed|got b'')" "$G/out.txt"
check "the busy TCP flow survived" grep -qx "busy: b'z'" "$G/out.txt"
check "tcp.timeouts counted" bash -c "grep -o 'tcp.timeouts=[0-9]*' '$T_DIR/moat.log' | tail -n 1 | grep -qv '=0$'"
check "the UDP session idled out (udp.sessions_active=0)" \
  bash -c "grep -o 'udp.sessions_active=[0-9]*' '$T_DIR/moat.log' | tail -n 1 | grep -qx 'udp.sessions_active=0'"
check "gateway_echo = false: no answer to ping" grep -qx "ping 1" "$G/ping.txt"
finish
