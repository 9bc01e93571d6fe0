#!/usr/bin/env bash
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
# Several errors are all reported (up to 20) before exiting.
set +e; "$MOAT" run --ipv4 1.2.3/8 --mtu 70000 -- true 2> "$T_DIR/multi.txt"; set -e
check "two errors reported together" test "$(grep -c '^moat: error:' "$T_DIR/multi.txt")" -eq 2
check "nothing left behind" test "$(ip -o link | wc -l)" -eq "$before"
check "--version" bash -c "'$MOAT' --version | grep -q '^moat '"
check "--help exits 0" "$MOAT" run --help
finish
