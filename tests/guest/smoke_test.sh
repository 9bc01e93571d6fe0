#!/usr/bin/env bash
# The shared harness's smoke suite (DHCP, ping, DNS A + NXDOMAIN, HTTP GET, fast RST on a closed
# port, 16 MB upload, 8 MB download with md5, 100 MB bulk) on `moat serve --qemu`, run by the
# shared validate-stack.sh in its own private namespace. Every test must pass, tcp-refused included.
set -uo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: guest tests need root"; exit 77; fi
MOAT="$(readlink -f "$1")"
SHARED="$(readlink -f "${2:-}")"
[[ -x "$SHARED/guest/validate-stack.sh" ]] || { echo "SKIP: no shared guest harness at '$SHARED/guest'"; exit 77; }
export GUEST_CACHE="${GUEST_CACHE:-/var/tmp/guest-harness-cache}"
"$SHARED/guest/validate-stack.sh" --accel tcg --timeout 200 --bulk-mb "${MOAT_GUEST_BULK_MB:-100}" \
  --stack-cmd "$MOAT serve --qemu {sock} --dns-upstream 127.0.0.1:53 --profile all --once"
rc=$?
echo "smoke_test: validate-stack exit status $rc"
exit "$rc"
