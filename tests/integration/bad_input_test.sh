#!/usr/bin/env bash
# moat-it-timeout: 300
# Bad user input: one-line §5.2 errors naming the flag and value, SPEC §5.1 exit statuses,
# and nothing left behind.
source "$(dirname "$0")/lib.sh" "$@"

# expect_err STATUS PATTERN CMD...: CMD exits STATUS and prints exactly one stderr line matching PATTERN.
expect_err() {
  local want="$1" pat="$2"; shift 2
  local err="$T_DIR/err.txt" rc
  set +e; "$@" > /dev/null 2> "$err"; rc=$?; set -e
  if [[ $rc -ne $want ]]; then fail "$* -> status $rc, want $want ($(head -c 300 "$err"))"; return; fi
  if ! grep -qE "$pat" "$err"; then fail "$* -> stderr does not match /$pat/: $(head -c 300 "$err")"; return; fi
  pass "$* -> $want, $(head -n 1 "$err")"
}
before="$(ip -o link | wc -l)"
expect_err 125 '^moat: error: --ipv4: "300\.1\.1\.1" is not an IPv4 address' "$MOAT" run --ipv4 300.1.1.1/24 -- true
expect_err 125 '^moat: error: --gateway4: 10\.9\.9\.9 is outside the guest subnet 100\.96\.0\.0/30' "$MOAT" run --gateway4 10.9.9.9 -- true
expect_err 125 '^moat: error: --gateway4: 100\.96\.0\.3 is the broadcast address of 100\.96\.0\.0/30' "$MOAT" run --gateway4 100.96.0.3 -- true
expect_err 125 '^moat: error: --ipv4: prefix length /31 is out of range' "$MOAT" run --ipv4 100.96.0.2/31 -- true
expect_err 125 '^moat: error: --ipv6: prefix length /48 is not supported' "$MOAT" run --ipv6 fd00::2/48 -- true
expect_err 125 '^moat: error: --mtu: "abc" is not a number' "$MOAT" run --mtu abc -- true
expect_err 125 '^moat: error: --mtu: 100 is out of range' "$MOAT" run --mtu 100 -- true
expect_err 125 '^moat: error: run: missing command' "$MOAT" run
expect_err 125 '^moat: error: --publsh: unknown option' "$MOAT" run --publsh 80:80 -- true
expect_err 125 '^moat: error: --ipv4-enable: "maybe" is not one of auto, on, off' "$MOAT" run --ipv4-enable maybe -- true
expect_err 125 '^moat: error: --audit /nonexistent-dir/a\.jsonl: cannot open: No such file or directory' "$MOAT" run --audit /nonexistent-dir/a.jsonl -- true
expect_err 2   '^moat: error: --ifnme: unknown option; did you mean --ifname\?' "$MOAT" attach --ifnme x --netns /run/netns/none
expect_err 2   '^moat: error: attach: give exactly one of --netns, --pid' "$MOAT" attach
expect_err 2   '^moat: error: --netns /nonexistent/ns: cannot open' "$MOAT" attach --netns /nonexistent/ns
expect_err 2   '^moat: error: --log-level: "loud" is not one of error, warn, info, debug, trace' "$MOAT" attach --log-level loud --netns x
expect_err 2   '^moat: error: frobnicate: unknown subcommand' "$MOAT" frobnicate
expect_err 2   '^moat: error: --gateway6: fe80::1 is a link-local address' "$MOAT" attach --netns /run/netns/x --gateway6 fe80::1
expect_err 2   '^moat: error: --guest-mac: 01:00:5e:00:00:01 is a multicast MAC' "$MOAT" attach --netns /run/netns/x --guest-mac 01:00:5e:00:00:01

# --- issue 14: bad input that used to be accepted, hang, or print badly --------------------
cd "$T_DIR"
# (1) MTU 0 (used to mean "the default"): refused from the flag and the key alike.
expect_err 125 '^moat: error: --mtu: 0 is out of range; expected 576-65520$' "$MOAT" run --mtu 0 -- true
printf '[net]\nmtu = 0\n' > mtu0.toml
expect_err 125 '^moat: error: .*mtu0\.toml:2:7: net\.mtu: 0 is out of range' "$MOAT" run --config mtu0.toml -- true
# (2) names: empty, control characters, too long; the key like the flag.
expect_err 125 '^moat: error: --ifname: "" must be 1-15 bytes$' "$MOAT" run --ifname "" -- true
expect_err 125 '^moat: error: --ifname: "a\\nb" is not a valid interface name' "$MOAT" run --ifname $'a\nb' -- true
expect_err 125 '^moat: error: --hostname: empty hostname' "$MOAT" run --hostname "" -- true
expect_err 125 '^moat: error: --hostname: "box\\nevil" is not a valid hostname' "$MOAT" run --hostname $'box\nevil' -- true
expect_err 125 '^moat: error: --hostname: "a{64}"… \(300 bytes\) is longer than 253 bytes' "$MOAT" run --hostname "$(head -c 300 /dev/zero | tr '\0' a)" -- true
expect_err 125 '^moat: error: --hostname: "under_score" is not a valid hostname' "$MOAT" run --hostname under_score -- true
printf '[net]\nhostname = "two\\nlines"\n' > host.toml
expect_err 125 'host\.toml:2:12: net\.hostname: "two\\nlines" is not a valid hostname' "$MOAT" run --config host.toml -- true
# (3) a FIFO, a character device or a socket as a file to read: refused at once, not a hang
# (timeout turns a hang into status 124, so the test fails instead of blocking).
mkfifo fifo
expect_err 125 '^moat: error: .*fifo: is not a regular file \(a FIFO\)$' timeout 10 "$MOAT" run --config "$T_DIR/fifo" -- true
expect_err 125 '^moat: error: .*fifo: is not a regular file \(a FIFO\)' timeout 10 "$MOAT" run --dns-block-file "$T_DIR/fifo" -- true
expect_err 1   '^moat: error: fifo: is not a regular file \(a FIFO\)$' timeout 10 "$MOAT" policy check fifo
expect_err 1   '^moat: error: /dev/zero: is not a regular file \(a character device\)$' timeout 10 "$MOAT" policy check /dev/zero
# A FIFO with a writer that never writes (a blocking read would wait forever).
exec 7<> fifo
expect_err 2   '^moat: error: .*fifo: is not a regular file' timeout 10 "$MOAT" attach --netns /run/netns/x --config "$T_DIR/fifo"
exec 7>&-
# (4) a 100 KB value: quoted bounded (64 bytes, "…" and the length), one line per error.
big="$(head -c 100000 /dev/zero | tr '\0' x)"
set +e; "$MOAT" run --name "$big" -- true 2> big.txt; rc=$?; set -e
check "100 KB --name: exit 125" test "$rc" -eq 125
check "100 KB --name: quoted as 64 bytes, \"…\" and the length" \
  grep -qE '^moat: error: --name: "x{64}"… \(100000 bytes\) is not a valid gateway name' big.txt
