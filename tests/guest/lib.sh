# Shared setup of the guest tests: a real Linux guest (QEMU TCG, the shared harness image) on
# `moat serve`, inside a private network namespace made here, like the shared validate-stack.sh:
# lo plus a veth pair h0/h1 that leads nowhere, h0 = 10.0.2.15/24 with an IPv4 default route
# only (so IPv6 must be forced on with --ipv6-enable on). No packet can leave the machine.
# Usage: source "$(dirname "$0")/lib.sh" "$@"   (argv[1] = moat binary, argv[2] = shared/ dir)
# Exit 77 = skipped (not root, no shared/ harness).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: guest tests need root (network namespaces)"; exit 77; fi
if [[ "${_MOAT_GUEST_NETNS:-}" != 1 ]]; then
  exec unshare -n -- env _MOAT_GUEST_NETNS=1 bash "$0" "$@"
fi
MOAT="$(readlink -f "$1")"
export MOAT_SHARED_DIR="$(readlink -f "${2:-}")"
[[ -x "$MOAT" ]] || { echo "FAIL: moat binary '$MOAT' not found"; exit 1; }
if [[ ! -x "$MOAT_SHARED_DIR/guest/run-guest.sh" ]]; then
  echo "SKIP: the shared guest harness is not at '$MOAT_SHARED_DIR/guest'"; exit 77
fi
G_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
G_TOOLS="$MOAT_SHARED_DIR/guest/tools"
G_NAME="$(basename "$0" .sh)"
G_DIR="$(mktemp -d "/tmp/moat-guest-$G_NAME.XXXXXX")"
# Started as root, moat serve runs as nobody after setup (R-HARD-4) and removes its socket and
# pid files at exit from this directory, so nobody owns it (README "Hardening").
chown 65534 "$G_DIR"
export GUEST_CACHE="${GUEST_CACHE:-/var/tmp/guest-harness-cache}"
G_PIDS=()
g_cleanup() {
  local p
  for p in "${G_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${G_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${G_RC:-1}" -ne 0 || -n "${KEEP:-}" ]]; then
    echo "--- logs in $G_DIR:"; for f in "$G_DIR"/*.log; do [[ -f "$f" ]] && { echo "== $f"; tail -n 25 "$f"; }; done
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$G_DIR"
}
trap g_cleanup EXIT

source "$G_HERE/../../scripts/lib/uplink.sh"
moat_dead_end_uplink --ipv4-only --names h0 h1 --ipv4 10.0.2.15/24 10.0.2.2
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# g_bg LOGNAME CMD...: a background helper, killed by PID at exit.
g_bg() { local log="$G_DIR/$1.log"; shift; "$@" > "$log" 2>&1 & G_PIDS+=($!); G_BG=$!; }
# g_wait SECONDS CMD...: bounded polling.
g_wait() { local n=$(($1 * 10)) i; shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }

g_bg dns python3 "$G_TOOLS/dns-responder.py" --listen 127.0.0.1 --port 53 --record harness.test=192.0.3.7 \
  --max-seconds 400 --log "$G_DIR/dns-queries.log"
g_wait 5 bash -c "ss -Hlnu | grep -q '127.0.0.1:53 '"

# g_boot NETDEV SCRIPT [--env K=V]...: boots the guest, returns the guest script's status.
g_boot() {
  local netdev="$1" script="$2"; shift 2
  "$G_HERE/boot-guest.sh" --netdev "$netdev" --script "$script" --timeout 150 --log "$G_DIR/serial.log" "$@"
}
# g_result RC: the test's status is the guest script's (its @@TEST lines are above).
g_result() {
  G_RC="$1"
  echo "$G_NAME: guest exit status $G_RC"
  exit "$G_RC"
}

# g_www BULK_MB: files for the HTTP servers (hello.txt, small.bin = 8 MiB, bulk.bin); sets
# SMALL_MD5 and BULK_BYTES. g_http4 / g_http6 serve them on 127.0.0.1:8080 / [::1]:8080.
g_www() {
  mkdir -p "$G_DIR/www"
  printf 'hello from the harness host' > "$G_DIR/www/hello.txt"
  head -c $((8 << 20)) /dev/urandom > "$G_DIR/www/small.bin"
  SMALL_MD5="$(md5sum "$G_DIR/www/small.bin" | cut -d' ' -f1)"
  BULK_BYTES=$(($1 * 1000000))
  head -c "$BULK_BYTES" /dev/urandom > "$G_DIR/www/bulk.bin"
}
g_http4() {
  g_bg http4 python3 "$G_TOOLS/http-server.py" --bind 127.0.0.1 --port 8080 --dir "$G_DIR/www" --max-seconds 400
  g_wait 5 bash -c "ss -Hlnt | grep -q '127.0.0.1:8080 '"
}
g_http6() {
  g_bg http6 timeout 400 python3 -c '
import functools, http.server, socket, socketserver, sys
class V6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):  # no getfqdn(): a reverse lookup would wait on the dead-end route
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
V6(("::1", 8080), h).serve_forever()' "$G_DIR/www"
  g_wait 5 bash -c "ss -Hlnt | grep -q '\[::1\]:8080 '"
}
