#!/usr/bin/env bash
# IPv6 for a real guest on `moat serve --qemu` (R-ADDR-3 `on`, R-NET-6): the namespace has only an
# IPv4 route, so IPv6 is forced on; the guest's kernel configures itself by SLAAC from moat's RA
# and reaches the gateway (ping, DNS, HTTP to the host's ::1) over IPv6, with IPv4 beside it.
source "$(dirname "$0")/lib.sh" "$@"
g_www 1
g_http4
g_http6
SOCK="$G_DIR/moat.sock"
g_bg moat "$MOAT" serve --qemu "$SOCK" --once --ipv6-enable on --profile all --dns-upstream 127.0.0.1:53 \
  --ready-file "$G_DIR/ready" --log-level debug
g_wait 5 test -s "$G_DIR/ready" || { echo "FAIL: moat did not become ready"; G_RC=1; exit 1; }
set +e
g_boot "stream,id=n0,server=off,addr.type=unix,addr.path=$SOCK" "$G_HERE/scripts/ipv6.sh" \
  --env SMALL_MD5="$SMALL_MD5" --env HTTP_PORT=8080
g_result $?