for f in --name --ipv4 --publish --rule --dns-block --dhcpv6 --offloads --guest-mac --connect-timeout "--$big"; do
  set +e; "$MOAT" run "$f" "$big" -- true 2> big.txt; set -e
  check "100 KB value for ${f:0:20}: one short line" test "$(wc -l < big.txt)" -eq 1 -a "$(wc -c < big.txt)" -lt 400
done
set +e; "$MOAT" run --name $'a\nmoat: error: forged' -- true 2> nl.txt; set -e
check "a newline in a value does not start a second error line" test "$(wc -l < nl.txt)" -eq 1
# (5) JSON errors: §5.2 FILE:LINE:COL: what, no nlohmann exception names.
printf '{"net": {"mtu": 1e999}}' > big.json
expect_err 1 '^moat: error: big\.json:1:22: number .1e999. is out of range$' "$MOAT" policy check big.json
printf '{"net": {"mtu": 1500,}}' > comma.json
expect_err 1 '^moat: error: comma\.json:1:22: while parsing object key' "$MOAT" policy check comma.json
check "no json.exception in JSON errors" bash -c "! '$MOAT' policy check big.json 2>&1 | grep -q json.exception"
# (6) serve --fd N with N closed: refused before moat opens a descriptor that could take N
# (it used to adopt its own signalfd as the guest link and keep running).
expect_err 2 '^moat: error: --fd 3: not an open file descriptor' timeout 10 "$MOAT" serve --fd 3 3<&-
expect_err 2 '^moat: error: --fd 9: not an open file descriptor' timeout 10 "$MOAT" serve --fd=9 --fd-type dgram 9<&-
# (7) --pid-file: written at start, removed at every exit; left alone when it is not ours.
# moat runs as nobody after setup (R-HARD-4), so the pid file's directory is nobody's.
chmod 0711 "$T_DIR"; mkdir -p "$T_DIR/run"; chown 65534 "$T_DIR/run"
timeout 60 "$MOAT" run --dns-upstream 127.0.0.1:15353 --pid-file "$T_DIR/run/moat.pid" -- \
  sh -c "cat '$T_DIR/run/moat.pid' > '$T_DIR/pid.seen'" > /dev/null 2> pidrun.log || true
check "--pid-file existed while the command ran" test -s pid.seen
check "--pid-file removed at a clean exit" test ! -e run/moat.pid
set +e; timeout 60 "$MOAT" run --dns-upstream 127.0.0.1:15353 --pid-file "$T_DIR/run/moat.pid" -- sh -c 'exit 3' 2>> pidrun.log; rc=$?; set -e
check "run passes the command's status (3) and removes the pid file" test "$rc" -eq 3 -a ! -e run/moat.pid
timeout 60 "$MOAT" run --dns-upstream 127.0.0.1:15353 --pid-file "$T_DIR/run/moat.pid" -- \
  sh -c "echo 999999 > '$T_DIR/run/moat.pid'" > /dev/null 2>> pidrun.log || true
check "a pid file rewritten by someone else is left alone" grep -qx 999999 run/moat.pid
rm -f run/moat.pid
expect_err 125 'cannot open' "$MOAT" run --dns-upstream 127.0.0.1:15353 --pid-file "$T_DIR/moat.pid" --pcap /nonexistent-dir/x.pcap -- true
check "--pid-file removed after a setup failure" test ! -e moat.pid
expect_err 125 '^moat: error: --pid-file: empty path$' "$MOAT" run --pid-file "" -- true
mkdir -p adir
expect_err 125 '^moat: error: --pid-file .*adir: cannot write' "$MOAT" run --dns-upstream 127.0.0.1:15353 --pid-file "$T_DIR/adir" -- true
cd - > /dev/null

# Several errors are all reported (up to 20) before exiting.
set +e; "$MOAT" run --ipv4 1.2.3/8 --mtu 70000 -- true 2> "$T_DIR/multi.txt"; set -e
check "two errors reported together" test "$(grep -c '^moat: error:' "$T_DIR/multi.txt")" -eq 2
check "nothing left behind" test "$(ip -o link | wc -l)" -eq "$before"
check "--version" bash -c "'$MOAT' --version | grep -q '^moat '"
check "--help exits 0" "$MOAT" run --help
finish
