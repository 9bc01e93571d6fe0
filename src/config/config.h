#pragma once
// The one validated, immutable configuration of a gateway (STYLE: cli/ and config/ produce
// it; each component's constructor takes only its own slice).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/log.h"
#include "base/time.h"
#include "config/net_specs.h"

namespace moat::config {

enum class FamilyMode { automatic, on, off };

/// [net] (SPEC §4.2, R-ADDR-1/2/3).
struct NetConfig {
  uint32_t mtu = 0;  ///< 0 = the transport's default (65520 on TAP)
  MacAddr guest_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};
  MacAddr gateway_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x01}};
  std::string ifname;  ///< empty = the mode's default (eth0 for run, moat0 for attach)
  std::string hostname;
  std::vector<std::string> search_domains;

  FamilyMode ipv4_enable = FamilyMode::automatic;
  Ipv4Addr ipv4_address = Ipv4Addr::from_octets(100, 96, 0, 2);
  int ipv4_prefix = 30;
  Ipv4Addr ipv4_gateway = Ipv4Addr::from_octets(100, 96, 0, 1);
  std::optional<Ipv4Addr> ipv4_dns;  ///< unset = the gateway
  bool dhcp4 = true;
  Duration lease_time = std::chrono::hours(24);

  FamilyMode ipv6_enable = FamilyMode::automatic;
  Ipv6Addr ipv6_address{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  int ipv6_prefix = 64;
  Ipv6Addr ipv6_gateway{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  std::optional<Ipv6Addr> ipv6_dns;
  bool ra = true;
  Duration ra_interval = std::chrono::seconds(600);

  [[nodiscard]] Ipv4Addr dns4() const { return ipv4_dns.value_or(ipv4_gateway); }
  [[nodiscard]] Ipv6Addr dns6() const { return ipv6_dns.value_or(ipv6_gateway); }
};

/// Flows: TCP/UDP/ICMP relay settings (SPEC §4.2 tcp.*, udp.*, icmp.*, limits.*).
struct FlowConfig {
  bool map_gateway_to_loopback = true;       ///< net.map_gateway_to_loopback (--no-host-loopback)
  std::vector<UpstreamSpec> dns_upstreams;   ///< --dns-upstream; empty = the host's resolv.conf
  std::string resolv_conf = "/etc/resolv.conf";
  std::vector<PublishSpec> publish;          ///< -p/--publish
  std::string impair;                        ///< --impair spec (validated by the CLI)
  uint32_t max_flows = 4096;                 ///< limits.max_flows, hard cap 65536
  uint32_t max_pending_connects = 512;       ///< hard cap 8192
  Duration connect_timeout = std::chrono::seconds(30);
  uint32_t udp_max_sessions = 1024;          ///< hard cap 16384
  uint32_t icmp_max_sessions = 256;
  bool icmp_relay = true;
};

/// Everything one gateway process needs (grows with each subsystem).
struct Config {
  NetConfig net;
  FlowConfig flows;
  std::string name;        ///< gateway.name; empty = moat-<pid>
  std::string pcap_file;   ///< --pcap; empty = off
  std::string ready_file;  ///< --ready-file: PID + newline, written atomically once serving
  std::string pid_file;    ///< --pid-file: written at start
  LogLevel log_level = LogLevel::info;
};

/// Where an error points and what it says; printed as `moat: error: <where>: <what>[; <hint>]` (§5.2).
struct UserError {
  std::string where;
  std::string what;
  std::string hint;
  [[nodiscard]] std::string format() const;
};

/// Which flag or key set each validated field, so messages name what the user wrote.
struct NetSources {
  std::string mtu = "--mtu", ipv4 = "--ipv4", gateway4 = "--gateway4", dns4 = "--dns4";
  std::string ipv6 = "--ipv6", gateway6 = "--gateway6", dns6 = "--dns6";
  std::string guest_mac = "--guest-mac", gateway_mac = "--gateway-mac", ifname = "--ifname";
};

/// R-ADDR-2 checks for the families that will be active. Returns every error found (≤ 20).
std::vector<UserError> validate(const NetConfig& net, bool ipv4_active, bool ipv6_active,
                                const NetSources& src = {});

/// "500ms", "30s", "10m", "2h" (a unit is required, §4.1).
std::optional<Duration> parse_duration(std::string_view s);

/// Parses "ADDR/LEN" for --ipv4 / --ipv6; messages name `flag`.
std::optional<UserError> parse_ipv4_prefix(std::string_view flag, std::string_view value, Ipv4Addr* addr,
                                           int* prefix);
std::optional<UserError> parse_ipv6_prefix(std::string_view flag, std::string_view value, Ipv6Addr* addr,
                                           int* prefix);

}  // namespace moat::config
