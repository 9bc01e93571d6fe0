#!/usr/bin/env bash
# Installs every Debian package that moat's build, tests, fuzzing, demo and benchmarks need.
# Idempotent: quiet and fast when everything is already installed. Needs root (or sudo).
set -euo pipefail

PKGS=(
  # build
  cmake ninja-build g++ clang libclang-rt-14-dev make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  # config files (SPEC §4.1): TOML and JSON parsers, header-only use
  libtomlplusplus-dev nlohmann-json3-dev
  # the seccomp allow-list of run/attach/serve (R-HARD-3, src/harden/)
  libseccomp-dev
  # test peers: the kernel's stack in a netns is driven with these
  iproute2 iputils-ping busybox-static tshark tcpdump socat curl
  iperf3 knot-dnsutils python3 procps util-linux
  # guest tests (tests/guest, ../shared/guest/build-guest.sh): QEMU and the guest's kernel,
  # busybox-static, cpio and kmod (modinfo) build the initramfs offline
  qemu-system-x86 linux-image-amd64 cpio kmod
  isc-dhcp-client   # dhclient -6: the DHCPv6 client of tests/integration/dhcpv6_test.sh
  # benchmark peers (bench/run.sh)
  passt slirp4netns
  # TLS interception (R-TLS, src/tls/): OpenSSL 3 and nghttp2 (HTTP/2 framing, HPACK);
  # its test peers: openssl s_server/s_client, nghttpd, a WebSocket server, requests;
  # python3-h2: HTTP/2 in tests/integration/tools/https_echo.py
  libssl-dev openssl libnghttp2-dev nghttp2-server nghttp2-client python3-websockets python3-requests python3-h2
)
# `scripts/deps.sh bench`: also the TLS benchmark's peers (make bench-tls), not needed by CI.
if [[ "${1:-}" == bench ]]; then
  PKGS+=(haproxy mitmproxy)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
