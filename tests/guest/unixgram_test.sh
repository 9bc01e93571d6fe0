#!/usr/bin/env bash
# The shared smoke suite (DHCP, ping, DNS, HTTP, fast RST, upload, md5 download, bulk) for a real
# guest on `moat serve --unixgram` through QEMU's `-netdev dgram` backend (R-TR-4): one frame per
# datagram, the peer learned from QEMU's bound socket.
source "$(dirname "$0")/lib.sh" "$@"
g_www 20
g_http4
SOCK="$G_DIR/moat.sock"
g_bg moat "$MOAT" serve --unixgram "$SOCK" --profile all --dns-upstream 127.0.0.1:53 \
  --ready-file "$G_DIR/ready" --log-level debug
g_wait 5 test -s "$G_DIR/ready" || { echo "FAIL: moat did not become ready"; G_RC=1; exit 1; }
set +e
# moat (nobody after setup, R-HARD-4) sends to QEMU's bound socket: it must be writable by it.
umask 0
g_boot "dgram,id=n0,local.type=unix,local.path=$G_DIR/vm.sock,remote.type=unix,remote.path=$SOCK" \
  "$MOAT_SHARED_DIR/guest/tests/smoke.sh" \
  --env HTTP_PORT=8080 --env DNS_NAME=harness.test --env DNS_EXPECT=192.0.3.7 --env SMALL_MD5="$SMALL_MD5" \
  --env BULK_BYTES="$BULK_BYTES" --env CLOSED_PORT=5999 --env UPLOAD_KB=4096
g_result $?
