#!/usr/bin/env bash
# DHCPv6 for a real guest (R-NET-8) on `moat serve --qemu ... --ipv6-enable on`: the busybox guest
# has no DHCPv6 client, so the host's ISC dhclient (scripts/deps.sh; it links only libc) is
# shipped into it with libc and ld.so and runs with scripts/dhclient6-event.sh. Two boots:
#   stateful   --dhcpv6 stateful --ipv6 NET6::77/64: the lease is NET6::77 beside the SLAAC
#              address, DNS = moat's DNS6 and the configured search domain; then the lease alone
#              carries ping, DNS and HTTP to the host's ::1 (the audit log shows it as the
#              source); a restarted dhclient Confirms it and `dhclient -r` Releases it.
#   stateless  --dhcpv6 stateless: dhclient -S gets DNS and the domain, no address.
# See scripts/dhcpv6.sh for the guest's checks.
source "$(dirname "$0")/lib.sh" "$@"
for f in /sbin/dhclient /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2; do
  [[ -r "$f" ]] || { echo "FAIL: $f missing (isc-dhcp-client is in scripts/deps.sh)"; exit 1; }
done
g_www 0
g_http6
NET6=fd42:6d73:99 LEASE6=fd42:6d73:99::77 DOMAIN=corp.test
printf 'schema = 1\n[net]\nsearch_domains = ["%s"]\n' "$DOMAIN" > "$G_DIR/moat.toml"
FAILS=0
# boot MODE: one moat serve --qemu --once and one guest boot running scripts/dhcpv6.sh in MODE.
boot() {
  local mode="$1" sock="$G_DIR/moat-$1.sock" rc
  g_bg "moat-$mode" "$MOAT" serve --qemu "$sock" --once --ipv6-enable on --dhcpv6 "$mode" \
    --ipv6 "$LEASE6/64" --gateway6 "$NET6::1" --config "$G_DIR/moat.toml" --profile all \
    --dns-upstream 127.0.0.1:53 --audit "$G_DIR/audit-$mode.jsonl" --ready-file "$G_DIR/ready-$mode" --log-level debug
  g_wait 5 test -s "$G_DIR/ready-$mode" || { echo "FAIL: moat ($mode) did not become ready"; FAILS=$((FAILS + 1)); return; }
  set +e
  g_boot "stream,id=n0,server=off,addr.type=unix,addr.path=$sock" "$G_HERE/scripts/dhcpv6.sh" \
    --log "$G_DIR/serial-$mode.log" --file "$G_HERE/scripts/dhclient6-event.sh" --file /sbin/dhclient \
    --file /lib/x86_64-linux-gnu/libc.so.6 --file /lib64/ld-linux-x86-64.so.2 \
    --env MODE="$mode" --env NET6="$NET6" --env LEASE6="$LEASE6" --env DNS6="$NET6::1" \
    --env DOMAIN="$DOMAIN" --env HTTP_PORT=8080
  rc=$?
  set -e
  echo "$G_NAME: $mode boot: guest exit status $rc"
  g_wait 5 grep -q "stats:" "$G_DIR/moat-$mode.log" || echo "moat ($mode) logged no counters at exit"
  [[ $rc -eq 0 ]] || FAILS=$((FAILS + 1))
}
# host_check DESCRIPTION CMD...: a check on moat's side of a boot (its audit log and the counters
# it logs at exit).
host_check() {
  local d="$1"; shift
  if "$@"; then echo "PASS: $d"; else echo "FAIL: $d"; FAILS=$((FAILS + 1)); fi
}
# counter MODE NAME: moat's counter NAME at the end of the MODE boot.
counter() { grep -o " $2=[0-9]*" "$G_DIR/moat-$1.log" | tail -n 1 | cut -d= -f2; }

boot stateful
host_check "stateful: audit: the HTTP flow came from the lease" \
  grep -q "\"ev\":\"flow_open\".*\"src\":\"\[$LEASE6\]:[0-9]*\",\"dst\":\"\[$NET6::1\]:8080\"" "$G_DIR/audit-stateful.jsonl"
host_check "stateful: moat logged the Release" grep -q "dhcp6: guest released its address" "$G_DIR/moat-stateful.log"
a=$(counter stateful dhcp6.advertises) r=$(counter stateful dhcp6.replies)
host_check "stateful: 1 Advertise, >= 3 Replies (Request, Confirm, Release): got ${a:-?}, ${r:-?}" \
  test "${a:-0}" -eq 1 -a "${r:-0}" -ge 3
boot stateless
a=$(counter stateless dhcp6.advertises) r=$(counter stateless dhcp6.replies)
host_check "stateless: no Advertise, >= 1 Reply: got ${a:-?}, ${r:-?}" test "${a:-1}" -eq 0 -a "${r:-0}" -ge 1
G_RC=$FAILS
echo "$G_NAME: $FAILS failure(s)"
exit "$FAILS"
