#!/usr/bin/env bash
# moat-it-timeout: 240
# Rate limits (R-RATE-1/2): --rate-egress / --rate-ingress 16MiB/s hold a 48 MiB upload and a
# 48 MiB download through moat to within ±20 % of the rate (Ethernet-frame bytes, so the
# payload rate is a little lower), the upload by pausing reads from the guest link and the
# download by holding TCP output; nothing is lost (byte counts match); the throttled time is
# reported (rate.*.throttled). A config file's rate.egress.burst without its rate is an
# error naming the key.
source "$(dirname "$0")/lib.sh" "$@"
G="$T_DIR/guest"; mkdir -p "$G"
cat > "$T_DIR/host.py" <<'PY'
import socket, threading, time
N = 48 << 20
def sink(ls):
    c, _ = ls.accept(); n = 0
    while True:
        d = c.recv(1 << 20)
        if not d: break
        n += len(d)
    c.sendall(str(n).encode()); c.close()
def source(ls):
    c, _ = ls.accept(); chunk = b"\0" * (1 << 20)
    for _ in range(N >> 20): c.sendall(chunk)
    c.close()
for port, fn in ((18901, sink), (18902, source)):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(1)
    threading.Thread(target=fn, args=(ls,), daemon=True).start()
time.sleep(150)
PY
start_bg host python3 "$T_DIR/host.py"
sleep 0.5
cat > "$G/guest.py" <<'PY'
import socket, time
N = 48 << 20
s = socket.create_connection(("100.96.0.1", 18901), timeout=60)
chunk = b"\1" * (1 << 20); t = time.monotonic()
for _ in range(N >> 20): s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
got = int(s.recv(100)); up = time.monotonic() - t
print("up %d %.3f" % (got, up))
s = socket.create_connection(("100.96.0.1", 18902), timeout=60); n = 0; t = time.monotonic()
while True:
    d = s.recv(1 << 20)
    if not d: break
    n += len(d)
print("down %d %.3f" % (n, time.monotonic() - t), flush=True)
PY
rc=0
timeout 200 "$MOAT" run --profile all --rate-egress 16MiB/s --rate-ingress 16MiB/s -- sh -c \
  "python3 '$G/guest.py' > '$G/out.txt' 2>&1; kill -USR1 \$PPID; sleep 0.3" > "$T_DIR/moat.log" 2>&1 || rc=$?
cat "$G/out.txt"
check "moat run exits 0 (got $rc)" test "$rc" -eq 0
read -r _ up_bytes up_s < <(grep '^up ' "$G/out.txt") || true
read -r _ down_bytes down_s < <(grep '^down ' "$G/out.txt") || true
check "the upload arrived whole ($up_bytes bytes)" test "${up_bytes:-0}" -eq $((48 << 20))
check "the download arrived whole ($down_bytes bytes)" test "${down_bytes:-0}" -eq $((48 << 20))
rate() { python3 -c "import sys; print('%.1f' % (48 / float(sys.argv[1])))" "$1"; }
within() { python3 -c "import sys; r = 48 / float(sys.argv[1]); sys.exit(0 if 16 * 0.8 <= r <= 16 * 1.2 else 1)" "$1"; }
echo "upload $(rate "${up_s:-1}") MiB/s, download $(rate "${down_s:-1}") MiB/s (limit 16 MiB/s of frames)"
check "upload rate within ±20 % of 16 MiB/s" within "${up_s:-1}"
check "download rate within ±20 % of 16 MiB/s" within "${down_s:-1}"
ms() { grep -o "$1=[0-9]*" "$T_DIR/moat.log" | tail -n 1 | cut -d= -f2; }
check "rate.egress.throttled > 0 ($(ms rate.egress.throttled))" test "$(ms rate.egress.throttled)" -gt 0
check "rate.ingress.throttled > 0 ($(ms rate.ingress.throttled))" test "$(ms rate.ingress.throttled)" -gt 0

printf '[rate.egress]\nburst = "4MiB"\n' > "$T_DIR/bad.toml"
bad_rc=0
"$MOAT" run --config "$T_DIR/bad.toml" -- true > "$T_DIR/bad.out" 2>&1 || bad_rc=$?
cat "$T_DIR/bad.out"
check "a burst without its rate: exit 125 (got $bad_rc)" test "$bad_rc" -eq 125
check "... naming rate.egress" grep -q "rate.egress.burst or initial_burst without rate.egress.bandwidth" "$T_DIR/bad.out"
"$MOAT" run --rate-egress fast -- true > "$T_DIR/bad2.out" 2>&1 || true
check "--rate-egress garbage is refused by name" grep -q -- '--rate-egress: "fast" is not a bandwidth' "$T_DIR/bad2.out"
finish
