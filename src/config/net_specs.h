#pragma once
// Parsers for the small value grammars of flags and config keys that name endpoints:
// DNS upstreams (R-DNS-4) and published ports (R-PUB-1). Pure; errors are §5.2 messages
// without the "moat: error: <where>: " prefix.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/result.h"

namespace moat::config {

struct UpstreamSpec {
  IpAddr addr;
  uint16_t port = 53;
  bool tcp = false;  ///< tcp://ADDR[:PORT]
  friend bool operator==(const UpstreamSpec&, const UpstreamSpec&) = default;
};

/// `IP`, `IP:PORT`, `[IPv6]:PORT`, `tcp://` prefix. Hostnames are not resolved here.
Result<UpstreamSpec, std::string> parse_upstream(std::string_view s);

enum class Proto : uint8_t { tcp, udp };

/// One published port range: host BIND:HOSTPORT..+n-1 -> guest GUESTPORT..+n-1.
struct PublishSpec {
  IpAddr bind = Ipv4Addr::from_octets(127, 0, 0, 1);
  uint16_t host_port = 0;   ///< 0 = ephemeral (only for a single port)
  uint16_t guest_port = 0;
  uint16_t count = 1;       ///< range length
  Proto proto = Proto::tcp;
  std::string text;         ///< as written, for messages
};

/// The same binding (protocol, address, ports, range), whatever the text that wrote it.
bool same_binding(const PublishSpec& a, const PublishSpec& b) noexcept;

/// `[BIND:]HOSTPORT[-HOSTPORT2]:GUESTPORT[-GUESTPORT2][/tcp|/udp]` (R-PUB-1).
Result<PublishSpec, std::string> parse_publish(std::string_view s);

/// net.ipv6.dhcpv6 / --dhcpv6 (R-NET-8).
enum class Dhcpv6Mode : uint8_t { off, stateless, stateful };
/// `stateless`, `stateful` or `off`.
Result<Dhcpv6Mode, std::string> parse_dhcpv6_mode(std::string_view s);

/// transport.offloads / --offloads (R-TR-6): which virtio-net offloads moat asks for.
struct OffloadSpec {
  bool automatic = true;  ///< `auto`: CSUM, TSO4 and TSO6 where the transport can (TAP)
  bool csum = false, tso4 = false, tso6 = false, uso = false;  ///< the explicit list
  friend bool operator==(const OffloadSpec&, const OffloadSpec&) = default;
};
/// `auto`, `none`, or a comma-separated subset of `csum,tso4,tso6,uso` (each at most once;
/// TSO and USO need csum, as in virtio-net §5.1.3.1).
Result<OffloadSpec, std::string> parse_offloads(std::string_view s);

/// Reads the `nameserver` lines of a resolv.conf text (R-DNS-4): IPv4/IPv6 literals, an
/// IPv6 zone suffix is dropped; other lines are ignored.
std::vector<UpstreamSpec> parse_resolv_conf(std::string_view text);

}  // namespace moat::config
