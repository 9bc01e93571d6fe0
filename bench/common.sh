# Shared preamble of bench/run.sh and bench/policy_overhead.sh. Source it after parsing the
# arguments; it sets
#   here, root   bench/ and the repository root
#   netbench     ../shared/bench/netbench (or $NETBENCH), checked executable
#   moat         the built moat (or $MOAT), checked executable
#   moat_attach  netbench's custom-stack command (../shared/bench/README.md): attach to the sandbox
#                netns, configure the TAP, map the gateway to host loopback, DNS at netbench's
#                address, IPv4 only, publish the forward port on 0.0.0.0, write the ready file.
#                No policy flags: each caller appends its own (the benchmarks reach host services
#                through the gateway, which the default policy refuses).
# and makes the output directory "$out".
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
netbench="${NETBENCH:-$root/../shared/bench/netbench}"
moat="$(readlink -f "${MOAT:-$root/build/src/cli/moat}")"
[[ -x "$moat" ]] || { echo "bench: build moat first (make build)" >&2; exit 1; }
[[ -x "$netbench" ]] || { echo "bench: netbench not found at $netbench" >&2; exit 1; }
mkdir -p "${out:?bench/common.sh: set out first}"
moat_attach="$moat attach --netns {netns_path} --ifname {ifname} --ipv4 {guest_ip}/{prefix} --gateway4 {gw_ip} --dns4 {dns_ip} --mtu {mtu} --ipv6-enable off -p 0.0.0.0:{fwd_port}:{fwd_port} --ready-file {ready_file} --log-level warn"
