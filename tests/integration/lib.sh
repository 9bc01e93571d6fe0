# Shared helpers for integration tests. Source it first thing; it re-executes the test inside
# a private network namespace (unshare -n) whose only uplink is a dead-end veth pair with
# default routes, so moat's address-family detection (SPEC R-ADDR-3) finds IPv4 and IPv6
# while no packet can leave the machine. Everything a test starts is killed by PID on exit.
#
# Usage in a test:  source "$(dirname "$0")/lib.sh" "$@"   (argv[1] = path to the moat binary)

set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: integration tests need root (network namespaces)"; exit 77; fi
if [[ "${_MOAT_TEST_NETNS:-}" != 1 ]]; then
  exec unshare -n -- env _MOAT_TEST_NETNS=1 bash "$0" "$@"
fi

MOAT="$(readlink -f "$1")"
shift
[[ -x "$MOAT" ]] || { echo "FAIL: moat binary '$MOAT' not found"; exit 1; }
T_NAME="$(basename "$0" .sh)"
T_DIR="$(mktemp -d "/tmp/moat-it-$T_NAME.XXXXXX")"
T_PIDS=()
T_FAILS=0

t_cleanup() {
  local p
  for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $T_FAILS -ne 0 || -n "${KEEP:-}" ]]; then
    echo "--- logs in $T_DIR:"; for f in "$T_DIR"/*.log; do [[ -f "$f" ]] && { echo "== $f"; tail -n 30 "$f"; }; done
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT

# The dead-end uplink (scripts/lib/uplink.sh): deadend0/deadend1, IPv4 and IPv6 default routes.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/uplink.sh"
moat_dead_end_uplink

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; T_FAILS=$((T_FAILS + 1)); }
# check DESCRIPTION CMD...: runs CMD, PASS/FAIL by its status.
check() { local d="$1"; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
finish() { echo "$T_NAME: $T_FAILS failure(s)"; [[ $T_FAILS -eq 0 ]]; }

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
  local secs="$1"; shift
  local n=$((secs * 10)) i
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}

# start_bg LOGNAME CMD...: starts CMD in the background, records its PID in T_PIDS and $!.
start_bg() {
  local log="$T_DIR/$1.log"; shift
  "$@" > "$log" 2>&1 &
  T_PIDS+=($!)
  BG_PID=$!
}

# new_netns NAME: a named namespace for the test (deleted on exit).
new_netns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  T_NETNS+=("$1")
}
T_NETNS=()
t_cleanup_netns() { local n; for n in "${T_NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done; }
trap 't_cleanup; t_cleanup_netns' EXIT
