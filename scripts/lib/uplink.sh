# The dead-end uplink of a test/demo network namespace, shared by tests/integration/lib.sh,
# tests/guest/lib.sh and scripts/demo.sh. Source it, then call moat_dead_end_uplink in the
# fresh namespace (after unshare -n):
#
#   moat_dead_end_uplink [--ipv4-only] [--names DEV PEER] [--ipv4 ADDR/LEN GW] [--ipv6 ADDR/LEN GW]
#
# It brings lo up and makes a veth pair DEV/PEER (default deadend0/deadend1) whose ends are both
# in this namespace, so nothing reads what is sent: DEV gets the addresses and the default routes
# via "routers" that answer nothing. moat's address-family detection (SPEC R-ADDR-3) sees the
# routes while no packet can leave the machine. Defaults: 198.18.0.1/24 via 198.18.0.254 and
# 2001:db8:ffff::1/64 (nodad) via 2001:db8:ffff::fe; --ipv4-only leaves IPv6 without an address
# or route (the guest tests force IPv6 on instead).
moat_dead_end_uplink() {
  local dev=deadend0 peer=deadend1 v4=198.18.0.1/24 gw4=198.18.0.254 v6=2001:db8:ffff::1/64 gw6=2001:db8:ffff::fe
  while (($#)); do
    case "$1" in
      --ipv4-only) v6=""; shift ;;
      --names) dev="$2" peer="$3"; shift 3 ;;
      --ipv4) v4="$2" gw4="$3"; shift 3 ;;
      --ipv6) v6="$2" gw6="$3"; shift 3 ;;
      *) echo "moat_dead_end_uplink: unknown argument '$1'" >&2; return 2 ;;
    esac
  done
  ip link set lo up
  ip link add "$dev" type veth peer name "$peer"
  ip link set "$dev" up
  ip link set "$peer" up
  ip addr add "$v4" dev "$dev"
  [[ -z "$v6" ]] || ip -6 addr add "$v6" dev "$dev" nodad
  ip route add default via "$gw4" dev "$dev"
  [[ -z "$v6" ]] || ip -6 route add default via "$gw6" dev "$dev"
}
