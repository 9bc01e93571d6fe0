#!/usr/bin/env bash
# moat serve (SPEC R-CLI-4, R-TR-3/4/5): the QEMU stream, unix datagram and inherited-fd
# transports driven by a stand-in VM (tools/vmpeer.py: ARP for the gateway over each framing),
# and the bad input of §5.2 / R-TR-1: a path that is not a socket, a live listener, an fd that is
# not open, a second client on a busy socket, zero / oversized length prefixes and truncation at
# end of stream (connection dropped and counted, moat keeps listening), --once, SIGTERM.
# moat-it-timeout: 240
source "$(dirname "$0")/lib.sh" "$@"
# moat drops to nobody after setup (R-HARD-4) and removes its socket file as nobody, so the
# socket's directory must be writable by nobody.
chown 65534 "$T_DIR"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
VM="$TOOLS/vmpeer.py"
start_bg dns "$TOOLS/netpeer.py" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 \
  --ready-file "$T_DIR/dns.ready" --max-seconds 200
wait_for 5 test -f "$T_DIR/dns.ready"
GW=(--dns-upstream 127.0.0.1:15353 --log-level info)

expect_err() {  # STATUS PATTERN CMD...
  local want="$1" pat="$2"; shift 2
  local err="$T_DIR/err.txt" rc
  set +e; timeout 10 "$@" > /dev/null 2> "$err"; rc=$?; set -e
  if [[ $rc -ne $want ]]; then fail "$* -> status $rc, want $want ($(head -c 300 "$err"))"; return; fi
  if ! grep -qE "$pat" "$err"; then fail "$* -> stderr does not match /$pat/: $(head -c 300 "$err")"; return; fi
  pass "$* -> $want, $(head -n 1 "$err")"
}
# stats PID: SIGUSR1 and the latest counter line of that moat's log
stats() { kill -USR1 "$1"; sleep 0.3; grep 'stats:' "$2" | tail -n 1; }
counter() { stats "$1" "$2" | grep -oE "(^| )$3=[0-9]+" | cut -d= -f2; }

# --- usage and setup errors (§5.1: 2), nothing left behind -----------------------------
expect_err 2 '^moat: error: serve: give exactly one of --qemu, --unixgram, --fd' "$MOAT" serve "${GW[@]}"
expect_err 2 '^moat: error: serve: give exactly one of --qemu, --unixgram, --fd' "$MOAT" serve --qemu "$T_DIR/a" --fd 5
expect_err 2 '^moat: error: --socket-mode: "0999" is not an octal mode' "$MOAT" serve --qemu "$T_DIR/a" --socket-mode 0999
expect_err 2 '^moat: error: --fd-type: "pipe" is not one of tap, stream, dgram' "$MOAT" serve --fd 9 --fd-type pipe
echo "not a socket" > "$T_DIR/plain"
expect_err 2 "^moat: error: $T_DIR/plain: exists and is not a socket" "$MOAT" serve --qemu "$T_DIR/plain" "${GW[@]}"
check "the non-socket file is untouched" grep -q "not a socket" "$T_DIR/plain"
expect_err 2 "^moat: error: $T_DIR/nodir/s.sock: directory does not exist" "$MOAT" serve --qemu "$T_DIR/nodir/s.sock" "${GW[@]}"
expect_err 2 "^moat: error: /tmp/$(printf 'x%.0s' {1..120}): name too long" "$MOAT" serve --qemu "/tmp/$(printf 'x%.0s' {1..120})" "${GW[@]}"
expect_err 2 '^moat: error: --fd 57: not an open file descriptor' "$MOAT" serve --fd 57 "${GW[@]}"
expect_err 2 '^moat: error: --fd: 0 is standard input' "$MOAT" serve --fd 0 "${GW[@]}"
check "no pid file left by a failed start" bash -c "! '$MOAT' serve --qemu '$T_DIR/plain' --pid-file '$T_DIR/failed.pid' 2>/dev/null; test ! -e '$T_DIR/failed.pid'"

# --- QEMU stream: mode, ARP, split frames, second client, framing errors, reconnect ------
SOCK="$T_DIR/vm.sock"
start_bg moat "$MOAT" serve --qemu "$SOCK" "${GW[@]}" --ready-file "$T_DIR/ready"
MOAT_PID=$BG_PID
check "ready file written" wait_for 5 test -s "$T_DIR/ready"
check "socket mode is 0600 by default" test "$(stat -c %a "$SOCK")" = 600
expect_err 2 "^moat: error: $SOCK: address in use by another process" "$MOAT" serve --qemu "$SOCK" "${GW[@]}"
check "the live socket survives the refused second moat" test -S "$SOCK"
check "ARP answered over the stream" timeout 10 "$VM" stream-arp "$SOCK"
check "a frame split into 1-byte writes is reassembled" timeout 20 "$VM" stream-split "$SOCK"
check "second client closed, first keeps working" timeout 15 "$VM" stream-second "$SOCK"
check "second client logged" grep -q "refused a second connection" "$T_DIR/moat.log"
for kind in oversize zero truncated-prefix truncated-frame; do
  check "framing error ($kind) closes the connection" timeout 10 "$VM" stream-bad "$SOCK" "$kind"
done
check "transport.framing_errors counts the four" test "$(counter "$MOAT_PID" "$T_DIR/moat.log" transport.framing_errors)" = 4
check "drop.framing counts the four" test "$(counter "$MOAT_PID" "$T_DIR/moat.log" drop.framing)" = 4
check "still listening after the framing errors (reconnect)" timeout 10 "$VM" stream-arp "$SOCK"
check "moat still running" kill -0 "$MOAT_PID"
kill -TERM "$MOAT_PID"
check "SIGTERM: exit 0" wait_for 3 bash -c "! kill -0 $MOAT_PID 2>/dev/null"
wait "$MOAT_PID"; rc=$?
check "exit status 0 after SIGTERM" test "$rc" -eq 0
check "socket file removed on exit" test ! -e "$SOCK"

# --- stale socket replaced; --socket-mode; --once; abstract name -------------------------
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK"
check "a stale socket file exists" test -S "$SOCK"
start_bg once "$MOAT" serve --qemu "$SOCK" --once --socket-mode 0660 "${GW[@]}" --ready-file "$T_DIR/ready2"
ONCE_PID=$BG_PID
check "stale socket replaced" wait_for 5 test -s "$T_DIR/ready2"
check "--socket-mode 0660" test "$(stat -c %a "$SOCK")" = 660
check "ARP with --once" timeout 10 "$VM" stream-arp "$SOCK"
check "--once: exits at the first disconnect" wait_for 5 bash -c "! kill -0 $ONCE_PID 2>/dev/null"
wait "$ONCE_PID"; rc=$?
check "--once: exit status 0" test "$rc" -eq 0
check "--once: socket removed" test ! -e "$SOCK"
start_bg abstract "$MOAT" serve --qemu "@moat-it-serve-$$" "${GW[@]}" --ready-file "$T_DIR/ready3"
ABS_PID=$BG_PID
wait_for 5 test -s "$T_DIR/ready3"
check "abstract socket name" timeout 10 "$VM" stream-arp "@moat-it-serve-$$"
kill -TERM "$ABS_PID"; wait "$ABS_PID" || true

# --- unix datagram: learned peer, foreign sender, VFKT handshake ----------------------------
GSOCK="$T_DIR/vm.dgram"
start_bg gram "$MOAT" serve --unixgram "$GSOCK" "${GW[@]}" --ready-file "$T_DIR/ready4"
GRAM_PID=$BG_PID
wait_for 5 test -s "$T_DIR/ready4"
check "unixgram socket mode 0600" test "$(stat -c %a "$GSOCK")" = 600
# umask 0: moat answers as nobody (R-HARD-4), so the peers' sockets must be writable by it.
check "unixgram: peer learned, foreign sender dropped, VFKT rebinds" \
  bash -c "umask 000; timeout 20 '$VM' gram-foreign '$GSOCK' '$T_DIR/peer1' '$T_DIR/peer2'"
check "drop.foreign_peer counted" test "$(counter "$GRAM_PID" "$T_DIR/gram.log" drop.foreign_peer)" -ge 2
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'x'*60, sys.argv[1])" "$GSOCK"
check "unbound sender logged once" wait_for 3 grep -q "sender without a bound address" "$T_DIR/gram.log"
expect_err 2 "^moat: error: $GSOCK: address in use by another process" "$MOAT" serve --unixgram "$GSOCK" "${GW[@]}"
kill -TERM "$GRAM_PID"; wait "$GRAM_PID" || true
check "unixgram socket removed on exit" test ! -e "$GSOCK"

# --- inherited fds (R-TR-5): detected type; end of stream -> exit 0 ------------------------
check "--fd stream socket: ARP, EOF -> exit 0" timeout 20 "$VM" fd "$MOAT" stream "${GW[@]}"
check "--fd seqpacket socket: ARP, EOF -> exit 0" timeout 20 "$VM" fd "$MOAT" seqpacket "${GW[@]}"
check "--fd dgram socket: ARP" timeout 20 "$VM" fd "$MOAT" dgram "${GW[@]}"
check "--fd TAP (tun character device): ping the gateway" timeout 20 "$VM" fd-tap "$MOAT" "${GW[@]}"
check "--fd-type stream forces stream framing" timeout 20 "$VM" fd "$MOAT" stream --fd-type stream "${GW[@]}"
finish
